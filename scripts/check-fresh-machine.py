"""Prove that scripts/host-prereqs.sh installs everything the project needs on a fresh Debian 12.

Runs the prerequisites step inside a fresh container of the project's own Debian 12 image (the
testbed's debootstrap image: a minimal system, nothing installed by hand), then checks that every
command the testbed, the local NetBox and the tests call is present (`host-prereqs.sh --verify`),
and that the pinned Python requirements install into a virtualenv there. The machine's local CA
certificates are trusted inside (as on the machine), for package mirrors behind TLS inspection.

    .venv/bin/python scripts/check-fresh-machine.py [--no-pip]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from allmende import paths, testbed

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "localhost/allmende-node:bookworm"
LOCAL_CA = Path("/usr/local/share/ca-certificates")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-pip", action="store_true", help="skip installing requirements.txt")
    args = parser.parse_args()
    start = time.monotonic()
    testbed.ensure_image(image=IMAGE, suite="bookworm", log=print)
    steps = [
        "set -e",
        "update-ca-certificates >/dev/null 2>&1 || true",
        "cp -r /src/scripts /tmp/scripts",
        "if /tmp/scripts/host-prereqs.sh --verify >/dev/null 2>&1; then"
        " echo 'the fresh image already has every command: the check would prove nothing'; exit 3; fi",
        "/tmp/scripts/host-prereqs.sh",
        "/tmp/scripts/host-prereqs.sh --verify",
    ]
    if not args.no_pip:
        steps += [
            "python3 -m venv /tmp/venv",
            "/tmp/venv/bin/pip install -q --disable-pip-version-check -r /src/requirements.txt",
            "mkdir /tmp/src",
            "tar -C /src --exclude=./.venv --exclude=./.build --exclude=./.git -c . | tar -C /tmp/src -x",
            "/tmp/venv/bin/pip install -q --disable-pip-version-check --no-deps /tmp/src",
            "/tmp/venv/bin/allmende --version",
            "/tmp/venv/bin/ansible-playbook --version | head -1",
        ]
    cmd = [
        "podman",
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=4096:4096",
        "-e",
        "PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
        "-v",
        f"{ROOT}:/src:ro",
    ]
    # Downloads are cached between checks (the packages are still installed fresh every time).
    apt_cache = paths.cache_dir() / "apt-archives" / "fresh-machine-check"
    pip_cache = paths.cache_dir() / "pip-fresh-machine-check"
    (apt_cache / "partial").mkdir(parents=True, exist_ok=True)
    pip_cache.mkdir(parents=True, exist_ok=True)
    cmd += ["-v", f"{apt_cache}:/var/cache/apt/archives", "-v", f"{pip_cache}:/root/.cache/pip"]
    if LOCAL_CA.is_dir():
        cmd += ["-v", f"{LOCAL_CA}:/usr/local/share/ca-certificates:ro"]
    cmd += [IMAGE, "bash", "-c", "\n".join(steps)]
    proc = subprocess.run(cmd, text=True, capture_output=True, timeout=1800, check=False)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr[-4000:])
    verdict = "passed" if proc.returncode == 0 else f"FAILED (rc={proc.returncode})"
    print(f"fresh Debian 12 container: prerequisites {verdict} in {time.monotonic() - start:.0f}s")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
