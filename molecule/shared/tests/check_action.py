"""Shared by the scenarios' check-action tests: run a playbook with allmende_action=check against
the scenario's inventory and read which hosts report drift, and what."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def ansible_playbook(playbook, *args, timeout=900):
    """(rc, JSON result) of a playbook run on the scenario's inventory (as `molecule verify` sets it)."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert inventory, "needs the molecule inventory (run through `molecule verify`)"
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(Path(inventory).parent), playbook, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    try:
        return proc.returncode, json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-2000:]) from exc


def drift(playbook, *args):
    """Run the check action; {host: failure message} for every host that reported drift, and the stats."""
    rc, result = ansible_playbook(str(ROOT / "playbooks" / playbook), "-e", "allmende_action=check", *args)
    failures = {}
    for play in result["plays"]:
        for task in play["tasks"]:
            for host, res in task["hosts"].items():
                if res.get("failed") and not res.get("ignore_errors"):
                    failures[host] = str(res.get("msg", ""))
    changed = {host: stats["changed"] for host, stats in result["stats"].items()}
    assert (rc == 0) == (not failures), (rc, failures)
    # Comparison tasks run in check mode count a difference they find as "changed" (nothing was
    # written: the tests check that the drift is still there afterwards); without drift, nothing.
    if not failures:
        assert not any(changed.values()), f"the check action reported changes without drift: {changed}"
    return failures


def deploy(playbook, *args):
    rc, result = ansible_playbook(str(ROOT / "playbooks" / playbook), *args)
    assert rc == 0, json.dumps(result.get("stats"))
    return result
