# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""MariaDB Galera: read a node's saved position, and decide safely which node may bootstrap.

Bootstrapping (`--wsrep-new-cluster`) from a node that is not the most advanced throws away every
transaction the others committed after it: the one mistake a Galera tool must never make. The
decisions here are pure logic so that they can be unit tested:

- `parse_grastate` / `parse_recovered_position` read what a stopped node knows: `grastate.dat`,
  and, when that says seqno -1 (the node did not shut down cleanly), the position printed by a
  fresh `mariadbd --wsrep-recover` run (never a position remembered from an older log);
- `recovery_plan` decides for a cluster that is fully down: every member must have reported a
  position, all of one cluster (state UUID); the node with the highest seqno bootstraps, every
  other node joins it afterwards; anything else is an error and nothing is started.
- `deploy_plan` decides for a deploy: a new cluster is bootstrapped only when no member has any
  data; when a primary component runs, nodes join it; a cluster that is fully down is left to the
  `recover` action instead of being bootstrapped from whichever node comes first.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

NULL_UUID = "00000000-0000-0000-0000-000000000000"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_RECOVERED = re.compile(r"WSREP: Recovered position:?\s+(" + _UUID + r"):(-?\d+)", re.IGNORECASE)
_FIELD = re.compile(r"^\s*([a-z_]+):\s*(\S*)\s*$")


def parse_grastate(text):
    """`grastate.dat` as {"uuid", "seqno", "safe_to_bootstrap"}; None values for missing fields."""
    fields = {}
    for line in (text or "").splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = _FIELD.match(line)
        if match:
            fields[match.group(1)] = match.group(2)
    seqno = fields.get("seqno")
    safe = fields.get("safe_to_bootstrap")
    return {
        "uuid": fields.get("uuid") or None,
        "seqno": int(seqno) if seqno is not None and re.match(r"^-?\d+$", seqno) else None,
        "safe_to_bootstrap": safe == "1" if safe is not None else None,
    }


def parse_recovered_position(text):
    """(uuid, seqno) from the output of `mariadbd --wsrep-recover`, or None if it printed none.

    The last "Recovered position" line counts: the server prints it once per recovery attempt.
    """
    found = _RECOVERED.findall(text or "")
    if not found:
        return None
    uuid, seqno = found[-1]
    return uuid.lower(), int(seqno)


def position(node):
    """A node's (uuid, seqno) from its reported state, or None if it is not known.

    node: {"uuid", "seqno", "recovered_uuid", "recovered_seqno"}: grastate.dat values and, if a
    recovery run was made, what it printed. grastate.dat's seqno is only valid when it is not -1.
    """
    uuid, seqno = node.get("uuid"), node.get("seqno")
    if seqno is not None and seqno >= 0 and uuid:
        return uuid, seqno
    r_uuid, r_seqno = node.get("recovered_uuid"), node.get("recovered_seqno")
    if r_uuid and r_seqno is not None and r_seqno >= 0:
        return r_uuid, r_seqno
    return None


def has_data(node):
    """Whether a node's datadir holds a Galera state at all (a cluster was formed with it)."""
    return bool(node.get("datadir_initialized") or node.get("uuid") not in (None, NULL_UUID))


def recovery_plan(group, nodes):
    """Decide the recovery of a cluster whose members are all down.

    group: the cluster's members in inventory order.
    nodes: {host: {"reachable", "running", "uuid", "seqno", "safe_to_bootstrap", "recovered_uuid",
        "recovered_seqno"}} for what each member reported.

    Returns {"bootstrap": host or None, "join": [hosts], "positions": {host: seqno}, "stale":
    [hosts behind the bootstrap node], "errors": [messages]}. Nothing may be started when "errors"
    is not empty.
    """
    errors = []
    positions = {}
    uuids = {}
    for host in group:
        node = nodes.get(host)
        if not node or not node.get("reachable", True):
            errors.append(
                "%s: not reachable; its position is unknown, and it may be the most advanced node "
                "(bring it back, or remove it from the cluster's group, before recovering)" % host
            )
            continue
        if node.get("running"):
            errors.append(
                "%s: MariaDB is running; recovery is for a cluster that is fully down "
                "(a running primary component is joined by a deploy, not recovered)" % host
            )
            continue
        pos = position(node)
        if pos is None:
            errors.append(
                "%s: no position: grastate.dat seqno is %s and the recovery run printed none"
                % (host, node.get("seqno"))
            )
            continue
        uuids.setdefault(pos[0], []).append(host)
        positions[host] = pos[1]
    if len(uuids) > 1:
        errors.append(
            "the members belong to different clusters: %s"
            % "; ".join("%s on %s" % (uuid, ", ".join(hosts)) for uuid, hosts in sorted(uuids.items()))
        )
    if errors:
        return {"bootstrap": None, "join": [], "positions": positions, "stale": [], "errors": errors}
    best = max(positions.values())
    leaders = [h for h in group if positions[h] == best]
    # among equals, a node Galera itself marked safe (the last to leave cleanly) goes first
    safe = [h for h in leaders if nodes[h].get("safe_to_bootstrap")]
    bootstrap = (safe or leaders)[0]
    return {
        "bootstrap": bootstrap,
        "join": [h for h in group if h != bootstrap],
        "positions": positions,
        "stale": [h for h in group if positions[h] < best],
        "errors": [],
    }


def deploy_plan(group, play_hosts, nodes):
    """Decide what a deploy does with the Galera members it can see.

    nodes: {host: {"running", "synced", "primary", "uuid", "seqno", "datadir_initialized"}}.

    Returns {"bootstrap": host or None, "start": [hosts that join a primary component],
    "errors": [messages]}.
    """
    visible = [h for h in group if h in play_hosts]
    outside = [h for h in group if h not in play_hosts]
    primary = [h for h in visible if nodes.get(h, {}).get("running") and nodes[h].get("primary")]
    stopped = [h for h in visible if not nodes.get(h, {}).get("running")]
    if primary:
        return {"bootstrap": None, "start": stopped, "errors": []}
    running = [h for h in visible if nodes.get(h, {}).get("running")]
    if running:
        return {
            "bootstrap": None,
            "start": [],
            "errors": [
                "MariaDB runs on %s but no member is in a primary component: the cluster lost quorum; "
                "run the mariadb role's recover action" % ", ".join(running)
            ],
        }
    if outside:
        return {
            "bootstrap": None,
            "start": [],
            "errors": [
                "no member in this run is in a primary component and %s %s not in the run: "
                "a new cluster is only bootstrapped when every member is seen"
                % (", ".join(outside), "is" if len(outside) == 1 else "are")
            ],
        }
    with_data = [h for h in visible if has_data(nodes.get(h, {}))]
    if with_data:
        return {
            "bootstrap": None,
            "start": [],
            "errors": [
                "every member is down and %s already %s cluster data: not bootstrapping a new cluster "
                "over it; run the mariadb role's recover action (it starts from the most advanced node)"
                % (", ".join(with_data), "holds" if len(with_data) == 1 else "hold")
            ],
        }
    return {"bootstrap": visible[0] if visible else None, "start": visible[1:], "errors": []}
