import pytest

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
