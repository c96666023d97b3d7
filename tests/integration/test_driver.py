"""`allmende apply`, `runs` and `testbed` against real hosts."""

import json
import os
import subprocess
from pathlib import Path

from conftest import NAME, allmende

HERE = Path(__file__).parent
FAILING = str(HERE / "playbooks" / "fail_on_one_host.yml")


def test_up_twice_is_harmless(bed):
    before = subprocess.run(
        ["podman", "ps", "-q", "--filter", f"label=allmende.testbed={NAME}"], capture_output=True, text=True, check=True
    ).stdout.split()
    proc = allmende("testbed", "up", "--name", NAME, "--nodes", "3", "--disks", "1", "--disk-size", "1G")
    assert proc.returncode == 0, proc.stderr
    assert "creating" not in proc.stdout
    after = subprocess.run(
        ["podman", "ps", "-q", "--filter", f"label=allmende.testbed={NAME}"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(before) == sorted(after) and len(after) == 3


def test_status_reports_running_nodes_with_disks(bed):
    proc = allmende("testbed", "status", "--name", NAME, "--json")
    info = json.loads(proc.stdout)
    assert proc.returncode == 0
    assert [n["state"] for n in info["nodes"]] == ["running"] * 3
    assert all(n["systemd"] in ("running", "degraded") for n in info["nodes"])
    assert all(len(n["disks"]) == 1 and n["disks"][0].startswith("/dev/loop") for n in info["nodes"])


def test_a_failing_host_makes_apply_exit_non_zero_naming_host_and_task(bed):
    proc = allmende("apply", FAILING, "-i", str(bed.inventory_dir), "--progress", "lines")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    # live progress: one line per host and task as results arrive
    for node in ("node1", "node2", "node3"):
        assert any(node in line and "Reach every host" in line for line in out.splitlines()), out
    # the failure table names host, task and the message
    table = out[out.index("What failed where") :]
    assert "node2" in table and "Break on purpose on the second node" in table and "disk on fire" in table
    assert "node1" not in table and "node3" not in table
    assert "failed (rc=1)" in out

    shown = allmende("runs", "show", "last")
    assert "Break on purpose on the second node" in shown.stdout and "node2" in shown.stdout
    listing = allmende("runs")
    assert "node2" in listing.stdout


def test_json_mode_prints_one_event_per_line(bed):
    proc = allmende("apply", FAILING, "-i", str(bed.inventory_dir), "--json", "--limit", "node1,node2")
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert records[0]["event"] == "run_start"
    results = [r for r in records if r["event"].startswith("runner_on_")]
    assert {r["host"] for r in results} == {"node1", "node2"}
    end = records[-1]
    assert end["event"] == "run_end" and end["failed_hosts"] == ["node2"] and end["rc"] == 1
    assert end["failures"][0]["task"] == "Break on purpose on the second node"
    run_dir = Path(end["run_dir"])
    assert (run_dir / "summary.json").is_file()
    assert any((run_dir / "artifacts").glob("*/job_events/*.json"))


def test_live_table_mode(bed):
    proc = allmende("apply", FAILING, "-i", str(bed.inventory_dir), "--progress", "live", "--limit", "node1")
    assert proc.returncode == 0, proc.stdout
    assert "current task" in proc.stdout and "node1" in proc.stdout


def test_bad_arguments_are_refused_before_anything_runs(bed, tmp_path):
    proc = allmende("apply", FAILING, "-i", str(tmp_path / "nope"), "-e", "broken")
    assert proc.returncode == 2
    assert "inventory" in proc.stdout and "broken" in proc.stdout


def test_host_keys_are_recorded_at_creation_and_checked(bed, tmp_path):
    known = bed.known_hosts.read_text().splitlines()
    for node in bed.nodes:
        keys = subprocess.run(
            ["podman", "exec", node.container, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()[:2]
        assert any(line.split()[0].split(",")[:1] == [node.name] and line.split()[1:3] == keys for line in known)
    # a node whose key differs from the recorded one is refused, not trusted
    original = bed.known_hosts.read_text()
    first, last = bed.nodes[0], bed.nodes[-1]
    first_key = next(line.split(" ", 1)[1] for line in known if line.startswith(first.name + ","))
    forged = [line for line in known if not line.startswith(last.name + ",")]
    forged.append(f"{last.name},{last.container},{last.address} {first_key}")
    try:
        bed.known_hosts.write_text("\n".join(forged) + "\n")
        # a fresh SSH control directory: no connection of an earlier run is reused
        env = {**os.environ, "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp")}
        proc = allmende(
            "apply", FAILING, "-i", str(bed.inventory_dir), "--limit", last.name, "--progress", "lines", env=env
        )
        assert proc.returncode == 1, proc.stdout
        assert "unreachable" in proc.stdout and "Host key verification failed" in proc.stdout, proc.stdout
    finally:
        bed.known_hosts.write_text(original)


def test_check_action_reports_drift_and_changes_nothing(bed):
    inventory = str(bed.inventory_dir)
    deploy = allmende("apply", "bootstrap", "-i", inventory, "--json")
    assert deploy.returncode == 0, deploy.stdout[-3000:]
    check = allmende("apply", "bootstrap", "-i", inventory, "--action", "check", "--json")
    end = json.loads(check.stdout.splitlines()[-1])
    assert check.returncode == 0 and end["status"] == "successful", check.stdout[-3000:]
    assert not any(h["changed"] for h in end["stats"].values()), end["stats"]
    # a deliberate change on one node: check names node and drift, and still changes nothing
    first = bed.nodes[0]
    subprocess.run(["podman", "exec", first.container, "systemctl", "stop", "chrony"], check=True, timeout=60)
    try:
        drift = allmende("apply", "bootstrap", "-i", inventory, "--action", "check", "--json")
        end = json.loads(drift.stdout.splitlines()[-1])
        assert drift.returncode == 1 and end["failed_hosts"] == [first.name], drift.stdout[-3000:]
        assert "chrony is not running" in end["failures"][0]["message"]
        assert not any(h["changed"] for h in end["stats"].values()), end["stats"]
        state = subprocess.run(
            ["podman", "exec", first.container, "systemctl", "is-active", "chrony"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert state.stdout.strip() != "active"  # check did not repair it
    finally:
        subprocess.run(["podman", "exec", first.container, "systemctl", "start", "chrony"], check=False, timeout=60)
    bogus = allmende("apply", "bootstrap", "-i", inventory, "--action", "bogus")
    assert bogus.returncode == 2 and "bootstrap offers deploy, check" in bogus.stdout


def test_down_leaves_no_container_network_or_loop_device(bed):
    disk_files = [d.file for n in bed.nodes for d in n.disks]
    proc = allmende("testbed", "down", "--name", NAME)
    assert proc.returncode == 0, proc.stderr
    containers = subprocess.run(
        ["podman", "ps", "-aq", "--filter", f"label=allmende.testbed={NAME}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    networks = subprocess.run(
        ["podman", "network", "ls", "--format", "{{.Name}}"], capture_output=True, text=True, check=True
    ).stdout.split()
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    assert containers == []
    assert not [n for n in networks if n.startswith(f"allmende-{NAME}-")]
    assert not any(f in loops for f in disk_files)
    assert not any(Path(f).exists() for f in disk_files)
