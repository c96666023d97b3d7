# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""HAProxy `listen` sections for the services behind the VIP, validated before they are written.

Every service role describes its load-balancer entries as data (the `haproxy` part of its
`<service>_services` entries); this renders one `listen` section per entry. Server lines are named
after the inventory host, so one backend can be drained through the stats socket by host name
(`set server <listen>/<host> state drain`), which the upgrade does before restarting that host.

A single-writer entry (MariaDB Galera) has one active server and the others as backups, in group
order, so every write goes to one node and a failover moves all clients at once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

NAME = re.compile(r"^[a-z][a-z0-9_-]*$")
MODES = ("http", "tcp")
KEYS = (
    "port",
    "backend_port",
    "mode",
    "balance",
    "check",
    "single_writer",
    "tls",
    "timeout_client",
    "timeout_server",
    "extra",
    "enabled",
)
CHECK_KEYS = ("http_path", "expect", "port", "inter", "fall", "rise")


def problems(name, spec, backends):
    """Every problem of one entry, as '<name>: <field>: <message>'."""
    found = []

    def add(field, message):
        found.append("haproxy %s: %s: %s" % (name, field, message))

    if not NAME.match(name or ""):
        found.append("haproxy %r: name: use lower-case letters, digits, - and _" % (name,))
    if not isinstance(spec, dict):
        return [*found, "haproxy %s: must be a mapping" % name]
    for key in sorted(set(spec) - set(KEYS)):
        add(key, "unknown field (known: %s)" % ", ".join(KEYS))
    for key in ("port", "backend_port"):
        if key in spec and not (isinstance(spec[key], int) and 0 < spec[key] < 65536):
            add(key, "must be a port number, got %r" % (spec[key],))
    if "port" not in spec:
        add("port", "missing")
    if spec.get("mode", "http") not in MODES:
        add("mode", "must be one of %s, got %r" % (", ".join(MODES), spec.get("mode")))
    check = spec.get("check") or {}
    if not isinstance(check, dict):
        add("check", "must be a mapping")
    else:
        for key in sorted(set(check) - set(CHECK_KEYS)):
            add("check.%s" % key, "unknown field (known: %s)" % ", ".join(CHECK_KEYS))
    if spec.get("tls") and not isinstance(spec.get("tls"), dict):
        add("tls", "must be a mapping with 'certificate' (a PEM with key)")
    elif spec.get("tls") and not spec["tls"].get("certificate"):
        add("tls.certificate", "missing")
    if not backends:
        add("backends", "no hosts to send traffic to")
    seen = set()
    for backend in backends or []:
        host, address = backend.get("name"), backend.get("address")
        if not host or not address:
            add("backends", "every backend needs name and address, got %r" % (backend,))
        elif host in seen:
            add("backends", "host %s listed twice" % host)
        seen.add(host)
    return found


def all_problems(entries):
    """Problems of every entry plus ports used twice on the VIP. entries: {name: (spec, backends)}."""
    found = []
    ports = {}
    for name in sorted(entries):
        spec, backends = entries[name]
        found += problems(name, spec, backends)
        if isinstance(spec, dict) and spec.get("enabled", True) and isinstance(spec.get("port"), int):
            ports.setdefault(spec["port"], []).append(name)
    for port, names in sorted(ports.items()):
        if len(names) > 1:
            found.append("haproxy: port %d is used by %s" % (port, " and ".join(names)))
    return found


def render(name, spec, backends, vip):
    """One `listen` section (text). Raises ValueError listing every problem."""
    errors = problems(name, spec, backends)
    if errors:
        raise ValueError("\n".join(errors))
    mode = spec.get("mode", "http")
    port = spec["port"]
    backend_port = spec.get("backend_port", port)
    check = spec.get("check") or {}
    lines = ["listen %s" % name, "    mode %s" % mode]
    bind = "    bind %s:%d" % (vip, port)
    if spec.get("tls"):
        bind += " ssl crt %s" % spec["tls"]["certificate"]
    lines.append(bind)
    if mode == "http":
        lines += ["    option httplog", "    option forwardfor"]
        lines.append("    http-request set-header X-Forwarded-Proto https if { ssl_fc }")
    else:
        lines.append("    option tcplog")
    if spec.get("single_writer"):
        lines.append("    balance first")
    else:
        lines.append("    balance %s" % spec.get("balance", "roundrobin"))
    for key, word in (("timeout_client", "client"), ("timeout_server", "server")):
        if spec.get(key):
            lines.append("    timeout %s %s" % (word, spec[key]))
    if check.get("http_path"):
        lines.append("    option httpchk GET %s" % check["http_path"])
        lines.append("    http-check expect %s" % check.get("expect", "status 200"))
    check_args = "check inter %s fall %d rise %d" % (
        check.get("inter", "2s"),
        check.get("fall", 2),
        check.get("rise", 2),
    )
    if check.get("port"):
        check_args += " port %d" % check["port"]
    for extra in spec.get("extra") or []:
        lines.append("    %s" % extra)
    for index, backend in enumerate(backends):
        server = "    server %s %s:%d %s" % (backend["name"], backend["address"], backend_port, check_args)
        if spec.get("single_writer"):
            # one writer: the others only take over when it is down, and clients move at once
            server += " on-marked-down shutdown-sessions"
            server += " backup" if index > 0 else " on-marked-up shutdown-backup-sessions"
        lines.append(server)
    return "\n".join(lines) + "\n"
