"""Shared by the ceph scenario's tests: the testbed, commands on its nodes, the manifest."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from allmende.testbed import Testbed

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
RELEASE = yaml.safe_load((ROOT / "releases" / "index.yml").read_text())["current"]
MANIFEST = yaml.safe_load((ROOT / "releases" / f"{RELEASE}.yml").read_text())
TESTBED = Testbed.load(os.environ.get("ALLMENDE_TESTBED_NAME", "molecule"))
assert TESTBED is not None, "the scenario's testbed does not exist"
NODES = {n.name: n for n in TESTBED.nodes}
ADMIN = TESTBED.group("control")[0]


def ssh(node: str, command: str, *, timeout: float = 120, check: bool = True, stdin: str | None = None):
    """Run a shell command on a testbed node as root."""
    proc = subprocess.run(
        ["ssh", "-F", str(TESTBED.ssh_config), "-o", "BatchMode=yes", node, command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{node}: {command!r} failed (rc={proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc


def ceph_json(*args: str, node: str = ADMIN):
    return json.loads(ssh(node, "ceph --connect-timeout 20 " + " ".join(args) + " --format json").stdout)


def ansible_playbook(
    playbook: str, *extra: str, timeout: float = 1500, inventory: Path | None = None
) -> subprocess.CompletedProcess:
    """ansible-playbook against the scenario's testbed inventory (with the testbed group_vars), or
    another inventory of the same hosts."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory or TESTBED.inventory_dir),
            str(ROOT / "playbooks" / playbook),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
        cwd=ROOT,
    )


@pytest.fixture(scope="session")
def cluster_status():
    return ceph_json("status")
