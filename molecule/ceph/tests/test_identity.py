"""The cluster's identity (fsid and bootstrap keys) is never regenerated: a deploy with the monitors
in another order and records lost recovers the same identity, and a monitor with a foreign fsid
stops the run before anything is written."""

import hashlib
import json
import os
import stat
import subprocess
import uuid

import pytest
import yaml
from conftest import ADMIN, BIN, NODES, ROOT, TESTBED, ansible_playbook, ssh

MONS = TESTBED.group("control")
RECORD = TESTBED.inventory_dir / "ceph-identity" / "ceph.json"
SECRETS = "/etc/ceph/allmende-secrets.json"
# Every keyring a deploy writes or a daemon uses, plus ceph.conf and the monitors' copies of the record.
WATCHED = (
    "/etc/ceph/*.keyring /etc/ceph/*.conf /etc/ceph/allmende-secrets.json /var/lib/ceph/*/*/keyring"
    " /var/lib/ceph/bootstrap-*/*.keyring"
)


def cluster_fsid() -> str:
    return ssh(ADMIN, "ceph --connect-timeout 20 fsid").stdout.strip()


def files(node: str) -> dict[str, tuple[str, str]]:
    """{path: (sha256, mtime in ns)} of the watched files on a node."""
    script = (
        'for f in %s; do [ -f "$f" ] && printf "%%s %%s " "$f" "$(stat -c %%.9Y "$f")" && sha256sum "$f"; done; true'
    )
    out = ssh(node, script % WATCHED).stdout
    found = {}
    for line in out.splitlines():
        path, mtime, digest = line.split()[:3]
        found[path] = (digest, mtime)
    return found


def snapshot() -> dict:
    record = RECORD.read_bytes() if RECORD.exists() else b""
    return {
        "fsid": cluster_fsid(),
        "record": (hashlib.sha256(record).hexdigest(), RECORD.stat().st_mtime_ns if RECORD.exists() else 0),
        "nodes": {n: files(n) for n in NODES},
    }


def contents(snap: dict) -> dict:
    """The snapshot without modification times and ceph.conf (its monitor list follows the
    inventory order; its fsid is compared on its own)."""
    return {
        "fsid": snap["fsid"],
        "record": snap["record"][0],
        "nodes": {n: {p: v[0] for p, v in f.items() if not p.endswith(".conf")} for n, f in snap["nodes"].items()},
    }


def conf_fsids() -> dict[str, str]:
    return {n: ssh(n, "sed -n 's/^fsid = //p' /etc/ceph/ceph.conf").stdout.strip() for n in NODES}


@pytest.fixture(scope="module")
def reordered(tmp_path_factory):
    """An inventory of the same hosts with the monitors in reverse order (the last is first now)."""
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(TESTBED.inventory_dir), "--list"],
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(ROOT / ".build" / "collections"),
        },
    )
    data = json.loads(proc.stdout)
    hostvars = data["_meta"]["hostvars"]
    groups = {}
    for group, body in data.items():
        if group in ("_meta", "all", "ungrouped") or "hosts" not in body:
            continue
        hosts = list(body["hosts"])
        groups[group] = {"hosts": {h: None for h in (hosts[::-1] if group == "control" else hosts)}}
    inventory = {"all": {"hosts": {h: hostvars[h] for h in hostvars}, "children": groups}}
    path = tmp_path_factory.mktemp("reordered") / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    assert list(groups["control"]["hosts"]) == MONS[::-1] and len(MONS) == 3
    return path


def deploy(inventory=None):
    return ansible_playbook("ceph.yml", inventory=inventory)


def flat(proc) -> str:
    """The run's output with the callback's line wrapping undone."""
    return " ".join(proc.stdout.split())


def identity_line(proc) -> str:
    """The report of the identity decision, e.g. 'Cluster identity: recover (fsid ...); copies to write: node3'."""
    text = flat(proc)
    start = text.find("Cluster identity:")
    return text[start : text.find("'", start)] if start >= 0 else ""


def test_the_identity_is_recorded_on_the_deployment_host_and_every_monitor():
    assert RECORD.exists(), RECORD
    assert stat.S_IMODE(RECORD.stat().st_mode) == 0o600
    assert stat.S_IMODE(RECORD.parent.stat().st_mode) == 0o700
    record = json.loads(RECORD.read_text())
    assert record["fsid"] == cluster_fsid()
    assert sorted(record["keys"]) == ["client.admin", "client.bootstrap-osd", "mon."]
    for node in MONS:
        copy = ssh(node, f"stat -c %a {SECRETS} && cat {SECRETS}").stdout
        mode, text = copy.split("\n", 1)
        assert mode == "600", node
        assert json.loads(text) == record, node
    admin = ssh(ADMIN, "ceph --connect-timeout 20 auth get-key client.admin").stdout.strip()
    assert admin == record["keys"]["client.admin"]


@pytest.mark.parametrize(
    "lose_controller_copy", [False, True], ids=["monitor-copy-lost", "monitor-and-controller-copy-lost"]
)
def test_reordered_monitors_with_lost_records_recover_the_same_identity(reordered, lose_controller_copy):
    before = snapshot()
    first = MONS[-1]  # the first monitor of the reordered inventory
    ssh(first, f"rm -f {SECRETS}")
    if lose_controller_copy:
        RECORD.unlink()
    proc = deploy(reordered)
    assert proc.returncode == 0, proc.stdout[-3000:]
    line = identity_line(proc)
    assert "recover" in line and before["fsid"] in line and "generated" not in line, line
    assert cluster_fsid() == before["fsid"]
    after = snapshot()
    # Same bytes everywhere, and nothing but the lost copies (and ceph.conf's monitor order) was written.
    assert contents(after) == contents(before)
    assert set(conf_fsids().values()) == {before["fsid"]}
    for node in NODES:
        for path, (_digest, mtime) in before["nodes"][node].items():
            if (node, path) != (first, SECRETS) and not path.endswith(".conf"):
                assert after["nodes"][node][path][1] == mtime, f"{node}:{path} was rewritten"
    if not lose_controller_copy:
        assert after["record"] == before["record"]


def test_no_record_anywhere_is_recovered_from_the_keyrings_and_the_cluster(reordered):
    before = snapshot()
    for node in MONS:
        ssh(node, f"rm -f {SECRETS}")
    RECORD.unlink()
    proc = deploy(reordered)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "recover" in identity_line(proc) and "generated" not in identity_line(proc)
    assert contents(snapshot()) == contents(before)
    assert set(conf_fsids().values()) == {before["fsid"]}


def test_a_foreign_fsid_in_a_monitors_ceph_conf_stops_the_run_and_nothing_is_written():
    victim = MONS[1]
    real = cluster_fsid()
    foreign = str(uuid.uuid4())
    backup = "/root/ceph.conf.identity-test"
    ssh(victim, f"cp -p /etc/ceph/ceph.conf {backup} && sed -i 's/^fsid = .*/fsid = {foreign}/' /etc/ceph/ceph.conf")
    try:
        before = snapshot()
        proc = deploy()
        assert proc.returncode != 0
        problem = f"{victim} (ceph.conf) has fsid {foreign}, but "
        assert problem in flat(proc), proc.stdout[-3000:]
        assert real in flat(proc).split(problem, 1)[1][:300]
        assert snapshot() == before  # contents and modification times
        assert "PLAY RECAP" in proc.stdout and "Write ceph.conf" not in proc.stdout
        assert cluster_fsid() == real
    finally:
        ssh(victim, f"mv {backup} /etc/ceph/ceph.conf")
    assert f"fsid = {real}" in ssh(victim, "cat /etc/ceph/ceph.conf").stdout
