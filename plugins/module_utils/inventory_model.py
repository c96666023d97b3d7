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

import ipaddress
import re

SHARED_ROLES = ("anycast", "vip", "vrrp", "hsrp", "carp")  # addresses meant to exist more than once
LAG_MODES = ("802.3ad", "active-backup", "balance-rr", "balance-xor", "broadcast", "balance-tlb", "balance-alb")


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


class Model(object):
    """Hosts, groups and problems built from NetBox objects."""

    def __init__(self, devices, interfaces, addresses, prefixes, role_groups=None, group_by=None,
                 required_networks=None, flatten_config_context=True):
        self.devices = devices
        self.interfaces = interfaces
        self.addresses = addresses
        self.prefixes = prefixes
        self.role_groups = role_groups or {}
        self.group_by = group_by if group_by is not None else ["site", "rack", "platform", "tags"]
        self.required_networks = required_networks or {}
        self.flatten = flatten_config_context
        self.problems = []
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

    def problem(self, obj, field, message):
        self.problems.append("%s: %s: %s" % (obj, field, message))

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
        self._check_duplicate_addresses()

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
                self.problem(label, "name", "duplicate host name (also %s)" % seen_names[name])
                continue
            seen_names[name] = label
            owner = ("vm", device.get("id")) if device.get("_vm") else device.get("id")
            ifaces = by_device.get(owner, [])
            self.hosts[name] = {
                "vars": self._hostvars(device, label, ifaces, addrs_by_iface, kind),
                "groups": self._groups(device, label),
            }
            self._check_required_networks(name, label)
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
            "allmende_custom_fields": device.get("custom_fields") or {},
            "allmende_netbox_id": device.get("id"),
        })
        context = device.get("config_context")
        if context is None:
            context = device.get("local_context_data") or {}
        if self.flatten:
            for key, value in (context or {}).items():
                hostvars.setdefault(key, value)
        else:
            hostvars["config_context"] = context or {}
        return hostvars

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
                self.problem("ip address %s" % ip, "address", "assigned %d times (%s)" % (len(entries), where))

    def _where(self, address):
        key = (address.get("assigned_object_type"), address.get("assigned_object_id"))
        owner, iface = self._iface_names.get(key, (None, None))
        if owner and iface:
            return "%s/%s" % (owner, iface)
        return "interface id %s" % address.get("assigned_object_id")

    def _check_interfaces(self, interfaces, label):
        by_name = dict((i["name"], i) for i in interfaces)
        for iface in interfaces:
            where = "%s interface %s" % (label, iface["name"])
            if iface["type"] == "vlan":
                if not iface["parent"]:
                    self.problem(where, "parent", "VLAN interface without a parent interface")
                if not iface["vid"]:
                    self.problem(where, "untagged_vlan", "VLAN interface without a VLAN id")
        for lag in [i for i in interfaces if i["type"] == "lag"]:
            members = [i for i in interfaces if i["lag"] == lag["name"]]
            mtus = sorted(set(m["mtu"] for m in members if m["mtu"]))
            if len(mtus) > 1:
                detail = ", ".join("%s=%s" % (m["name"], m["mtu"]) for m in members)
                self.problem("%s interface %s" % (label, lag["name"]), "mtu", "LAG members differ in MTU: " + detail)
            if not members:
                self.problem("%s interface %s" % (label, lag["name"]), "members", "LAG without member interfaces")
        for iface in interfaces:
            for ref in ("lag", "parent", "bridge"):
                target = iface.get(ref)
                if target and target not in by_name:
                    self.problem("%s interface %s" % (label, iface["name"]), ref,
                                 "refers to %s, which is not on this device" % target)

    def _check_required_networks(self, name, label):
        host = self.hosts[name]
        networks = host["vars"].get("allmende_networks") or {}
        for group in host["groups"]:
            for role in self.required_networks.get(group, []):
                if role not in networks:
                    self.problem(label, "interfaces",
                                 "group %s needs an address in a '%s' prefix; none found" % (group, role))
