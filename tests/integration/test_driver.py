"""`allmende apply`, `runs` and `testbed` against real hosts."""

import json
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
    assert proc.returncode == 2, out + proc.stderr
    # live progress: one line per host and task as results arrive
    for node in ("node1", "node2", "node3"):
        assert any(node in line and "Reach every host" in line for line in out.splitlines()), out
    # the failure table names host, task and the message
    table = out[out.index("What failed where") :]
    assert "node2" in table and "Break on purpose on the second node" in table and "disk on fire" in table
    assert "node1" not in table and "node3" not in table
    assert "failed (rc=2)" in out

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
    assert end["event"] == "run_end" and end["failed_hosts"] == ["node2"] and end["rc"] == 2
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
