"""The keystone role's load-balancer entry is valid for the haproxy_listen filter."""

from pathlib import Path

import yaml
from conftest import load_plugin_module
from jinja2.nativetypes import NativeEnvironment

haproxy = load_plugin_module("plugins/module_utils/haproxy.py")
DEFAULTS = yaml.safe_load((Path(__file__).resolve().parents[2] / "roles/keystone/defaults/main.yml").read_text())
BACKENDS = [{"name": f"node{i}", "address": f"10.0.0.1{i}"} for i in (1, 2, 3)]


def _native(value, **variables):
    if isinstance(value, dict):
        return {k: _native(v, **variables) for k, v in value.items()}
    if isinstance(value, str):
        return NativeEnvironment().from_string(value).render(**variables)
    return value


def test_the_haproxy_entry_listens_on_5000_and_checks_v3():
    entries = DEFAULTS["keystone_services"]["keystone"]["haproxy"]
    assert list(entries) == ["keystone"]
    spec = _native(entries["keystone"], keystone_port=DEFAULTS["keystone_port"])
    assert haproxy.problems("keystone", spec, BACKENDS) == []
    lines = haproxy.render("keystone", spec, BACKENDS, "10.0.0.5").splitlines()
    assert "    bind 10.0.0.5:5000" in lines
    assert "    option httpchk GET /v3" in lines
    assert "    server node3 10.0.0.13:5000 check inter 2s fall 2 rise 2" in lines
    # a request refused or left unanswered by a stopping keystone goes to another host
    assert "    retry-on conn-failure empty-response" in lines
