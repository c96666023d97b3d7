"""Driver overhead: wall time of `allmende apply` against plain `ansible-playbook`.

Both run the same playbook (the bootstrap role, already converged, so every run does the same
work) on the same testbed hosts, interleaved, several times; the script prints each timing,
the medians and the ratio allmende/ansible-playbook measured in this run.

    .venv/bin/python scripts/bench-driver-overhead.py [--runs 5] [--testbed bench] [--keep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--testbed", default="bench")
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--playbook", default=str(ROOT / "playbooks" / "bootstrap.yml"))
    parser.add_argument("--keep", action="store_true", help="keep the testbed afterwards")
    args = parser.parse_args()

    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    allmende = str(BIN / "allmende")
    subprocess.run(
        [allmende, "testbed", "up", "--name", args.testbed, "--nodes", str(args.nodes), "--disks", "0"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    from allmende.testbed import Testbed

    tb = Testbed.load(args.testbed)
    assert tb is not None
    inventory = str(tb.inventory_dir)
    plain = [str(BIN / "ansible-playbook"), "-i", inventory, args.playbook]
    driver = [allmende, "apply", args.playbook, "-i", inventory, "--progress", "lines"]
    print(f"playbook {args.playbook} on {len(tb.nodes)} testbed hosts; warming up (converging once)")
    timed(plain, env)

    rows: list[tuple[str, float]] = []
    for i in range(args.runs):
        # alternate which tool goes first so drift in the machine's load hits both equally
        order = [("ansible-playbook", plain), ("allmende apply", driver)]
        for name, cmd in order if i % 2 == 0 else reversed(order):
            seconds = timed(cmd, env)
            rows.append((name, seconds))
            print(f"  run {i + 1}: {name:<17} {seconds:7.2f} s", flush=True)

    plain_median = statistics.median(s for n, s in rows if n == "ansible-playbook")
    driver_median = statistics.median(s for n, s in rows if n == "allmende apply")
    print()
    print(f"ansible-playbook median: {plain_median:7.2f} s")
    print(f"allmende apply   median: {driver_median:7.2f} s")
    print(
        f"ratio allmende/ansible-playbook: {driver_median / plain_median:.3f} "
        f"(overhead {driver_median - plain_median:+.2f} s per run, {args.runs} runs each)"
    )
    if not args.keep:
        subprocess.run(
            [allmende, "testbed", "down", "--name", args.testbed], env=env, check=True, stdout=subprocess.DEVNULL
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
