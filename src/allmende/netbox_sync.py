"""`allmende netbox sync SITE.yml`: make NetBox hold what a declarative site file describes.

Objects are matched by natural keys (slugs, site + name, device + interface name, addresses),
created when missing and updated field by field when different; objects the file does not mention
are left alone. Everything is planned first, so a file with problems (unknown keys, missing fields,
references to objects that exist nowhere) is refused as a whole before NetBox is touched.
Writes go through NetBox's bulk endpoints, a few requests per object type.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from allmende.netbox_client import NetboxClient

Ref = int | tuple[str, ...]  # a NetBox id, or a placeholder for an object planned for creation


class SiteFileError(ValueError):
    """Every problem of a site file, one per line, each naming the object and the field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass
class Change:
    action: str  # create | update
    kind: str
    label: str
    diff: dict[str, tuple[Any, Any]]

    def render(self) -> str:
        sign = "+" if self.action == "create" else "~"
        parts = []
        for key, (old, new) in self.diff.items():
            parts.append(f"{key}={_show(new)}" if self.action == "create" else f"{key}: {_show(old)} -> {_show(new)}")
        return f"{sign} {self.kind} {self.label}" + (f" ({', '.join(parts)})" if parts else "")


def _show(value: Any) -> str:
    if isinstance(value, tuple) and value and value[0] == "new":
        return f"<new {value[1]} {'/'.join(map(str, value[2:]))}>"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


# ---------------------------------------------------------------- the site file


SECTIONS: dict[str, dict[str, set[str]]] = {
    # section: {"required": {...}, "optional": {...}}
    "tags": {"required": {"name"}, "optional": {"slug", "color", "description"}},
    "manufacturers": {"required": {"name"}, "optional": {"slug", "description"}},
    "device_types": {"required": {"manufacturer", "model"}, "optional": {"slug", "u_height", "description"}},
    "device_roles": {"required": {"name"}, "optional": {"slug", "color", "description"}},
    "platforms": {"required": {"name"}, "optional": {"slug", "description"}},
    "ipam_roles": {"required": {"name"}, "optional": {"slug", "weight", "description"}},
    "sites": {"required": {"name"}, "optional": {"slug", "status", "description", "tags"}},
    "racks": {"required": {"name", "site"}, "optional": {"status", "u_height", "description", "tags"}},
    "vlans": {"required": {"vid", "name", "site"}, "optional": {"status", "description", "tags"}},
    "prefixes": {"required": {"prefix"}, "optional": {"site", "role", "vlan", "status", "description", "tags"}},
    "devices": {
        "required": {"name", "site", "role", "device_type"},
        "optional": {"rack", "platform", "status", "serial", "tags", "local_context_data", "interfaces", "description"},
    },
    "config_contexts": {
        "required": {"name", "data"},
        "optional": {"weight", "description", "sites", "roles", "platforms", "tags", "is_active"},
    },
}
INTERFACE_KEYS = {
    "required": {"name", "type"},
    "optional": {
        "enabled",
        "mtu",
        "mac",
        "mgmt_only",
        "lag",
        "parent",
        "bridge",
        "vlan",
        "tagged_vlans",
        "description",
        "addresses",
    },
}
ADDRESS_KEYS = {"address", "primary", "status", "dns_name", "description"}


def load_site_file(path: Path) -> dict[str, list[dict[str, Any]]]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SiteFileError([f"{path}: cannot read: {exc}"]) from exc
    problems = check_site_data(data, str(path))
    if problems:
        raise SiteFileError(problems)
    return data


def check_site_data(data: Any, origin: str) -> list[str]:
    """Structural problems of a site file (references are checked against NetBox when planning)."""
    if not isinstance(data, dict):
        return [f"{origin}: the site file must be a mapping of sections"]
    problems = []
    for section in data:
        if section not in SECTIONS:
            problems.append(f"{origin}: unknown section {section!r} (known: {', '.join(SECTIONS)})")
    for section, keys in SECTIONS.items():
        items = data.get(section) or []
        if not isinstance(items, list):
            problems.append(f"{origin}: {section}: must be a list")
            continue
        seen: set[str] = set()
        for index, item in enumerate(items):
            label = f"{section}[{index}]"
            if not isinstance(item, dict):
                problems.append(f"{origin}: {label}: must be a mapping")
                continue
            name = item.get("name") or item.get("prefix") or item.get("model")
            label = f"{section} {name}" if name else label
            problems += _check_keys(origin, label, item, keys)
            ident = f"{item.get('site', '')}/{name}"
            if name and ident in seen:
                problems.append(f"{origin}: {label}: defined twice")
            seen.add(ident)
            if section == "prefixes" and "prefix" in item:
                problems += _check_network(origin, label, "prefix", item["prefix"])
            if section == "vlans" and not (isinstance(item.get("vid"), int) and 1 <= item["vid"] <= 4094):
                problems.append(f"{origin}: {label}: vid: must be an integer 1-4094, got {item.get('vid')!r}")
            if section == "devices":
                problems += _check_interfaces(origin, label, item.get("interfaces") or [])
    return problems


def _check_keys(origin: str, label: str, item: dict[str, Any], keys: dict[str, set[str]]) -> list[str]:
    problems = [f"{origin}: {label}: {k}: missing" for k in sorted(keys["required"] - item.keys())]
    unknown = sorted(item.keys() - keys["required"] - keys["optional"])
    problems += [f"{origin}: {label}: {k}: unknown field" for k in unknown]
    return problems


def _check_network(origin: str, label: str, key: str, value: Any) -> list[str]:
    try:
        if key == "prefix":
            ipaddress.ip_network(str(value), strict=True)
        else:
            ipaddress.ip_interface(str(value))
    except ValueError as exc:
        return [f"{origin}: {label}: {key}: {exc}"]
    return []


def _check_interfaces(origin: str, device: str, interfaces: list[Any]) -> list[str]:
    problems = []
    names = {i.get("name") for i in interfaces if isinstance(i, dict)}
    seen: set[str] = set()
    for index, iface in enumerate(interfaces):
        if not isinstance(iface, dict):
            problems.append(f"{origin}: {device}: interfaces[{index}]: must be a mapping")
            continue
        label = f"{device} interface {iface.get('name', index)}"
        problems += _check_keys(origin, label, iface, INTERFACE_KEYS)
        if iface.get("name") in seen:
            problems.append(f"{origin}: {label}: defined twice")
        seen.add(iface.get("name"))
        for ref in ("lag", "parent", "bridge"):
            if iface.get(ref) and iface[ref] not in names:
                problems.append(f"{origin}: {label}: {ref}: no interface {iface[ref]!r} on this device")
        if iface.get("mtu") is not None and not (isinstance(iface["mtu"], int) and 68 <= iface["mtu"] <= 65536):
            problems.append(f"{origin}: {label}: mtu: must be an integer 68-65536, got {iface['mtu']!r}")
        if iface.get("mac") and not re.fullmatch(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}", str(iface["mac"])):
            problems.append(f"{origin}: {label}: mac: not a MAC address: {iface['mac']!r}")
        for address in iface.get("addresses") or []:
            entry = address if isinstance(address, dict) else {"address": address}
            unknown = sorted(entry.keys() - ADDRESS_KEYS)
            problems += [f"{origin}: {label}: addresses: {k}: unknown field" for k in unknown]
            problems += _check_network(origin, label, "address", entry.get("address"))
    return problems


# ---------------------------------------------------------------- normalising NetBox values


def norm_existing(value: Any) -> Any:
    """A NetBox read value in the form we write: nested objects -> id, choices -> value."""
    if isinstance(value, dict):
        if "value" in value and "label" in value:
            return value["value"]
        if "id" in value:
            return value["id"]
        return value
    if isinstance(value, list):
        if value and isinstance(value[0], dict) and "slug" in value[0] and "color" in value[0]:
            return sorted(v["slug"] for v in value)  # tags
        return sorted(norm_existing(v) for v in value) if all(isinstance(v, dict) for v in value) else value
    return value


def same(old: Any, new: Any, key: str) -> bool:
    if key == "mac_address" and isinstance(old, str) and isinstance(new, str):
        return old.lower() == new.lower()
    if key == "color" and isinstance(old, str) and isinstance(new, str):
        return old.lower() == new.lower()
    if isinstance(new, list) and isinstance(old, list):
        return sorted(map(str, old)) == sorted(map(str, new))
    return old == new


# ---------------------------------------------------------------- planning and applying


@dataclass
class Kind:
    name: str
    endpoint: str
    key: Callable[[dict[str, Any]], tuple[Any, ...]]  # natural key of an existing NetBox object
    params: dict[str, Any] = field(default_factory=dict)


def _fk(obj: dict[str, Any], name: str) -> Any:
    value = obj.get(name)
    return value.get("id") if isinstance(value, dict) else value


KINDS = {
    "tags": Kind("tags", "extras/tags", lambda o: (o["slug"],)),
    "manufacturers": Kind("manufacturers", "dcim/manufacturers", lambda o: (o["slug"],)),
    "device_types": Kind("device_types", "dcim/device-types", lambda o: (o["slug"],)),
    "device_roles": Kind("device_roles", "dcim/device-roles", lambda o: (o["slug"],)),
    "platforms": Kind("platforms", "dcim/platforms", lambda o: (o["slug"],)),
    "ipam_roles": Kind("ipam_roles", "ipam/roles", lambda o: (o["slug"],)),
    "sites": Kind("sites", "dcim/sites", lambda o: (o["slug"],)),
    "racks": Kind("racks", "dcim/racks", lambda o: (_fk(o, "site"), o["name"])),
    "vlans": Kind("vlans", "ipam/vlans", lambda o: (_fk(o, "site"), o["vid"])),
    "prefixes": Kind("prefixes", "ipam/prefixes", lambda o: (o["prefix"],)),
    "devices": Kind("devices", "dcim/devices", lambda o: (_fk(o, "site"), o["name"])),
    "interfaces": Kind("interfaces", "dcim/interfaces", lambda o: (_fk(o, "device"), o["name"])),
    # An address may exist more than once (other VRFs, or data to be fixed): the interface is part of the key.
    "ip_addresses": Kind("ip_addresses", "ipam/ip-addresses", lambda o: (o["address"], o.get("assigned_object_id"))),
    "config_contexts": Kind("config_contexts", "extras/config-contexts", lambda o: (o["name"],)),
}
LOADED = [
    "tags",
    "manufacturers",
    "device_types",
    "device_roles",
    "platforms",
    "ipam_roles",
    "sites",
    "racks",
    "vlans",
    "prefixes",
    "devices",
    "interfaces",
    "ip_addresses",
    "config_contexts",
]
ORDER = [*LOADED[:-1], "primary_ips", "config_contexts"]


@dataclass
class Desired:
    key: tuple[Any, ...]
    label: str
    payload: dict[str, Any]
    wave: int = 0


class Syncer:
    def __init__(self, client: NetboxClient, data: dict[str, Any], origin: str = "site file") -> None:
        self.client = client
        self.data = data
        self.origin = origin
        self.index: dict[str, dict[tuple[Any, ...], Ref]] = {}
        self.existing: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        self.problems: list[str] = []
        self.changes: list[Change] = []

    # -- lookups -------------------------------------------------------------------------

    def load_existing(self) -> None:
        site_ids = None
        for kind_name in LOADED:
            kind = KINDS[kind_name]
            params: dict[str, Any] = {}
            if kind_name in ("devices", "interfaces", "racks", "vlans") and site_ids is not None:
                if not site_ids:
                    self.existing[kind_name] = {}
                    self.index[kind_name] = {}
                    continue
                params["site_id"] = site_ids
            if kind_name == "ip_addresses":
                objects = {kind.key(o): o for o in self._existing_addresses()}
            else:
                objects = {kind.key(o): o for o in self.client.list(kind.endpoint, **params)}
            self.existing[kind_name] = objects
            self.index[kind_name] = {k: o["id"] for k, o in objects.items()}
            if kind_name == "sites":
                wanted = {s.get("slug") or slugify(s["name"]) for s in self.data.get("sites") or []}
                wanted |= {d["site"] for d in self.data.get("devices") or [] if isinstance(d.get("site"), str)}
                site_ids = [o["id"] for k, o in objects.items() if k[0] in wanted]

    def _existing_addresses(self) -> list[dict[str, Any]]:
        """The addresses the file mentions (wherever they are assigned), or all for very large files."""
        wanted = sorted(
            {
                str(ipaddress.ip_interface(str(a["address"])))
                for d in self.data.get("devices") or []
                for i in d.get("interfaces") or []
                for a in self._addresses(i)
            }
        )
        if len(wanted) > 1000:
            return list(self.client.list("ipam/ip-addresses"))
        found = []
        for start in range(0, len(wanted), 100):
            found += self.client.list("ipam/ip-addresses", address=wanted[start : start + 100])
        return found

    def ref(self, kind: str, key: tuple[Any, ...], label: str, fieldname: str) -> Ref | None:
        found = self.index.get(kind, {}).get(key)
        if found is None:
            shown = "/".join(str(k) for k in key if not isinstance(k, int))
            self.problems.append(
                f"{self.origin}: {label}: {fieldname}: no {kind[:-1].replace('_', ' ')} {shown!r} "
                "in the file or in NetBox"
            )
        return found

    def slug_ref(self, kind: str, value: Any, label: str, fieldname: str) -> Ref | None:
        return self.ref(
            kind, (str(value) if str(value) == slugify(str(value)) else slugify(str(value)),), label, fieldname
        )

    # -- desired objects per kind ---------------------------------------------------------------

    def desired(self, kind: str) -> list[Desired]:
        build = getattr(self, f"_desired_{kind}", None)
        return build() if build else []

    def _simple(
        self,
        section: str,
        extra: Callable[[dict[str, Any], str], dict[str, Any]] | None = None,
        defaults: dict[str, Any] | None = None,
    ) -> list[Desired]:
        out = []
        for item in self.data.get(section) or []:
            slug = item.get("slug") or slugify(item["name"] if "name" in item else item["model"])
            label = slug
            payload = {**(defaults or {}), **{k: v for k, v in item.items() if k not in ("manufacturer", "tags")}}
            payload["slug"] = slug
            if extra:
                payload.update(extra(item, label))
            out.append(Desired((slug,), label, payload))
        return out

    def _desired_tags(self) -> list[Desired]:
        return self._simple("tags", defaults={"color": "9e9e9e"})

    def _desired_manufacturers(self) -> list[Desired]:
        return self._simple("manufacturers")

    def _desired_device_types(self) -> list[Desired]:
        return self._simple(
            "device_types",
            lambda i, lbl: {
                "manufacturer": self.slug_ref("manufacturers", i["manufacturer"], f"device type {lbl}", "manufacturer")
            },
        )

    def _desired_device_roles(self) -> list[Desired]:
        return self._simple("device_roles", defaults={"color": "9e9e9e"})

    def _desired_platforms(self) -> list[Desired]:
        return self._simple("platforms")

    def _desired_ipam_roles(self) -> list[Desired]:
        return self._simple("ipam_roles")

    def _tags(self, item: dict[str, Any], label: str) -> list[str]:
        tags = []
        for tag in item.get("tags") or []:
            if self.slug_ref("tags", tag, label, "tags") is not None:
                tags.append(slugify(str(tag)))
        return sorted(tags)

    def _desired_sites(self) -> list[Desired]:
        out = self._simple("sites", defaults={"status": "active"})
        for desired, item in zip(out, self.data.get("sites") or [], strict=True):
            if "tags" in item:
                desired.payload["tags"] = self._tags(item, f"site {desired.label}")
        return out

    def _site(self, item: dict[str, Any], label: str) -> Ref | None:
        return self.slug_ref("sites", item["site"], label, "site")

    def _desired_racks(self) -> list[Desired]:
        out = []
        for item in self.data.get("racks") or []:
            label = f"{item['site']}/{item['name']}"
            site = self._site(item, f"rack {label}")
            payload = {"status": "active", **{k: v for k, v in item.items() if k != "tags"}, "site": site}
            if "tags" in item:
                payload["tags"] = self._tags(item, f"rack {label}")
            out.append(Desired((site, item["name"]), label, payload))
        return out

    def _desired_vlans(self) -> list[Desired]:
        out = []
        for item in self.data.get("vlans") or []:
            label = f"{item['site']}/{item['vid']}"
            site = self._site(item, f"vlan {label}")
            payload = {"status": "active", **{k: v for k, v in item.items() if k != "tags"}, "site": site}
            if "tags" in item:
                payload["tags"] = self._tags(item, f"vlan {label}")
            out.append(Desired((site, item["vid"]), label, payload))
        return out

    def _vlan(self, site: Ref | None, value: Any, label: str, fieldname: str) -> Ref | None:
        if isinstance(value, int):
            return self.ref("vlans", (site, value), label, fieldname)
        for vlan in self.data.get("vlans") or []:
            if vlan["name"] == value:
                return self.ref("vlans", (site, vlan["vid"]), label, fieldname)
        for key, existing in self.existing.get("vlans", {}).items():
            if key[0] == site and existing.get("name") == value:
                return existing["id"]
        self.problems.append(f"{self.origin}: {label}: {fieldname}: no VLAN {value!r} at this site")
        return None

    def _desired_prefixes(self) -> list[Desired]:
        out = []
        for item in self.data.get("prefixes") or []:
            prefix = str(ipaddress.ip_network(str(item["prefix"])))
            label = f"prefix {prefix}"
            payload: dict[str, Any] = {"prefix": prefix, "status": item.get("status", "active")}
            site = None
            if "site" in item:
                site = self._site(item, label)
                payload.update({"scope_type": "dcim.site", "scope_id": site})
            if "role" in item:
                payload["role"] = self.slug_ref("ipam_roles", item["role"], label, "role")
            if "vlan" in item:
                payload["vlan"] = self._vlan(site, item["vlan"], label, "vlan")
            if "description" in item:
                payload["description"] = item["description"]
            if "tags" in item:
                payload["tags"] = self._tags(item, label)
            out.append(Desired((prefix,), prefix, payload))
        return out

    def _desired_devices(self) -> list[Desired]:
        out = []
        for item in self.data.get("devices") or []:
            label = f"{item['site']}/{item['name']}"
            what = f"device {label}"
            site = self._site(item, what)
            payload: dict[str, Any] = {
                "name": item["name"],
                "site": site,
                "status": item.get("status", "active"),
                "role": self.slug_ref("device_roles", item["role"], what, "role"),
                "device_type": self.slug_ref("device_types", item["device_type"], what, "device_type"),
            }
            if "rack" in item:
                payload["rack"] = self.ref("racks", (site, item["rack"]), what, "rack")
            if "platform" in item:
                payload["platform"] = self.slug_ref("platforms", item["platform"], what, "platform")
            for key in ("serial", "local_context_data", "description"):
                if key in item:
                    payload[key] = item[key]
            if "tags" in item:
                payload["tags"] = self._tags(item, what)
            out.append(Desired((site, item["name"]), label, payload))
        return out

    @staticmethod
    def _addresses(iface: dict[str, Any]) -> list[dict[str, Any]]:
        return [a if isinstance(a, dict) else {"address": a} for a in iface.get("addresses") or []]

    def _primary_address(self, device: dict[str, Any]) -> tuple[str, str] | None:
        """(address, interface name) of the address marked primary."""
        for iface in device.get("interfaces") or []:
            for address in self._addresses(iface):
                if address.get("primary"):
                    return str(ipaddress.ip_interface(str(address["address"]))), iface["name"]
        return None

    def _desired_interfaces(self) -> list[Desired]:
        out = []
        for device in self.data.get("devices") or []:
            site = self.index["sites"].get((slugify(str(device["site"])),))
            dev = self.index["devices"].get((site, device["name"]))
            by_name = {i["name"]: i for i in device.get("interfaces") or []}
            for iface in device.get("interfaces") or []:
                label = f"{device['site']}/{device['name']}/{iface['name']}"
                what = f"interface {label}"
                payload: dict[str, Any] = {"device": dev, "name": iface["name"], "type": iface["type"]}
                for key in ("enabled", "mtu", "mgmt_only", "description"):
                    if key in iface:
                        payload[key] = iface[key]
                if iface.get("mac"):
                    payload["mac_address"] = str(iface["mac"]).upper()
                for ref in ("lag", "parent", "bridge"):
                    if iface.get(ref):
                        key = (dev, iface[ref])
                        payload[ref] = self.index["interfaces"].get(key, ("new", "interfaces", *key))
                if "vlan" in iface:
                    payload["mode"] = "access"
                    payload["untagged_vlan"] = self._vlan(site, iface["vlan"], what, "vlan")
                if "tagged_vlans" in iface:
                    payload["mode"] = "tagged"
                    payload["tagged_vlans"] = [self._vlan(site, v, what, "tagged_vlans") for v in iface["tagged_vlans"]]
                out.append(Desired((dev, iface["name"]), label, payload, _depth(iface, by_name)))
        return out

    def _desired_ip_addresses(self) -> list[Desired]:
        out = []
        for device in self.data.get("devices") or []:
            site = self.index["sites"].get((slugify(str(device["site"])),))
            dev = self.index["devices"].get((site, device["name"]))
            for iface in device.get("interfaces") or []:
                target = self.index["interfaces"].get((dev, iface["name"]))
                for entry in self._addresses(iface):
                    address = str(ipaddress.ip_interface(str(entry["address"])))
                    payload = {
                        "address": address,
                        "status": entry.get("status", "active"),
                        "assigned_object_type": "dcim.interface",
                        "assigned_object_id": target,
                    }
                    for key in ("dns_name", "description"):
                        if key in entry:
                            payload[key] = entry[key]
                    out.append(Desired((address, target), f"{address} on {device['name']}/{iface['name']}", payload))
        return out

    def _desired_config_contexts(self) -> list[Desired]:
        out = []
        for item in self.data.get("config_contexts") or []:
            label = item["name"]
            what = f"config context {label}"
            payload: dict[str, Any] = {"name": item["name"], "data": item["data"], "weight": item.get("weight", 1000)}
            for key in ("description", "is_active"):
                if key in item:
                    payload[key] = item[key]
            for key, kind in (("sites", "sites"), ("roles", "device_roles"), ("platforms", "platforms")):
                if key in item:
                    payload[key] = sorted(
                        r
                        for r in (self.slug_ref(kind, v, what, key) for v in item[key])
                        if r is not None and not isinstance(r, tuple)
                    )
            if "tags" in item:
                payload["tags"] = self._tags(item, what)
            out.append(Desired((item["name"],), label, payload))
        return out

    def _desired_primary_ips(self) -> list[Desired]:
        """Devices' primary IPv4, set once the addresses exist."""
        out = []
        for item in self.data.get("devices") or []:
            primary = self._primary_address(item)
            if not primary:
                continue
            site = self.index["sites"].get((slugify(str(item["site"])),))
            key = (site, item["name"])
            iface = self.index["interfaces"].get((self.index["devices"].get(key), primary[1]))
            ip = self.index["ip_addresses"].get((primary[0], iface))
            out.append(Desired(key, f"{item['site']}/{item['name']}", {"primary_ip4": ip}))
        return out

    def _moved_address(self, desired: Desired) -> dict[str, Any] | None:
        """An address that exists exactly once, on an interface the file does not give it to: move it."""
        wanted = {d.key for d in self._claimed_addresses}
        matches = [o for k, o in self.existing["ip_addresses"].items() if k[0] == desired.key[0] and k not in wanted]
        if len(matches) == 1 and sum(1 for k in wanted if k[0] == desired.key[0]) == 1:
            return matches[0]
        return None

    @property
    def _claimed_addresses(self) -> list[Desired]:
        if not hasattr(self, "_claimed_cache"):
            self._claimed_cache = self._desired_ip_addresses()
        return self._claimed_cache

    # -- plan / apply --------------------------------------------------------------------

    def plan_kind(self, kind: str) -> tuple[list[tuple[Desired, dict[str, Any]]], list[tuple[Desired, dict[str, Any]]]]:
        creates, updates = [], []
        target = "devices" if kind == "primary_ips" else kind
        existing = self.existing.get(target, {})
        for desired in self.desired(kind):
            current = existing.get(desired.key)
            if current is None and kind == "ip_addresses":
                current = self._moved_address(desired)
            if current is None and kind == "primary_ips":
                current = {"id": self.index["devices"].get(desired.key), "primary_ip4": None}
            if current is None:
                creates.append((desired, desired.payload))
                self.changes.append(
                    Change(
                        "create",
                        KINDS[kind].endpoint,
                        desired.label,
                        {k: (None, v) for k, v in desired.payload.items()},
                    )
                )
                self.index[kind][desired.key] = ("new", kind, *desired.key)
                continue
            if kind in self.index and current.get("id") is not None:
                self.index[kind][desired.key] = current["id"]
            diff = {}
            for key, new in desired.payload.items():
                old = norm_existing(current.get(key))
                if key == "tags":
                    old = sorted(t["slug"] for t in current.get("tags") or [])
                if not same(old, new, key):
                    diff[key] = (old, new)
            if diff:
                updates.append((desired, {"id": current["id"], **{k: v for k, (_o, v) in diff.items()}}))
                self.changes.append(Change("update", KINDS[target].endpoint, desired.label, diff))
        return creates, updates

    def run(self, apply: bool) -> list[Change]:
        """Plan every kind (and, with apply, write it) in dependency order; refuse on any problem."""
        self.load_existing()
        if not apply:
            for kind in ORDER:
                self.plan_kind(kind)
            self._raise_problems()
            return self.changes
        # A full dry plan first: problems anywhere stop the sync before the first write.
        Syncer(self.client, self.data, self.origin).run(apply=False)
        for kind in ORDER:
            creates, updates = self.plan_kind(kind)
            self._raise_problems()
            self._write(kind, creates, updates)
        return self.changes

    def _raise_problems(self) -> None:
        if self.problems:
            raise SiteFileError(sorted(set(self.problems)))

    def _write(
        self, kind: str, creates: list[tuple[Desired, dict[str, Any]]], updates: list[tuple[Desired, dict[str, Any]]]
    ) -> None:
        endpoint = KINDS["devices" if kind == "primary_ips" else kind].endpoint
        deferred: list[tuple[Desired, dict[str, Any]]] = []
        waves = sorted({pair[0].wave for pair in creates + updates})
        for wave in waves:
            batch = []
            for desired, payload in [c for c in creates if c[0].wave == wave]:
                clean, later = _split_pending(self._resolve(payload))
                batch.append((desired, clean))
                if later:
                    deferred.append((desired, later))
            if batch:
                created = self.client.create(endpoint, [_wire(pair[1]) for pair in batch])
                for (desired, _payload), obj in zip(batch, created, strict=True):
                    self.index[kind][desired.key] = obj["id"]
                    self.existing[kind][desired.key] = obj
            changes = [self._resolve(p) for d, p in updates if d.wave == wave]
            if changes:
                self.client.update(endpoint, [_wire(p) for p in changes])
        if deferred:
            self.client.update(
                endpoint, [_wire({"id": self.index[kind][d.key], **self._resolve(p)}) for d, p in deferred]
            )

    def _resolve(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Replace placeholders ("new", kind, *key) of objects created earlier in this run by their ids."""

        def fix(value: Any) -> Any:
            if isinstance(value, tuple) and value and value[0] == "new":
                found = self.index.get(value[1], {}).get(tuple(value[2:]))
                return found if isinstance(found, int) else value
            if isinstance(value, list):
                return [fix(v) for v in value]
            return value

        return {k: fix(v) for k, v in payload.items()}


def _split_pending(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fields still pointing at objects not created yet are written in a second step."""
    clean, later = {}, {}
    for key, value in payload.items():
        (later if isinstance(value, tuple) else clean)[key] = value
    return clean, later


def _wire(payload: dict[str, Any]) -> dict[str, Any]:
    out = dict(payload)
    if "tags" in out:
        out["tags"] = [{"slug": t} for t in out["tags"]]
    return out


def _depth(iface: dict[str, Any], by_name: dict[str, dict[str, Any]]) -> int:
    """Interfaces referring to others (LAG members, VLANs, bridge members) come after them."""
    depth, seen, current = 0, set(), iface
    while True:
        parent = current.get("parent") or current.get("lag") or current.get("bridge")
        if not parent or parent in seen or parent not in by_name:
            return depth
        seen.add(parent)
        depth += 1
        current = by_name[parent]


def sync(client: NetboxClient, path: Path, dry_run: bool) -> list[Change]:
    data = load_site_file(path)
    return Syncer(client, data, str(path)).run(apply=not dry_run)
