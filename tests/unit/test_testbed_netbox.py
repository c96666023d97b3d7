from allmende import testbed, testbed_netbox
from allmende.netbox_sync import check_site_data


def make_testbed(count=4):
    tb = testbed.Testbed("t1", "img", "allmende-t1-mgmt", "10.213.12.0/24", "allmende-t1-data")
    for i in range(1, count + 1):
        tb.nodes.append(
            testbed.Node(
                f"node{i}",
                f"allmende-t1-node{i}",
                [
                    testbed.Nic("eth0", "mgmt", testbed.mac_for("t1", i, 0), f"10.213.12.{10 + i}/24"),
                    testbed.Nic("eth1", "data", testbed.mac_for("t1", i, 1)),
                ],
                [testbed.Disk(f"/d{i}.img", f"/dev/loop{i}", "20G")],
                testbed.groups_for(i, count),
            )
        )
    return tb


def test_networks_sit_next_to_the_management_subnet():
    nets = testbed_netbox.networks(make_testbed())
    assert {k: str(v) for k, v in nets.items()} == {
        "management": "10.213.12.0/24",
        "tunnel": "10.214.12.0/24",
        "storage": "10.215.12.0/24",
    }


def test_site_data_describes_every_node_and_is_a_valid_site_file():
    data = testbed_netbox.site_data(make_testbed())
    assert check_site_data(data, "testbed") == []
    nodes = {d["name"]: d for d in data["devices"]}
    assert nodes["node1"]["role"] == testbed_netbox.HYPERCONVERGED
    assert nodes["node4"]["role"] == testbed_netbox.COMPUTE_STORAGE
    eth0, eth1, bridge = nodes["node2"]["interfaces"]
    assert eth0["addresses"] == [{"address": "10.213.12.12/24", "primary": True}] and eth0["mgmt_only"]
    assert eth1["bridge"] == "br-data" and eth1["mac"] == testbed.mac_for("t1", 2, 1)
    assert bridge["addresses"] == ["10.214.12.12/24", "10.215.12.12/24"]
    assert nodes["node2"]["local_context_data"]["allmende_data_disks"] == ["/dev/loop2"]
    assert nodes["node2"]["local_context_data"]["allmende_ovs_bridges"] == [eth1["bridge"]]
    assert {p["role"] for p in data["prefixes"]} == {"management", "tunnel", "storage"}


def test_every_mapped_group_is_a_testbed_group():
    groups = {g for gs in testbed_netbox.ROLE_GROUPS.values() for g in gs}
    assert groups == {"control", "network", "compute", "storage"}
