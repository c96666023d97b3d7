"""What playbooks/ceph.yml must leave on the testbed: a healthy cluster, pools and least-privilege
clients for OpenStack, keyrings only where they are needed, and disks of others left alone."""

import configparser
import io
import json
import time
import uuid

import pytest
import yaml
from conftest import ADMIN, MANIFEST, NODES, ROOT, TESTBED, ansible_playbook, ceph_json, ssh

testinfra_hosts = TESTBED.testinfra_hosts()
OPENSTACK = yaml.safe_load((ROOT / "roles" / "ceph_openstack" / "defaults" / "main.yml").read_text())
CLIENTS = OPENSTACK["ceph_openstack_clients"]
POOLS = [p["name"] for p in OPENSTACK["ceph_openstack_pools"]]
MONS = TESTBED.group("control")
OSD_HOSTS = TESTBED.group("storage")


def node_of(host):
    return NODES[host.backend.host.name]


def local_osd_ids(name):
    tree = ceph_json("osd", "tree")
    for node in tree["nodes"]:
        if node["type"] == "host" and node["name"] == name:
            return sorted(node["children"])
    return []


# ---------------------------------------------------------------- the cluster


def test_cluster_is_healthy_with_full_quorum_all_osds_and_clean_pgs():
    deadline = time.monotonic() + 120
    while True:
        status = ceph_json("status")
        pgs = status["pgmap"]
        clean = sum(s["count"] for s in pgs["pgs_by_state"] if s["state_name"] == "active+clean")
        if (status["health"]["status"] == "HEALTH_OK" and clean == pgs["num_pgs"]) or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert status["health"]["status"] == "HEALTH_OK", status["health"]["checks"]
    assert sorted(status["quorum_names"]) == sorted(MONS)
    osdmap = status["osdmap"]
    assert osdmap["num_osds"] == sum(len(NODES[n].disks) for n in OSD_HOSTS) == 6
    assert osdmap["num_up_osds"] == osdmap["num_in_osds"] == osdmap["num_osds"]
    assert clean == pgs["num_pgs"] > 0
    mgr = ceph_json("mgr", "dump")
    assert mgr["available"]
    assert sorted([mgr["active_name"]] + [s["name"] for s in mgr["standbys"]]) == sorted(MONS)


def test_one_osd_per_data_disk_in_each_hosts_crush_bucket():
    for name in OSD_HOSTS:
        assert len(local_osd_ids(name)) == len(NODES[name].disks), name
    versions = ceph_json("versions")["overall"]
    assert all(f"ceph version {MANIFEST['components']['ceph']['version']} " in v for v in versions), versions


def test_openstack_pools_replicated_autoscaled_and_tagged_rbd():
    pools = {p["pool_name"]: p for p in ceph_json("osd", "pool", "ls", "detail")}
    for name in POOLS:
        pool = pools[name]
        assert (pool["size"], pool["min_size"]) == (3, 2), name
        assert pool["pg_autoscale_mode"] == "on", name
        assert "rbd" in pool["application_metadata"], name


def test_openstack_clients_have_exactly_their_caps():
    for client in CLIENTS:
        entry = ceph_json("auth", "get", f"client.{client['name']}")[0]
        assert entry["caps"] == client["caps"], client["name"]
        assert all(cap.startswith("profile rbd") for cap in entry["caps"].values())


def test_least_privilege_in_practice():
    """glance may write images but not volumes; cinder may only read images."""
    probe = f"allmende-verify-{uuid.uuid4().hex[:8]}"
    try:
        assert ssh(ADMIN, f"rados --id glance -p images put {probe} /etc/hostname", check=False).returncode == 0
        denied = ssh(ADMIN, f"rados --id glance -p volumes put {probe} /etc/hostname", check=False)
        assert denied.returncode != 0 and "Operation not permitted" in denied.stderr
        assert ssh(ADMIN, f"rados --id cinder -p images get {probe} -", check=False).returncode == 0
        denied = ssh(ADMIN, f"rados --id cinder -p images rm {probe}", check=False)
        assert denied.returncode != 0 and "Operation not permitted" in denied.stderr
    finally:
        ssh(ADMIN, f"rados -p images rm {probe}", check=False)


# ---------------------------------------------------------------- every host


def test_daemons_run_and_start_at_boot(host):
    name = node_of(host).name
    units = []
    if name in MONS:
        units += [f"ceph-mon@{name}", f"ceph-mgr@{name}"]
    if name in OSD_HOSTS:
        units += [f"ceph-osd@{i}" for i in local_osd_ids(name)]
    for unit in [*units, "ceph.target"]:
        service = host.service(unit)
        assert service.is_running or unit.endswith(".target"), unit
        assert service.is_enabled, unit


def test_packages_at_the_release_version_and_pinned(host):
    version = MANIFEST["components"]["ceph"]["version"]
    for package in ("ceph-common", "ceph-mon", "ceph-mgr", "ceph-osd"):
        assert host.package(package).version.startswith(version + "+"), package
    pin = host.file("/etc/apt/preferences.d/allmende-ceph.pref").content_string
    assert f"Pin: version {MANIFEST['components']['ceph']['apt']}" in pin
    held = host.check_output("apt-mark showhold").split()
    for package in ("ceph-common", "ceph-mon", "ceph-mgr", "ceph-osd"):
        assert package in held, package
    assert "udev" not in held


def test_ceph_conf_names_the_cluster_and_all_monitors(host):
    conf = configparser.ConfigParser()
    conf.read_file(io.StringIO(host.file("/etc/ceph/ceph.conf").content_string))
    assert conf["global"]["fsid"] == ceph_json("fsid")["fsid"]
    for mon in MONS:
        assert f"v2:{NODES[mon].address}:3300" in conf["global"]["mon_host"]
    assert conf["osd"]["osd_memory_target"] == "1073741824"
    assert conf["mon"]["auth_allow_insecure_global_id_reclaim"] == "false"


def test_keyrings_exist_only_where_needed_with_mode_0600(host):
    name = node_of(host).name
    expected = set()
    if name in MONS:
        expected |= {"/etc/ceph/ceph.client.admin.keyring", f"/var/lib/ceph/mon/ceph-{name}/keyring"}
        expected.add(f"/var/lib/ceph/mgr/ceph-{name}/keyring")
    if name in OSD_HOSTS:
        expected.add("/var/lib/ceph/bootstrap-osd/ceph.keyring")
        expected |= {f"/var/lib/ceph/osd/ceph-{i}/keyring" for i in local_osd_ids(name)}
    if host.service(f"ceph-radosgw@rgw.{name}").is_running:
        expected.add(f"/var/lib/ceph/radosgw/ceph-rgw.{name}/keyring")
    for client in CLIENTS:
        if any(name in TESTBED.group(g) for g in client["groups"]):
            expected.add(f"/etc/ceph/ceph.client.{client['name']}.keyring")
    found = set(
        host.check_output(
            "find / -xdev -path /proc -prune -o -type f \\( -name '*.keyring' -o -name keyring \\) -print"
        ).split()
    )
    assert found == expected
    for path in sorted(found):
        assert host.file(path).mode == 0o600, path
    secrets = host.file("/etc/ceph/allmende-secrets.json")
    if name in MONS:  # every monitor keeps a copy of the cluster's identity
        assert secrets.mode == 0o600 and secrets.user == "root"
        assert json.loads(secrets.content_string)["fsid"] == ceph_json("fsid")["fsid"]
    else:
        assert not secrets.exists


def test_client_keyrings_hold_only_their_own_key(host):
    for path in host.check_output("ls /etc/ceph/ceph.client.*.keyring").split():
        entity = path.rsplit("/", 1)[1].removeprefix("ceph.").removesuffix(".keyring")
        text = host.file(path).content_string
        assert text.count("key = ") == 1 and f"[{entity}]" in text, path


def test_osd_directories_survive_a_reboot(host):
    """Raw OSDs: the OSD directory is on the host's disk (not the tmpfs ceph-volume prepares on),
    and a drop-in gives the device node back to the ceph user before every start."""
    name = node_of(host).name
    for osd in local_osd_ids(name):
        path = f"/var/lib/ceph/osd/ceph-{osd}"
        assert host.run(f"findmnt --mountpoint {path}").rc != 0, f"{path} is a mount point"
        assert host.file(f"{path}/type").content_string.strip() == "bluestore"
        device = host.check_output(f"readlink -f {path}/block")
        assert device in [d.device for d in NODES[name].disks]
        assert host.file(device).user == "ceph"
    dropin = host.file("/etc/systemd/system/ceph-osd@.service.d/allmende-device-owner.conf")
    assert "chown ceph:ceph" in dropin.content_string


# ---------------------------------------------------------------- disks of others


@pytest.fixture
def foreign_disk():
    """A spare loop device on the first node holding a BlueStore label of another cluster."""
    node = OSD_HOSTS[0]
    own = NODES[node].disks[0].device
    other_fsid = str(uuid.uuid4())
    script = (
        "set -e; truncate -s 1G /var/tmp/allmende-foreign.img; "
        # the node's /dev holds the loop devices that existed when it started: a newer free one
        # (other testbeds on the machine took the rest) gets its device node first
        # (`losetup -f` then says "/dev/loopN (lost)")
        "for try in 1 2 3; do dev=$(losetup -f); dev=${dev%% *}; "
        '[ -b "$dev" ] || mknod "$dev" b 7 "${dev#/dev/loop}"; '
        'losetup "$dev" /var/tmp/allmende-foreign.img && break; dev=; done; [ -n "$dev" ]; '
        # A copy of a real label, then made another cluster's (new fsid, uuid, id and key).
        f"dd if={own} of=$dev bs=4096 count=1 status=none; "
        f"ceph-bluestore-tool set-label-key --dev $dev -k ceph_fsid -v {other_fsid}; "
        f"ceph-bluestore-tool set-label-key --dev $dev -k osd_uuid -v {uuid.uuid4()}; "
        "ceph-bluestore-tool set-label-key --dev $dev -k whoami -v 42; "
        "ceph-bluestore-tool set-label-key --dev $dev -k osd_key -v AQAAAAAAAAAAABAAAAAAAAAAAAAAAAAAAAAAAA==; "
        "echo $dev"
    )
    device = ssh(node, script).stdout.strip().splitlines()[-1]
    try:
        yield node, device, other_fsid
    finally:
        ssh(node, f"losetup -d {device}; rm -f /var/tmp/allmende-foreign.img", check=False)


def test_a_disk_of_another_cluster_is_refused_and_left_untouched(foreign_disk):
    node, device, other_fsid = foreign_disk
    disks = [d.device for d in NODES[node].disks]
    bad = ansible_playbook(
        "ceph.yml", "-l", node, "-e", json.dumps({"ceph_osd_devices": [*disks, "/dev/allmende-missing", "/etc/hosts"]})
    )
    assert bad.returncode != 0
    assert "/dev/allmende-missing does not exist; /etc/hosts is not a block device" in bad.stdout
    foreign = ansible_playbook("ceph.yml", "-l", node, "-e", json.dumps({"ceph_osd_devices": [*disks, device]}))
    assert foreign.returncode != 0
    assert f"refusing to touch disks that hold other data: {device} holds a BlueStore OSD of another cluster" in (
        " ".join(foreign.stdout.split())
    )
    label = json.loads(ssh(node, f"ceph-bluestore-tool show-label --dev {device}").stdout)[device]
    assert label["ceph_fsid"] == other_fsid
    assert ceph_json("osd", "stat")["num_osds"] == 6
