"""Inventory speed and size: allmende.cloud.netbox against netbox.netbox.nb_inventory on the same NetBox.

Loads N devices (default 3,268) at two sites, with three roles and a few tags, each with two
interfaces and a primary IPv4, into the local NetBox (`allmende netbox up`) with the declarative
loader, then runs `ansible-inventory --list` with both plugins, configured to return the same
hosts, groups and interface data, interleaved, on two data sets:

- clean: every address inside a prefix, every role mapped to a group;
- problems: the management prefix of the first site removed (its devices' addresses lie in no
  prefix) and the storage role left unmapped, so about two thirds of the devices have problems.

For every run it measures wall time, CPU time and peak RSS of the ansible-inventory process
(os.wait4) and the size of its output, and prints a table of the medians. It also checks that both
plugins return the same hosts, role groups, interface names, MTUs, MACs and addresses. The
prefix is restored at the end.

    .venv/bin/python scripts/bench-netbox-inventory.py [--devices 3268] [--runs 2]
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
from dataclasses import dataclass
from pathlib import Path

from allmende import netbox_server
from allmende.netbox_client import NetboxClient
from allmende.netbox_sync import Syncer

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SITES = ("bench-dc", "bench-dc2")
ROLES = {"bench-control": "control", "bench-compute": "compute", "bench-storage": "storage"}
TAGS = ("bench", "bench-gpu", "bench-nvme")
PREFIXES = {"bench-dc": "10.96.0.0/16", "bench-dc2": "10.97.0.0/16"}


def site_data(count: int) -> dict:
    devices = []
    for n in range(count):
        third, fourth = divmod(n // 2 + 10, 250)
        site = SITES[n % 2]
        net = PREFIXES[site].split(".")[1]
        role = "bench-control" if n < 3 else ("bench-storage" if n % 3 == 0 else "bench-compute")
        tags = ["bench"] + [tag for i, tag in enumerate(TAGS[1:], 1) if n % (i + 3) == 0]
        devices.append(
            {
                "name": f"bench-{n:05d}",
                "site": site,
                "role": role,
                "device_type": "bench-server",
                "platform": "debian-12",
                "tags": tags,
                "interfaces": [
                    {
                        "name": "eno1",
                        "type": "1000base-t",
                        "mgmt_only": True,
                        "mac": _mac(n, 1),
                        "addresses": [{"address": f"10.{net}.{third}.{fourth + 1}/16", "primary": True}],
                    },
                    {"name": "ens1f0", "type": "10gbase-x-sfpp", "mtu": 9000, "mac": _mac(n, 2)},
                ],
            }
        )
    return {
        "tags": [{"name": tag} for tag in TAGS],
        "manufacturers": [{"name": "Bench"}],
        "device_types": [{"manufacturer": "bench", "model": "Bench Server", "slug": "bench-server"}],
        "device_roles": [{"name": role.replace("-", " ").title(), "slug": role} for role in ROLES],
        "platforms": [{"name": "Debian 12", "slug": "debian-12"}],
        "ipam_roles": [{"name": "Management"}],
        "sites": [{"name": site.replace("-", " ").title(), "slug": site} for site in SITES],
        "prefixes": [{"prefix": prefix, "site": site, "role": "management"} for site, prefix in PREFIXES.items()],
        "devices": devices,
    }


def _mac(n: int, nic: int) -> str:
    return f"02:b0:{(n >> 16) & 255:02x}:{(n >> 8) & 255:02x}:{n & 255:02x}:{nic:02x}"


def configs(folder: Path, url: str, roles: dict[str, str]) -> dict[str, Path]:
    ours = folder / "allmende" / "netbox.yml"
    ours.parent.mkdir(parents=True)
    ours.write_text(
        json.dumps(
            {
                "plugin": "allmende.cloud.netbox",
                "api_endpoint": url,
                "sites": list(SITES),
                "role_groups": roles,
                "group_by": ["site", "rack", "platform", "tags"],
            }
        )
    )
    theirs = folder / "nb" / "nb_inventory.yml"
    theirs.parent.mkdir(parents=True)
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
                "groups": {group: f"role == '{role}'" for role, group in roles.items()},
                "query_filters": [{"site": site} for site in SITES],
                "device_query_filters": [{"status": "active"}],
            }
        )
    )
    return {"allmende.cloud.netbox": ours, "netbox.netbox.nb_inventory": theirs}


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mib: float
    output_mib: float
    data: dict


def inventory(path: Path, env: dict[str, str], folder: Path) -> Run:
    """One `ansible-inventory --list`; CPU and peak RSS of that process alone (os.wait4)."""
    out = folder / "out.json"
    err = folder / "err.txt"
    start = time.perf_counter()
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(BIN / "ansible-inventory"), "-i", str(path), "--list"], env=env, stdout=stdout, stderr=stderr
        )
        status, usage = os.wait4(proc.pid, 0)[1:]
        proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    text = out.read_text()
    if proc.returncode != 0 or not text.startswith("{"):
        sys.exit(f"ansible-inventory failed for {path}:\n{err.read_text()[-2000:]}")
    return Run(
        wall=elapsed,
        cpu=usage.ru_utime + usage.ru_stime,
        rss_mib=usage.ru_maxrss / 1024,
        output_mib=len(text.encode()) / 2**20,
        data=json.loads(text),
    )


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
    groups = {g: sorted(data[g].get("hosts", [])) for g in set(ROLES.values()) if g in data}
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
    problems = sum(len(v.get("allmende_inventory_problems") or []) for v in hostvars.values())
    return {
        "hosts": sorted(hostvars),
        "groups": groups,
        "interfaces": ifaces,
        "ansible_host": addresses,
        "problems": problems,
    }


def break_data(client: NetboxClient) -> None:
    """The problem data set: the first site's management prefix removed."""
    ids = [p["id"] for p in client.list("ipam/prefixes", prefix=PREFIXES[SITES[0]])]
    if ids:
        client.delete("ipam/prefixes", ids)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=3268)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()

    nb = netbox_server.up(log=lambda m: print(f"netbox: {m}", flush=True))
    client = NetboxClient(nb.url, nb.token())
    data = site_data(args.devices)
    start = time.perf_counter()
    changes = Syncer(client, data, "bench").run(apply=True)
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
    unmapped = {role: group for role, group in ROLES.items() if role != "bench-storage"}
    runs: dict[tuple[str, str], list[Run]] = {}
    summaries: dict[tuple[str, str], dict] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for dataset, roles in (("clean", ROLES), ("problems", unmapped)):
                if dataset == "problems":
                    break_data(client)
                paths = configs(Path(tmp) / dataset, nb.url, roles)
                for run in range(args.runs):
                    order = list(paths.items()) if run % 2 == 0 else list(reversed(paths.items()))
                    for name, path in order:
                        result = inventory(path, env, Path(tmp))
                        runs.setdefault((name, dataset), []).append(result)
                        summaries[(name, dataset)] = summary(name, result.data)
                        result.data = {}
                        print(
                            f"  {dataset:<8} run {run + 1}: {name:<28} {result.wall:8.2f} s "
                            f"{result.rss_mib:8.0f} MiB RSS {result.output_mib:8.1f} MiB output",
                            flush=True,
                        )
    finally:
        Syncer(client, data, "bench").run(apply=True)  # the prefix back

    ok = True
    for dataset in ("clean", "problems"):
        ours, theirs = (summaries[(name, dataset)] for name in ("allmende.cloud.netbox", "netbox.netbox.nb_inventory"))
        keys = ["hosts", "interfaces", "ansible_host"] + (["groups"] if dataset == "clean" else [])
        same = {key: ours[key] == theirs[key] for key in keys}
        ok = ok and all(same.values())
        print(f"\n{dataset}: same data from both plugins: {same}; problems reported by ours: {ours['problems']}")
    print(f"\n`ansible-inventory --list`, {args.devices} devices, median of {args.runs} runs each\n")
    print("| plugin | data | wall | CPU | peak RSS | output |")
    print("|---|---|---|---|---|---|")
    for (name, dataset), values in runs.items():
        print(
            f"| `{name}` | {dataset} | {statistics.median(r.wall for r in values):.1f} s "
            f"| {statistics.median(r.cpu for r in values):.1f} s "
            f"| {statistics.median(r.rss_mib for r in values):.0f} MiB "
            f"| {statistics.median(r.output_mib for r in values):.1f} MiB |"
        )
    for dataset in ("clean", "problems"):
        ours = runs[("allmende.cloud.netbox", dataset)]
        theirs = runs[("netbox.netbox.nb_inventory", dataset)]
        ratio = statistics.median(r.wall for r in theirs) / statistics.median(r.wall for r in ours)
        rss = statistics.median(r.rss_mib for r in theirs) / statistics.median(r.rss_mib for r in ours)
        print(f"{dataset}: allmende.cloud.netbox {ratio:.1f}x faster, {rss:.1f}x less peak RSS than nb_inventory")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
