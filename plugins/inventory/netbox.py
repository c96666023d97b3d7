# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: netbox
author: Allmende developers (@allmende)
short_description: Allmende hosts from NetBox, fast, validated
description:
  - Reads devices (and optionally virtual machines) with their interfaces, IP addresses and prefixes
    from NetBox and returns them in Allmende's inventory model (see docs/inventory-model.md), with groups from
    device roles through I(role_groups), C(ansible_host) from the primary IPv4,
    C(allmende_interfaces) (MAC, MTU, LAG, VLAN, bridge, addresses), C(allmende_networks) keyed by
    prefix role, custom fields and the merged config context.
  - Fast on large sites; all object types are fetched at once, page by page in parallel,
    requesting only the fields it uses.
  - Checks the data while building the inventory and puts every problem found (object and field)
    in the C(allmende_inventory_problems) variable of group C(all); with I(strict_validation) a
    problem stops the inventory. C(allmende inventory check) prints them.
  - The configuration file must end in C(netbox.yml) or C(netbox.yaml).
extends_documentation_fragment:
  - constructed
  - inventory_cache
options:
  plugin:
    description: Marks the file as a configuration of this plugin.
    required: true
    choices: [allmende.cloud.netbox]
    type: str
  api_endpoint:
    description: NetBox URL, for example C(http://127.0.0.1:18080).
    type: str
    required: true
    env:
      - name: NETBOX_API
  token:
    description: NetBox API token (v2 C(nbt_...) tokens and v1 tokens).
    type: str
    required: true
    env:
      - name: NETBOX_TOKEN
  validate_certs:
    description: Verify the TLS certificate of NetBox.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each NetBox request.
    type: int
    default: 120
  max_workers:
    description: Parallel requests to NetBox.
    type: int
    default: 8
  page_size:
    description: Objects per request (NetBox's MAX_PAGE_SIZE caps it).
    type: int
    default: 1000
  statuses:
    description: Device statuses to include.
    type: list
    elements: str
    default: [active]
  sites:
    description: Only devices of these sites (slugs); empty for all.
    type: list
    elements: str
    default: []
  tags:
    description: Only devices carrying all these tags (slugs); empty for all.
    type: list
    elements: str
    default: []
  roles:
    description: Only devices with these roles (slugs); empty for all.
    type: list
    elements: str
    default: []
  virtual_machines:
    description: Include virtual machines (and their VM interfaces) as hosts.
    type: bool
    default: false
  role_groups:
    description:
      - "Device role slug to Allmende group name(s), for example C({hyperconverged: [control, compute, storage]})."
      - A device whose role has no mapping is reported as a problem.
    type: dict
    default: {}
  group_by:
    description: Extra groups named C(<key>_<value>) for these keys.
    type: list
    elements: str
    choices: [site, rack, platform, tags, role, status]
    default: [site, rack, platform, tags]
  required_networks:
    description:
      - "Group name to prefix roles a host in that group must have an address in, for example
        C({compute: [tunnel], storage: [storage]})."
    type: dict
    default: {}
  interface_custom_fields:
    description:
      - Fetch interface custom fields (for example C(lag_mode) on LAG interfaces, the bonding mode).
      - Off by default because it makes the interface requests noticeably slower on large sites.
    type: bool
    default: false
  config_context:
    description: Fetch the merged config context of each device.
    type: bool
    default: true
  flatten_config_context:
    description: Put config context keys directly into the host variables (else under C(config_context)).
    type: bool
    default: true
  strict_validation:
    description: Fail the inventory on any data problem instead of only reporting it.
    type: bool
    default: false
"""

EXAMPLES = r"""
# inventory/netbox.yml
plugin: allmende.cloud.netbox
api_endpoint: https://netbox.example.org
sites: [dc1]
tags: [allmende]
role_groups:
  hyperconverged: [control, network, compute, storage]
  compute: [compute]
required_networks:
  compute: [tunnel]
  storage: [storage]
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/allmende/inventory
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor

from ansible.errors import AnsibleParserError
from ansible.module_utils.six.moves.urllib.parse import urlencode
from ansible.module_utils.urls import open_url
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable

from ansible_collections.allmende.cloud.plugins.module_utils.inventory_model import Model

# primary_ip4 is fetched separately (see _primary_ips): nested in the device list it costs NetBox a
# lookup per device.
DEVICE_FIELDS = ["id", "name", "site", "rack", "role", "platform", "tags", "custom_fields",
                 "status", "local_context_data"]
VM_FIELDS = ["id", "name", "site", "role", "platform", "tags", "custom_fields", "status",
             "local_context_data"]
# primary_mac_address, not mac_address: the latter is a per-object lookup on NetBox's side.
INTERFACE_FIELDS = ["id", "device", "name", "type", "enabled", "mtu", "mgmt_only", "primary_mac_address", "lag",
                    "parent", "bridge", "mode", "untagged_vlan", "description"]
VM_INTERFACE_FIELDS = ["id", "virtual_machine", "name", "enabled", "mtu", "primary_mac_address", "parent", "bridge",
                       "mode", "untagged_vlan", "description"]
ADDRESS_FIELDS = ["id", "address", "assigned_object_type", "assigned_object_id", "role"]
PREFIX_FIELDS = ["id", "prefix", "role", "vlan"]


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    NAME = "allmende.cloud.netbox"

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(("netbox.yml", "netbox.yaml"))

    # -- HTTP ---------------------------------------------------------------------------

    def _get(self, endpoint, params):
        url = "%s/api/%s/?%s" % (self.api.rstrip("/"), endpoint, urlencode(params, doseq=True))
        token = self.get_option("token")
        scheme = "Bearer" if token.startswith("nbt_") else "Token"
        start = time.time()
        try:
            response = open_url(url, headers={"Authorization": "%s %s" % (scheme, token),
                                              "Accept": "application/json"},
                                validate_certs=self.get_option("validate_certs"),
                                timeout=self.get_option("timeout"))
            data = json.loads(response.read())
            self.display.vvv("allmende.cloud.netbox: %.2fs %s" % (time.time() - start, url))
            return data
        except Exception as exc:  # urllib raises several unrelated types
            raise AnsibleParserError("NetBox %s: %s" % (url.split("?")[0], exc)) from exc

    def _graphql(self, query):
        url = "%s/graphql/" % self.api.rstrip("/")
        token = self.get_option("token")
        scheme = "Bearer" if token.startswith("nbt_") else "Token"
        start = time.time()
        response = open_url(url, method="POST", data=json.dumps({"query": query}),
                            headers={"Authorization": "%s %s" % (scheme, token), "Accept": "application/json",
                                     "Content-Type": "application/json"},
                            validate_certs=self.get_option("validate_certs"), timeout=self.get_option("timeout"))
        data = json.loads(response.read())
        self.display.vvv("allmende.cloud.netbox: %.2fs graphql %s" % (time.time() - start, query[:60]))
        if data.get("errors") or not data.get("data"):
            raise ValueError(str(data.get("errors"))[:300])
        return data["data"]

    def _fetch_all(self, pool, requests):
        """requests: {name: (endpoint, params)}. Counts first, then every page of every endpoint at once."""
        size = self.get_option("page_size")
        counts = dict((name, pool.submit(self._get, endpoint, dict(params, limit=1, fields="id")))
                      for name, (endpoint, params) in requests.items())
        pages = {}
        for name, future in counts.items():
            endpoint, params = requests[name]
            total = max(future.result()["count"], 1)
            pages[name] = [pool.submit(self._get, endpoint, dict(params, limit=size, offset=offset))
                           for offset in range(0, total, size)]
        results = {}
        for name, futures in pages.items():
            endpoint, params = requests[name]
            results[name] = []
            for future in futures:
                page = future.result()
                results[name].extend(page["results"])
            offset = len(futures) * size
            while page.get("next"):  # objects added since counting
                page = self._get(endpoint, dict(params, limit=size, offset=offset))
                results[name].extend(page["results"])
                offset += size
        return results

    def _primary_ips(self, pool, kind, objects, endpoint, params):
        """{id: address} of the primary IPv4 of these devices (kind device_list) or VMs (virtual_machine_list).

        GraphQL answers this at a fraction of what the nested REST field costs; without GraphQL
        (GRAPHQL_ENABLED=False) the REST field is used."""
        ids = [o["id"] for o in objects]
        chunks = [ids[i:i + 1000] for i in range(0, len(ids), 1000)]
        query = "{ %s(filters: {id: {in_list: [%s]}}) { id primary_ip4 { address } } }"
        try:
            futures = [pool.submit(self._graphql, query % (kind, ",".join(map(str, c)))) for c in chunks]
            answers = [f.result() for f in futures]
            return dict((int(o["id"]), (o.get("primary_ip4") or {}).get("address"))
                        for answer in answers for o in answer[kind])
        except Exception as exc:  # GraphQL disabled or failing: fall back to REST
            self.display.vv("allmende.cloud.netbox: GraphQL unavailable (%s), using REST" % exc)
            rows = self._fetch_all(pool, {"ip": (endpoint, dict(params, fields="id,primary_ip4"))})["ip"]
            return dict((o["id"], (o.get("primary_ip4") or {}).get("address")) for o in rows)

    def fetch(self):
        device_filter = {"status": self.get_option("statuses")}
        if self.get_option("sites"):
            device_filter["site"] = self.get_option("sites")
        if self.get_option("tags"):
            device_filter["tag"] = self.get_option("tags")
        if self.get_option("roles"):
            device_filter["role"] = self.get_option("roles")
        device_fields = list(DEVICE_FIELDS)
        vm_fields = list(VM_FIELDS)
        if self.get_option("config_context"):
            # NetBox's config_context already includes the local context data
            device_fields = [f for f in device_fields if f != "local_context_data"] + ["config_context"]
            vm_fields = [f for f in vm_fields if f != "local_context_data"] + ["config_context"]
        # Interfaces of devices filtered out by status/tag/role are simply not used.
        iface_filter = {"site": self.get_option("sites")} if self.get_option("sites") else {}
        iface_fields = INTERFACE_FIELDS + (["custom_fields"] if self.get_option("interface_custom_fields") else [])
        requests = {
            "devices": ("dcim/devices", dict(device_filter, fields=",".join(device_fields))),
            "interfaces": ("dcim/interfaces", dict(iface_filter, fields=",".join(iface_fields))),
            # every interface address (all sites: duplicates across sites matter too)
            "addresses": ("ipam/ip-addresses", {"assigned_to_interface": "true", "fields": ",".join(ADDRESS_FIELDS)}),
            "prefixes": ("ipam/prefixes", {"fields": ",".join(PREFIX_FIELDS)}),
        }
        if self.get_option("virtual_machines"):
            vm_filter = dict((k, v) for k, v in device_filter.items())
            requests["vms"] = ("virtualization/virtual-machines", dict(vm_filter, fields=",".join(vm_fields)))
            requests["vm_interfaces"] = ("virtualization/interfaces", {"fields": ",".join(VM_INTERFACE_FIELDS)})
        with ThreadPoolExecutor(max_workers=self.get_option("max_workers")) as pool:
            data = self._fetch_all(pool, requests)
            lookups = [("devices", "device_list")] + ([("vms", "virtual_machine_list")] if "vms" in data else [])
            for name, kind in lookups:
                endpoint, params = requests[name]
                primary = self._primary_ips(pool, kind, data[name], endpoint, params)
                for obj in data[name]:
                    address = primary.get(obj["id"])
                    obj["primary_ip4"] = {"address": address} if address else None
        return data

    # -- parse ----------------------------------------------------------------------------

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        self.api = self.get_option("api_endpoint")
        cache_key = self.get_cache_key(path)
        use_cache = self.get_option("cache") and cache
        data = None
        if use_cache:
            try:
                data = self._cache[cache_key]
            except KeyError:
                data = None
        if data is None:
            start = time.time()
            data = self.fetch()
            self.display.vv("allmende.cloud.netbox: fetched in %.2fs" % (time.time() - start))
            if self.get_option("cache"):
                self._cache[cache_key] = data

        devices = list(data["devices"])
        interfaces = list(data["interfaces"])
        for vm in data.get("vms", []):
            vm["_vm"] = True
            devices.append(vm)
        interfaces.extend(data.get("vm_interfaces", []))
        start = time.time()
        model = Model(devices, interfaces, data["addresses"], data["prefixes"],
                      role_groups=self.get_option("role_groups"), group_by=self.get_option("group_by"),
                      required_networks=self.get_option("required_networks"),
                      flatten_config_context=self.get_option("flatten_config_context")).build()
        if model.problems and self.get_option("strict_validation"):
            raise AnsibleParserError("NetBox data has %d problem(s):\n%s"
                                     % (len(model.problems), "\n".join(model.problems)))
        self._populate(model)
        self.display.vv("allmende.cloud.netbox: %d hosts, %d problems, built in %.2fs"
                        % (len(model.hosts), len(model.problems), time.time() - start))

    def _populate(self, model):
        strict = self.get_option("strict")
        self.inventory.set_variable("all", "allmende_inventory_problems", model.problems)
        for name, host in sorted(model.hosts.items()):
            self.inventory.add_host(name)
            for group in host["groups"]:
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            for key, value in host["vars"].items():
                self.inventory.set_variable(name, key, value)
            variables = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option("compose"), variables, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), variables, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, name, strict=strict)
