"""What allmende.cloud.openvswitch, ovn_central and ovn_controller must leave on the testbed."""

import importlib.util
import json
import os
import re
import time
import uuid
from pathlib import Path

import pytest
import testinfra
import yaml

from allmende.testbed import Testbed

ROOT = Path(__file__).resolve().parents[3]
RELEASE = yaml.safe_load((ROOT / "releases" / "index.yml").read_text())["current"]
MANIFEST = yaml.safe_load((ROOT / "releases" / f"{RELEASE}.yml").read_text())


def release_module():
    """plugins/module_utils/release.py, for comparing versions the way the manifest validation does."""
    path = ROOT / "plugins" / "module_utils" / "release.py"
    spec = importlib.util.spec_from_file_location("allmende_release_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TESTBED = Testbed.load(os.environ.get("ALLMENDE_TESTBED_NAME", "molecule"))
assert TESTBED is not None, "the scenario's testbed does not exist"
NODES = {n.name: n for n in TESTBED.nodes}
CONTROL = TESTBED.group("control")
GATEWAYS = set(TESTBED.group("network"))
CHASSIS = sorted(set(TESTBED.group("network")) | set(TESTBED.group("compute")))
testinfra_hosts = [f"ssh://{name}?ssh_config={TESTBED.ssh_config}" for name in CHASSIS]

DBS = {
    "OVN_Northbound": {"ctl": "/var/run/ovn/ovnnb_db.ctl", "service": "ovn-ovsdb-server-nb", "raft": 6643},
    "OVN_Southbound": {"ctl": "/var/run/ovn/ovnsb_db.ctl", "service": "ovn-ovsdb-server-sb", "raft": 6644},
}
NB = ",".join(f"tcp:{NODES[h].address}:6641" for h in CONTROL)
SB = ",".join(f"tcp:{NODES[h].address}:6642" for h in CONTROL)


def get(name):
    return testinfra.get_host(f"ssh://{name}?ssh_config={TESTBED.ssh_config}")


def node_of(host):
    return NODES[host.backend.host.name]


def tunnel_address(name):
    """The address the scenario's prepare step gave eth1 (stand-in for the network role)."""
    return re.sub(r"^10\.213\.(\d+)\.(\d+)$", r"10.214.\1.\2", NODES[name].address)


def cluster_status(name, db):
    out = get(name).check_output(f"ovn-appctl -t {DBS[db]['ctl']} cluster/status {db}")
    fields = dict(re.findall(r"^([A-Z][A-Za-z ]+): (.*)$", out, re.M))
    servers = re.findall(r"^\s+(\w+) \((\w+) at (tcp:[^)]+)\)", out, re.M)
    return {
        "role": fields.get("Role"),
        "status": fields.get("Status"),
        "leader": fields.get("Leader"),
        "cid": fields.get("Cluster ID"),
        "sid": out.splitlines()[0].strip(),
        "servers": sorted(address for _sid, _sid2, address in servers),
    }


def wait_for(what, check, timeout=60, interval=1.0):
    """Poll check() until it returns something truthy; bounded."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as exc:  # command failed on the way, e.g. no leader yet
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not reached within {timeout}s (last: {last})")


def leader_of(db, among=None):
    leaders = []
    for name in among or CONTROL:
        try:
            status = cluster_status(name, db)
        except AssertionError:
            continue
        if status["role"] == "leader":
            leaders.append(name)
    return leaders


def serving(name, db):
    """The member's status once it is back in its cluster and knows a leader, else None."""
    status = cluster_status(name, db)
    if status["status"] == "cluster member" and status["leader"] not in (None, "unknown"):
        return status
    return None


def expected_servers(db):
    return sorted(f"tcp:{NODES[h].address}:{DBS[db]['raft']}" for h in CONTROL)


def test_ovn_and_ovs_at_the_manifest_version_and_neutrons_minimum(host):
    """The tools report the manifest's versions, which meet the manifest's minimum (Neutron's)."""
    release = release_module()
    for component, command in (("ovn", "ovn-nbctl --version"), ("openvswitch", "ovs-vsctl --version")):
        first = host.check_output(command).splitlines()[0]
        version = first.split()[-1]
        wanted = MANIFEST["components"][component]
        assert version.startswith(wanted["version"]), first
        assert release.at_least(version, wanted["minimum"]), first
    held = host.check_output("apt-mark showhold").split()
    expected = {"ovn-host", "ovn-common", "openvswitch-switch", "openvswitch-common"}
    if node_of(host).name in CONTROL:
        expected.add("ovn-central")
    assert expected <= set(held)
    for component in ("ovn", "openvswitch"):
        pref = host.file(f"/etc/apt/preferences.d/allmende-{component}.pref").content_string
        assert f"Pin: version {MANIFEST['components'][component]['apt']}\n" in pref


@pytest.mark.parametrize("db", sorted(DBS))
def test_each_cluster_has_three_servers_and_one_leader(db):
    statuses = {name: cluster_status(name, db) for name in CONTROL}
    for name, status in statuses.items():
        assert status["status"] == "cluster member", (name, status)
        assert status["servers"] == expected_servers(db), (name, status)
    assert len({s["cid"] for s in statuses.values()}) == 1
    leaders = [name for name, s in statuses.items() if s["role"] == "leader"]
    assert len(leaders) == 1, statuses
    leader_sid = statuses[leaders[0]]["sid"]
    assert all(s["leader"] in ("self", leader_sid) for s in statuses.values()), statuses


def test_one_northd_is_active_the_others_stand_by():
    states = {name: get(name).check_output("ovn-appctl -t ovn-northd status") for name in CONTROL}
    assert sorted(states.values()) == ["Status: active"] + ["Status: standby"] * (len(CONTROL) - 1), states


def test_databases_listen_on_the_management_address_only():
    for name in CONTROL:
        listening = get(name).check_output("ss -Hltn")
        for port in (6641, 6642, 6643, 6644):
            assert f"{NODES[name].address}:{port} " in listening, (name, port)
            assert f"0.0.0.0:{port} " not in listening, (name, port)


def test_the_switch_written_after_the_first_run_survived():
    """Written by converge.yml, then: second run, a member left and joined again (side_effect)."""
    for name in CONTROL:
        switches = get(name).check_output(
            "ovn-nbctl --no-leader-only --db=unix:/var/run/ovn/ovnnb_db.sock "
            "--columns=name,external_ids find Logical_Switch name=ls-persist"
        )
        assert "allmende-test=persist" in switches, name


def test_switch_and_port_made_on_one_node_appear_in_the_southbound_of_another():
    suffix = uuid.uuid4().hex[:6]
    switch, port = f"ls-t-{suffix}", f"lsp-t-{suffix}"
    writer, reader = get(CONTROL[0]), get(CONTROL[-1])
    writer.check_output(
        f"ovn-nbctl --db={NB} ls-add {switch} -- lsp-add {switch} {port} "
        f"-- lsp-set-addresses {port} '02:ac:10:00:00:01 192.0.2.10'"
    )
    try:
        local_sb = "ovn-sbctl --no-leader-only --db=unix:/var/run/ovn/ovnsb_db.sock"
        binding = wait_for(
            "port binding in the southbound database",
            lambda: reader.check_output(
                f"{local_sb} --bare --columns=logical_port find Port_Binding logical_port={port}"
            ),
            timeout=60,
        )
        assert binding.strip() == port
        datapaths = reader.check_output(f"{local_sb} --bare --columns=external_ids list Datapath_Binding")
        assert f"name={switch}" in datapaths
    finally:
        writer.run(f"ovn-nbctl --db={NB} --if-exists ls-del {switch}")


def test_every_chassis_is_registered_with_its_encap_ip():
    out = get(CONTROL[0]).check_output(f"ovn-sbctl --db={SB} --format=json --columns=name,hostname,encaps list Chassis")
    chassis = {row[0]: row for row in json.loads(out)["data"]}
    assert sorted(chassis) == CHASSIS
    encaps = json.loads(
        get(CONTROL[0]).check_output(f"ovn-sbctl --db={SB} --format=json --columns=chassis_name,ip,type list Encap")
    )["data"]
    by_chassis = {row[0]: (row[1], row[2]) for row in encaps}
    for name in CHASSIS:
        assert by_chassis[name] == (tunnel_address(name), "geneve"), name
        assert chassis[name][1] == name


def test_gateway_chassis_carry_enable_chassis_as_gw():
    for name in CHASSIS:
        options = get(CONTROL[0]).check_output(
            f"ovn-sbctl --db={SB} --if-exists get Chassis {name} other_config:ovn-cms-options"
        )
        assert ("enable-chassis-as-gw" in options) == (name in GATEWAYS), (name, options)


def test_chassis_configuration_in_open_vswitch(host):
    name = node_of(host).name
    ids = host.check_output("ovs-vsctl get Open_vSwitch . external_ids")
    assert f'system-id="{name}"' in ids or f"system-id={name}" in ids
    assert f'ovn-encap-ip="{tunnel_address(name)}"' in ids
    assert f'ovn-remote="{SB}"' in ids
    assert "ovn-bridge-datapath-type=netdev" in ids
    if name in GATEWAYS:
        assert 'ovn-bridge-mappings="physnet1:br-ex"' in ids
    assert host.check_output("ovn-appctl -t ovn-controller connection-status") == "connected"


def test_datapath_detected_as_userspace_here(host):
    """The testbed kernel has no openvswitch module: every bridge uses the netdev datapath."""
    facts = json.loads(host.file("/etc/ansible/facts.d/allmende_openvswitch.fact").content_string)
    assert facts["datapath"] == "netdev" and facts["kernel_datapath"] is False
    bridges = host.check_output("ovs-vsctl list-br").split()
    assert "br-int" in bridges
    for bridge in bridges:
        assert host.check_output(f"ovs-vsctl get Bridge {bridge} datapath_type") == "netdev", bridge
    if node_of(host).name in GATEWAYS:
        assert "br-ex" in bridges


@pytest.mark.parametrize("db", sorted(DBS))
def test_leader_failover_keeps_writes_working_and_the_old_leader_rejoins(db):
    (old,) = leader_of(db)
    others = [n for n in CONTROL if n != old]
    service = DBS[db]["service"]
    switch = f"ls-failover-{uuid.uuid4().hex[:6]}"
    get(old).check_output(f"systemctl stop {service}")
    try:
        new = wait_for(f"a new {db} leader", lambda: leader_of(db, others), timeout=60)
        assert len(new) == 1 and new[0] != old
        if db == "OVN_Northbound":
            get(others[0]).check_output(f"ovn-nbctl --db={NB} --timeout=30 ls-add {switch}")
        else:
            # Southbound writes come from ovn-northd; a northbound change must reach it.
            get(others[0]).check_output(f"ovn-nbctl --db={NB} --timeout=30 ls-add {switch}")
            wait_for(
                "northd writing the southbound database without the old leader",
                lambda: (
                    f"name={switch}"
                    in get(others[0]).check_output(
                        f"ovn-sbctl --db={SB} --bare --columns=external_ids list Datapath_Binding"
                    )
                ),
                timeout=60,
            )
    finally:
        get(old).check_output(f"systemctl start {service}")
    try:
        status = wait_for(f"{old} back in the {db} cluster", lambda: serving(old, db), timeout=90)
        assert status["servers"] == expected_servers(db)
        sock = "/var/run/ovn/ovnnb_db.sock"
        wait_for(
            f"{old} catching up with the writes it missed",
            lambda: switch in get(old).check_output(f"ovn-nbctl --no-leader-only --db=unix:{sock} ls-list"),
            timeout=30,
        )
    finally:
        get(others[0]).run(f"ovn-nbctl --db={NB} --if-exists ls-del {switch}")


def test_data_survives_restarting_every_member():
    for name in CONTROL:
        get(name).check_output("systemctl restart ovn-ovsdb-server-nb ovn-ovsdb-server-sb ovn-northd")
    for db in DBS:
        wait_for(f"a {db} leader after the restart", lambda db=db: leader_of(db), timeout=90)
    switches = wait_for(
        "the northbound database answering",
        lambda: get(CONTROL[-1]).check_output(f"ovn-nbctl --db={NB} --timeout=10 ls-list"),
        timeout=60,
    )
    assert "(ls-persist)" in switches
