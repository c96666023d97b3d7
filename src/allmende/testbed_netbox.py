"""Register a testbed in NetBox and read its inventory back from there.

The testbed is described like a real site: a site per testbed, a device per node with its NICs
(MACs as podman created them), the management address as primary IPv4, the second NIC as member
of a bridge carrying tunnel and storage addresses, prefixes with roles, and the data disks as
local config context. The bridge is an Open vSwitch bridge (config context
``allmende_ovs_bridges``): the testbed has only the userspace datapath, which sends Geneve
tunnel packets only from an address on an OVS bridge that owns the NIC. `allmende testbed up
--netbox` syncs this with the declarative loader and points the testbed's inventory at the
allmende.cloud.netbox plugin.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any

import yaml

from allmende import netbox_server
from allmende.netbox_client import NetboxApiError, NetboxClient
from allmende.netbox_sync import Change, Syncer
from allmende.testbed import Log, Testbed, TestbedError

HYPERCONVERGED = "testbed-hyperconverged"
COMPUTE_STORAGE = "testbed-compute-storage"
ROLE_GROUPS = {HYPERCONVERGED: ["control", "network", "compute", "storage"], COMPUTE_STORAGE: ["compute", "storage"]}
REQUIRED_NETWORKS = {"control": ["management"], "compute": ["tunnel"], "storage": ["storage"]}
DATA_MTU = 1500  # the podman L2 network between the nodes
DATA_BRIDGE = "br-data"


def site_slug(tb: Testbed) -> str:
    return f"testbed-{tb.name}"


def networks(tb: Testbed) -> dict[str, ipaddress.IPv4Network]:
    """Management is podman's subnet; tunnel and storage sit next to it (10.213.X -> 10.214.X, 10.215.X)."""
    mgmt = ipaddress.ip_network(tb.mgmt_subnet)
    if mgmt.version != 4 or mgmt.prefixlen < 16:
        raise ValueError(f"testbed {tb.name}: management subnet {mgmt} must be an IPv4 /16 or longer")
    base = int(mgmt.network_address)
    return {
        "management": mgmt,
        "tunnel": ipaddress.ip_network(f"{ipaddress.ip_address(base + (1 << 16))}/{mgmt.prefixlen}"),
        "storage": ipaddress.ip_network(f"{ipaddress.ip_address(base + (2 << 16))}/{mgmt.prefixlen}"),
    }


def site_data(tb: Testbed) -> dict[str, Any]:
    site = site_slug(tb)
    nets = networks(tb)
    devices = []
    for node in tb.nodes:
        index = int(node.name.removeprefix("node"))
        host = 10 + index
        mgmt, data = node.nics
        devices.append(
            {
                "name": node.name,
                "site": site,
                "rack": "rack1",
                "role": HYPERCONVERGED if "control" in node.groups else COMPUTE_STORAGE,
                "device_type": "testbed-node",
                "platform": "debian-12",
                "tags": ["allmende-testbed"],
                "local_context_data": {
                    "allmende_data_disks": [d.device for d in node.disks],
                    "allmende_testbed_container": node.container,
                    "allmende_ovs_bridges": [DATA_BRIDGE],
                },
                "interfaces": [
                    {
                        "name": mgmt.name,
                        "type": "1000base-t",
                        "mac": mgmt.mac,
                        "mgmt_only": True,
                        "addresses": [{"address": f"{node.address}/{nets['management'].prefixlen}", "primary": True}],
                    },
                    {
                        "name": data.name,
                        "type": "10gbase-x-sfpp",
                        "mac": data.mac,
                        "mtu": DATA_MTU,
                        "bridge": DATA_BRIDGE,
                    },
                    {
                        "name": DATA_BRIDGE,
                        "type": "bridge",
                        "mtu": DATA_MTU,
                        "addresses": [
                            f"{nets['tunnel'].network_address + host}/{nets['tunnel'].prefixlen}",
                            f"{nets['storage'].network_address + host}/{nets['storage'].prefixlen}",
                        ],
                    },
                ],
            }
        )
    return {
        "tags": [{"name": "allmende-testbed", "color": "00897b"}],
        "manufacturers": [{"name": "Allmende Testbed"}],
        "device_types": [{"manufacturer": "allmende-testbed", "model": "Testbed Node", "slug": "testbed-node"}],
        "device_roles": [
            {"name": "Testbed Hyperconverged", "slug": HYPERCONVERGED, "color": "1565c0"},
            {"name": "Testbed Compute Storage", "slug": COMPUTE_STORAGE, "color": "6a1b9a"},
        ],
        "platforms": [{"name": "Debian 12", "slug": "debian-12"}],
        "ipam_roles": [{"name": "Management"}, {"name": "Tunnel"}, {"name": "Storage"}],
        "sites": [{"name": f"Testbed {tb.name}", "slug": site}],
        "racks": [{"name": "rack1", "site": site}],
        "prefixes": [{"prefix": str(net), "site": site, "role": role} for role, net in nets.items()],
        "devices": devices,
    }


def register(tb: Testbed, client: NetboxClient) -> list[Change]:
    return Syncer(client, site_data(tb), f"testbed {tb.name}").run(apply=True)


def write_inventory(tb: Testbed, client: NetboxClient) -> Path:
    """The testbed's inventory directory, reading hosts from NetBox instead of the testbed state."""
    inv = tb.inventory_dir
    (inv / "testbed.yml").unlink(missing_ok=True)
    config = {
        "plugin": "allmende.cloud.netbox",
        "api_endpoint": client.url,
        "token": client.token,
        "sites": [site_slug(tb)],
        "role_groups": ROLE_GROUPS,
        "required_networks": REQUIRED_NETWORKS,
    }
    target = inv / "netbox.yml"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"# Written by `allmende testbed up --netbox` for testbed {tb.name}; holds an API token.\n")
        handle.write(yaml.safe_dump(config, sort_keys=False))
    connection = {
        "ansible_user": "root",
        "ansible_ssh_private_key_file": str(tb.ssh_key),
        "ansible_ssh_common_args": tb.ssh_args(),
        "ansible_python_interpreter": "/usr/bin/python3",
        "allmende_testbed": tb.name,
        "allmende_mgmt_subnet": tb.mgmt_subnet,
    }
    folder = inv / "group_vars" / "all"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "connection.yml").write_text(
        "# Written by `allmende testbed up --netbox`: how Ansible reaches the testbed nodes.\n"
        + yaml.safe_dump(connection, sort_keys=False)
    )
    return inv


def unregister(name: str, client: NetboxClient) -> int:
    """Remove a testbed's site and everything in it from NetBox; returns the number of objects removed."""
    sites = list(client.list("dcim/sites", slug=f"testbed-{name}"))
    if not sites:
        return 0
    site_id = sites[0]["id"]
    devices = [d["id"] for d in client.list("dcim/devices", site_id=site_id)]
    addresses = [a["id"] for a in client.list("ipam/ip-addresses", device_id=devices)] if devices else []
    prefixes = [p["id"] for p in client.list("ipam/prefixes", site_id=site_id)]
    racks = [r["id"] for r in client.list("dcim/racks", site_id=site_id)]
    for endpoint, ids in (
        ("ipam/ip-addresses", addresses),
        ("dcim/devices", devices),
        ("ipam/prefixes", prefixes),
        ("dcim/racks", racks),
        ("dcim/sites", [site_id]),
    ):
        if ids:
            client.delete(endpoint, ids)
    return len(addresses) + len(devices) + len(prefixes) + len(racks) + 1


def _client() -> NetboxClient:
    try:
        return NetboxClient.from_env(netbox_server.instance().env_file)
    except NetboxApiError as exc:
        raise TestbedError(str(exc)) from exc


def ensure_registered(tb: Testbed, log: Log) -> None:
    """`testbed up --netbox`: the site in NetBox matches the testbed; the inventory reads NetBox."""
    client = _client()
    try:
        changes = register(tb, client)
    except NetboxApiError as exc:
        raise TestbedError(f"registering testbed {tb.name} in NetBox {client.url}: {exc}") from exc
    log(f"NetBox {client.url}: site {site_slug(tb)} in sync ({len(changes)} objects written)")
    write_inventory(tb, client)
    tb.netbox_url = client.url
    tb.save()


def ensure_unregistered(name: str, log: Log) -> None:
    """Before `testbed down`: remove a registered testbed's site from NetBox (a failure is only logged)."""
    try:
        tb = Testbed.load(name)
    except TestbedError as exc:
        log(f"{exc}; not looking for it in NetBox")
        return
    if tb is None or not tb.netbox_url:
        return
    try:
        count = unregister(name, _client())
        log(f"removed {count} NetBox objects of site testbed-{name}")
    except (NetboxApiError, TestbedError, OSError) as exc:
        log(f"could not remove testbed {name} from NetBox ({exc}); remove site testbed-{name} by hand")
