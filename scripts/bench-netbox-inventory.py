"""Inventory speed: allmende.cloud.netbox against netbox.netbox.nb_inventory on the same NetBox.

Loads a site of N devices (default 3,268), each with two interfaces and a primary IPv4, into the
local NetBox (`allmende netbox up`) with the declarative loader, then times `ansible-inventory --list`
with both plugins, configured to return the same hosts, groups and interface data, interleaved,
and prints the medians and the ratio measured in this run. It also checks that both return the
same hosts, role groups, interface names, MTUs and MACs.

    .venv/bin/python scripts/bench-netbox-inventory.py [--devices 3268] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from allmende import netbox_server
from allmende.netbox_client import NetboxClient
from allmende.netbox_sync import Syncer

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SITE = "bench-dc"
ROLES = {"bench-control": "control", "bench-compute": "compute"}


def site_data(count: int) -> dict:
    devices = []
    for n in range(count):
        third, fourth = divmod(n + 10, 250)
        role = "bench-control" if n < 3 else "bench-compute"
        devices.append(
            {
                "name": f"bench-{n:05d}",
                "site": SITE,
                "role": role,
                "device_type": "bench-server",
                "platform": "debian-12",
                "tags": ["bench"],
                "interfaces": [
                    {
                        "name": "eno1",
                        "type": "1000base-t",
                        "mgmt_only": True,
                        "mac": _mac(n, 1),
                        "addresses": [{"address": f"10.96.{third}.{fourth + 1}/16", "primary": True}],
                    },
                    {"name": "ens1f0", "type": "10gbase-x-sfpp", "mtu": 9000, "mac": _mac(n, 2)},
                ],
            }
        )
    return {
        "tags": [{"name": "bench"}],
        "manufacturers": [{"name": "Bench"}],
        "device_types": [{"manufacturer": "bench", "model": "Bench Server", "slug": "bench-server"}],
        "device_roles": [
            {"name": "Bench Control", "slug": "bench-control"},
            {"name": "Bench Compute", "slug": "bench-compute"},
        ],
        "platforms": [{"name": "Debian 12", "slug": "debian-12"}],
        "ipam_roles": [{"name": "Management"}],
        "sites": [{"name": "Bench DC", "slug": SITE}],
        "prefixes": [{"prefix": "10.96.0.0/16", "site": SITE, "role": "management"}],
        "devices": devices,
    }


def _mac(n: int, nic: int) -> str:
    return f"02:b0:{(n >> 16) & 255:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}:{nic:02x}"


def configs(folder: Path, url: str) -> dict[str, Path]:
    ours = folder / "allmende" / "netbox.yml"
    ours.parent.mkdir()
    ours.write_text(
        json.dumps(
            {
                "plugin": "allmende.cloud.netbox",
                "api_endpoint": url,
                "sites": [SITE],
                "role_groups": ROLES,
                "group_by": ["site", "rack", "platform", "tags"],
            }
        )
    )
    theirs = folder / "nb" / "nb_inventory.yml"
    theirs.parent.mkdir()
    theirs.write_text(
        json.dumps(
            {
                "plugin": "netbox.netbox.nb_inventory",
                "api_endpoint": url,
                "token": {"type": "Bearer", "value": "{{ lookup('env', 'NETBOX_TOKEN') }}"},
                "config_context": True,
                "flatten_config_context": True,
                "interfaces": True,
                "plurals": False,
                "group_by": ["site", "rack", "platform", "tag"],
                "groups": {group: f"role == '{role}'" for role, group in ROLES.items()},
                "query_filters": [{"site": SITE}],
                "device_query_filters": [{"status": "active"}],
            }
        )
    )
    return {"allmende.cloud.netbox": ours, "netbox.netbox.nb_inventory": theirs}


def inventory(path: Path, env: dict[str, str]) -> tuple[float, dict]:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(path), "--list"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0 or not proc.stdout.startswith("{"):
        sys.exit(f"ansible-inventory failed for {path}:\n{proc.stderr[-2000:]}")
    return elapsed, json.loads(proc.stdout)


def plain(value):
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def summary(name: str, data: dict) -> dict:
    data = plain(data)
    hostvars = data["_meta"]["hostvars"]
    groups = {g: sorted(data[g].get("hosts", [])) for g in ("control", "compute") if g in data}
    if name.startswith("allmende"):
        ifaces = {
            h: sorted((i["name"], i["mtu"], (i["mac"] or "").lower()) for i in v["allmende_interfaces"])
            for h, v in hostvars.items()
        }
    else:
        ifaces = {
            h: sorted((i["name"], i["mtu"], (i.get("mac_address") or "").lower()) for i in v["interfaces"])
            for h, v in hostvars.items()
        }
    addresses = {h: v.get("ansible_host") for h, v in hostvars.items()}
    return {"hosts": sorted(hostvars), "groups": groups, "interfaces": ifaces, "ansible_host": addresses}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=3268)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    nb = netbox_server.up(log=lambda m: print(f"netbox: {m}", flush=True))
    client = NetboxClient(nb.url, nb.token())
    start = time.perf_counter()
    changes = Syncer(client, site_data(args.devices), "bench").run(apply=True)
    print(
        f"loaded {args.devices} devices into {nb.url}: {len(changes)} objects written "
        f"in {time.perf_counter() - start:.1f} s",
        flush=True,
    )

    env = {
        **os.environ,
        "NETBOX_API": nb.url,
        "NETBOX_TOKEN": nb.token(),
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
    }
    with tempfile.TemporaryDirectory() as tmp:
        paths = configs(Path(tmp), nb.url)
        times: dict[str, list[float]] = {name: [] for name in paths}
        results = {}
        for run in range(args.runs):
            order = list(paths.items()) if run % 2 == 0 else list(reversed(paths.items()))
            for name, path in order:
                seconds, data = inventory(path, env)
                times[name].append(seconds)
                results[name] = data
                print(f"  run {run + 1}: {name:<28} {seconds:8.2f} s", flush=True)

    ours, theirs = (summary(n, results[n]) for n in paths)
    same = {key: ours[key] == theirs[key] for key in ours}
    print(f"\nsame data from both plugins: {same}")
    print(
        f"hosts: {len(ours['hosts'])}, control: {len(ours['groups'].get('control', []))}, "
        f"compute: {len(ours['groups'].get('compute', []))}"
    )
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:<28} median {value:8.2f} s")
    ratio = medians["netbox.netbox.nb_inventory"] / medians["allmende.cloud.netbox"]
    print(
        f"speed-up allmende.cloud.netbox vs netbox.netbox.nb_inventory: {ratio:.1f}x "
        f"({args.devices} devices, {args.runs} runs each)"
    )
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
