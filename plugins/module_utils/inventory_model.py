# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""From NetBox objects to Allmende's inventory model (docs/inventory-model.md), and its validation.

Pure functions on plain dicts, shared by the allmende.cloud.netbox inventory plugin and the
`allmende inventory check` command. Input objects are NetBox REST representations, reduced to the
fields the plugin requests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import ipaddress
import re

SHARED_ROLES = ("anycast", "vip", "vrrp", "hsrp", "carp")  # addresses meant to exist more than once
LAG_MODES = ("802.3ad", "active-backup", "balance-rr", "balance-xor", "broadcast", "balance-tlb", "balance-alb")


# Host variables with these problems (per host) and with the problems tied to no host (group all).
PROBLEMS_VAR = "allmende_inventory_problems"
GLOBAL_PROBLEMS_VAR = "allmende_inventory_global_problems"

# Keys NetBox data (config context, custom fields) may not set unless the plugin option
# allowed_context_keys names them: every Ansible connection/privilege variable, the variables the
# plugin computes itself, and the role variables that destroy data or take members out of a
# cluster (the role defaults of ceph_osd, ovn_central and every *_action, which selects
# restart/upgrade/remove-member).
PROTECTED_PREFIXES = ("ansible_",)
RESERVED_PREFIX = "allmende_inventory_"  # the validation's own variables (problems, checked, skip)
PROTECTED_SUFFIXES = ("_action",)
DESTRUCTIVE_KEYS = (
    "allmende_action",
    "ceph_common_upgrade",
    "ceph_osd_allow_loop_devices",
    "ceph_osd_wipe_foreign_devices",
    "ovn_central_remove_members",
)
COMPUTED_KEYS = (
    PROBLEMS_VAR,
    GLOBAL_PROBLEMS_VAR,
    "allmende_interfaces",
    "allmende_networks",
    "allmende_site",
    "allmende_rack",
    "allmende_device_role",
    "allmende_platform",
    "allmende_tags",
    "allmende_custom_fields",
    "allmende_netbox_id",
)
REQUIRED_GROUPS = ("control",)


def protected_key(key, allowed=(), top_level=True):
    """True if NetBox data may not set this variable (see PROTECTED_PREFIXES, DESTRUCTIVE_KEYS).

    allowed: fnmatch patterns of keys the operator lets through; the plugin's computed variables
    are never let through at the top level (top_level: the key becomes a host variable itself)."""
    name = str(key)
    folded = name.lower()
    if top_level and (folded in COMPUTED_KEYS or folded.startswith(RESERVED_PREFIX)):
        return True
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in allowed or ()):
        return False
    return folded.startswith(PROTECTED_PREFIXES) or folded.endswith(PROTECTED_SUFFIXES) or folded in DESTRUCTIVE_KEYS


def _slug(value):
    if isinstance(value, dict):
        return value.get("slug") or value.get("name")
    return value


def _name(value):
    if isinstance(value, dict):
        return value.get("name") or value.get("display")
    return value


def _id(value):
    if isinstance(value, dict):
        return value.get("id")
    return value


def _choice(value):
    if isinstance(value, dict):
        return value.get("value")
    return value


def _mac(iface):
    mac = iface.get("primary_mac_address")
    mac = mac.get("mac_address") if isinstance(mac, dict) else iface.get("mac_address")
    return mac.lower() if mac else None


def safe_group(name):
    return re.sub(r"[^A-Za-z0-9_]", "_", str(name))


def interface_type(iface):
    """physical, lag, vlan, bridge or virtual, as the network role understands it."""
    kind = _choice(iface.get("type"))
    if kind == "lag":
        return "lag"
    if kind == "bridge":
        return "bridge"
    if kind == "virtual":
        if iface.get("parent") or iface.get("untagged_vlan") or "." in (iface.get("name") or ""):
            return "vlan"
        return "virtual"
    return "physical"


def vlan_id(iface):
    vlan = iface.get("untagged_vlan")
    if isinstance(vlan, dict) and vlan.get("vid"):
        return vlan["vid"]
    name = iface.get("name") or ""
    if "." in name and name.rsplit(".", 1)[1].isdigit():
        return int(name.rsplit(".", 1)[1])
    return None


def interface_problems(interfaces, label):
    """[(object, field, message)] for one host's allmende_interfaces (any inventory source)."""
    found = []
    interfaces = [i for i in interfaces or [] if isinstance(i, dict)]
    by_name = dict((i.get("name"), i) for i in interfaces)
    for iface in interfaces:
        where = "%s interface %s" % (label, iface.get("name"))
        if iface.get("type") == "vlan":
            if not iface.get("parent"):
                found.append((where, "parent", "VLAN interface without a parent interface"))
            if not iface.get("vid"):
                found.append((where, "untagged_vlan", "VLAN interface without a VLAN id"))
    for lag in [i for i in interfaces if i.get("type") == "lag"]:
        members = [i for i in interfaces if i.get("lag") == lag.get("name")]
        mtus = sorted(set(m.get("mtu") for m in members if m.get("mtu")))
        where = "%s interface %s" % (label, lag.get("name"))
        if len(mtus) > 1:
            detail = ", ".join("%s=%s" % (m.get("name"), m.get("mtu")) for m in members)
            found.append((where, "mtu", "LAG members differ in MTU: " + detail))
        if not members:
            found.append((where, "members", "LAG without member interfaces"))
    for iface in interfaces:
        for ref in ("lag", "parent", "bridge"):
            target = iface.get(ref)
            if target and target not in by_name:
                found.append(("%s interface %s" % (label, iface.get("name")), ref,
                              "refers to %s, which is not on this device" % target))
    return found


def inventory_problems(hostvars, groups, global_problems=()):
    """Every problem of a whole inventory, for `allmende inventory check` and the validation play.

    hostvars: {host: its variables (at least ansible_host, allmende_inventory_problems and
    allmende_interfaces where set)}; groups: {group: host names}; global_problems: the problems
    tied to no host (group all's allmende_inventory_global_problems). Problems the
    allmende.cloud.netbox plugin found come first, host by host, then the checks every inventory
    gets: interfaces of hosts from other sources, two hosts on one address, no hosts, an empty
    required group."""
    found = list(global_problems or [])
    hosts = sorted(hostvars)
    for host in hosts:
        found.extend(str(p) for p in hostvars[host].get(PROBLEMS_VAR) or [])
    for host in hosts:
        variables = hostvars[host]
        if PROBLEMS_VAR in variables:  # built and checked by the NetBox plugin already
            continue
        for where, field, message in interface_problems(variables.get("allmende_interfaces"), "host %s" % host):
            found.append("%s: %s: %s" % (where, field, message))
    if not hosts:
        found.append("inventory: hosts: none (check the inventory source and its filters)")
    addresses = {}
    for host in hosts:
        address = hostvars[host].get("ansible_host")
        if address:
            addresses.setdefault(str(address), []).append(host)
    for address, owners in sorted(addresses.items()):
        if len(owners) > 1:
            found.append("hosts %s: ansible_host: all use %s" % (", ".join(owners), address))
    for group in REQUIRED_GROUPS:
        if hosts and not groups.get(group):
            found.append("inventory: group %s: no hosts (map a device role to it)" % group)
    return found


class Model(object):
    """Hosts, groups and problems built from NetBox objects."""

    def __init__(self, devices, interfaces, addresses, prefixes, role_groups=None, group_by=None,
                 required_networks=None, flatten_config_context=True, allowed_context_keys=None):
        self.devices = devices
        self.interfaces = interfaces
        self.addresses = addresses
        self.prefixes = prefixes
        self.role_groups = role_groups or {}
        self.group_by = group_by if group_by is not None else ["site", "rack", "platform", "tags"]
        self.required_networks = required_networks or {}
        self.flatten = flatten_config_context
        self.allowed = list(allowed_context_keys or [])
        self.host_problems = {}  # host name -> problems of that host
        self.global_problems = []  # problems tied to no host of the inventory
        self._host = None  # the host whose data is being built
        self.hosts = {}  # name -> {"vars": {...}, "groups": [...]}
        self._networks = []
        for prefix in prefixes:
            try:
                network = ipaddress.ip_network(prefix["prefix"], strict=False)
            except (KeyError, ValueError):
                continue
            self._networks.append((network, prefix))
        # most specific prefix first
        self._networks.sort(key=lambda item: -item[0].prefixlen)

    @property
    def problems(self):
        """Every problem: those tied to no host first, then host by host."""
        found = list(self.global_problems)
        for name in sorted(self.host_problems):
            found.extend(self.host_problems[name])
        return found

    def problem(self, obj, field, message, host=None):
        """Record a problem; it belongs to `host`, else to the host being built, else to none."""
        text = "%s: %s: %s" % (obj, field, message)
        host = host or self._host
        if host:
            self.host_problems.setdefault(host, []).append(text)
        else:
            self.global_problems.append(text)

    def build(self):
        by_device = {}
        for iface in self.interfaces:
            vm = iface.get("virtual_machine")
            owner = ("vm", _id(vm)) if vm else _id(iface.get("device"))
            by_device.setdefault(owner, []).append(iface)
        addrs_by_iface = {}
        for address in self.addresses:
            key = (address.get("assigned_object_type"), address.get("assigned_object_id"))
            addrs_by_iface.setdefault(key, []).append(address)
        self._iface_names = dict(
            (("virtualization.vminterface" if i.get("virtual_machine") else "dcim.interface", i.get("id")),
             (_name(i.get("virtual_machine") or i.get("device")), i.get("name")))
            for i in self.interfaces)
        self._owned = set()
        for device in self.devices:
            kind = "virtualization.vminterface" if device.get("_vm") else "dcim.interface"
            owner = ("vm", device.get("id")) if device.get("_vm") else device.get("id")
            self._owned.update((kind, i.get("id")) for i in by_device.get(owner, []))
        duplicates = self._check_duplicate_addresses()

        seen_names = {}
        for device in self.devices:
            name = device.get("name")
            kind = "virtualization.vminterface" if device.get("_vm") else "dcim.interface"
            label = "%s %s (site %s)" % ("vm" if device.get("_vm") else "device", name,
                                         _slug(device.get("site")) or "-")
            if not name:
                self.problem("device id %s" % device.get("id"), "name", "missing: cannot be an inventory host")
                continue
            if name in seen_names:
                self.problem(label, "name", "duplicate host name (also %s)" % seen_names[name], host=name)
                continue
            seen_names[name] = label
            owner = ("vm", device.get("id")) if device.get("_vm") else device.get("id")
            ifaces = by_device.get(owner, [])
            self._host = name
            try:
                self.hosts[name] = {
                    "vars": self._hostvars(device, label, ifaces, addrs_by_iface, kind),
                    "groups": self._groups(device, label),
                }
                self._check_required_networks(name, label)
            finally:
                self._host = None
        # a duplicate address belongs to the first of its hosts (by name) in this inventory
        for owners, text in duplicates:
            hosts = sorted(o for o in owners if o in self.hosts)
            host = hosts[0] if hosts else None
            (self.host_problems.setdefault(host, []) if host else self.global_problems).append(text)
        for name, host in self.hosts.items():
            host["vars"][PROBLEMS_VAR] = self.host_problems.get(name, [])
        return self

    # -- host variables ----------------------------------------------------------------------

    def _hostvars(self, device, label, ifaces, addrs_by_iface, kind):
        hostvars = {}
        primary = device.get("primary_ip4") or device.get("primary_ip")
        if primary and primary.get("address"):
            hostvars["ansible_host"] = primary["address"].split("/")[0]
        else:
            self.problem(label, "primary_ip4", "missing: the host has no address to reach it at")
        id_to_name = dict((i.get("id"), i.get("name")) for i in ifaces)
        interfaces, networks = [], {}
        for iface in sorted(ifaces, key=lambda i: i.get("name") or ""):
            item = self._interface(iface, id_to_name, label)
            for address in addrs_by_iface.get((kind, iface.get("id")), []):
                cidr = address.get("address")
                item["addresses"].append(cidr)
                self._attach_network(networks, cidr, item["name"], label)
            interfaces.append(item)
        self._check_interfaces(interfaces, label)
        hostvars.update({
            "allmende_interfaces": interfaces,
            "allmende_networks": networks,
            "allmende_site": _slug(device.get("site")),
            "allmende_rack": _name(device.get("rack")),
            "allmende_device_role": _slug(device.get("role") or device.get("device_role")),
            "allmende_platform": _slug(device.get("platform")),
            "allmende_tags": sorted(_slug(t) for t in device.get("tags") or []),
            "allmende_custom_fields": self._safe(device.get("custom_fields") or {}, label, "custom_fields", False),
            "allmende_netbox_id": device.get("id"),
        })
        context = device.get("config_context")
        if context is None:
            context = device.get("local_context_data") or {}
        if not isinstance(context, dict):
            context = {}
        context = self._safe(context, label, "config_context", self.flatten)
        if self.flatten:
            for key, value in (context or {}).items():
                hostvars.setdefault(key, value)
        else:
            hostvars["config_context"] = context or {}
        return hostvars

    def _safe(self, data, label, field, top_level):
        """data without the keys NetBox may not set; each dropped key is a problem (never its value)."""
        dropped = sorted(str(k) for k in data if protected_key(k, self.allowed, top_level))
        for key in dropped:
            self.problem(label, field, "key %s may not come from NetBox: dropped (plugin option "
                                       "allowed_context_keys allows it)" % key)
        if not dropped:
            return data
        return dict((k, v) for k, v in data.items() if str(k) not in dropped)

    def _interface(self, iface, id_to_name, label):
        kind = interface_type(iface)
        item = {
            "name": iface.get("name"),
            "type": kind,
            "enabled": iface.get("enabled", True),
            "mtu": iface.get("mtu"),
            "mac": _mac(iface),
            "mgmt_only": bool(iface.get("mgmt_only")),
            "lag": id_to_name.get(_id(iface.get("lag"))) if iface.get("lag") else None,
            "parent": id_to_name.get(_id(iface.get("parent"))) if iface.get("parent") else None,
            "bridge": id_to_name.get(_id(iface.get("bridge"))) if iface.get("bridge") else None,
            "vid": vlan_id(iface) if kind == "vlan" else None,
            "addresses": [],
            "description": iface.get("description") or "",
        }
        if kind == "lag":
            mode = (iface.get("custom_fields") or {}).get("lag_mode") or "802.3ad"
            item["lag_mode"] = mode
            if mode not in LAG_MODES:
                self.problem("%s interface %s" % (label, item["name"]), "lag_mode",
                             "unknown bonding mode %r (one of %s)" % (mode, ", ".join(LAG_MODES)))
        return item

    def _attach_network(self, networks, cidr, iface_name, label):
        try:
            address = ipaddress.ip_interface(cidr)
        except ValueError:
            self.problem("%s interface %s" % (label, iface_name), "address", "not an IP address: %r" % cidr)
            return
        for network, prefix in self._networks:
            if address.ip in network:
                role = _slug(prefix.get("role"))
                if role and role not in networks:
                    vlan = prefix.get("vlan")
                    networks[role] = {
                        "interface": iface_name,
                        "address": str(address.ip),
                        "cidr": str(address),
                        "prefix": str(network),
                        "vlan": vlan.get("vid") if isinstance(vlan, dict) else None,
                    }
                return
        self.problem("%s interface %s" % (label, iface_name), "address", "%s is not inside any prefix" % cidr)

    # -- groups -------------------------------------------------------------------------

    def _groups(self, device, label):
        groups = []
        role = _slug(device.get("role") or device.get("device_role"))
        mapped = self.role_groups.get(role)
        if mapped is None:
            self.problem(label, "role", "role %r has no group mapping (plugin option role_groups)" % role)
        else:
            groups.extend([mapped] if isinstance(mapped, str) else list(mapped))
        for key in self.group_by:
            if key == "tags":
                groups.extend("tag_" + safe_group(_slug(t)) for t in device.get("tags") or [])
            elif key == "rack":
                if device.get("rack"):
                    groups.append("rack_" + safe_group(_name(device["rack"])))
            elif key in ("site", "platform", "role", "status"):
                value = device.get(key) if key != "status" else _choice(device.get("status"))
                value = _slug(value) if key != "status" else value
                if value:
                    groups.append("%s_%s" % (key, safe_group(value)))
        return groups

    # -- validation -----------------------------------------------------------------------

    def _check_duplicate_addresses(self):
        """[(host names involved, problem)] for addresses assigned more than once."""
        found = []
        owners = {}
        for address in self.addresses:
            cidr = address.get("address") or ""
            ip = cidr.split("/")[0]
            owners.setdefault(ip, []).append(address)
        for ip, entries in sorted(owners.items()):
            # only duplicates that involve a host of this inventory
            ours = [e for e in entries if (e.get("assigned_object_type"), e.get("assigned_object_id")) in self._owned]
            shared = all(_choice(e.get("role")) in SHARED_ROLES for e in entries)
            if ours and len(entries) > 1 and not shared:
                where = ", ".join(sorted(self._where(e) for e in entries))
                owners = [self._iface_names.get((e.get("assigned_object_type"), e.get("assigned_object_id")),
                                                (None, None))[0] for e in ours]
                found.append((owners, "ip address %s: address: assigned %d times (%s)" % (ip, len(entries), where)))
        return found

    def _where(self, address):
        key = (address.get("assigned_object_type"), address.get("assigned_object_id"))
        owner, iface = self._iface_names.get(key, (None, None))
        if owner and iface:
            return "%s/%s" % (owner, iface)
        return "interface id %s" % address.get("assigned_object_id")

    def _check_interfaces(self, interfaces, label):
        for where, field, message in interface_problems(interfaces, label):
            self.problem(where, field, message)

    def _check_required_networks(self, name, label):
        host = self.hosts[name]
        networks = host["vars"].get("allmende_networks") or {}
        for group in host["groups"]:
            for role in self.required_networks.get(group, []):
                if role not in networks:
                    self.problem(label, "interfaces",
                                 "group %s needs an address in a '%s' prefix; none found" % (group, role))
