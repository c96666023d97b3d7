"""The testbed registered in NetBox, its inventory read from NetBox, its second NIC configured from there."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from allmende import testbed, testbed_netbox

BIN = Path(sys.executable).parent
NAME = os.environ.get("ALLMENDE_NBTEST_TESTBED", "nbtest")


def allmende(*args, timeout=1800):
    return subprocess.run([str(BIN / "allmende"), *args], capture_output=True, text=True, timeout=timeout, check=False)


def ssh(tb, node, command):
    return subprocess.run(
        ["ssh", "-F", str(tb.ssh_config), node, command], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def bed():
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    assert allmende("netbox", "up").returncode == 0
    proc = allmende("testbed", "up", "--name", NAME, "--nodes", "3", "--disks", "1", "--disk-size", "1G", "--netbox")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tb = testbed.Testbed.load(NAME)
    yield tb
    if not os.environ.get("ALLMENDE_KEEP_TESTBED"):
        allmende("testbed", "down", "--name", NAME)


def apply_json(tb, target):
    proc = allmende("apply", target, "-i", str(tb.inventory_dir), "--json")
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, records[-1] if records else {}, records


def test_inventory_comes_from_netbox(bed):
    assert (bed.inventory_dir / "netbox.yml").stat().st_mode & 0o777 == 0o600
    assert not (bed.inventory_dir / "testbed.yml").exists()
    check = allmende("inventory", "check", "-i", str(bed.inventory_dir))
    assert check.returncode == 0, check.stdout


def test_second_nic_is_configured_from_netbox_and_a_second_run_changes_nothing(bed):
    proc = apply_json(bed, "network")[0]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    nets = testbed_netbox.networks(bed)
    for node in bed.nodes:
        index = int(node.name.removeprefix("node"))
        link = ssh(bed, node.name, "ip -d -j link show eth1")
        eth1 = json.loads(link.stdout)[0]
        assert eth1["master"] == "br-data"
        assert eth1["mtu"] == testbed_netbox.DATA_MTU
        addresses = ssh(bed, node.name, "ip -j addr show br-data").stdout
        assert f"{nets['tunnel'].network_address + 10 + index}" in addresses
        assert f"{nets['storage'].network_address + 10 + index}" in addresses
    # the nodes reach each other over the tunnel and storage addresses (bounded pings)
    first, last = bed.nodes[0], bed.nodes[-1]
    last_index = int(last.name.removeprefix("node"))
    for net in ("tunnel", "storage"):
        target = nets[net].network_address + 10 + last_index
        ping = ssh(bed, first.name, f"ping -c 2 -W 2 {target}")
        assert ping.returncode == 0, ping.stdout + ping.stderr

    again, end = apply_json(bed, "network")[:2]
    assert again.returncode == 0
    changed = {host: stats["changed"] for host, stats in (end.get("stats") or {}).items()}
    assert changed and not any(changed.values()), changed
