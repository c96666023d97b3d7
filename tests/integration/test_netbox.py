"""Against the real NetBox (`allmende netbox up`): loader, inventory plugin, validation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from allmende import netbox_server
from allmende.netbox_client import NetboxClient

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
BIN = Path(sys.executable).parent
SAMPLE = ROOT / "inventories" / "netbox" / "sample-site.yml"
BAD = HERE / "data" / "bad-site.yml"


@pytest.fixture(scope="module")
def netbox():
    nb = netbox_server.up()
    return NetboxClient(nb.url, nb.token())


@pytest.fixture
def env(netbox):
    return {
        **os.environ,
        "NETBOX_API": netbox.url,
        "NETBOX_TOKEN": netbox.token,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }


def allmende(*args, env=None):
    return subprocess.run(
        [str(BIN / "allmende"), *args], capture_output=True, text=True, env=env, check=False, timeout=600
    )


def inventory_file(folder: Path, **options) -> Path:
    path = folder / "netbox.yml"
    path.write_text(yaml.safe_dump({"plugin": "allmende.cloud.netbox", **options}))
    return path


def ansible_inventory(path: Path, env) -> dict:
    proc = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(path), "--list"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("{"), proc.stderr
    return json.loads(proc.stdout, object_hook=lambda d: d.get("__ansible_unsafe", d) if len(d) == 1 else d)


def test_sync_then_resync_changes_nothing(netbox, env):
    first = allmende("netbox", "sync", str(SAMPLE), env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    again = allmende("netbox", "sync", str(SAMPLE), env=env)
    assert again.returncode == 0
    assert "changed 0 object(s)" in again.stdout


def test_dry_run_prints_the_diff_and_changes_nothing(netbox, env, tmp_path):
    allmende("netbox", "sync", str(SAMPLE), env=env)
    data = yaml.safe_load(SAMPLE.read_text())
    data["devices"][0]["interfaces"][1]["mtu"] = 9100
    data["devices"][0]["interfaces"][2]["mtu"] = 9100
    changed = tmp_path / "site.yml"
    changed.write_text(yaml.safe_dump(data))
    dry = allmende("netbox", "sync", str(changed), "--dry-run", env=env)
    assert dry.returncode == 0, dry.stdout
    assert "~ dcim/interfaces sample-dc1/sample-hc1/ens1f0 (mtu: 9000 -> 9100)" in dry.stdout
    assert "would change 2 object(s)" in dry.stdout
    ens = next(netbox.list("dcim/interfaces", device="sample-hc1", name="ens1f0"))
    assert ens["mtu"] == 9000
    applied = allmende("netbox", "sync", str(changed), env=env)
    assert "changed 2 object(s)" in applied.stdout
    assert next(netbox.list("dcim/interfaces", device="sample-hc1", name="ens1f0"))["mtu"] == 9100
    restored = allmende("netbox", "sync", str(SAMPLE), env=env)
    assert "changed 2 object(s)" in restored.stdout


def test_structural_problems_refuse_the_whole_file(netbox, env, tmp_path):
    data = yaml.safe_load(SAMPLE.read_text())
    data["tags"].append({"name": "never-created"})
    data["devices"][0]["colour"] = "blue"
    data["devices"][1]["interfaces"][0]["mtu"] = 12
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(data))
    proc = allmende("netbox", "sync", str(broken), env=env)
    assert proc.returncode == 2
    assert "devices sample-hc1: colour: unknown field" in proc.stdout
    assert "sample-hc2 interface eno1: mtu: must be an integer 68-65536" in proc.stdout
    assert not list(netbox.list("extras/tags", slug="never-created"))


def test_inventory_from_netbox_has_groups_and_hostvars(netbox, env, tmp_path):
    allmende("netbox", "sync", str(SAMPLE), env=env)
    path = inventory_file(
        tmp_path,
        sites=["sample-dc1"],
        role_groups={"hyperconverged": ["control", "network", "compute", "storage"], "compute": ["compute"]},
        required_networks={"compute": ["tunnel"], "storage": ["storage"]},
    )
    data = ansible_inventory(path, env)
    assert sorted(data["control"]["hosts"]) == ["sample-hc1", "sample-hc2"]
    assert sorted(data["compute"]["hosts"]) == ["sample-cmp1", "sample-hc1", "sample-hc2"]
    assert "sample-cmp1" in data["site_sample_dc1"]["hosts"] and "tag_allmende" in data
    hv = data["_meta"]["hostvars"]["sample-hc1"]
    assert hv["ansible_host"] == "10.90.0.11"
    assert hv["allmende_data_disks"] == ["/dev/nvme0n1", "/dev/nvme1n1"]  # local config context
    assert hv["allmende_dns_servers"] == ["10.90.0.2", "10.90.0.3"]  # site config context
    ifaces = {i["name"]: i for i in hv["allmende_interfaces"]}
    assert ifaces["bond0"]["type"] == "lag" and ifaces["bond0"]["mtu"] == 9000
    assert ifaces["ens1f0"]["lag"] == "bond0" and ifaces["ens1f0"]["mac"] == "0c:c4:7a:00:01:10"
    assert (ifaces["bond0.20"]["type"], ifaces["bond0.20"]["parent"], ifaces["bond0.20"]["vid"]) == (
        "vlan",
        "bond0",
        20,
    )
    assert ifaces["bond0.30"]["addresses"] == ["10.90.30.11/24"]
    assert hv["allmende_networks"]["tunnel"]["address"] == "10.90.20.11"
    assert hv["allmende_networks"]["storage"]["vlan"] == 30
    cmp1 = {i["name"]: i for i in data["_meta"]["hostvars"]["sample-cmp1"]["allmende_interfaces"]}
    assert cmp1["ens1f1"]["bridge"] == "br-provider" and cmp1["br-provider"]["type"] == "bridge"
    check = allmende("inventory", "check", "-i", str(path), env=env)
    assert check.returncode == 0, check.stdout


def test_graphql_and_rest_give_the_same_inventory(netbox, env, tmp_path):
    allmende("netbox", "sync", str(SAMPLE), env=env)
    allmende("netbox", "sync", str(BAD), env=env)
    options = {
        "role_groups": {"hyperconverged": ["control", "compute"], "bad-hc": ["control"]},
        "required_networks": {"compute": ["tunnel"]},
        "group_by": ["site", "rack", "platform", "tags", "role", "status"],
        "virtual_machines": True,
        "interface_custom_fields": True,
    }
    for name, extra in {
        "sites": {"sites": ["sample-dc1", "bad-a", "bad-b"], "page_size": 3},
        "filters": {"tags": ["allmende"], "roles": ["hyperconverged"], "config_context": False},
    }.items():
        outputs = []
        for graphql in (True, False):
            folder = tmp_path / f"{name}-{graphql}"
            folder.mkdir()
            path = inventory_file(folder, graphql=graphql, **options, **extra)
            proc = subprocess.run(
                [str(BIN / "ansible-inventory"), "-i", str(path), "--list", "-vv"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr
            assert "GraphQL unavailable" not in proc.stdout + proc.stderr, proc.stdout[-2000:]
            listing = proc.stdout[proc.stdout.index("\n{") + 1 :] if "\n{" in proc.stdout else proc.stdout
            outputs.append(json.loads(listing))
        assert outputs[0]["_meta"]["hostvars"], name
        assert outputs[0] == outputs[1], name


def test_every_kind_of_bad_data_is_reported_and_no_host_is_touched(netbox, env, tmp_path):
    loaded = allmende("netbox", "sync", str(BAD), env=env)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    path = inventory_file(
        tmp_path,
        sites=["bad-a", "bad-b"],
        role_groups={"bad-hc": ["control", "compute"], "bad-compute": ["compute"]},
        required_networks={"compute": ["tunnel"]},
    )
    check = allmende("inventory", "check", "-i", str(path), "--json", env=env)
    assert check.returncode == 1
    problems = "\n".join(json.loads(check.stdout)["problems"])
    expected = [
        "device bad-noip (site bad-a): primary_ip4: missing",
        "ip address 10.92.0.10: address: assigned 2 times (bad-dupip/eth1, bad-ok/eth0)",
        "device bad-outside (site bad-a) interface eth1: address: 192.168.250.5/24 is not inside any prefix",
        "device bad-unmapped (site bad-a): role: role 'bad-unmapped' has no group mapping",
        "device bad-ifaces (site bad-a) interface bond0: mtu: LAG members differ in MTU: ens1f0=9000, ens1f1=1500",
        "device bad-ifaces (site bad-a) interface vlan20: parent: VLAN interface without a parent interface",
        "device bad-notunnel (site bad-a): interfaces: group compute needs an address in a 'tunnel' prefix",
        "name: duplicate host name",
    ]
    for line in expected:
        assert line in problems, f"missing: {line}\n--- got:\n{problems}"

    runs = Path(os.environ.get("ALLMENDE_STATE_DIR", Path.home() / ".local/state/allmende")) / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    apply = allmende("apply", "bootstrap", "-i", str(path), "--progress", "lines", env=env)
    assert apply.returncode == 2
    assert "refusing to run" in apply.stdout and "bad-noip" in apply.stdout
    after = set(runs.iterdir()) if runs.exists() else set()
    assert after == before, "a run was started although the inventory has problems"
