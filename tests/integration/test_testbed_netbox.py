"""The testbed registered in NetBox, the whole site applied through the driver, and OVN's data plane.

NetBox -> inventory plugin allmende.cloud.netbox -> `allmende apply network`, then `allmende apply
site` (bootstrap, host networking with the data NIC on the Open vSwitch bridge br-data, OVS/OVN
with the tunnel on br-data, libvirt, Ceph on the storage network) twice: 0 failed, then 0 changed;
then in check mode: 0 failed.
Then Ceph's health and monitor addresses, the OVN chassis' encap IPs, and packets (ICMP and a TCP
transfer) between two logical ports on different chassis across the Geneve tunnel.
"""

import hashlib
import ipaddress
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from allmende import testbed, testbed_netbox

BIN = Path(sys.executable).parent
NAME = os.environ.get("ALLMENDE_NBTEST_TESTBED", "nbtest")
TIMINGS = {}


def allmende(*args, timeout=2400):
    return subprocess.run([str(BIN / "allmende"), *args], capture_output=True, text=True, timeout=timeout, check=False)


def ssh(tb, node, command, timeout=60):
    return subprocess.run(
        ["ssh", "-F", str(tb.ssh_config), node, command], capture_output=True, text=True, timeout=timeout, check=False
    )


def run(tb, node, command, timeout=60):
    proc = ssh(tb, node, command, timeout=timeout)
    assert proc.returncode == 0, f"{node}: {command}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def wait_for(what, check, timeout=120, interval=2.0):
    """Poll check() until it returns something truthy; bounded in time."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except AssertionError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what}: not reached within {timeout}s (last: {last})")


@pytest.fixture(scope="module")
def bed():
    if shutil.which("podman") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("podman is not installed (scripts/host-prereqs.sh); CI must run this test")
        pytest.skip("podman is not installed")
    assert allmende("netbox", "up").returncode == 0
    proc = allmende("testbed", "up", "--name", NAME, "--nodes", "3", "--disks", "1", "--disk-size", "1G", "--netbox")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tb = testbed.Testbed.load(NAME)
    yield tb
    if not os.environ.get("ALLMENDE_KEEP_TESTBED"):
        allmende("testbed", "down", "--name", NAME)
    if TIMINGS:
        print("\ntimings (s): " + ", ".join(f"{k}={v:.0f}" for k, v in TIMINGS.items()))


def apply_json(tb, target, *args):
    start = time.monotonic()
    proc = allmende("apply", target, "-i", str(tb.inventory_dir), "--json", *args)
    what = " ".join(("apply", target, *args))
    TIMINGS[what + (" again" if what in TIMINGS else "")] = time.monotonic() - start
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, records[-1] if records else {}, records


def index_of(node):
    return int(node.name.removeprefix("node"))


def address(tb, node, net):
    return testbed_netbox.networks(tb)[net].network_address + 10 + index_of(node)


def stats_of(end, key):
    return {host: stats[key] for host, stats in (end.get("stats") or {}).items()}


def test_inventory_comes_from_netbox(bed):
    assert (bed.inventory_dir / "netbox.yml").stat().st_mode & 0o777 == 0o600
    assert not (bed.inventory_dir / "testbed.yml").exists()
    check = allmende("inventory", "check", "-i", str(bed.inventory_dir))
    assert check.returncode == 0, check.stdout


def test_network_layer_configures_the_data_nic_and_leaves_the_ovs_bridge_to_open_vswitch(bed):
    proc = apply_json(bed, "network")[0]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    for node in bed.nodes:
        eth1 = json.loads(run(bed, node.name, "ip -d -j link show eth1"))[0]
        assert eth1["mtu"] == testbed_netbox.DATA_MTU
        assert "UP" in eth1["flags"]
        assert eth1.get("master") is None  # no Linux bridge: Open vSwitch attaches it
        files = run(bed, node.name, "ls /etc/systemd/network").split()
        assert "50-allmende-br-data.network" in files
        assert "50-allmende-br-data.netdev" not in files


def test_site_applies_through_the_driver(bed):
    proc, end, _records = apply_json(bed, "site")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    failed = stats_of(end, "failures")
    assert failed and not any(failed.values()), failed
    assert sorted(failed) == sorted(n.name for n in bed.nodes)


def test_a_second_site_run_changes_nothing(bed):
    proc, end, records = apply_json(bed, "site")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    changed = stats_of(end, "changed")
    which = [f"{r.get('host')}: {r.get('task')}" for r in records if r.get("status") == "changed"]
    assert changed and not any(changed.values()), (changed, which)


def test_check_mode_on_the_deployed_site_fails_nothing(bed):
    proc, end, records = apply_json(bed, "site", "--check")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    failed = stats_of(end, "failures")
    which = [f"{r.get('host')}: {r.get('task')}" for r in records if r.get("status") == "failed"]
    assert failed and not any(failed.values()), (failed, which)


def test_the_data_nic_is_a_port_of_the_ovs_bridge_carrying_tunnel_and_storage(bed):
    for node in bed.nodes:
        assert run(bed, node.name, "ovs-vsctl port-to-br eth1").strip() == testbed_netbox.DATA_BRIDGE
        addresses = run(bed, node.name, f"ip -j addr show {testbed_netbox.DATA_BRIDGE}")
        for net in ("tunnel", "storage"):
            assert f'"{address(bed, node, net)}"' in addresses, (node.name, net, addresses)
    first, last = bed.nodes[0], bed.nodes[-1]
    for net in ("tunnel", "storage"):
        ping = ssh(bed, first.name, f"ping -c 2 -W 2 {address(bed, last, net)}")
        assert ping.returncode == 0, ping.stdout + ping.stderr


def test_ceph_is_healthy_with_its_monitors_on_the_storage_network(bed):
    control = bed.group("control")[0]
    storage = testbed_netbox.networks(bed)["storage"]

    def healthy():
        status = json.loads(run(bed, control, "ceph -s -f json", timeout=60))
        return status if status["health"]["status"] == "HEALTH_OK" else None

    status = wait_for("Ceph HEALTH_OK", healthy, timeout=180, interval=5)
    osds = status["osdmap"]
    assert osds["num_osds"] == len(bed.nodes) and osds["num_up_osds"] == osds["num_in_osds"] == len(bed.nodes), osds
    monmap = json.loads(run(bed, control, "ceph mon dump -f json"))
    mons = monmap["mons"]
    assert len(mons) == len(bed.group("control")), mons
    for mon in mons:
        ips = {ipaddress.ip_address(a["addr"].rsplit(":", 1)[0]) for a in mon["public_addrs"]["addrvec"]}
        assert ips and all(ip in storage for ip in ips), (mon["name"], ips, storage)
    # every OSD daemon runs (a tiny cluster can say HEALTH_OK with one down)
    for node in bed.nodes:
        units = run(bed, node.name, "systemctl list-units --all --no-legend --plain 'ceph-osd@*.service'")
        states = [line.split()[2] for line in units.splitlines() if line.strip()]
        assert states and all(state == "active" for state in states), (node.name, units)


def sb(tb, command):
    control = tb.group("control")
    db = ",".join(f"tcp:{n.address}:6642" for n in tb.nodes if n.name in control)
    return run(tb, control[0], f"ovn-sbctl --db={db} --timeout=30 {command}")


def nb(tb, command):
    control = tb.group("control")
    db = ",".join(f"tcp:{n.address}:6641" for n in tb.nodes if n.name in control)
    return run(tb, control[0], f"ovn-nbctl --db={db} --timeout=30 {command}")


def chassis_encaps(tb):
    table = json.loads(sb(tb, "--format=json --columns=chassis_name,ip,type list Encap"))
    return {row[0]: (row[1], row[2]) for row in table["data"]}


def test_ovn_chassis_encap_ips_are_on_the_tunnel_network(bed):
    encaps = chassis_encaps(bed)
    chassis = sorted(set(bed.group("compute")) | set(bed.group("network")))
    assert sorted(encaps) == chassis
    for node in bed.nodes:
        if node.name in encaps:
            assert encaps[node.name] == (str(address(bed, node, "tunnel")), "geneve"), (node.name, encaps)


# ------------------------------------------------------------------ the data plane

SWITCH = "ls-probe"
PROBE_NET = ipaddress.ip_network("192.0.2.0/24")  # TEST-NET-1: exists only inside the logical switch
PINGS = 20
TRANSFER_BYTES = 4 * 1024 * 1024
SERVER = r"""
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5201)); s.listen(1); s.settimeout(60)
c, _ = s.accept(); c.settimeout(60); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    h.update(b); n += len(b)
print(n, h.hexdigest())
"""
CLIENT = r"""
import os, socket, sys, hashlib
data = os.urandom(int(sys.argv[2])); c = socket.create_connection((sys.argv[1], 5201), timeout=60)
c.sendall(data); c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
print(len(data), hashlib.sha256(data).hexdigest())
"""


def probe_port(tb, node, port, mac, ip):
    """An OVS internal port on br-int bound to a logical port, moved into a namespace of its own."""
    ns = f"ns-{port}"
    run(
        tb,
        node,
        f"ip netns del {ns} 2>/dev/null; ovs-vsctl --if-exists del-port br-int {port}"
        f" && ovs-vsctl add-port br-int {port} -- set interface {port} type=internal"
        f" external_ids:iface-id={port}"
        f" && ip netns add {ns} && ip link set {port} netns {ns}"
        f" && ip -n {ns} link set {port} address {mac} mtu 1400"
        f" && ip -n {ns} addr add {ip}/{PROBE_NET.prefixlen} dev {port}"
        f" && ip -n {ns} link set {port} up && ip -n {ns} link set lo up",
    )
    return ns


def tunnel_counters(tb, node, remote_ip):
    """(tx_packets, rx_packets) of the Geneve port of this chassis towards remote_ip."""
    rows = json.loads(
        run(tb, node, "ovs-vsctl --format=json --columns=name,options,statistics find interface type=geneve")
    )
    for name, options, statistics in rows["data"]:
        opts = dict(options[1])
        if opts.get("remote_ip") == remote_ip:
            stats = dict(statistics[1])
            return name, stats.get("tx_packets", 0), stats.get("rx_packets", 0)
    raise AssertionError(f"{node}: no Geneve port towards {remote_ip}: {rows}")


@pytest.fixture(scope="module")
def probes(bed):
    chassis = [n for n in bed.nodes if n.name in set(bed.group("compute"))][:2]
    assert len(chassis) == 2, "two chassis needed"
    ports = []
    nb(bed, f"--if-exists ls-del {SWITCH} -- ls-add {SWITCH}")
    for i, node in enumerate(chassis, start=1):
        port, mac, ip = f"probe{i}", f"02:ac:10:00:00:0{i}", str(PROBE_NET.network_address + 10 + i)
        nb(bed, f"lsp-add {SWITCH} {port} -- lsp-set-addresses {port} {shlex.quote(f'{mac} {ip}')}")
        ns = probe_port(bed, node.name, port, mac, ip)
        ports.append({"node": node, "port": port, "mac": mac, "ip": ip, "ns": ns})
    for p in ports:
        uuid = sb(bed, f"--bare --columns=_uuid find Chassis name={p['node'].name}").strip()
        assert uuid, p["node"].name
        wait_for(
            f"{p['port']} bound to chassis {p['node'].name}",
            lambda p=p, uuid=uuid: (
                sb(bed, f"--bare --columns=chassis find Port_Binding logical_port={p['port']}").strip() == uuid
            ),
            timeout=60,
        )
    yield ports
    for p in ports:
        ssh(bed, p["node"].name, f"ip netns del {p['ns']}; ovs-vsctl --if-exists del-port br-int {p['port']}")
    nb(bed, f"--if-exists ls-del {SWITCH}")


def test_two_logical_ports_on_different_chassis_talk_across_the_geneve_tunnel(bed, probes):
    a, b = probes
    ip_a, ip_b = (str(address(bed, p["node"], "tunnel")) for p in probes)
    # ARP and the first packets may need a moment while ovn-controller installs the flows
    wait_for(
        "first ping between the logical ports",
        lambda: ssh(bed, a["node"].name, f"ip netns exec {a['ns']} ping -c 1 -W 2 {b['ip']}").returncode == 0,
        timeout=90,
    )
    before = {"a": tunnel_counters(bed, a["node"].name, ip_b), "b": tunnel_counters(bed, b["node"].name, ip_a)}
    ping = ssh(bed, a["node"].name, f"ip netns exec {a['ns']} ping -c {PINGS} -i 0.2 -W 2 {b['ip']}", timeout=60)
    assert ping.returncode == 0 and f"{PINGS} received" in ping.stdout, ping.stdout + ping.stderr

    # TCP: a few MB with a checksum on both ends
    server = subprocess.Popen(
        [
            "ssh",
            "-F",
            str(bed.ssh_config),
            b["node"].name,
            f"timeout 90 ip netns exec {b['ns']} python3 -c {shlex.quote(SERVER)} {b['ip']}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            "TCP server listening",
            lambda: ":5201" in ssh(bed, b["node"].name, f"ip netns exec {b['ns']} ss -Hltn").stdout,
            timeout=30,
            interval=0.5,
        )
        start = time.monotonic()
        sent = run(
            bed,
            a["node"].name,
            f"timeout 90 ip netns exec {a['ns']} python3 -c {shlex.quote(CLIENT)} {b['ip']} {TRANSFER_BYTES}",
            timeout=120,
        ).split()
        received, err = server.communicate(timeout=120)
        TIMINGS["tcp transfer"] = time.monotonic() - start
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0, err
    assert received.split() == sent and int(sent[0]) == TRANSFER_BYTES, (sent, received)
    assert len(sent[1]) == len(hashlib.sha256().hexdigest())

    # the packets crossed the tunnel ports of both chassis: OVS updates the counters from flow stats, a few
    # seconds late; both directions count at least the pings, and the TCP transfer alone is thousands of packets
    tcp_packets = TRANSFER_BYTES // 9000

    def grown():
        after = {"a": tunnel_counters(bed, a["node"].name, ip_b), "b": tunnel_counters(bed, b["node"].name, ip_a)}
        deltas = {k: (after[k][1] - before[k][1], after[k][2] - before[k][2]) for k in after}
        ok = all(tx >= PINGS and rx >= PINGS and max(tx, rx) > tcp_packets for tx, rx in deltas.values())
        return (after, deltas) if ok else None

    after, _deltas = wait_for("tunnel counters grow by at least the packets sent", grown, timeout=60, interval=2)
    for k in after:
        assert after[k][0] == before[k][0], (before, after)


def test_no_run_record_holds_a_generated_secret(bed):
    """After NetBox, the testbed and `apply site` (twice): every run record is free of the NetBox
    passwords and token, the testbed's SSH key and the cluster's cephx keys, in any form."""
    proc = allmende("runs", "audit")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"testbed {NAME} cephx keys:" in proc.stdout
    counts = {
        line.rsplit(":", 1)[0]: int(line.rsplit(":", 1)[1].split()[0])
        for line in proc.stdout.splitlines()
        if line.endswith("secret(s)")
    }
    assert counts["netbox"] >= 4 and counts[f"testbed {NAME} cephx keys"] >= 3, counts
