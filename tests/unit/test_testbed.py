from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from allmende import testbed


def test_macs_are_stable_unique_and_locally_administered():
    a = testbed.mac_for("default", 1, 0)
    assert a == testbed.mac_for("default", 1, 0)
    assert a != testbed.mac_for("default", 2, 0) != testbed.mac_for("other", 1, 0)
    assert int(a.split(":")[0], 16) & 0b10


def test_groups_put_the_control_plane_on_the_first_three_nodes():
    assert testbed.groups_for(1, 3) == ["control", "network", "compute", "storage"]
    assert testbed.groups_for(4, 5) == ["compute", "storage"]
    assert "control" in testbed.groups_for(1, 1)


def test_subnet_choice_skips_used_ones(monkeypatch):
    monkeypatch.setattr(testbed, "used_subnets", lambda: {"10.213.10.0/24", "10.213.11.0/24"})
    assert testbed.pick_subnet(None) == "10.213.12.0/24"
    assert testbed.pick_subnet("192.168.77.0/24") == "192.168.77.0/24"
    with pytest.raises(testbed.TestbedError):
        testbed.pick_subnet("10.0.0.0/28")


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 21, "a_b"])
def test_bad_names_are_refused(name):
    with pytest.raises(testbed.TestbedError):
        testbed.validate_name(name)


def test_state_round_trip(state_dir):
    tb = testbed.Testbed("t1", "img", "net", "10.213.10.0/24", "data")
    tb.nodes.append(
        testbed.Node(
            "node1",
            "c1",
            [testbed.Nic("eth0", "mgmt", "02:00:00:00:00:01", "10.213.10.11/24")],
            [testbed.Disk("/x.img", "/dev/loop9", "1G")],
            ["control"],
        )
    )
    tb.save()
    loaded = testbed.Testbed.load("t1")
    assert loaded == tb
    assert loaded.nodes[0].address == "10.213.10.11"
    assert loaded.group("control") == ["node1"]
    assert loaded.testinfra_hosts() == [f"ssh://node1?ssh_config={tb.ssh_config}"]


def test_the_node_image_follows_the_current_release_suite():
    manifest = yaml.safe_load((ROOT / "releases" / "2026.1.yml").read_text())
    suite = testbed.release_suite()
    assert suite == manifest["base"]["suite"]
    assert testbed.image_for(suite) == f"localhost/allmende-node:{suite}"
    assert testbed.image_suite("localhost/allmende-node:trixie") == "trixie"
    assert testbed.image_suite("localhost:5000/allmende-node") == ""


def _rootfs(tmp_path):
    root = tmp_path / "rootfs"
    for sub in ("etc/apt/apt.conf.d", "etc/apt/sources.list.d", "etc/ssh", "var/lib/dbus", "root"):
        (root / sub).mkdir(parents=True)
    (root / "etc/apt/sources.list").write_text("deb http://x bookworm main\n")
    return root


def test_trixie_rootfs_uses_deb822_sources_and_masks_module_loading(tmp_path, monkeypatch):
    monkeypatch.setattr(testbed, "apt_valid_until_disabled", lambda: False)
    root = _rootfs(tmp_path)
    testbed._configure_rootfs(root, "trixie", "http://deb.debian.org/debian")
    assert not (root / "etc/apt/sources.list").exists()
    sources = (root / "etc/apt/sources.list.d/debian.sources").read_text()
    assert "Suites: trixie trixie-updates\n" in sources
    assert "URIs: http://deb.debian.org/debian-security\nSuites: trixie-security\n" in sources
    assert (root / "etc/systemd/system/systemd-modules-load.service").resolve() == Path("/dev/null")
    assert "PODMAN_IGNORE_CGROUPSV1_WARNING=1" in (root / "etc/environment").read_text()


def test_bookworm_rootfs_keeps_the_one_line_sources(tmp_path, monkeypatch):
    monkeypatch.setattr(testbed, "apt_valid_until_disabled", lambda: False)
    root = _rootfs(tmp_path)
    testbed._configure_rootfs(root, "bookworm", "http://deb.debian.org/debian")
    assert (root / "etc/apt/sources.list").read_text().startswith("deb http://deb.debian.org/debian bookworm main\n")
    assert not (root / "etc/apt/sources.list.d/debian.sources").exists()
