"""What allmende.cloud.network must leave on the testbed hosts, and how it applies changes."""

import ipaddress
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import testinfra
import yaml

from allmende.testbed import Testbed

SCENARIO = Path(__file__).resolve().parents[1]
ROOT = SCENARIO.parents[1]
TESTBED = Testbed.load(os.environ.get("ALLMENDE_TESTBED_NAME", "molecule"))
assert TESTBED is not None, "the scenario's testbed does not exist"
NODES = {n.name: n for n in TESTBED.nodes}
testinfra_hosts = TESTBED.testinfra_hosts()
DATA = {n: yaml.safe_load((SCENARIO / "inventory" / "host_vars" / f"{n}.yml").read_text()) for n in NODES}
MTU = 1450
PREFIX = "50-allmende-"


def node_of(host):
    return NODES[host.backend.host.name]


def data_of(name):
    return DATA[name]


def interface(name, ifname):
    return next(i for i in data_of(name)["allmende_interfaces"] if i["name"] == ifname)


def mac_of(name, ifname):
    return next(nic.mac for nic in NODES[name].nics if nic.name == ifname)


def nic_name(host, name, ifname):
    """What the host calls the testbed NIC `ifname` (the testbed does not fix NIC names; MACs are fixed)."""
    mac = mac_of(name, ifname)
    links = json.loads(host.check_output("ip -j link show"))
    return next(x["ifname"] for x in links if x.get("address") == mac)


def get_host(name):
    return testinfra.get_host(f"ssh://{name}?ssh_config={TESTBED.ssh_config}")


def link(host, name):
    return json.loads(host.check_output(f"ip -j -d addr show dev {name}"))[0]


def global_addresses(host, name):
    return sorted(
        f"{a['local']}/{a['prefixlen']}" for a in link(host, name).get("addr_info", []) if a.get("scope") == "global"
    )


def networkd_states(host):
    out = host.check_output("networkctl list --no-legend --no-pager")
    return {cols[1]: cols[-1] for cols in (line.split() for line in out.splitlines()) if len(cols) >= 5}


# ------------------------------------------------------------------ the state after converge


def test_bridge_with_the_data_nic_and_the_mtu_from_the_data(host):
    details = host.check_output("ip -d link show br-data")
    assert f" mtu {MTU} " in details
    assert "\n    bridge " in details
    assert " state UP " in details
    data_nic = nic_name(host, node_of(host).name, "eth1")
    eth1 = host.check_output(f"ip -d link show {data_nic}")
    assert f" mtu {MTU} " in eth1
    assert " master br-data " in eth1
    assert "bridge_slave" in eth1


def test_addresses_from_the_data(host):
    wanted = sorted(str(a) for a in interface(node_of(host).name, "br-data")["addresses"])
    assert global_addresses(host, "br-data") == sorted(wanted)
    assert global_addresses(host, nic_name(host, node_of(host).name, "eth1")) == []
    networks = data_of(node_of(host).name)["allmende_networks"]
    for role in ("tunnel", "storage"):
        assert networks[role]["cidr"] in wanted


def test_static_routes(host):
    routes = data_of(node_of(host).name)["allmende_routes"] or []
    table = host.check_output("ip route show table main")
    for route in routes:
        assert f"{route['to']} via {route['via']} dev br-data proto static" in table
    if routes:
        assert "via 10.214.20.11 dev br-data" in host.check_output("ip route get 10.216.20.1")
    else:
        assert "dev br-data proto static" not in table


def test_nodes_reach_each_other_over_tunnel_and_storage(host):
    me = node_of(host).name
    for other in NODES:
        if other == me:
            continue
        networks = data_of(other)["allmende_networks"]
        for role in ("tunnel", "storage"):
            address = networks[role]["address"]
            cmd = host.run(f"ping -n -c 2 -i 0.2 -W 2 {address}")
            assert cmd.rc == 0, f"{me} -> {other} {role} {address}: {cmd.stdout}{cmd.stderr}"
        v6 = next(a for a in interface(other, "br-data")["addresses"] if ":" in a).split("/")[0]
        cmd = host.run(f"ping -6 -n -c 2 -i 0.2 -W 2 {v6}")
        assert cmd.rc == 0, f"{me} -> {other} {v6}: {cmd.stdout}{cmd.stderr}"


def test_the_static_route_carries_traffic(host):
    """Nodes 2 and 3 reach node1's service address 10.216.20.1 only through their route via node1."""
    cmd = host.run("ping -n -c 2 -i 0.2 -W 2 10.216.20.1")
    assert cmd.rc == 0, cmd.stdout + cmd.stderr


def test_the_mtu_holds_end_to_end(host):
    me = node_of(host).name
    other = next(n for n in NODES if n != me)
    address = data_of(other)["allmende_networks"]["storage"]["address"]
    fits = host.run(f"ping -n -c 1 -W 2 -M do -s {MTU - 28} {address}")
    assert fits.rc == 0, fits.stdout + fits.stderr
    too_big = host.run(f"ping -n -c 1 -W 2 -M do -s {MTU - 27} {address}")
    assert too_big.rc != 0
    # refused by the sender's own MTU: iputils of bookworm names it, trixie's says the message is too long
    said = too_big.stdout + too_big.stderr
    assert f"mtu={MTU}" in said or "Message too long" in said, said


def test_rendered_files(host):
    files = sorted(host.check_output(f"ls /etc/systemd/network/ | grep ^{PREFIX} || true").split())
    assert files == [f"{PREFIX}br-data.netdev", f"{PREFIX}br-data.network", f"{PREFIX}eth1.network"]
    eth1 = host.file(f"/etc/systemd/network/{PREFIX}eth1.network")
    assert eth1.mode == 0o644
    text = eth1.content_string
    assert text.startswith("# Managed by allmende.cloud.network")
    # Found by MAC, whatever the host calls it.
    assert "[Match]\nType=ether\nMACAddress=" + mac_of(node_of(host).name, "eth1") + "\n" in text
    assert "Name=" not in text
    assert f"MTUBytes={MTU}" in text
    assert "Bridge=br-data" in text
    netdev = host.file(f"/etc/systemd/network/{PREFIX}br-data.netdev").content_string
    assert "[NetDev]\nName=br-data\nKind=bridge\n" in netdev
    bridge = host.file(f"/etc/systemd/network/{PREFIX}br-data.network").content_string
    for address in interface(node_of(host).name, "br-data")["addresses"]:
        assert f"Address={address}\n" in bridge
    assert "LinkLocalAddressing=ipv6" in bridge
    assert not host.file("/var/lib/allmende/network-pending.json").exists


def test_management_nic_is_left_alone(host):
    name = node_of(host).name
    mgmt, data_nic = nic_name(host, name, "eth0"), nic_name(host, name, "eth1")
    states = networkd_states(host)
    assert states[mgmt] == "unmanaged"
    assert states[data_nic] == "configured"
    assert states["br-data"] == "configured"
    assert not host.file(f"/etc/systemd/network/{PREFIX}eth0.network").exists
    assert f"{node_of(host).address}/" in host.check_output(f"ip -br addr show dev {mgmt}")
    assert "default via" in host.check_output(f"ip route show default dev {mgmt}")


def test_networkd_runs_at_boot_without_waiting_for_udev(host):
    networkd = host.service("systemd-networkd")
    assert networkd.is_running
    assert networkd.is_enabled
    # what makes networkd stop waiting for udev: /sys read-only in its own mount namespace
    pid = host.check_output("pidof systemd-networkd").split()[0]
    options = host.check_output(f"nsenter -t {pid} -m findmnt -no OPTIONS /sys").splitlines()[-1]
    assert options.startswith("ro,"), options


def test_resolvers_from_the_data_and_names_still_resolve(host):
    server = str(next(ipaddress.ip_network(TESTBED.mgmt_subnet).hosts()))
    content = host.file("/etc/resolv.conf").content_string
    assert content.startswith("# Managed by allmende.cloud.network")
    assert "search testbed.allmende.internal\n" in content
    assert re.findall(r"^nameserver (\S+)$", content, re.M) == [server]
    # bookworm nodes list the mirror in sources.list, trixie nodes in deb822 format
    sources = host.run("cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null").stdout
    mirror = re.search(r"^(?:deb|URIs:) https?://([^/ ]+)", sources, re.M).group(1)
    assert host.run(f"getent ahostsv4 {mirror}").rc == 0


# ------------------------------------------------------------------ changes, drift and restarts


def ansible_playbook(playbook, *args, check=True):
    """Run a playbook against the scenario's inventory; return (rc, JSON result, text)."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory:
        if os.environ.get("CI") == "true":
            pytest.fail("needs the molecule inventory (run through `molecule verify`)")
        pytest.skip("needs the molecule inventory (run through `molecule verify`)")
    env = {**os.environ, "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(Path(inventory).parent), playbook, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.returncode, json.loads(proc.stdout), proc.stdout


def task_results(result, name):
    for play in result["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ")[-1] == name:
                return task["hosts"]
    raise AssertionError(f"no task {name!r} in the run")


def snapshot(host):
    """What must not change on a host whose data did not change, and on every management NIC."""
    name = host.backend.host.name
    out = {}
    for ifname in ("eth0", "eth1"):
        nic = nic_name(host, name, ifname)
        out[ifname] = host.check_output(f"cat /sys/class/net/{nic}/ifindex /sys/class/net/{nic}/carrier_changes")
    out["br-data"] = host.check_output("cat /sys/class/net/br-data/ifindex")
    return out


class MgmtPing:
    """A bounded ping from node1 to node3's management address while a playbook runs."""

    def __init__(self, source, target):
        self.source = source
        self.log = "/tmp/allmende-mgmt-ping.txt"
        self.pid = source.check_output(
            f"sh -c 'nohup ping -n -i 0.2 -w 300 {target} > {self.log} 2>&1 & echo $!'"
        ).strip()

    def stop(self):
        self.source.run(f"kill -INT {self.pid}")
        time.sleep(1)
        out = self.source.check_output(f"cat {self.log}")
        sent, received = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", out).groups())
        return sent, received


def journal_cursor(host):
    out = host.check_output("journalctl -u systemd-networkd -n 0 --show-cursor --no-pager")
    return re.search(r"-- cursor: (\S+)", out).group(1)


def configured_since(host, cursor):
    journal = host.check_output(f"journalctl -u systemd-networkd --after-cursor='{cursor}' --no-pager -o cat")
    return journal, set(re.findall(r"^(\S+): (?:Re)?[Cc]onfiguring with", journal, re.M))


@pytest.fixture(scope="module")
def nodes():
    return {name: get_host(name) for name in NODES}


def test_one_changed_host_reconfigures_only_its_changed_link(nodes):
    changed, others = nodes["node3"], [nodes["node1"], nodes["node2"]]
    before = {name: snapshot(h) for name, h in nodes.items()}
    cursor = journal_cursor(changed)
    ping = MgmtPing(nodes["node1"], NODES["node3"].address)
    try:
        _rc, result, _text = ansible_playbook(
            str(SCENARIO / "change.yml"), "-e", "network_test_host=node3", "-e", "network_test_address=10.215.20.113/24"
        )
    finally:
        sent, received = ping.stop()
    try:
        assert {n: result["stats"][n]["changed"] for n in ("node1", "node2")} == {"node1": 0, "node2": 0}
        applied = task_results(result, "Apply the changes to the links they concern")
        assert applied["node3"]["reloaded"] == ["br-data"]
        assert applied["node3"]["deleted"] == [] and applied["node3"]["reconfigured"] == []
        assert applied["node1"].get("skipped") and applied["node2"].get("skipped")
        journal, touched = configured_since(changed, cursor)
        assert touched == {"br-data"}, journal
        assert f"{nic_name(changed, 'node3', 'eth0')}:" not in journal
        for name, h in nodes.items():
            assert snapshot(h) == before[name], name
        assert "10.215.20.113/24" in global_addresses(changed, "br-data")
        assert others[0].run("ping -n -c 2 -i 0.2 -W 2 10.215.20.113").rc == 0
        assert sent >= 5 and received == sent, f"management ping lost {sent - received} of {sent}"
    finally:
        # Back to the scenario's data: again only br-data on node3.
        cursor = journal_cursor(changed)
        _rc, result, _text = ansible_playbook(str(ROOT / "playbooks" / "network.yml"))
    assert {n: s["changed"] > 0 for n, s in result["stats"].items()} == {"node1": False, "node2": False, "node3": True}
    assert configured_since(changed, cursor)[1] == {"br-data"}
    assert "10.215.20.113/24" not in global_addresses(changed, "br-data")


def test_a_changed_device_is_recreated_and_only_its_ports_rejoin(nodes):
    changed = nodes["node3"]
    before = {name: snapshot(h) for name, h in nodes.items()}
    ping = MgmtPing(nodes["node1"], NODES["node3"].address)
    try:
        _rc, result, _text = ansible_playbook(
            str(SCENARIO / "change.yml"),
            "-e",
            "network_test_host=node3",
            "-e",
            '{"network_test_bridge_options": {"MulticastSnooping": false}}',
        )
    finally:
        sent, received = ping.stop()
    try:
        assert {n: result["stats"][n]["changed"] for n in ("node1", "node2")} == {"node1": 0, "node2": 0}
        applied = task_results(result, "Apply the changes to the links they concern")["node3"]
        assert (applied["deleted"], applied["reconfigured"]) == (["br-data"], [nic_name(changed, "node3", "eth1")])
        after = snapshot(changed)
        assert after["eth0"] == before["node3"]["eth0"]
        assert after["eth1"] == before["node3"]["eth1"]
        assert after["br-data"] != before["node3"]["br-data"]
        assert changed.check_output("cat /sys/class/net/br-data/bridge/multicast_snooping") == "0"
        assert " master br-data " in changed.check_output(f"ip -d link show {nic_name(changed, 'node3', 'eth1')}")
        for name in ("node1", "node2"):
            assert snapshot(nodes[name]) == before[name]
        assert nodes["node1"].run("ping -n -c 2 -i 0.2 -W 2 10.214.20.13").rc == 0
        assert sent >= 5 and received == sent, f"management ping lost {sent - received} of {sent}"
    finally:
        ansible_playbook(str(ROOT / "playbooks" / "network.yml"))
    assert changed.check_output("cat /sys/class/net/br-data/bridge/multicast_snooping") == "1"


def test_drift_is_reported_and_repaired_link_by_link(nodes):
    drifted = nodes["node2"]
    drifted.check_output("ip link set dev br-data mtu 1400")
    rc, _result, text = ansible_playbook(
        str(ROOT / "playbooks" / "network.yml"), "-e", "network_action=check", check=False
    )
    assert rc != 0
    assert "node2: br-data: MTU is 1400, expected 1450" in text
    assert "node1 matches the network role" in text
    _rc, result, _text = ansible_playbook(str(ROOT / "playbooks" / "network.yml"))
    assert {n: s["changed"] > 0 for n, s in result["stats"].items()} == {"node1": False, "node2": True, "node3": False}
    repaired = task_results(result, "Reconfigure links that drifted from their files")["node2"]
    assert repaired["reconfigured"] == ["br-data"]
    assert link(drifted, "br-data")["mtu"] == MTU


def test_configuration_survives_a_restart_of_the_host(nodes):
    """A restarted node comes back with its bridge, MTU, addresses and routes from the files alone."""
    name = "node2"
    subprocess.run(["podman", "restart", "-t", "10", NODES[name].container], check=True, timeout=120)
    host = get_host(name)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["ssh", "-F", str(TESTBED.ssh_config), "-o", "ConnectTimeout=3", name, "systemctl is-system-running"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if probe.stdout.strip() in ("running", "degraded"):
            break
        time.sleep(2)
    for _attempt in range(30):
        if networkd_states(host).get("br-data") == "configured":
            break
        time.sleep(1)
    assert networkd_states(host)["br-data"] == "configured"
    assert link(host, "br-data")["mtu"] == MTU
    assert global_addresses(host, "br-data") == sorted(interface(name, "br-data")["addresses"])
    assert "10.216.20.0/24 via 10.214.20.11 dev br-data" in host.check_output("ip route show")
    assert host.run("ping -n -c 2 -i 0.2 -W 2 10.214.20.11").rc == 0
