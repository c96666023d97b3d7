"""HAProxy listen sections: validated data, host-named servers (drainable), one writer for Galera."""

import pytest
from conftest import load_plugin_module

haproxy = load_plugin_module("plugins/module_utils/haproxy.py")

BACKENDS = [
    {"name": "node1", "address": "10.0.0.11"},
    {"name": "node2", "address": "10.0.0.12"},
    {"name": "node3", "address": "10.0.0.13"},
]


def test_an_api_listens_on_the_vip_and_checks_every_backend():
    text = haproxy.render("keystone", {"port": 5000, "check": {"http_path": "/v3"}}, BACKENDS, "10.0.0.5")
    lines = text.splitlines()
    assert lines[0] == "listen keystone" and "    bind 10.0.0.5:5000" in lines
    assert "    option httpchk GET /v3" in lines and "    balance roundrobin" in lines
    servers = [line.split()[1] for line in lines if line.strip().startswith("server ")]
    assert servers == ["node1", "node2", "node3"]
    assert "    server node2 10.0.0.12:5000 check inter 2s fall 2 rise 2" in lines
    assert "backup" not in text


def test_galera_gets_a_single_writer_checked_on_its_sync_port():
    spec = {"port": 3306, "mode": "tcp", "single_writer": True, "check": {"http_path": "/", "port": 4569}}
    lines = haproxy.render("mariadb", spec, BACKENDS, "10.0.0.5").splitlines()
    servers = [line.strip() for line in lines if line.strip().startswith("server ")]
    assert servers[0].endswith("port 4569 on-marked-down shutdown-sessions on-marked-up shutdown-backup-sessions")
    assert all(s.endswith(" backup") for s in servers[1:]) and len(servers) == 3
    assert "    option tcplog" in lines


def test_tls_termination_on_the_frontend():
    text = haproxy.render(
        "keystone", {"port": 5000, "tls": {"certificate": "/etc/haproxy/vip.pem"}}, BACKENDS, "10.0.0.5"
    )
    assert "    bind 10.0.0.5:5000 ssl crt /etc/haproxy/vip.pem" in text


def test_every_problem_is_listed_at_once():
    spec = {"port": 99999, "mode": "udp", "colour": "red", "check": {"path": "/"}, "tls": {}}
    with pytest.raises(ValueError) as err:
        haproxy.render("Bad Name", spec, [{"name": "node1"}], "10.0.0.5")
    text = str(err.value)
    for expected in (
        "name: use lower-case",
        "port: must be a port number",
        "mode: must be one of http, tcp",
        "colour: unknown field",
        "check.path: unknown field",
        "backends: every backend needs name and address",
    ):
        assert expected in text, text
    assert haproxy.problems("glance", {"port": 9292}, []) == ["haproxy glance: backends: no hosts to send traffic to"]


def test_two_services_on_one_port_are_reported():
    entries = {
        "keystone": ({"port": 5000}, BACKENDS),
        "other": ({"port": 5000}, BACKENDS),
        "off": ({"port": 5000, "enabled": False}, BACKENDS),
    }
    assert haproxy.all_problems(entries) == ["haproxy: port 5000 is used by keystone and other"]
