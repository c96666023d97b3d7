"""Integration tests: the driver against a real testbed (privileged podman containers)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from allmende import testbed

BIN = Path(sys.executable).parent
NAME = os.environ.get("ALLMENDE_ITEST_TESTBED", "itest")


def allmende(*args, timeout=900, **kwargs):
    return subprocess.run(
        [str(BIN / "allmende"), *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


@pytest.fixture(scope="session")
def bed():
    if shutil.which("podman") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("podman is not installed (scripts/host-prereqs.sh); CI must run the testbed tests")
        pytest.skip("podman is not installed (scripts/host-prereqs.sh)")
    proc = allmende("testbed", "up", "--name", NAME, "--nodes", "3", "--disks", "1", "--disk-size", "1G")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tb = testbed.Testbed.load(NAME)
    yield tb
    if os.environ.get("ALLMENDE_KEEP_TESTBED"):
        return
    allmende("testbed", "down", "--name", NAME)
