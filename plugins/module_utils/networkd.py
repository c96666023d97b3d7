# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host networking from the inventory model, rendered as systemd-networkd files.

Pure functions, no I/O:

- ``plan()`` validates ``allmende_interfaces`` (+ routes, networks, what the host reports) and
  decides which interfaces the role manages, with effective MTUs, members, VLANs and routes.
  Every problem is collected, none stops the check early.
- ``units()`` turns a plan into ``{file name: content}`` (.netdev and .network files).
- ``drift()`` compares a plan with the live state (``ip -j -d addr show``, ``ip -j route show``).
- ``parse_unit()`` reads the section/key pairs of a systemd unit text.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

TYPES = ("physical", "lag", "vlan", "bridge", "virtual")
NETDEV_KINDS = {"lag": "bond", "vlan": "vlan", "bridge": "bridge"}
# Who builds a bridge: linux (networkd creates a kernel bridge) or ovs (Open vSwitch creates it; networkd
# only configures its internal interface and its ports). The userspace OVS datapath tunnels only from an
# address on an OVS bridge that owns the NIC.
BRIDGE_KINDS = ("linux", "ovs")
# Link kinds an OVS bridge's internal interface has: kernel datapath, userspace datapath (a tap), or a
# Linux bridge the role created before the inventory moved it to Open vSwitch (replaced on the next run).
OVS_BRIDGE_LINK_KINDS = ("openvswitch", "tun", "bridge")
LAG_MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad", "balance-tlb", "balance-alb")
DEFAULT_LAG_MODE = "802.3ad"
MATCH_MAC = ("permanent", "current", "off")
DEFAULT_PREFIX = "50-allmende-"
# Interface names: what the kernel accepts, minus characters networkd's Name= treats as globs.
IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
MTU_MIN, MTU_MAX = 68, 65535
# [Bond] keys that only mean something in some modes (systemd.netdev(5)); others apply to all.
BOND_MODE_KEYS = {
    "LACPTransmitRate": ("802.3ad",),
    "AdSelect": ("802.3ad",),
    "AdActorSystemPriority": ("802.3ad",),
    "AdUserPortKey": ("802.3ad",),
    "AdActorSystem": ("802.3ad",),
    "MinLinks": ("802.3ad",),
    "TransmitHashPolicy": ("balance-xor", "802.3ad", "balance-tlb"),
    "PrimaryReselectPolicy": ("active-backup", "balance-tlb", "balance-alb"),
    "FailOverMACPolicy": ("active-backup",),
    "PacketsPerSlave": ("balance-rr",),
    "GratuitousARP": ("active-backup",),
    "LearnPacketInterval": ("balance-tlb", "balance-alb"),
}
DEFAULT_BOND_OPTIONS = {"MIIMonitorSec": "100ms", "TransmitHashPolicy": "layer3+4", "LACPTransmitRate": "fast"}
DNS_MODES = ("resolvconf", "resolved", "none")
LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
DOMAIN = re.compile(r"^(?=.{1,253}$)%s(\.%s)*\.?$" % (LABEL, LABEL))
HEADER = "# Managed by allmende.cloud.network from the inventory; local changes are overwritten.\n"


class PlanError(ValueError):
    """A plan with problems was used to render files; str() lists the problems."""

    def __init__(self, problems):
        self.problems = list(problems)
        super(PlanError, self).__init__("\n".join(self.problems))


class _Problems(object):
    def __init__(self, host):
        self.host = host
        self.items = []

    def add(self, subject, field, message):
        text = "%s: %s: %s" % (subject, field, message) if field else "%s: %s" % (subject, message)
        self.items.append("%s: %s" % (self.host, text) if self.host else text)

    def iface(self, name, field, message):
        self.add("interface %s" % name, field, message)


# ---------------------------------------------------------------------------------- input


def _int(value):
    if isinstance(value, bool):
        raise ValueError("not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise ValueError("not a number")


def _bool(value, default):
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
        return value.lower() in ("true", "yes", "1")
    raise ValueError("not a boolean")


def _opt_str(value):
    if value is None or value == "":
        return None
    return str(value)


def _interface_address(text):
    """'10.0.0.1/24' -> IPv4Interface; a prefix length is required."""
    if not isinstance(text, str) or "/" not in text:
        raise ValueError("needs a prefix length, e.g. 10.0.0.1/24")
    return ipaddress.ip_interface(text.strip())


def _normalise(interfaces, problems):
    result = {}
    first_seen = {}
    if interfaces is None:
        interfaces = []
    if not isinstance(interfaces, list):
        problems.add("allmende_interfaces", None, "must be a list, got %s" % type(interfaces).__name__)
        return result
    for index, item in enumerate(interfaces):
        label = "#%d" % index
        if not isinstance(item, dict):
            problems.iface(label, None, "not a mapping")
            continue
        name = item.get("name")
        if not isinstance(name, str) or not IFNAME.match(name) or name in (".", ".."):
            problems.iface(label, "name", "%r is not a valid interface name (1-15 of A-Z a-z 0-9 _ . -)" % (name,))
            continue
        if name in first_seen:
            problems.iface(name, "name", "duplicate (items #%d and #%d)" % (first_seen[name], index))
            continue
        first_seen[name] = index
        rec = {"name": name, "index": index}
        kind = item.get("type")
        if kind not in TYPES:
            problems.iface(name, "type", "%r is not one of %s" % (kind, ", ".join(TYPES)))
            kind = None
        rec["type"] = kind
        for field, default in (("enabled", True), ("mgmt_only", False)):
            try:
                rec[field] = _bool(item.get(field), default)
            except ValueError:
                problems.iface(name, field, "%r is not a boolean" % (item.get(field),))
                rec[field] = default
        rec["mtu"] = None
        if item.get("mtu") not in (None, ""):
            try:
                rec["mtu"] = _int(item.get("mtu"))
                if not MTU_MIN <= rec["mtu"] <= MTU_MAX:
                    raise ValueError()
            except ValueError:
                problems.iface(name, "mtu", "%r is not a number between %d and %d" % (item["mtu"], MTU_MIN, MTU_MAX))
                rec["mtu"] = None
        mac = _opt_str(item.get("mac"))
        if mac is not None:
            mac = mac.lower().replace("-", ":")
            if not MAC.match(mac):
                problems.iface(name, "mac", "%r is not a MAC address" % (item.get("mac"),))
                mac = None
        rec["mac"] = mac
        for field in ("lag", "parent", "bridge"):
            rec[field] = _opt_str(item.get(field))
        mode = _opt_str(item.get("lag_mode"))
        if kind == "lag":
            mode = mode or DEFAULT_LAG_MODE
            if mode not in LAG_MODES:
                problems.iface(name, "lag_mode", "%r is not one of %s" % (mode, ", ".join(LAG_MODES)))
        rec["lag_mode"] = mode if kind == "lag" else None
        bridge_kind = _opt_str(item.get("bridge_kind"))
        if bridge_kind is not None and bridge_kind not in BRIDGE_KINDS:
            problems.iface(name, "bridge_kind", "%r is not one of %s" % (bridge_kind, ", ".join(BRIDGE_KINDS)))
            bridge_kind = None
        if bridge_kind == "ovs" and kind != "bridge":
            problems.iface(name, "bridge_kind", "only bridges can be Open vSwitch bridges (this is %s)" % kind)
            bridge_kind = None
        rec["bridge_kind"] = (bridge_kind or "linux") if kind == "bridge" else None
        rec["vid"] = None
        if kind == "vlan":
            vid = item.get("vid")
            if vid in (None, ""):
                problems.iface(name, "vid", "a VLAN needs a VLAN id")
            else:
                try:
                    rec["vid"] = _int(vid)
                    if not 1 <= rec["vid"] <= 4094:
                        raise ValueError()
                except ValueError:
                    problems.iface(name, "vid", "%r is not a VLAN id (1-4094)" % (vid,))
                    rec["vid"] = None
            if rec["parent"] is None:
                problems.iface(name, "parent", "a VLAN needs a parent interface")
        addresses = item.get("addresses")
        if addresses is None:
            addresses = []
        rec["addresses"] = []
        if not isinstance(addresses, list):
            problems.iface(name, "addresses", "must be a list of CIDR addresses")
        else:
            for text in addresses:
                try:
                    addr = _interface_address(text)
                except ValueError as exc:
                    problems.iface(name, "addresses", "%r is not a CIDR address: %s" % (text, exc))
                    continue
                if addr.ip.is_loopback or addr.ip.is_multicast or addr.ip.is_unspecified:
                    problems.iface(name, "addresses", "%s cannot be an interface address" % text)
                    continue
                if str(addr) in rec["addresses"]:
                    problems.iface(name, "addresses", "%s is listed twice" % addr)
                    continue
                rec["addresses"].append(str(addr))
        result[name] = rec
    return result


# ---------------------------------------------------------------------------------- plan


def _lowers(rec, by_name, members, ports):
    """Interfaces an interface is built on: a VLAN's parent, a LAG's members, a bridge's ports."""
    out = []
    if rec["type"] == "vlan" and rec["parent"] in by_name:
        out.append(rec["parent"])
    out.extend(members.get(rec["name"], []))
    out.extend(ports.get(rec["name"], []))
    return out


def _closure(roots, by_name, members, ports):
    seen = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        stack.extend(_lowers(by_name[name], by_name, members, ports))
    return seen


def _live_index(live):
    """ip -j -d addr show -> {ifname: link}."""
    out = {}
    for link in live or []:
        if isinstance(link, dict) and link.get("ifname"):
            out[link["ifname"]] = link
    return out


# Kinds of links a physical NIC can be on a host (none for real NICs; veth on container hosts).
NIC_KINDS = (None, "veth")


def _match_kind(rec, match_mac):
    """How a managed interface's .network file finds its link: 'permanent'/'current' MAC, or None (name)."""
    if rec["type"] != "physical" or not rec["mac"] or match_mac == "off":
        return None
    if match_mac == "current" and rec["lag"]:
        return None  # a LAG member's current MAC changes when it joins the bond: match by name
    return match_mac


def _live_names(by_name, live_links, match_mac):
    """{inventory name: (host's link name or None, how it was found)} for physical NICs and others."""
    nics = []
    for ifname, link in sorted(live_links.items()):
        kind = (link.get("linkinfo") or {}).get("info_kind")
        if kind in NIC_KINDS:
            address = (link.get("address") or "").lower()
            nics.append((ifname, address, (link.get("permaddr") or address).lower()))
    out = {}
    for name, rec in by_name.items():
        match = _match_kind(rec, match_mac) if rec["type"] == "physical" else None
        if match is None:
            out[name] = (name if name in live_links else None, "name")
            continue
        column = 2 if match == "permanent" else 1
        found = [nic[0] for nic in nics if nic[column] == rec["mac"]]
        out[name] = (found[0] if len(found) == 1 else None, "mac" if len(found) <= 1 else "ambiguous")
    return out


def ifupdown_names(text):
    """Interface names that an ifupdown configuration (/etc/network/interfaces) configures."""
    names = set()
    for raw in (text or "").splitlines():
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        if line[0] == "iface" and len(line) > 1:
            names.add(line[1])
        elif line[0] in ("auto", "allow-hotplug", "allow-auto") or line[0].startswith("allow-"):
            names.update(line[1:])
    names.discard("lo")
    return names


def plan(
    interfaces,
    routes=None,
    networks=None,
    host="",
    manage_mgmt=False,
    match_mac="permanent",
    prefix=DEFAULT_PREFIX,
    bond_options=None,
    bridge_options=None,
    configure_without_carrier=True,
    connection_address=None,
    live=None,
    ifupdown_config="",
    udev_active=None,
    without_udev=False,
    dns_mode="resolvconf",
    dns_servers=None,
    dns_search=None,
    resolv_conf=None,
    machine_id_shared_with=None,
    ovs_bridges=None,
):
    """Validate the inventory data of one host and decide what the network role does with it.

    ``live``, ``ifupdown_config``, ``udev_active`` and ``resolv_conf`` describe the host as it is
    (the networkd_state module); without them only the data itself is checked.
    ``machine_id_shared_with`` names other hosts with the same /etc/machine-id.
    ``ovs_bridges`` names bridges that are Open vSwitch bridges (as ``bridge_kind: ovs`` does).
    """
    problems = _Problems(host)
    by_name = _normalise(interfaces, problems)
    if ovs_bridges is None:
        ovs_bridges = []
    if not isinstance(ovs_bridges, list):
        problems.add("allmende_ovs_bridges", None, "must be a list of bridge names")
        ovs_bridges = []
    for name in ovs_bridges:
        rec = by_name.get(name)
        if rec is None:
            problems.add("allmende_ovs_bridges", None, "%s is not an interface of this host" % (name,))
        elif rec["type"] != "bridge":
            problems.iface(name, "bridge_kind", "only bridges can be Open vSwitch bridges (this is %s)" % rec["type"])
        else:
            rec["bridge_kind"] = "ovs"
    ovs = set(n for n, r in by_name.items() if r.get("bridge_kind") == "ovs")
    if match_mac not in MATCH_MAC:
        problems.add("network_match_mac", None, "%r is not one of %s" % (match_mac, ", ".join(MATCH_MAC)))
        match_mac = "off"
    if not isinstance(prefix, str) or not re.match(r"^[A-Za-z0-9_.-]+$", prefix or ""):
        problems.add("network_file_prefix", None, "%r is not a usable file name prefix" % (prefix,))
        prefix = DEFAULT_PREFIX
    bond_options = DEFAULT_BOND_OPTIONS if bond_options is None else bond_options
    bridge_options = bridge_options or {}
    for label, opts in (("network_bond_options", bond_options), ("network_bridge_options", bridge_options)):
        if not isinstance(opts, dict):
            problems.add(label, None, "must be a mapping of networkd keys to values")
    if not isinstance(bond_options, dict):
        bond_options = {}
    if not isinstance(bridge_options, dict):
        bridge_options = {}
    enabled = dict((n, r) for n, r in by_name.items() if r["enabled"] and r["type"])

    # Who references whom (enabled interfaces only).
    members, ports, vlans = {}, {}, {}
    vlan_ids = {}
    for name in sorted(enabled):
        rec = enabled[name]
        for field, wanted in (("lag", "lag"), ("bridge", "bridge"), ("parent", None)):
            target = rec[field]
            if target is None or (field == "parent" and rec["type"] != "vlan"):
                continue
            if target == name:
                problems.iface(name, field, "refers to itself")
                continue
            if target not in by_name:
                problems.iface(name, field, "%s is not an interface of this host" % target)
                continue
            other = by_name[target]
            if not other["enabled"]:
                problems.iface(name, field, "%s is disabled" % target)
                continue
            if wanted and other["type"] != wanted:
                problems.iface(name, field, "%s is a %s interface, not a %s" % (target, other["type"], wanted))
                continue
            if field == "lag":
                members.setdefault(target, []).append(name)
            elif field == "bridge":
                ports.setdefault(target, []).append(name)
            else:
                vlans.setdefault(target, []).append(name)
        if rec["lag"] and rec["type"] != "physical":
            problems.iface(name, "lag", "only physical interfaces can be LAG members (this is %s)" % rec["type"])
        if rec["lag"] and rec["bridge"]:
            problems.iface(
                name, "bridge", "a LAG member cannot also be a bridge port; put %s in the bridge" % rec["lag"]
            )
        if rec["bridge"] and rec["type"] == "bridge":
            problems.iface(name, "bridge", "a bridge cannot be a port of another bridge")
        if (rec["lag"] or rec["bridge"]) and rec["addresses"]:
            problems.iface(
                name,
                "addresses",
                "a %s member carries no addresses; put them on %s"
                % ("LAG" if rec["lag"] else "bridge", rec["lag"] or rec["bridge"]),
            )
        if rec["type"] == "vlan" and rec["parent"] in enabled and rec["vid"] is not None:
            parent = enabled[rec["parent"]]
            if parent["type"] == "vlan":
                problems.iface(
                    name, "parent", "%s is a VLAN itself; stacked VLANs (QinQ) are not supported" % parent["name"]
                )
            if parent["lag"] or parent["bridge"]:
                problems.iface(
                    name,
                    "parent",
                    "%s is a member of %s; put the VLAN on %s"
                    % (parent["name"], parent["lag"] or parent["bridge"], parent["lag"] or parent["bridge"]),
                )
            key = (rec["parent"], rec["vid"])
            if key in vlan_ids:
                problems.iface(name, "vid", "VLAN %d on %s is also %s" % (rec["vid"], rec["parent"], vlan_ids[key]))
            else:
                vlan_ids[key] = name
    for name in sorted(enabled):
        if enabled[name]["type"] == "lag" and not members.get(name):
            problems.iface(name, "lag", "a LAG needs members (no enabled interface has lag: %s)" % name)

    # Addresses are unique on the host.
    owner = {}
    for name in sorted(enabled):
        for addr in enabled[name]["addresses"]:
            ip = str(ipaddress.ip_interface(addr).ip)
            if ip in owner:
                problems.iface(name, "addresses", "%s is also on %s" % (ip, owner[ip]))
            else:
                owner[ip] = name

    # Physical NICs with a known MAC are found by it, whatever the host calls them.
    live_links = _live_index(live)
    live_names = _live_names(by_name, live_links, match_mac) if live is not None else {}
    inventory_name = dict((v[0], k) for k, v in live_names.items() if v[0])

    # Safety: the management connection and everything under it is left alone.
    connection_ip = None
    if connection_address:
        try:
            connection_ip = ipaddress.ip_address(str(connection_address))
        except ValueError:
            connection_ip = None  # a DNS name: only mgmt_only protects
    connection_names = set()
    live_connection = None
    if connection_ip is not None:
        if str(connection_ip) in owner:
            connection_names.add(owner[str(connection_ip)])
        for ifname, link in sorted(live_links.items()):
            for info in link.get("addr_info") or []:
                if info.get("local") == str(connection_ip):
                    live_connection = ifname
        if live_connection is not None:
            connection_names.add(inventory_name.get(live_connection, live_connection))
        connection_names &= set(by_name)
    protected = set()
    reasons = {}
    if not manage_mgmt:
        roots = set(n for n, r in enabled.items() if r["mgmt_only"])
        for name in sorted(connection_names):
            if name in enabled and not enabled[name]["mgmt_only"]:
                problems.iface(
                    name,
                    "mgmt_only",
                    "carries %s, the address Ansible connects to, but is not marked mgmt_only; mark it "
                    "mgmt_only, or set network_manage_mgmt: true to let the role reconfigure it" % connection_ip,
                )
        roots |= connection_names & set(enabled)
        for root in sorted(roots):
            for name in _closure([root], enabled, members, ports):
                protected.add(name)
                if name == root:
                    reasons.setdefault(name, "management interface (mgmt_only), left alone")
                else:
                    reasons.setdefault(name, "under the management interface %s, left alone" % root)
        for name in sorted(set(enabled) - protected):
            rec = enabled[name]
            if rec["type"] == "vlan" and rec["parent"] in protected:
                problems.iface(
                    name,
                    "parent",
                    "%s is part of the management connection, which the role leaves alone; set "
                    "network_manage_mgmt: true to manage both" % rec["parent"],
                )
            for member in members.get(name, []) + ports.get(name, []):
                if member in protected:
                    problems.iface(
                        name,
                        "members",
                        "%s is part of the management connection, which the role leaves alone; set "
                        "network_manage_mgmt: true to manage both" % member,
                    )

    # Which interfaces the role manages.
    managed = {}
    skipped = {}
    for name in sorted(by_name):
        rec = by_name[name]
        if not rec["type"]:
            continue
        if not rec["enabled"]:
            skipped[name] = "disabled"
            continue
        if name in protected:
            skipped[name] = reasons[name]
            continue
        used = bool(rec["addresses"] or rec["mtu"] or rec["lag"] or rec["bridge"] or vlans.get(name))
        if rec["type"] in ("physical", "virtual") and not used:
            skipped[name] = "unused (no addresses, MTU, LAG, bridge or VLANs), left alone"
            continue
        managed[name] = rec

    # Effective MTUs: explicit values win; missing ones are filled from related interfaces.
    mtu = dict((n, r["mtu"]) for n, r in managed.items())
    for _round in range(2 * len(managed) + 2):
        changed = False
        for name in sorted(managed):
            rec = managed[name]
            if mtu[name] is not None:
                continue
            candidates = []
            if rec["lag"] in managed and mtu[rec["lag"]] is not None:
                candidates.append(mtu[rec["lag"]])  # a LAG member takes the LAG's MTU
            if rec["bridge"] in managed and mtu[rec["bridge"]] is not None:
                candidates.append(mtu[rec["bridge"]])  # a bridge port takes the bridge's MTU
            if rec["type"] == "vlan" and rec["parent"] in managed and mtu[rec["parent"]] is not None:
                candidates.append(mtu[rec["parent"]])  # a VLAN takes its parent's MTU
            known = [mtu[m] for m in members.get(name, []) if m in managed and mtu[m] is not None]
            if known:
                candidates.append(max(known))  # a LAG takes its members' MTU
            known = [mtu[p] for p in ports.get(name, []) if p in managed and mtu[p] is not None]
            if known and rec["type"] == "bridge":
                candidates.append(min(known))  # a bridge runs at its smallest port's MTU
            known = [mtu[v] for v in vlans.get(name, []) if v in managed and mtu[v] is not None]
            if known:
                candidates.append(max(known))  # a parent must carry its largest VLAN
            if candidates:
                mtu[name] = candidates[0]  # the first source in the order above wins
                changed = True
        if not changed:
            break
    for name in sorted(managed):
        rec = managed[name]
        if rec["type"] == "lag":
            group = [name] + [m for m in members.get(name, []) if m in managed]
            values = sorted(set(mtu[m] for m in group if mtu[m] is not None))
            if len(values) > 1:
                problems.iface(
                    name,
                    "mtu",
                    "LAG members and the LAG must have the same MTU: %s"
                    % ", ".join("%s=%s" % (m, mtu[m]) for m in group if mtu[m] is not None),
                )
        if rec["type"] == "vlan" and rec["parent"] in managed:
            parent_mtu = mtu[rec["parent"]]
            if mtu[name] is not None and parent_mtu is not None and mtu[name] > parent_mtu:
                problems.iface(
                    name,
                    "mtu",
                    "%d is larger than the MTU of its parent %s (%d)" % (mtu[name], rec["parent"], parent_mtu),
                )
        if rec["bridge"] in managed:
            bridge_mtu = mtu[rec["bridge"]]
            if mtu[name] is not None and bridge_mtu is not None and mtu[name] < bridge_mtu:
                problems.iface(
                    name,
                    "mtu",
                    "%d is smaller than the MTU of its bridge %s (%d)" % (mtu[name], rec["bridge"], bridge_mtu),
                )

    # What the host reports must fit the data.
    renamed = {}
    if live is not None:
        for name in sorted(managed):
            rec = managed[name]
            link = live_links.get(name)
            if rec["type"] == "physical":
                found, how = live_names[name]
                if how == "ambiguous":
                    problems.iface(name, "mac", "more than one interface of the host has %s" % rec["mac"])
                elif found is None and how == "mac":
                    problems.iface(
                        name,
                        "mac",
                        "no interface of the host has the %s MAC %s" % (_match_kind(rec, match_mac), rec["mac"]),
                    )
                elif found is None:
                    problems.iface(name, "name", "the host has no interface %s" % name)
                elif found != name:
                    renamed[name] = found
            elif name in ovs and link is not None:
                kind = (link.get("linkinfo") or {}).get("info_kind")
                if kind not in OVS_BRIDGE_LINK_KINDS:
                    problems.iface(
                        name,
                        "type",
                        "the host already has %s as a %s device, not an Open vSwitch bridge" % (name, kind or "plain"),
                    )
            elif rec["type"] in NETDEV_KINDS and link is not None:
                kind = (link.get("linkinfo") or {}).get("info_kind")
                if kind != NETDEV_KINDS[rec["type"]]:
                    problems.iface(
                        name,
                        "type",
                        "the host already has %s as a %s device, not a %s"
                        % (name, kind or "plain", NETDEV_KINDS[rec["type"]]),
                    )
    foreign = ifupdown_names(ifupdown_config)
    for name in sorted(n for n in managed if n in foreign or renamed.get(n) in foreign):
        problems.iface(
            name,
            None,
            "also configured in /etc/network/interfaces (ifupdown); remove it there first, or the two fight over it",
        )

    # Static routes go to the managed interface whose subnet holds the gateway.
    planned_routes = _plan_routes(routes, managed, by_name, protected, problems)

    # allmende_networks must agree with the interfaces.
    if networks is None:
        networks = {}
    if not isinstance(networks, dict):
        problems.add("allmende_networks", None, "must be a mapping of network role to attachment")
        networks = {}
    for role in sorted(networks):
        net = networks[role]
        subject = "network %s" % role
        if not isinstance(net, dict):
            problems.add(subject, None, "not a mapping")
            continue
        ifname = net.get("interface")
        if ifname not in by_name:
            problems.add(subject, "interface", "%s is not an interface of this host" % ifname)
            continue
        if not by_name[ifname]["enabled"]:
            problems.add(subject, "interface", "%s is disabled" % ifname)
        cidr = net.get("cidr")
        if cidr:
            try:
                addr = str(_interface_address(cidr))
            except ValueError as exc:
                problems.add(subject, "cidr", "%r is not a CIDR address: %s" % (cidr, exc))
                continue
            if addr not in by_name[ifname]["addresses"]:
                problems.add(subject, "cidr", "%s is not an address of %s" % (addr, ifname))

    if managed and udev_active is False and not without_udev:
        problems.add(
            "systemd-udevd",
            None,
            "does not run here, so systemd-networkd would leave every link pending; on container "
            "hosts set network_networkd_without_udev: true",
        )
    dns = _plan_dns(dns_mode, dns_servers, dns_search, resolv_conf, problems)
    shared = sorted(machine_id_shared_with or [])
    if shared:
        for name in sorted(managed):
            rec = managed[name]
            if rec["type"] in ("lag", "bridge") and not rec["mac"] and name not in ovs:
                problems.iface(
                    name,
                    "mac",
                    "systemd-networkd derives it from /etc/machine-id, which %s share(s) with this host, so "
                    "they would get the same MAC; give every host its own machine-id (clear /etc/machine-id "
                    "and /var/lib/dbus/machine-id, run systemd-machine-id-setup) or set a MAC for %s in the "
                    "inventory" % (", ".join(shared), name),
                )

    records = []
    for name in sorted(managed):
        rec = managed[name]
        # Open vSwitch creates its bridges and attaches their ports: no .netdev, no Bridge= for them.
        kind = None if name in ovs else NETDEV_KINDS.get(rec["type"])
        match = _match_kind(rec, match_mac)
        master = rec["lag"] if rec["lag"] in managed else (rec["bridge"] if rec["bridge"] in managed else None)
        ovs_bridge = master if master in ovs else None
        if ovs_bridge:
            master = None
        records.append(
            {
                "name": name,
                "link": renamed.get(name, name),
                "type": rec["type"],
                "kind": kind,
                "ovs": name in ovs,
                "ovs_bridge": ovs_bridge,
                "mtu": mtu[name],
                "mac": rec["mac"],
                "match_mac": match,
                "master": master,
                "master_kind": "bond" if rec["lag"] in managed else ("bridge" if master else None),
                "lag_mode": rec["lag_mode"],
                "vid": rec["vid"],
                "parent": rec["parent"] if rec["type"] == "vlan" else None,
                "members": sorted(m for m in members.get(name, []) + ports.get(name, []) if m in managed),
                "vlans": sorted(v for v in vlans.get(name, []) if v in managed),
                "addresses": list(rec["addresses"]),
                "routes": [r for r in planned_routes if r["interface"] == name],
                "lowers": sorted(x for x in _lowers(rec, managed, members, ports) if x in managed),
                "network_file": prefix + name + ".network",
            }
        )
    for rec in records:
        rec["lower_links"] = sorted(renamed.get(x, x) for x in rec["lowers"])
    # OVS bridges the host does not have yet: Open vSwitch (the openvswitch role) creates them later,
    # and networkd configures them from their .network file when they appear.
    ovs_waiting = sorted(r["link"] for r in records if r["ovs"] and (live is None or r["link"] not in live_links))
    protected_links = set(live_names.get(n, (n, None))[0] or n for n in protected)
    if live_connection is not None:
        protected_links.add(live_connection)
    return {
        "host": host,
        "problems": problems.items,
        "managed": records,
        "skipped": skipped,
        "protected": sorted(protected),
        "protected_links": sorted(protected_links),
        "renamed": renamed,
        "ovs_bridges": sorted(r["name"] for r in records if r["ovs"]),
        "ovs_waiting": ovs_waiting,
        "connection_interface": live_connection or (sorted(connection_names)[0] if connection_names else None),
        "dns": dns,
        "options": {
            "prefix": prefix,
            "bond_options": bond_options,
            "bridge_options": bridge_options,
            "configure_without_carrier": bool(configure_without_carrier),
        },
    }


def _plan_dns(mode, servers, search, resolv_conf, problems):
    if mode not in DNS_MODES:
        problems.add("network_dns_mode", None, "%r is not one of %s" % (mode, ", ".join(DNS_MODES)))
        mode = "none"
    good_servers, good_search = [], []
    if servers is None:
        servers = []
    if not isinstance(servers, list):
        problems.add("allmende_dns_servers", None, "must be a list of IP addresses")
        servers = []
    for server in servers:
        try:
            good_servers.append(str(ipaddress.ip_address(str(server).strip())))
        except ValueError:
            problems.add("allmende_dns_servers", None, "%r is not an IP address" % (server,))
    if search is None:
        search = []
    if not isinstance(search, list):
        problems.add("network_dns_search", None, "must be a list of domains")
        search = []
    for domain in search:
        if isinstance(domain, str) and DOMAIN.match(domain):
            good_search.append(domain.rstrip("."))
        else:
            problems.add("network_dns_search", None, "%r is not a domain name" % (domain,))
    manage = bool(good_servers) and mode != "none"
    resolv_conf = resolv_conf or {}
    if manage and mode == "resolvconf":
        if len(good_servers) > 3:
            problems.add(
                "allmende_dns_servers",
                None,
                "/etc/resolv.conf takes at most 3 name servers, got %d; use network_dns_mode: resolved "
                "or fewer servers" % len(good_servers),
            )
        if resolv_conf.get("link"):
            problems.add(
                "/etc/resolv.conf",
                None,
                "is a symbolic link to %s (systemd-resolved or resolvconf owns it); set network_dns_mode: "
                "resolved or none" % resolv_conf["link"],
            )
    if manage and mode == "resolved" and resolv_conf.get("mount"):
        problems.add(
            "/etc/resolv.conf",
            None,
            "is mounted over (a container runtime provides it), so it cannot point to systemd-resolved; "
            "set network_dns_mode: resolvconf or none",
        )
    return {"mode": mode, "servers": good_servers, "search": good_search, "manage": manage}


def _plan_routes(routes, managed, by_name, protected, problems):
    out = []
    if routes is None:
        routes = []
    if not isinstance(routes, list):
        problems.add("allmende_routes", None, "must be a list of {to, via}")
        return out
    for index, route in enumerate(routes):
        if not isinstance(route, dict):
            problems.add("route #%d" % index, None, "not a mapping")
            continue
        subject = "route %s" % (route.get("to") if route.get("to") else "#%d" % index)
        to = route.get("to")
        bad = False
        destination = None
        if to in (None, ""):
            problems.add(subject, "to", "missing (a CIDR, or 'default')")
            bad = True
        elif str(to) != "default":
            try:
                destination = ipaddress.ip_network(str(to), strict=True)
            except ValueError as exc:
                problems.add(subject, "to", "%r is not a network: %s" % (to, exc))
                bad = True
        try:
            via = ipaddress.ip_address(str(route.get("via")))
        except ValueError:
            problems.add(subject, "via", "%r is not an IP address" % (route.get("via"),))
            continue
        if destination is not None and destination.version != via.version:
            problems.add(subject, "via", "%s and %s are different IP versions" % (to, via))
            bad = True
        metric = route.get("metric")
        if metric not in (None, ""):
            try:
                metric = _int(metric)
            except ValueError:
                problems.add(subject, "metric", "%r is not a number" % (metric,))
                bad = True
        else:
            metric = None
        try:
            onlink = _bool(route.get("onlink"), False)
        except ValueError:
            problems.add(subject, "onlink", "%r is not a boolean" % (route.get("onlink"),))
            onlink = False
        ifname = _opt_str(route.get("interface"))
        owners = []
        for name in sorted(by_name):
            if owners is None:
                break
            for addr in by_name[name]["addresses"]:
                iface = ipaddress.ip_interface(addr)
                if iface.ip == via:
                    problems.add(subject, "via", "%s is an address of this host (%s)" % (via, name))
                    bad = True
                    owners = None
                    break
                elif iface.version == via.version and via in iface.network:
                    owners.append(name)
        if owners is None:
            continue
        if ifname is not None:
            if ifname not in managed:
                why = "is not managed by the role" if ifname in by_name else "is not an interface of this host"
                problems.add(subject, "interface", "%s %s" % (ifname, why))
                continue
            target = ifname
        else:
            candidates = [n for n in owners if n in managed]
            if not candidates:
                left = [n for n in owners if n in protected]
                if left:
                    problems.add(
                        subject,
                        "via",
                        "%s is on %s, which the role leaves alone (management); such routes belong to "
                        "whatever configures that interface" % (via, left[0]),
                    )
                elif not onlink:
                    problems.add(subject, "via", "no managed interface has an address in a subnet holding %s" % via)
                else:
                    problems.add(subject, "interface", "an on-link route needs interface: NAME")
                continue
            target = candidates[0]
        if bad:
            continue
        out.append(
            {
                "to": "default" if destination is None else str(destination),
                "via": str(via),
                "metric": metric,
                "onlink": onlink,
                "interface": target,
                "family": "ipv%d" % via.version,
            }
        )
    return out


# ---------------------------------------------------------------------------------- units


def _value(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _render(sections):
    """[(section, [(key, value), ...]), ...] -> unit text."""
    chunks = []
    for section, pairs in sections:
        if not pairs and section not in ("Match", "NetDev"):
            continue
        lines = ["[%s]" % section] + ["%s=%s" % (k, _value(v)) for k, v in pairs]
        chunks.append("\n".join(lines) + "\n")
    return HEADER + "\n" + "\n".join(chunks)


def _netdev(rec, options):
    netdev = [("Name", rec["name"]), ("Kind", rec["kind"])]
    if rec["mac"] and rec["kind"] in ("bond", "bridge"):
        netdev.append(("MACAddress", rec["mac"]))
    sections = [("NetDev", netdev)]
    if rec["kind"] == "bond":
        pairs = [("Mode", rec["lag_mode"])]
        for key in sorted(options["bond_options"]):
            modes = BOND_MODE_KEYS.get(key)
            if key == "Mode" or (modes and rec["lag_mode"] not in modes):
                continue
            pairs.append((key, options["bond_options"][key]))
        sections.append(("Bond", pairs))
    elif rec["kind"] == "vlan":
        sections.append(("VLAN", [("Id", rec["vid"])]))
    elif rec["kind"] == "bridge":
        sections.append(("Bridge", [(k, options["bridge_options"][k]) for k in sorted(options["bridge_options"])]))
    return _render(sections)


def _network(rec, options):
    # By MAC without the name, so the NIC is found whatever the host calls it; Type=ether keeps
    # bonds, bridges and VLANs that carry the same MAC from matching.
    if rec["match_mac"] == "permanent":
        match = [("Type", "ether"), ("PermanentMACAddress", rec["mac"])]
    elif rec["match_mac"] == "current":
        match = [("Type", "ether"), ("MACAddress", rec["mac"])]
    else:
        match = [("Name", rec["name"])]
    link = []
    if rec["mtu"] is not None:
        link.append(("MTUBytes", rec["mtu"]))
    if not rec["addresses"]:
        link.append(("RequiredForOnline", False))
    network = []
    if rec["master_kind"] == "bond":
        network.append(("Bond", rec["master"]))
    elif rec["master_kind"] == "bridge":
        network.append(("Bridge", rec["master"]))
    for vlan in rec["vlans"]:
        network.append(("VLAN", vlan))
    for addr in rec["addresses"]:
        network.append(("Address", addr))
    has_v6 = any(ipaddress.ip_interface(a).version == 6 for a in rec["addresses"])
    network.append(("LinkLocalAddressing", "ipv6" if has_v6 else "no"))
    network.append(("IPv6AcceptRA", False))
    network.append(("DHCP", False))
    if options["configure_without_carrier"]:
        network.append(("ConfigureWithoutCarrier", True))
    sections = [("Match", match), ("Link", link), ("Network", network)]
    for route in rec["routes"]:
        pairs = []
        if route["to"] != "default":
            pairs.append(("Destination", route["to"]))
        pairs.append(("Gateway", route["via"]))
        if route["metric"] is not None:
            pairs.append(("Metric", route["metric"]))
        if route["onlink"]:
            pairs.append(("GatewayOnLink", True))
        sections.append(("Route", pairs))
    return _render(sections)


def units(the_plan):
    """{file name: content} for a plan without problems, ordered by file name."""
    if the_plan.get("problems"):
        raise PlanError(the_plan["problems"])
    options = the_plan["options"]
    files = {}
    for rec in the_plan["managed"]:
        base = options["prefix"] + rec["name"]
        if rec["kind"]:
            files[base + ".netdev"] = _netdev(rec, options)
        files[base + ".network"] = _network(rec, options)
    return dict((k, files[k]) for k in sorted(files))


def parse_unit(text):
    """Unit text -> [(section, key, value), ...] in file order (comments and blanks dropped)."""
    out = []
    section = None
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        if "=" in line and section:
            key, value = line.split("=", 1)
            out.append((section, key.strip(), value.strip()))
    return out


def unit_name(text, section, key="Name"):
    """The first value of section/key in a unit text, e.g. [Match] Name= or [NetDev] Name=."""
    for sec, k, value in parse_unit(text):
        if sec == section and k == key:
            return value.split()[0] if value.split() else None
    return None


# ---------------------------------------------------------------------------------- drift


def _link_drift(rec, links, states, add):
    name = rec["name"]
    live_name = rec.get("link") or name
    link = links.get(live_name)
    if live_name != name:
        name = "%s (%s on the host)" % (name, live_name)
    if link is None:
        if rec.get("ovs"):
            return  # Open vSwitch creates it; until then there is nothing of it to compare
        add(name, "missing on the host")
        return
    setup = states.get(live_name)
    if setup is not None and setup != "configured":
        hint = ""
        if setup == "unmanaged" and rec["match_mac"]:
            hint = " (no .network file matches it: is %s its %s MAC?)" % (rec["mac"], rec["match_mac"])
        add(name, "systemd-networkd state is %s, expected configured%s" % (setup, hint))
    flags = link.get("flags") or []
    if "UP" not in flags:
        add(name, "is down")
    info = link.get("linkinfo") or {}
    if rec["kind"] and info.get("info_kind") != rec["kind"]:
        add(name, "is a %s device, expected %s" % (info.get("info_kind") or "plain", rec["kind"]))
    data = info.get("info_data") or {}
    if rec["kind"] == "vlan":
        if data.get("id") != rec["vid"]:
            add(name, "VLAN id is %s, expected %s" % (data.get("id"), rec["vid"]))
        parent = (rec.get("lower_links") or [rec["parent"]])[0]
        if link.get("link") != parent:
            add(name, "VLAN parent is %s, expected %s" % (link.get("link"), parent))
    if rec["kind"] == "bond" and data.get("mode") != rec["lag_mode"]:
        add(name, "bond mode is %s, expected %s" % (data.get("mode"), rec["lag_mode"]))
    if rec["mtu"] is not None and link.get("mtu") != rec["mtu"]:
        add(name, "MTU is %s, expected %s" % (link.get("mtu"), rec["mtu"]))
    if rec.get("ovs_bridge"):
        # An OVS port: the kernel datapath makes ovs-system its master, the userspace one none.
        if link.get("master") not in (None, "ovs-system"):
            add(
                name,
                "master is %s, expected none (a port of the Open vSwitch bridge %s)"
                % (link["master"], rec["ovs_bridge"]),
            )
    elif link.get("master") != rec["master"]:
        add(name, "master is %s, expected %s" % (link.get("master") or "none", rec["master"] or "none"))
    have = set()
    for info_addr in link.get("addr_info") or []:
        if info_addr.get("scope") == "global" and info_addr.get("local"):
            have.add(str(ipaddress.ip_interface("%s/%s" % (info_addr["local"], info_addr.get("prefixlen")))))
    want = set(str(ipaddress.ip_interface(a)) for a in rec["addresses"])
    for addr in sorted(want - have):
        add(name, "address %s is missing" % addr)
    for addr in sorted(have - want):
        add(name, "has address %s, which the inventory does not list" % addr)
    for info_addr in link.get("addr_info") or []:
        if info_addr.get("dadfailed"):
            add(name, "address %s failed duplicate address detection" % info_addr.get("local"))


def drift(the_plan, state, names_only=False):
    """Where the host differs from the plan: a list of readable findings (empty: none).

    ``state`` is what the networkd_state module returns: ``links`` (ip -j -d addr show),
    ``routes`` (ip -j route show, IPv4 and IPv6), ``networkd_active`` and ``networkd_states``.
    With ``names_only``, the sorted names of the managed links that differ.
    """
    host = the_plan.get("host") or ""
    found = []
    names = set()

    def add(name, message):
        found.append("%s%s: %s" % (host + ": " if host else "", name, message))

    state = state or {}
    links = _live_index(state.get("links"))
    states = state.get("networkd_states") or {}
    if the_plan.get("managed") and state.get("networkd_active") is False:
        add("systemd-networkd", "is not running")
    for rec in the_plan.get("managed", []):
        before = len(found)
        _link_drift(rec, links, states, add)
        if len(found) > before:
            names.add(rec.get("link") or rec["name"])
    present = set()
    for route in state.get("routes") or []:
        if isinstance(route, dict) and route.get("gateway"):
            dst = route.get("dst") or "default"
            if dst != "default":
                dst = str(ipaddress.ip_network(dst, strict=False))
            present.add((dst, route.get("gateway"), route.get("dev")))
    for rec in the_plan.get("managed", []):
        live_name = rec.get("link") or rec["name"]
        if live_name not in links:
            continue
        for route in rec["routes"]:
            if (route["to"], route["via"], live_name) not in present:
                add(rec["name"], "route to %s via %s is missing" % (route["to"], route["via"]))
                names.add(live_name)
    if names_only:
        return sorted(names & set(links))
    return found
