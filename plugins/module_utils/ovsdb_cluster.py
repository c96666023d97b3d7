# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Clustered (RAFT) OVSDB databases: read `cluster/status`, and decide safely who creates,
who joins and who must not be touched.

The decision (`plan`) is pure logic so that it can be unit tested: the only way to get a second
cluster is to run `ovsdb-tool create-cluster` while a cluster already exists somewhere, and that is
exactly what `plan` refuses when it cannot see every member.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# Database file states, as reported by the ovsdb_cluster_info module.
ABSENT = "absent"
STANDALONE = "standalone"
CLUSTERED = "clustered"  # a member: the cluster ID is known
JOINING = "joining"  # created by `ovsdb-tool join-cluster`, not yet admitted by the cluster
UNKNOWN = "unknown"  # exists but could not be read
STATES = (ABSENT, STANDALONE, CLUSTERED, JOINING, UNKNOWN)

_SERVER = re.compile(r"^\s+([0-9a-f]{4,})\s+\(([0-9a-f]+) at ([^)]+)\)(.*)$")
_FIELD = re.compile(r"^([A-Z][A-Za-z ]+):\s*(.*)$")


def parse_cluster_status(text):
    """Parse the output of `ovs-appctl -t CTL cluster/status DB` into a dict.

    Keys: sid, name, cluster_id, server_id, address, status, role, term, leader (a short server
    ID, "self" or "unknown"), is_leader, leader_address, servers (list of dicts with sid, address,
    self). Unknown lines are ignored, missing fields are None.
    """
    result = {
        "sid": None,
        "name": None,
        "cluster_id": None,
        "server_id": None,
        "address": None,
        "status": None,
        "role": None,
        "term": None,
        "leader": None,
        "is_leader": False,
        "leader_address": None,
        "servers": [],
    }
    lines = (text or "").splitlines()
    in_servers = False
    for index, line in enumerate(lines):
        if index == 0 and line.strip() and ":" not in line:
            result["sid"] = line.strip()
            continue
        if in_servers:
            match = _SERVER.match(line)
            if match:
                result["servers"].append(
                    {"sid": match.group(1), "address": match.group(3).strip(), "self": "(self)" in match.group(4)}
                )
                continue
            if line.strip():
                in_servers = False
        match = _FIELD.match(line)
        if not match:
            continue
        key, value = match.group(1), match.group(2).strip()
        if key == "Servers":
            in_servers = True
        elif key == "Name":
            result["name"] = value
        elif key in ("Cluster ID", "Server ID"):
            full = re.search(r"\(([0-9a-f-]{36})\)", value)
            result["cluster_id" if key == "Cluster ID" else "server_id"] = full.group(1) if full else value
        elif key == "Address":
            result["address"] = value
        elif key == "Status":
            result["status"] = value
        elif key == "Role":
            result["role"] = value
        elif key == "Term":
            try:
                result["term"] = int(value)
            except ValueError:
                result["term"] = None
        elif key == "Leader":
            result["leader"] = value
    result["is_leader"] = result["role"] == "leader" and result["leader"] == "self"
    leader = result["leader"]
    for server in result["servers"]:
        if (leader == "self" and server["self"]) or server["sid"] == leader:
            result["leader_address"] = server["address"]
    return result


def cluster_address(proto, address, port):
    """The RAFT address of a member, e.g. tcp:10.0.0.1:6643 (IPv6 addresses in brackets)."""
    host = "[%s]" % address if ":" in address and not address.startswith("[") else address
    return "%s:%s:%s" % (proto, host, port)


def plan(database, group, play_hosts, states, addresses, servers=None):
    """Decide what each host must do for one clustered database.

    database: name, used in messages (e.g. OVN_Northbound).
    group: the hosts that should be members, in inventory order.
    play_hosts: the hosts this run can see (after --limit, without failed hosts).
    states: {host: {"state": one of STATES, "cid": cluster ID or None, "local_address": str or None}}
        for the hosts of the group in this run.
    addresses: {host: RAFT address this host must use}, for every host of the group.
    servers: servers the running cluster lists ([{"sid", "address"}]), from any member; used to
        find stale entries of hosts that lost their database and must join again.

    Returns {"bootstrap": host or None, "join": [hosts], "remotes": [addresses], "members": [hosts],
    "kick": [{"database", "host", "sid", "address"}], "errors": [messages]}. Nothing must be changed when
    "errors" is not empty.
    """
    errors = []
    servers = servers or []
    visible = [h for h in group if h in play_hosts]
    outside = [h for h in group if h not in play_hosts]

    def state_of(host):
        return (states.get(host) or {}).get("state", UNKNOWN)

    for host in visible:
        state = state_of(host)
        if state not in STATES:
            errors.append("%s: %s database state %r is not one of %s" % (host, database, state, ", ".join(STATES)))
        elif state == UNKNOWN:
            errors.append("%s: the %s database file exists but cannot be read" % (host, database))
        if host not in addresses or not addresses[host]:
            errors.append("%s: no cluster address for %s" % (host, database))

    clustered = [h for h in visible if state_of(h) == CLUSTERED]
    joining = [h for h in visible if state_of(h) == JOINING]
    fresh = [h for h in visible if state_of(h) in (ABSENT, STANDALONE)]

    cids = {}
    for host in clustered:
        cids.setdefault(states[host].get("cid"), []).append(host)
    if len(cids) > 1:
        errors.append(
            "%s: hosts belong to different clusters (%s); refusing to touch any of them"
            % (database, "; ".join("%s: %s" % (cid, ", ".join(hosts)) for cid, hosts in sorted(cids.items())))
        )

    for host in clustered + joining:
        local = (states.get(host) or {}).get("local_address")
        if local and addresses.get(host) and local != addresses[host]:
            errors.append(
                "%s: its %s member is bound to %s, but its address is now %s; remove the member "
                "(action remove_member) and deploy again to change it" % (host, database, local, addresses[host])
            )

    result = {
        "bootstrap": None,
        "join": [],
        "remotes": [],
        "members": clustered + joining,
        "kick": [],
        "errors": errors,
    }
    if clustered:
        result["join"] = fresh
        result["remotes"] = [addresses[h] for h in clustered if addresses.get(h)]
    elif joining:
        errors.append(
            "%s: %s joined a cluster that none of the hosts in this run is a member of; run without "
            "--limit, or include a member" % (database, ", ".join(joining))
        )
    elif outside:
        errors.append(
            "%s: no host in this run has a cluster database, and %s %s outside this run (--limit or "
            "unreachable) and may hold the cluster; refusing to create a second cluster. Include at "
            "least one existing member in the run (or all hosts of the group for a first deployment)"
            % (database, ", ".join(outside), "is" if len(outside) == 1 else "are")
        )
    elif fresh:
        # A first deployment: every member is visible and none has a cluster database. A host
        # with a standalone database (an earlier non-clustered installation) keeps its data.
        standalone = [h for h in fresh if state_of(h) == STANDALONE]
        result["bootstrap"] = (standalone or fresh)[0]
        result["join"] = [h for h in fresh if h != result["bootstrap"]]
        result["remotes"] = [addresses[result["bootstrap"]]] if addresses.get(result["bootstrap"]) else []

    if result["join"] and clustered:
        by_address = {}
        for server in servers:
            by_address.setdefault(server.get("address"), []).append(server.get("sid"))
        for host in result["join"]:
            for sid in by_address.get(addresses.get(host), []):
                result["kick"].append({"database": database, "host": host, "sid": sid, "address": addresses[host]})
    if errors:
        result.update(bootstrap=None, join=[], kick=[])
    return result
