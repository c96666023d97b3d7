"""HAProxy and keepalived on three control nodes: one VIP holder, memcached and a TLS frontend
through the VIP, every backend UP, drain and enable of one host through the admin socket, a
configuration change reloaded in place, and failover measured with `allmende probe`."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
import failover
from check_action import deploy, drift
from failover import wait_for
from scenario_hosts import HOSTS, TESTBED

VIP = failover.vip_of(TESTBED)
TLS_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent")) / "tls"
SOCKET = "/run/allmende/haproxy/haproxy.sock"
PLAYBOOK = "loadbalancer.yml"
# the scenario's additions, as converge.yml passes them (the playbook runs of the tests need them too)
EXTRA = [
    "-e",
    json.dumps(
        {
            "allmende_loadbalancer_service_roles": [],
            "haproxy_tls_certificate": str(TLS_DIR / "vip.pem"),
            "haproxy_services_extra": {
                "memcached": {
                    "port": 11211,
                    "mode": "tcp",
                    "group": "control",
                    "check": {"inter": "1s"},
                    "timeout_client": "10m",
                    "timeout_server": "10m",
                },
                "health": {
                    "port": 8443,
                    "backend_port": 8404,
                    "mode": "http",
                    "group": "control",
                    "check": {"http_path": "/healthz", "inter": "1s"},
                },
            },
        }
    ),
]
PROBE_DIR = Path(os.environ.get("ALLMENDE_STATE_DIR", "/tmp")) / "probes-loadbalancer"


def holders():
    return failover.holders(TESTBED, VIP)


def single_holder():
    return failover.single_holder(TESTBED, VIP)


def stat(host):
    """{(proxy, server): (status, sessions)} from the admin socket on the host."""
    out = host.check_output(f"echo 'show stat' | socat stdio UNIX-CONNECT:{SOCKET}")
    rows = {}
    for line in out.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        f = line.split(",")
        if f[1] not in ("FRONTEND", "BACKEND"):
            rows[(f[0], f[1])] = (f[17], int(f[4] or 0))
    return rows


def all_up(host):
    """The stat rows when every server of the host's HAProxy is UP, else None."""
    rows = stat(host)
    return rows if rows and all(status == "UP" for status, _sessions in rows.values()) else None


def memcached_via_vip(key, value=None):
    """set (when value) and get one key through the VIP; the value read back."""
    with socket.create_connection((VIP, 11211), timeout=5) as conn:
        if value is not None:
            conn.sendall(f"set {key} 0 60 {len(value)}\r\n{value}\r\n".encode())
            assert conn.recv(100) == b"STORED\r\n"
        conn.sendall(f"get {key}\r\n".encode())
        reply = b""
        while not reply.endswith(b"END\r\n"):
            chunk = conn.recv(1000)
            assert chunk, reply
            reply += chunk
    lines = reply.decode().split("\r\n")
    return lines[1] if lines[0].startswith("VALUE") else None


def curl(url, *args):
    return subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", *args, url],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_three_control_nodes():
    assert len(HOSTS) == 3


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_units_run(name):
    host = HOSTS[name]
    for unit in ("allmende-haproxy.service", "allmende-keepalived.service"):
        assert host.service(unit).is_running, unit
        assert host.service(unit).is_enabled, unit


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_haproxy_binds_the_vip_on_every_node(name):
    host = HOSTS[name]
    assert host.check_output("sysctl -n net.ipv4.ip_nonlocal_bind") == "1"
    listening = host.check_output("ss -Hltn")
    for port in (8404, 8443, 11211):
        assert f"{VIP}:{port} " in listening, (port, listening)


def test_exactly_one_node_holds_the_vip():
    assert len(holders()) == 1, holders()


def test_memcached_answers_through_the_vip():
    assert memcached_via_vip("lb-test", "through-the-vip") == "through-the-vip"


def test_monitor_uri_through_the_vip():
    assert curl(f"http://{VIP}:8404/healthz").stdout == "200"


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_stats_show_every_backend_up(name):
    rows = wait_for(lambda: all_up(HOSTS[name]), 30)
    assert rows, stat(HOSTS[name])
    assert {server for _proxy, server in rows} == set(HOSTS)
    assert {proxy for proxy, _server in rows} == {"memcached", "health"}


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_admin_socket_and_certificate_on_the_host(name):
    host = HOSTS[name]
    assert host.file(SOCKET).is_socket
    pem = host.file("/etc/allmende/haproxy-tls/haproxy.pem")
    assert pem.mode == 0o600 and pem.user == "root"


def test_tls_frontend_with_the_ca():
    assert curl(f"https://{VIP}:8443/healthz", "--cacert", str(TLS_DIR / "vip.crt")).stdout == "200"
    # without the CA the self-signed certificate is refused: TLS really is verified
    refused = curl(f"https://{VIP}:8443/healthz")
    assert refused.returncode != 0 and refused.stdout != "200"
    # and the frontend speaks TLS only
    assert curl(f"http://{VIP}:8443/healthz").stdout != "200"


def test_check_action_reports_no_drift():
    assert drift(PLAYBOOK, *EXTRA) == {}


def test_drain_and_enable_one_backend():
    deploy(PLAYBOOK, *EXTRA, "-e", "allmende_action=drain", "-e", "haproxy_drain_host=node1")
    for name, host in HOSTS.items():
        rows = stat(host)
        drained = {k: v for k, v in rows.items() if k[1] == "node1"}
        assert drained and all(status == "MAINT" for status, _sessions in drained.values()), (name, rows)
        others = [state[0] for (_proxy, server), state in rows.items() if server != "node1"]
        assert all(status == "UP" for status in others), (name, rows)
    # traffic through the VIP still works, served by the others
    for i in range(6):
        assert memcached_via_vip(f"drain-{i}", "x") == "x"
        assert curl(f"https://{VIP}:8443/healthz", "--cacert", str(TLS_DIR / "vip.crt")).stdout == "200"
    deploy(PLAYBOOK, *EXTRA, "-e", "allmende_action=enable", "-e", "haproxy_drain_host=node1")
    for name, host in HOSTS.items():
        rows = wait_for(lambda h=host: all_up(h), 30)
        assert rows, (name, stat(host))


def test_configuration_change_reloads_without_recreate_or_drop():
    name = single_holder()
    host = HOSTS[name]
    before = host.check_output("podman container inspect --format '{{.Id}} {{.State.StartedAt}}' haproxy")
    with socket.create_connection((VIP, 11211), timeout=5) as conn:
        conn.sendall(b"version\r\n")
        assert conn.recv(100).startswith(b"VERSION")
        deploy(PLAYBOOK, *EXTRA, "-e", "haproxy_maxconn=4001")
        assert "maxconn 4001" in host.check_output("cat /etc/allmende/haproxy-config/haproxy.cfg")
        # the connection opened before the reload is still served (by the old worker)
        conn.sendall(b"version\r\n")
        assert conn.recv(100).startswith(b"VERSION")
    assert host.check_output("podman container inspect --format '{{.Id}} {{.State.StartedAt}}' haproxy") == before
    assert "4001" in host.check_output(f"echo 'show info' | socat stdio UNIX-CONNECT:{SOCKET} | grep -i '^Maxconn'")
    deploy(PLAYBOOK, *EXTRA)
    assert host.check_output("podman container inspect --format '{{.Id}} {{.State.StartedAt}}' haproxy") == before


def probe(case, action):
    """`allmende probe` on the monitor URI through the VIP while action() happens."""
    return failover.probe(PROBE_DIR, case, ["--http", f"monitor=http://{VIP}:8404/healthz"], action)


def assert_failover(report, samples, old):
    return failover.assert_failover(TESTBED, VIP, report, samples, old)


def test_failover_when_keepalived_stops_on_the_holder():
    old = single_holder()
    assert old
    report, samples = probe("keepalived-stopped", lambda: HOSTS[old].run("systemctl stop allmende-keepalived"))
    try:
        assert_failover(report, samples, old)
    finally:
        HOSTS[old].run("systemctl start allmende-keepalived")
    assert wait_for(lambda: HOSTS[old].service("allmende-keepalived.service").is_running, 30)
    assert single_holder()


def test_failover_when_the_holder_node_is_killed():
    old = single_holder()
    assert old
    report, samples = probe("node-killed", lambda: failover.kill_node(TESTBED, old))
    try:
        new = assert_failover(report, samples, old)
    finally:
        failover.revive(TESTBED)
    # the node is back, its units start again, and it does not take the VIP back (nopreempt)
    host = HOSTS[old]
    for unit in ("allmende-haproxy.service", "allmende-keepalived.service"):
        assert wait_for(lambda u=unit: host.service(u).is_running, 120, 3), unit
    assert wait_for(lambda: host.check_output("sysctl -n net.ipv4.ip_nonlocal_bind") == "1", 10)
    assert wait_for(lambda: all_up(host), 60, 2), stat(host)
    time.sleep(3)
    assert holders() == [new]
    assert memcached_via_vip("after-kill", "back") == "back"
