"""Shared by the scenarios that prove the VIP: which node holds it, a bounded `allmende probe` run
while something is done to the cloud, and a killed node brought back."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ALLMENDE = str(Path(sys.executable).parent / "allmende")


def vip_of(testbed):
    """The testbed's VIP: the .250 of its management subnet (inventories/testbed/group_vars)."""
    return ".".join(testbed.mgmt_subnet.split("/")[0].split(".")[:3]) + ".250"


def wait_for(condition, timeout=60.0, step=1.0):
    """Poll condition() until it returns something true (bounded); its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def holders(testbed, vip):
    """The control nodes that have the VIP on an interface."""
    # through podman, not SSH: a killed node simply has no addresses
    found = []
    for node in testbed.nodes:
        out = subprocess.run(
            ["podman", "exec", node.container, "ip", "-4", "-o", "addr", "show"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
        if f" {vip}/" in out:
            found.append(node.name)
    return sorted(found)


def single_holder(testbed, vip):
    found = holders(testbed, vip)
    return found[0] if len(found) == 1 else None


def probe(directory, case, checks, action, duration=30, env=None):
    """Run `allmende probe CHECKS...` for DURATION s while action() happens after 5 s; the report of
    its first check and all samples. The figures are printed and kept in DIRECTORY/CASE.txt."""
    out = Path(directory) / case
    proc = subprocess.Popen(
        [ALLMENDE, "probe", *checks, "--rate", "5", "--duration", str(duration), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        time.sleep(5)
        action()
    finally:
        output = proc.communicate(timeout=duration + 90)[0]
    assert proc.returncode == 0, output
    data = json.loads((out / "probe.json").read_text())
    report = data["checks"][0]
    print(
        f"{case}: {report['requests']} requests, {report['failures']} failures, "
        f"longest gap {report['longest_gap']:.2f} s"
    )
    (Path(directory) / f"{case}.txt").write_text(
        json.dumps({k: report[k] for k in ("requests", "failures", "longest_gap", "p50", "p95", "errors")})
    )
    return report, data["samples"]


def assert_failover(testbed, vip, report, samples, old):
    """The VIP moved away from OLD and the service resumed within the probe; the new holder."""
    new = wait_for(lambda: single_holder(testbed, vip), 30)
    assert new and new != old, (old, holders(testbed, vip))
    assert report["requests"] >= 100
    # service resumed: the last 5 s of the probe answered
    tail = [s for s in samples if s["start"] > samples[-1]["start"] - 5]
    assert tail and all(s["ok"] for s in tail), tail
    # bounded: a few seconds of VRRP failover, not minutes
    assert report["longest_gap"] < 15, report
    assert report["failures"] < 75, report
    return new


def kill_node(testbed, name):
    node = next(n for n in testbed.nodes if n.name == name)
    subprocess.run(["podman", "kill", node.container], check=True, capture_output=True, timeout=60)


def revive(testbed):
    """`allmende testbed up` again: a killed node is started with its disks and addresses."""
    up = subprocess.run(
        [ALLMENDE, "testbed", "up", "--name", testbed.name], capture_output=True, text=True, timeout=600, check=False
    )
    assert up.returncode == 0, up.stdout + up.stderr
