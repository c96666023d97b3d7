"""playbooks/ceph-rolling-restart.yml on the running testbed cluster, under client load.

1. Data is written with rados and rbd (random content, checksums kept).
2. A rolling restart runs while a client writes and reads objects; during it the OSD daemons of
   the last OSD host are killed. The run must stop at the gate before the first OSD host, with
   a clear message, without having touched that host's OSDs, and with the flags reported.
3. The killed daemons are started again; the playbook runs again and must complete: every
   daemon restarted, flags unset, HEALTH_OK, the client saw no failed operation, and the data
   reads back bit-identical.
"""

import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from conftest import ADMIN, BIN, ROOT, TESTBED, ceph_json, ssh

HERE = Path(__file__).resolve().parent
OSD_HOSTS = TESTBED.group("storage")
VICTIM = OSD_HOSTS[-1]  # its OSDs are killed while the run restarts the monitors
FIRST = OSD_HOSTS[0]  # the first OSD host, whose gate must stop the run
POOL, NAMESPACE, IMAGE = "volumes", "allmende-verify", "allmende-verify-disk"
GATE_TIMEOUT = 30
STOP_FILE = "/var/tmp/allmende-client-loop.stop"


def report(capsys, text):
    with capsys.disabled():
        print(f"\n[rolling restart] {text}", flush=True)


def host_osds(name):
    tree = ceph_json("osd", "tree")
    return next(sorted(n["children"]) for n in tree["nodes"] if n["type"] == "host" and n["name"] == name)


def up_from():
    return {o["osd"]: o["up_from"] for o in ceph_json("osd", "dump")["osds"]}


def osd_flags():
    return set(ceph_json("osd", "dump")["flags"].split(","))


def checksums():
    """sha256 of the rbd image and of every verification object, read back through the cluster."""
    script = (
        f"set -e; rbd --id cinder export {POOL}/{IMAGE} - 2>/dev/null | sha256sum | cut -d' ' -f1; "
        f"for o in $(rados --id cinder -p {POOL} -N {NAMESPACE} ls | sort); do "
        f"printf '%s ' $o; rados --id cinder -p {POOL} -N {NAMESPACE} get $o - | sha256sum | cut -d' ' -f1; done"
    )
    lines = ssh(ADMIN, script, timeout=300).stdout.split("\n")
    return {"image": lines[0], **dict(line.split() for line in lines[1:] if line.strip())}


@pytest.fixture(scope="module")
def dataset():
    """64 MiB rbd image and 16 objects of random data, with the checksums of what was written."""
    script = (
        "set -e; d=$(mktemp -d); cd $d; head -c 64M /dev/urandom > image; "
        f"rbd --id cinder rm {POOL}/{IMAGE} >/dev/null 2>&1 || true; "
        f"rbd --id cinder import --no-progress image {POOL}/{IMAGE}; sha256sum image | cut -d' ' -f1; "
        "for i in $(seq -w 1 16); do head -c 256K /dev/urandom > obj$i; "
        f"rados --id cinder -p {POOL} -N {NAMESPACE} put obj$i obj$i; "
        "printf 'obj%s ' $i; sha256sum obj$i | cut -d' ' -f1; done; "
        "cd /; rm -rf $d"
    )
    lines = ssh(ADMIN, script, timeout=300).stdout.split("\n")
    written = {"image": lines[0], **dict(line.split() for line in lines[1:] if line.strip())}
    assert len(written) == 17
    assert checksums() == written
    yield written
    ssh(ADMIN, f"rbd --id cinder rm {POOL}/{IMAGE} >/dev/null 2>&1; true", check=False)
    rados = f"rados -p {POOL} -N {NAMESPACE}"
    ssh(ADMIN, f"for o in $({rados} ls); do {rados} rm $o; done", check=False)


class ClientLoop:
    """The bounded client of client_loop.py, running on the admin node during a playbook run."""

    def __init__(self, max_seconds=1200, max_ops=100000):
        ssh(ADMIN, f"rm -f {STOP_FILE}")
        self.proc = subprocess.Popen(
            [
                "ssh",
                "-F",
                str(TESTBED.ssh_config),
                "-o",
                "BatchMode=yes",
                ADMIN,
                f"python3 - {POOL} allmende-loop cinder {STOP_FILE} {max_seconds} {max_ops}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.write((HERE / "client_loop.py").read_text())
        self.proc.stdin.close()
        self.proc.stdin = None  # all sent; communicate() must not flush it again
        line = self.proc.stderr.readline()
        assert "connected" in line, line + self.proc.stderr.read()

    def stop(self):
        ssh(ADMIN, f"touch {STOP_FILE}")
        out, err = self.proc.communicate(timeout=180)
        ssh(ADMIN, f"rm -f {STOP_FILE}", check=False)
        assert self.proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])


def run_playbook_async(log, *extra):
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(TESTBED.inventory_dir),
            str(ROOT / "playbooks" / "ceph-rolling-restart.yml"),
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )


def plain(text):
    """Playbook output without colour codes, on one line."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", text).split())


def wait_for(path, text, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in Path(path).read_text():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(1)
    return False


def test_killed_osd_host_stops_the_run_at_the_gate(dataset, capsys):
    before = up_from()
    loop = ClientLoop()
    with tempfile.NamedTemporaryFile("w+", prefix="rolling-stop-", suffix=".log", delete=False) as log:
        started = time.monotonic()
        proc = run_playbook_async(log, "-e", f"ceph_osd_restart_timeout={GATE_TIMEOUT}")
        try:
            reached = wait_for(log.name, "PLAY [Monitors, one at a time]", proc, 300)
            assert reached, Path(log.name).read_text()[-3000:]
            victims = [f"ceph-osd@{i}" for i in host_osds(VICTIM)]
            # A crash of the host's OSD daemons (SIGKILL), kept down (no automatic restart).
            ssh(VICTIM, f"systemctl kill -s KILL {' '.join(victims)}; sleep 1; systemctl stop {' '.join(victims)}")
            killed_at = time.monotonic() - started
            rc = proc.wait(timeout=1200)
        finally:
            if proc.poll() is None:
                proc.kill()
        output = Path(log.name).read_text()
    counts = loop.stop()
    flat = plain(output)
    report(capsys, f"run stopped after {time.monotonic() - started:.0f}s (OSDs of {VICTIM} killed at {killed_at:.0f}s)")
    report(capsys, f"client during the stopped run: {json.dumps(counts)}")
    stop_message = flat[flat.find("ROLLING RESTART STOPPED") :][:900]
    report(capsys, f"message: {stop_message}")
    assert rc == 2, output[-3000:]
    assert f"ROLLING RESTART STOPPED on {FIRST}" in flat
    assert f"gate 'before restarting the OSDs of {FIRST}' not met" in flat
    for osd in host_osds(VICTIM):
        assert f"osd.{osd} ({VICTIM})" in flat
    assert "are STILL SET" in flat and "run the playbook again" in flat
    # Stopped before touching the first OSD host, flags still set as reported.
    after = up_from()
    assert all(after[i] == before[i] for i in host_osds(FIRST))
    assert {"noout", "norebalance", "noscrub", "nodeep-scrub"} <= osd_flags()
    assert counts["mismatches"] == 0


def test_rerun_after_recovery_completes_under_load_and_data_is_intact(dataset, capsys):
    victims = " ".join(f"ceph-osd@{i}" for i in host_osds(VICTIM))
    ssh(VICTIM, f"systemctl reset-failed {victims}; systemctl start {victims}")
    before = up_from()
    epoch = ceph_json("quorum_status")["election_epoch"]
    loop = ClientLoop()
    started = time.monotonic()
    with tempfile.NamedTemporaryFile("w+", prefix="rolling-ok-", suffix=".log", delete=False) as log:
        proc = run_playbook_async(log)
        rc = proc.wait(timeout=1500)
        output = Path(log.name).read_text()
    counts = loop.stop()
    flat = plain(output)
    report(capsys, f"second run took {time.monotonic() - started:.0f}s, rc={rc}")
    report(capsys, f"client during the completed run: {json.dumps(counts)}")
    summary = flat[flat.find("Rolling restart complete") :][:700]
    report(capsys, f"report: {summary}")
    assert rc == 0, output[-4000:]
    assert "Rolling restart complete" in flat
    assert "(still set by an earlier, stopped run: " in flat
    # Every daemon restarted: a new election, every OSD up again since a newer epoch.
    assert ceph_json("quorum_status")["election_epoch"] > epoch
    after = up_from()
    assert all(after[i] > before[i] for i in before), (before, after)
    assert not {"noout", "norebalance", "noscrub", "nodeep-scrub"} & osd_flags()
    status = ceph_json("status")
    assert status["health"]["status"] == "HEALTH_OK", status["health"]["checks"]
    # The client never saw a failed operation, and did real work during the run.
    assert counts["writes_failed"] == counts["reads_failed"] == counts["mismatches"] == 0, counts["errors"]
    assert counts["writes_ok"] > 100 and counts["reads_ok"] == counts["writes_ok"]
    # Data written before both runs reads back bit-identical.
    assert checksums() == dataset
