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
    requesting only the fields it uses, through GraphQL where NetBox offers it (see I(graphql)).
  - Checks the data while building the inventory. Each host's problems (object and field) are in
    its own C(allmende_inventory_problems) variable, the few problems tied to no host (a device
    without a name) in C(allmende_inventory_global_problems) of group C(all), so the inventory
    grows with the fleet, not with the fleet times its problems. With I(strict_validation) a
    problem stops the inventory. C(allmende inventory check) and the first play of every
    playbook (playbooks/validate.yml) gather and print them all.
  - NetBox data cannot take over the controller or destroy data. Config context and custom
    fields never set C(ansible_*) variables (connection, user, SSH arguments, become, Python
    interpreter), the role variables that wipe disks or remove cluster members
    (C(ceph_osd_wipe_foreign_devices), C(ceph_osd_allow_loop_devices), C(ovn_central_remove_members),
    C(ceph_common_upgrade), C(allmende_action) and every C(*_action)) or the variables the plugin
    computes itself. Such keys are dropped and reported as problems naming the device and the
    key, never the value; I(allowed_context_keys) lets chosen ones through. C(ansible_host) is
    always the plugin's own, from the primary IPv4.
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
  graphql:
    description:
      - Read devices, virtual machines, interfaces and IP addresses through NetBox's GraphQL API, which
        costs NetBox about a third of the CPU time of the equivalent REST requests.
      - When GraphQL is disabled in NetBox (C(GRAPHQL_ENABLED=False)) or answers with an error, the
        plugin falls back to REST by itself; the inventory is the same either way.
    type: bool
    default: true
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
  allowed_context_keys:
    description:
      - Config context and custom field keys (fnmatch patterns, for example C(ansible_user) or
        C(ceph_osd_wipe_*)) that NetBox may set although they are protected (see the description).
      - Each allowed key gives whoever can edit config contexts or custom fields in NetBox that
        power over the controller or the data; allow only what NetBox is the source for.
      - The variables the plugin computes (C(ansible_host) from the primary IPv4,
        C(allmende_interfaces), C(allmende_networks), C(allmende_inventory_problems), ...) cannot be
        overridden.
    type: list
    elements: str
    default: []
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

from ansible_collections.allmende.cloud.plugins.module_utils.inventory_model import GLOBAL_PROBLEMS_VAR, Model

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
        if self.get_option("graphql"):
            try:
                return self._fetch_graphql()
            except Exception as exc:  # GraphQL disabled (GRAPHQL_ENABLED=False) or failing: REST
                self.display.vv("allmende.cloud.netbox: GraphQL unavailable (%s), using REST" % exc)
        return self._fetch_rest()

    def _device_filter(self):
        device_filter = {"status": self.get_option("statuses")}
        if self.get_option("sites"):
            device_filter["site"] = self.get_option("sites")
        if self.get_option("tags"):
            device_filter["tag"] = self.get_option("tags")
        if self.get_option("roles"):
            device_filter["role"] = self.get_option("roles")
        return device_filter

    def _fetch_rest(self):
        device_filter = self._device_filter()
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

    # -- GraphQL ----------------------------------------------------------------------------

    def _fetch_graphql(self):
        """The same data as _fetch_rest, in the same order and REST's shape, read through GraphQL.

        Lists come page by page in parallel after a REST count. Devices and VMs are filtered by site
        on NetBox's side and by status here; with tag or role filters (REST matches roles with their
        child roles) REST picks the ids and GraphQL reads those objects. Tags: nested in a device list
        they cost NetBox more than the rest of the device together; with few tags in use, a list of
        device ids per tag is much cheaper."""
        sites = self.get_option("sites")
        site_filter = {"site": sites} if sites else {}
        gql_site = ("site: {slug: {in_list: %s}}" % json.dumps(sites)) if sites else ""
        iface_cf = " custom_fields" if self.get_option("interface_custom_fields") else ""
        context = "config_context" if self.get_option("config_context") else "local_context_data"
        lists = {
            "devices": ("dcim/devices", site_filter, "device_list", gql_site,
                        "id name status site { slug } rack { name } role { slug } platform { slug } "
                        "custom_fields primary_ip4 { address } " + context),
            "interfaces": ("dcim/interfaces", site_filter, "interface_list", gql_site,
                           "id device { id name } name type enabled mtu mgmt_only primary_mac_address { mac_address } "
                           "lag { id } parent { id } bridge { id } untagged_vlan { vid } description" + iface_cf),
            "addresses": ("ipam/ip-addresses", {"assigned_to_interface": "true"}, "ip_address_list",
                          'assigned_object_type: {model: {in_list: ["interface", "vminterface"]}}',
                          "id address role assigned_object { __typename ... on InterfaceType { id } "
                          "... on VMInterfaceType { id } }"),
            "prefixes": ("ipam/prefixes", {}, "prefix_list", "", "id prefix role { slug } vlan { vid }"),
        }
        if self.get_option("virtual_machines"):
            lists["vms"] = ("virtualization/virtual-machines", site_filter, "virtual_machine_list", gql_site,
                            "id name status site { slug } role { slug } platform { slug } "
                            "custom_fields primary_ip4 { address } " + context)
            lists["vm_interfaces"] = ("virtualization/interfaces", {}, "vm_interface_list", "",
                                      "id virtual_machine { id name } name enabled mtu "
                                      "primary_mac_address { mac_address } parent { id } bridge { id } "
                                      "untagged_vlan { vid } description")
        by_ids = {}
        if self.get_option("tags") or self.get_option("roles"):
            by_ids = dict((name, lists.pop(name)) for name in ("devices", "vms") if name in lists)
        size = min(self.get_option("page_size"), 1000)
        with ThreadPoolExecutor(max_workers=self.get_option("max_workers")) as pool:
            fields = pool.submit(self._get, "extras/custom-fields", {"limit": 1000, "fields": "name,type,object_types"})
            tag_list = pool.submit(self._get, "extras/tags", {"limit": 1000, "fields": "slug,tagged_items"})
            counts = dict((name, pool.submit(self._get, spec[0], dict(spec[1], limit=1, fields="id")))
                          for name, spec in lists.items())
            hosts = [name for name in ("devices", "vms") if name in lists or name in by_ids]
            tagged = [(t["slug"], t["tagged_items"]) for t in tag_list.result()["results"] if t.get("tagged_items")]
            tag_queries = len(hosts) * sum((count + size - 1) // size for slug, count in tagged)
            if tag_list.result()["count"] > len(tag_list.result()["results"]) or tag_queries > 8:
                tagged = None
                for name in hosts:
                    spec = lists.get(name) or by_ids[name]
                    (lists if name in lists else by_ids)[name] = (*spec[:4], spec[4] + " tags { slug }")
            pages = {}
            by_tag = {}
            for name in hosts if tagged else []:
                root = (lists.get(name) or by_ids[name])[2]
                for slug, count in tagged:
                    where = "%s tags: {slug: {exact: %s}}" % (gql_site, json.dumps(slug))
                    by_tag[(name, slug)] = [pool.submit(self._graphql_page, root, where, "id", offset, size)
                                            for offset in range(0, count, size)]
            for name, future in counts.items():
                root, where, selection = lists[name][2:]
                pages[name] = [pool.submit(self._graphql_page, root, where, selection, offset, size)
                               for offset in range(0, max(future.result()["count"], 1), size)]
            for name, spec in by_ids.items():
                endpoint, root, selection = spec[0], spec[2], spec[4]
                rows = self._fetch_all(pool, {name: (endpoint, dict(self._device_filter(), fields="id"))})[name]
                ids = [row["id"] for row in rows]
                pages[name] = [pool.submit(self._graphql_page, root, "id: {in_list: [%s]}"
                                           % ",".join(map(str, ids[i:i + size])), selection, 0, size)
                               for i in range(0, len(ids), size)]
            data = {}
            for name, futures in pages.items():
                if name in by_ids:
                    data[name] = [row for future in futures for row in future.result()]
                    continue
                root, where, selection = lists[name][2:]
                data[name] = self._collect(futures, root, where, selection, size)
            for (name, slug), futures in by_tag.items():
                root = (lists.get(name) or by_ids[name])[2]
                where = "%s tags: {slug: {exact: %s}}" % (gql_site, json.dumps(slug))
                ids = self._collect(futures, root, where, "id", size)
                by_tag[(name, slug)] = set(int(row["id"]) for row in ids)
            for name in hosts if tagged else []:
                for row in data[name]:
                    row["tags"] = [{"slug": slug} for slug, count in tagged if int(row["id"]) in by_tag[(name, slug)]]
            custom = self._custom_field_types(fields.result()["results"])
            data["devices"] = self._gql_hosts(data["devices"], custom.get("dcim.device", {}))
            data["interfaces"] = [self._gql_interface(i, "device") for i in data["interfaces"]]
            data["addresses"] = [a for a in (self._gql_address(a) for a in data["addresses"]) if a]
            for prefix in data["prefixes"]:
                prefix["id"] = int(prefix["id"])
            if "vms" in data:
                data["vms"] = self._gql_hosts(data["vms"], custom.get("virtualization.virtualmachine", {}))
                data["vm_interfaces"] = [self._gql_interface(i, "virtual_machine") for i in data["vm_interfaces"]]
            for name, kind in (("devices", "dcim/devices"), ("vms", "virtualization/virtual-machines")):
                if name in data and custom.get(kind, {}).get("_rest"):
                    self._rest_custom_fields(pool, kind, data[name])
        return data

    def _graphql_page(self, root, where, selection, offset, limit):
        args = "pagination: {offset: %d, limit: %d}" % (offset, limit)
        if where:
            args = "filters: {%s}, %s" % (where, args)
        return self._graphql("{ %s(%s) { %s } }" % (root, args, selection))[root]

    def _collect(self, futures, root, where, selection, size):
        """The rows of consecutive pages (offset 0, size, ...), reading on where a page came back short."""
        rows, offset = [], 0
        for number, future in enumerate(futures):
            page = future.result()
            rows.extend(page)
            offset += size
            if len(page) < size and number < len(futures) - 1:
                rows.extend(self._graphql_rest(root, where, selection, offset - size + len(page), size, stop=offset))
        while len(rows) == offset and rows:  # objects added since counting
            page = self._graphql_page(root, where, selection, offset, size)
            rows.extend(page)
            offset += size
        return rows

    def _graphql_rest(self, root, where, selection, offset, size, stop):
        """The objects from offset up to stop (exclusive), for when a page came back short."""
        rows = []
        while offset < stop:
            page = self._graphql_page(root, where, selection, offset, min(size, stop - offset))
            if not page:
                break
            rows.extend(page)
            offset += len(page)
        return rows

    @staticmethod
    def _custom_field_types(definitions):
        """{object type: {field name: type}}, with "_rest" set where REST renders a field differently
        from the stored value (decimal, datetime, object references)."""
        types = {}
        for field in definitions:
            kind = field.get("type")
            kind = kind.get("value") if isinstance(kind, dict) else kind
            for object_type in field.get("object_types") or []:
                entry = types.setdefault(object_type, {})
                entry[field["name"]] = kind
                if kind not in ("text", "longtext", "integer", "boolean", "date", "url", "json", "select",
                                "multiselect"):
                    entry["_rest"] = True
        for kind, endpoint in (("dcim.device", "dcim/devices"), ("virtualization.virtualmachine",
                                                                 "virtualization/virtual-machines")):
            if kind in types:
                types[endpoint] = types[kind]
        return types

    def _gql_hosts(self, rows, custom):
        """GraphQL devices/VMs as REST represents them, filtered by status, tags and role like REST."""
        statuses = set(self.get_option("statuses"))
        tags = set(self.get_option("tags"))
        roles = set(self.get_option("roles"))
        names = sorted(k for k in custom if k != "_rest")
        hosts = []
        for row in rows:
            row_tags = set(t["slug"] for t in row.get("tags") or [])
            if row.get("status") not in statuses or not tags <= row_tags:
                continue
            if roles and (row.get("role") or {}).get("slug") not in roles:
                continue
            row["id"] = int(row["id"])
            data = row.get("custom_fields") or {}
            row["custom_fields"] = dict((name, data.get(name)) for name in names)
            hosts.append(row)
        return hosts

    @staticmethod
    def _gql_interface(row, owner):
        row["id"] = int(row["id"])
        for key in (owner, "lag", "parent", "bridge"):
            if row.get(key):
                row[key]["id"] = int(row[key]["id"])
        return row

    @staticmethod
    def _gql_address(row):
        assigned = row.pop("assigned_object", None) or {}
        kind = {"InterfaceType": "dcim.interface", "VMInterfaceType": "virtualization.vminterface"}.get(
            assigned.get("__typename"))
        if not kind:
            return None
        row["id"] = int(row["id"])
        row["assigned_object_type"] = kind
        row["assigned_object_id"] = int(assigned["id"])
        return row

    def _rest_custom_fields(self, pool, endpoint, hosts):
        """Custom fields as REST renders them, for field types whose stored value differs from that."""
        params = {"fields": "id,custom_fields"}
        if self.get_option("sites"):
            params["site"] = self.get_option("sites")
        rows = self._fetch_all(pool, {"cf": (endpoint, params)})["cf"]
        by_id = dict((row["id"], row.get("custom_fields") or {}) for row in rows)
        for host in hosts:
            host["custom_fields"] = by_id.get(host["id"], host["custom_fields"])

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
                      flatten_config_context=self.get_option("flatten_config_context"),
                      allowed_context_keys=self.get_option("allowed_context_keys")).build()
        if model.problems and self.get_option("strict_validation"):
            raise AnsibleParserError("NetBox data has %d problem(s):\n%s"
                                     % (len(model.problems), "\n".join(model.problems)))
        self._populate(model)
        self.display.vv("allmende.cloud.netbox: %d hosts, %d problems, built in %.2fs"
                        % (len(model.hosts), len(model.problems), time.time() - start))

    def _populate(self, model):
        strict = self.get_option("strict")
        constructed = self.get_option("compose") or self.get_option("groups") or self.get_option("keyed_groups")
        # Per host: a group variable of all would be copied into every host's variables.
        self.inventory.set_variable("all", GLOBAL_PROBLEMS_VAR, model.global_problems)
        for name, host in sorted(model.hosts.items()):
            self.inventory.add_host(name)
            for group in host["groups"]:
                self.inventory.add_group(group)
                self.inventory.add_child(group, name)
            for key, value in host["vars"].items():
                self.inventory.set_variable(name, key, value)
            if not constructed:
                continue
            variables = self.inventory.get_host(name).get_vars()
            self._set_composite_vars(self.get_option("compose"), variables, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), variables, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, name, strict=strict)
