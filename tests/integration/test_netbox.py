"""Against the real NetBox (`allmende netbox up`): loader, inventory plugin, validation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from allmende import netbox_server
from allmende.errors import ExitCode
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
    assert proc.returncode == ExitCode.REFUSED
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
    assert check.returncode == ExitCode.REFUSED
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
    assert apply.returncode == ExitCode.REFUSED
    assert "refusing to run" in apply.stdout and "bad-noip" in apply.stdout
    after = set(runs.iterdir()) if runs.exists() else set()
    assert after == before, "a run was started although the inventory has problems"


HOSTILE = HERE / "data" / "hostile-site.yml"
PROXY = "ProxyCommand"


def test_netbox_data_cannot_set_connection_variables(netbox, env, tmp_path):
    loaded = allmende("netbox", "sync", str(HOSTILE), env=env)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    options = {"sites": ["hostile-a"], "role_groups": {"hostile-hc": ["control", "compute"]}}
    path = inventory_file(tmp_path, **options)
    check = allmende("inventory", "check", "-i", str(path), "--json", env=env)
    assert check.returncode == ExitCode.REFUSED, check.stdout + check.stderr
    problems = json.loads(check.stdout)["problems"]
    for device in ("hostile-hc1", "hostile-hc2"):  # the site's config context reaches both
        assert f"device {device} (site hostile-a): config_context: key ceph_osd_wipe_foreign_devices may not" in (
            "\n".join(problems)
        )
    for key in ("ansible_ssh_common_args", "ansible_host"):
        assert any(p.startswith(f"device hostile-hc1 (site hostile-a): config_context: key {key} ") for p in problems)
    assert len(problems) == 4, problems
    assert PROXY not in check.stdout and "10.93.0.99" not in check.stdout  # keys named, values never

    listing = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(path), "--list"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    host = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(path), "--host", "hostile-hc1"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert listing.returncode == 0 and host.returncode == 0, listing.stderr + host.stderr
    for out in (listing.stdout, host.stdout):
        assert PROXY not in out and 'ansible_ssh_common_args"' not in out and "10.93.0.99" not in out
        assert 'ceph_osd_wipe_foreign_devices"' not in out
    hostvars = json.loads(host.stdout, object_hook=lambda d: d.get("__ansible_unsafe", d) if len(d) == 1 else d)
    assert hostvars["ansible_host"] == "10.93.0.11"  # the plugin's own, from the primary IP
    assert hostvars["allmende_data_disks"] == ["/dev/nvme0n1"] and hostvars["allmende_dns_servers"] == ["10.93.0.2"]

    # an operator who wants NetBox to set a protected key names it
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    path = inventory_file(allowed, **options, allowed_context_keys=["ansible_ssh_common_args", "ceph_osd_wipe_*"])
    hostvars = ansible_inventory(path, env)["_meta"]["hostvars"]["hostile-hc1"]
    assert PROXY in hostvars["ansible_ssh_common_args"] and hostvars["ceph_osd_wipe_foreign_devices"] is True
    assert hostvars["ansible_host"] == "10.93.0.11"
    assert hostvars["allmende_inventory_problems"] == [
        "device hostile-hc1 (site hostile-a): config_context: key ansible_host may not come from NetBox: "
        "dropped (plugin option allowed_context_keys allows it)"
    ]


def test_problems_stay_with_their_hosts(netbox, env, tmp_path):
    allmende("netbox", "sync", str(BAD), env=env)
    path = inventory_file(
        tmp_path, sites=["bad-a", "bad-b"], role_groups={"bad-hc": ["control", "compute"], "bad-compute": ["compute"]}
    )
    data = ansible_inventory(path, env)
    hostvars = data["_meta"]["hostvars"]
    assert hostvars["bad-ok"]["allmende_inventory_problems"] == []
    assert [p.split(":")[1].strip() for p in hostvars["bad-noip"]["allmende_inventory_problems"]] == ["primary_ip4"]
    assert all("bad-noip" not in str(v) for h, v in hostvars.items() if h != "bad-noip" and h != "bad-dupip")
    # a group variable of all reaches every host: only the (here no) problems tied to no host are there
    assert all(v["allmende_inventory_global_problems"] == [] for v in hostvars.values())


def playbook(playbook: str, inventory: Path, env, *args: str) -> subprocess.CompletedProcess:
    """ansible-playbook in check mode; a task that reached a host would fail on the missing interpreter."""
    return subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            str(playbook),
            "--check",
            "-e",
            "ansible_connection=local",
            "-e",
            "ansible_python_interpreter=/nonexistent/python3",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def assert_stopped_in_the_first_play(proc: subprocess.CompletedProcess, expected: list[str]) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-3000:]
    assert "the inventory has" in out and "no host was touched" in out, out[-3000:]
    for line in expected:
        assert line in out, f"missing: {line}\n--- got:\n{out[-4000:]}"
    tasks = [line for line in proc.stdout.splitlines() if line.startswith("TASK [")]
    assert tasks == ["TASK [Every problem of the inventory, before any host is touched] " + "*" * 14], tasks
    assert "/nonexistent/python3" not in out and "Gathering Facts" not in out


def test_every_playbook_stops_on_bad_netbox_data_before_any_host(netbox, env, tmp_path):
    allmende("netbox", "sync", str(BAD), env=env)
    path = inventory_file(
        tmp_path,
        sites=["bad-a", "bad-b"],
        role_groups={"bad-hc": ["control", "compute"], "bad-compute": ["compute"]},
        required_networks={"compute": ["tunnel"]},
    )
    expected = [
        "device bad-noip (site bad-a): primary_ip4: missing",
        "ip address 10.92.0.10: address: assigned 2 times (bad-dupip/eth1, bad-ok/eth0)",
        "device bad-outside (site bad-a) interface eth1: address: 192.168.250.5/24 is not inside any prefix",
        "device bad-unmapped (site bad-a): role: role 'bad-unmapped' has no group mapping",
        "device bad-ifaces (site bad-a) interface bond0: mtu: LAG members differ in MTU: ens1f0=9000, ens1f1=1500",
        "device bad-notunnel (site bad-a): interfaces: group compute needs an address in a 'tunnel' prefix",
        "name: duplicate host name",
    ]
    for name, args in {
        "site.yml": (),
        "bootstrap.yml": ("--limit", "bad-ok"),
        "ceph.yml": ("--limit", "control"),
    }.items():
        proc = playbook(ROOT / "playbooks" / name, path, env, *args)
        assert_stopped_in_the_first_play(proc, expected)


def test_every_playbook_stops_on_a_bad_static_inventory(env, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "n1": {
                            "ansible_host": "192.0.2.10",
                            "allmende_interfaces": [{"name": "vlan20", "type": "vlan", "vid": 20}],
                        },
                        "n2": {"ansible_host": "192.0.2.10"},
                    },
                    "children": {"compute": {"hosts": {"n1": None, "n2": None}}},
                }
            }
        )
    )
    expected = [
        "the inventory has 3 problem(s)",
        "host n1 interface vlan20: parent: VLAN interface without a parent interface",
        "hosts n1, n2: ansible_host: all use 192.0.2.10",
        "inventory: group control: no hosts (map a device role to it)",
    ]
    layers = ["site", "bootstrap", "network", "network_compute", "ovn", "libvirt", "ceph", "ceph-rolling-restart"]
    for name in layers:
        proc = playbook(ROOT / "playbooks" / f"{name}.yml", inventory, env, "--limit", "n2")
        assert_stopped_in_the_first_play(proc, expected)


def test_a_good_inventory_passes_once_per_run_and_changes_nothing(env, tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {"n1": {"ansible_host": "192.0.2.11"}, "n2": {"ansible_host": "192.0.2.12"}},
                    "children": {"control": {"hosts": {"n1": None}}},
                }
            }
        )
    )
    proc = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            str(inventory),
            str(HERE / "playbooks" / "validate_twice.yml"),
            "--check",
        ],
        env={**env, "ANSIBLE_CONNECTION": "local"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok: [n1 -> localhost]" in proc.stdout and "checked=True" in proc.stdout
    recap = proc.stdout[proc.stdout.index("PLAY RECAP") :]
    assert "changed=0" in recap and "failed=0" in recap and "skipped=1" in recap
