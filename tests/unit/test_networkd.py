"""Host networking from the inventory model: validation, MTU rules, rendered networkd files, drift."""

import copy
import random
import sys

import pytest
from conftest import ROOT, load_plugin_module

networkd = load_plugin_module("plugins/module_utils/networkd.py")

# The modules import module_utils through the collection path that `make venv` links.
sys.path.insert(0, str(ROOT / ".build" / "collections"))
files_module = load_plugin_module("plugins/modules/networkd_files.py")

MGMT_MAC = "02:00:00:00:00:01"


def nic(name, **kw):
    return {"name": name, "type": "physical", "enabled": True, "mtu": None, "mac": None, "addresses": [], **kw}


def server():
    """A typical hypervisor: management NIC, LACP bond with VLANs for tunnel and storage, a provider bridge."""
    return [
        nic("eno1", mac=MGMT_MAC, mgmt_only=True, addresses=["10.0.0.11/24"]),
        nic("eno2", mac="02:00:00:00:00:02", lag="bond0"),
        nic("eno3", mac="02:00:00:00:00:03", lag="bond0"),
        {"name": "bond0", "type": "lag", "lag_mode": "802.3ad", "mtu": 9000},
        {"name": "bond0.100", "type": "vlan", "parent": "bond0", "vid": 100, "addresses": ["10.214.10.11/24"]},
        {
            "name": "bond0.200",
            "type": "vlan",
            "parent": "bond0",
            "vid": 200,
            "addresses": ["10.215.10.11/24", "fd00:215::11/64"],
        },
        {"name": "bond0.300", "type": "vlan", "parent": "bond0", "vid": 300, "mtu": 1500, "bridge": "br-provider"},
        {"name": "br-provider", "type": "bridge"},
        nic("eno4"),
    ]


def plan(interfaces, **kw):
    kw.setdefault("host", "hv1")
    return networkd.plan(interfaces, **kw)


def managed(p):
    return {r["name"]: r for r in p["managed"]}


def ok_plan(interfaces, **kw):
    p = plan(interfaces, **kw)
    assert p["problems"] == []
    return p


def render(interfaces, **kw):
    return networkd.units(ok_plan(interfaces, **kw))


def pairs(text):
    return networkd.parse_unit(text)


def values(text, section, key):
    return [v for s, k, v in pairs(text) if s == section and k == key]


# ------------------------------------------------------------------ what is managed


def test_a_server_renders_one_file_per_device_and_link_in_a_stable_order():
    files = render(server())
    assert list(files) == [
        "50-allmende-bond0.100.netdev",
        "50-allmende-bond0.100.network",
        "50-allmende-bond0.200.netdev",
        "50-allmende-bond0.200.network",
        "50-allmende-bond0.300.netdev",
        "50-allmende-bond0.300.network",
        "50-allmende-bond0.netdev",
        "50-allmende-bond0.network",
        "50-allmende-br-provider.netdev",
        "50-allmende-br-provider.network",
        "50-allmende-eno2.network",
        "50-allmende-eno3.network",
    ]
    for text in files.values():
        assert text.startswith("# Managed by allmende.cloud.network")


def test_input_order_does_not_change_the_files():
    first = render(server())
    for seed in range(5):
        shuffled = server()
        random.Random(seed).shuffle(shuffled)
        assert render(shuffled) == first


def test_management_and_unused_interfaces_are_left_alone():
    p = ok_plan(server(), connection_address="10.0.0.11")
    assert "eno1" not in managed(p) and "eno4" not in managed(p)
    assert p["skipped"]["eno1"].startswith("management interface")
    assert p["skipped"]["eno4"].startswith("unused")
    assert p["protected"] == ["eno1"]
    assert p["connection_interface"] == "eno1"


def test_manage_mgmt_opts_in():
    p = ok_plan(server(), manage_mgmt=True, connection_address="10.0.0.11")
    assert "eno1" in managed(p)
    assert p["protected"] == []


def test_disabled_interfaces_are_left_alone_and_may_not_be_referenced():
    data = server()
    data[3]["enabled"] = False  # bond0
    p = plan(data)
    assert p["skipped"]["bond0"] == "disabled"
    assert "hv1: interface bond0.100: parent: bond0 is disabled" in p["problems"]
    assert "hv1: interface eno2: lag: bond0 is disabled" in p["problems"]


def test_a_disabled_lag_member_just_drops_out():
    data = server()
    data[2]["enabled"] = False  # eno3
    p = ok_plan(data)
    assert managed(p)["bond0"]["members"] == ["eno2"]
    assert "eno3" not in managed(p)


# ------------------------------------------------------------------ bonds, VLANs, bridges


def test_bond_with_members_and_mode():
    files = render(server())
    netdev = files["50-allmende-bond0.netdev"]
    assert values(netdev, "NetDev", "Kind") == ["bond"]
    assert values(netdev, "Bond", "Mode") == ["802.3ad"]
    assert values(netdev, "Bond", "LACPTransmitRate") == ["fast"]
    assert values(netdev, "Bond", "TransmitHashPolicy") == ["layer3+4"]
    assert values(netdev, "Bond", "MIIMonitorSec") == ["100ms"]
    for member in ("eno2", "eno3"):
        text = files[f"50-allmende-{member}.network"]
        assert values(text, "Network", "Bond") == ["bond0"]
        assert values(text, "Network", "Address") == []
        assert values(text, "Link", "MTUBytes") == ["9000"]
    assert values(files["50-allmende-bond0.network"], "Network", "VLAN") == ["bond0.100", "bond0.200", "bond0.300"]


def test_bond_options_that_do_not_fit_the_mode_are_left_out():
    data = server()
    data[3]["lag_mode"] = "active-backup"
    netdev = render(data, bond_options={"LACPTransmitRate": "fast", "MIIMonitorSec": "1s", "TransmitHashPolicy": "x"})[
        "50-allmende-bond0.netdev"
    ]
    assert values(netdev, "Bond", "Mode") == ["active-backup"]
    assert values(netdev, "Bond", "MIIMonitorSec") == ["1s"]
    assert values(netdev, "Bond", "LACPTransmitRate") == []
    assert values(netdev, "Bond", "TransmitHashPolicy") == []


def test_lag_mode_defaults_to_lacp_and_is_checked():
    data = server()
    del data[3]["lag_mode"]
    assert managed(ok_plan(data))["bond0"]["lag_mode"] == "802.3ad"
    data[3]["lag_mode"] = "lacp"
    assert any("interface bond0: lag_mode: 'lacp' is not one of" in x for x in plan(data)["problems"])


def test_vlan_on_a_bond_and_on_a_nic():
    data = [
        nic("eth1", mtu=9000),
        {"name": "eth1.42", "type": "vlan", "parent": "eth1", "vid": 42, "addresses": ["192.0.2.5/28"]},
    ]
    files = render(data + server())
    vlan = files["50-allmende-eth1.42.netdev"]
    assert values(vlan, "NetDev", "Kind") == ["vlan"]
    assert values(vlan, "VLAN", "Id") == ["42"]
    parent = files["50-allmende-eth1.network"]
    assert values(parent, "Network", "VLAN") == ["eth1.42"]
    assert values(parent, "Network", "Address") == []
    assert values(parent, "Network", "LinkLocalAddressing") == ["no"]
    assert values(parent, "Link", "RequiredForOnline") == ["no"]
    assert values(files["50-allmende-bond0.200.netdev"], "VLAN", "Id") == ["200"]
    assert managed(ok_plan(data))["eth1.42"]["lowers"] == ["eth1"]


def test_bridge_with_members_options_and_mac():
    data = server()
    data[7]["mac"] = "02:00:00:00:aa:01"
    files = render(data, bridge_options={"STP": True, "ForwardDelaySec": 4})
    netdev = files["50-allmende-br-provider.netdev"]
    assert values(netdev, "NetDev", "Kind") == ["bridge"]
    assert values(netdev, "NetDev", "MACAddress") == ["02:00:00:00:aa:01"]
    assert values(netdev, "Bridge", "STP") == ["yes"]
    assert values(netdev, "Bridge", "ForwardDelaySec") == ["4"]
    port = files["50-allmende-bond0.300.network"]
    assert values(port, "Network", "Bridge") == ["br-provider"]
    p = ok_plan(data)
    assert managed(p)["br-provider"]["members"] == ["bond0.300"]
    assert managed(p)["bond0.300"]["master"] == "br-provider"


def test_a_bridge_without_options_has_no_bridge_section():
    netdev = render([{"name": "br-x", "type": "bridge", "addresses": ["10.9.0.1/24"]}])["50-allmende-br-x.netdev"]
    assert [s for s, _k, _v in pairs(netdev)] == ["NetDev", "NetDev"]


def test_mtu_lives_in_network_files_only_so_an_mtu_change_never_recreates_a_device():
    before = render(server())
    data = server()
    data[3]["mtu"] = 8000
    after = render(data)
    for name in before:
        if name.endswith(".netdev"):
            assert before[name] == after[name], name
            assert "MTU" not in before[name]


# ------------------------------------------------------------------ MTU rules


def test_mtu_inheritance():
    m = managed(ok_plan(server()))
    assert m["eno2"]["mtu"] == m["eno3"]["mtu"] == 9000  # LAG members take the LAG's
    assert m["bond0.100"]["mtu"] == 9000  # a VLAN takes its parent's
    assert m["bond0.300"]["mtu"] == 1500  # explicit wins
    assert m["br-provider"]["mtu"] == 1500  # a bridge runs at its port's


def test_a_lag_takes_its_members_mtu_and_a_parent_its_largest_vlan():
    data = [
        nic("eth2", lag="bond1", mtu=9000),
        nic("eth3", lag="bond1", mtu=9000),
        {"name": "bond1", "type": "lag"},
        nic("eth4"),
        {"name": "eth4.7", "type": "vlan", "parent": "eth4", "vid": 7, "mtu": 1600},
        {"name": "eth4.8", "type": "vlan", "parent": "eth4", "vid": 8, "mtu": 9000},
        {"name": "eth4.9", "type": "vlan", "parent": "eth4", "vid": 9},
    ]
    m = managed(ok_plan(data))
    assert m["bond1"]["mtu"] == 9000
    assert m["eth4"]["mtu"] == 9000
    assert m["eth4.9"]["mtu"] == 9000


def test_no_mtu_anywhere_leaves_the_kernel_default():
    data = [nic("eth1", bridge="br0"), {"name": "br0", "type": "bridge", "addresses": ["10.1.0.1/24"]}]
    files = render(data)
    assert values(files["50-allmende-br0.network"], "Link", "MTUBytes") == []
    assert values(files["50-allmende-eth1.network"], "Link", "MTUBytes") == []


def test_mtu_conflicts_are_problems():
    data = [
        nic("eth2", lag="bond1", mtu=9000),
        nic("eth3", lag="bond1", mtu=1500),
        {"name": "bond1", "type": "lag"},
        {"name": "bond1.5", "type": "vlan", "parent": "bond1", "vid": 5, "mtu": 9100},
        nic("eth5", bridge="br5", mtu=1400),
        {"name": "br5", "type": "bridge", "mtu": 1500},
    ]
    problems = plan(data)["problems"]
    assert (
        "hv1: interface bond1: mtu: LAG members and the LAG must have the same MTU: bond1=9000, eth2=9000, eth3=1500"
        in (problems)
    )
    assert "hv1: interface bond1.5: mtu: 9100 is larger than the MTU of its parent bond1 (9000)" in problems
    assert "hv1: interface eth5: mtu: 1400 is smaller than the MTU of its bridge br5 (1500)" in problems


# ------------------------------------------------------------------ addresses


def test_ipv4_and_ipv6_addresses():
    files = render(server())
    storage = files["50-allmende-bond0.200.network"]
    assert values(storage, "Network", "Address") == ["10.215.10.11/24", "fd00:215::11/64"]
    assert values(storage, "Network", "LinkLocalAddressing") == ["ipv6"]
    tunnel = files["50-allmende-bond0.100.network"]
    assert values(tunnel, "Network", "LinkLocalAddressing") == ["no"]
    assert values(tunnel, "Network", "IPv6AcceptRA") == ["no"]
    assert values(tunnel, "Network", "DHCP") == ["no"]
    assert values(tunnel, "Network", "ConfigureWithoutCarrier") == ["yes"]
    assert values(tunnel, "Link", "RequiredForOnline") == []


def test_addresses_are_normalised():
    data = [nic("eth1", addresses=["FD00:0:0::0011/64", " 10.1.0.5/24"])]
    assert managed(ok_plan(data))["eth1"]["addresses"] == ["fd00::11/64", "10.1.0.5/24"]


def test_bad_and_duplicate_addresses():
    data = [
        nic("eth1", addresses=["10.1.0.5", "10.1.0.300/24", "10.1.0.6/24", "10.1.0.6/24", "127.0.0.2/8"]),
        nic("eth2", addresses=["10.1.0.6/25"]),
    ]
    problems = plan(data)["problems"]
    assert any(p.startswith("hv1: interface eth1: addresses: '10.1.0.5' is not a CIDR address") for p in problems)
    assert any(p.startswith("hv1: interface eth1: addresses: '10.1.0.300/24' is not a CIDR") for p in problems)
    assert "hv1: interface eth1: addresses: 10.1.0.6/24 is listed twice" in problems
    assert "hv1: interface eth1: addresses: 127.0.0.2/8 cannot be an interface address" in problems
    assert "hv1: interface eth2: addresses: 10.1.0.6 is also on eth1" in problems


# ------------------------------------------------------------------ routes


def test_routes_go_to_the_interface_holding_the_gateway():
    routes = [
        {"to": "10.216.0.0/16", "via": "10.214.10.1"},
        {"to": "fd00:300::/48", "via": "fd00:215::1", "metric": 50},
        {"to": "default", "via": "10.215.10.254", "metric": "200"},
    ]
    p = ok_plan(server(), routes=routes)
    assert [r["to"] for r in managed(p)["bond0.100"]["routes"]] == ["10.216.0.0/16"]
    files = networkd.units(p)
    storage = files["50-allmende-bond0.200.network"]
    assert ("Route", "Destination", "fd00:300::/48") in pairs(storage)
    assert ("Route", "Metric", "50") in pairs(storage)
    assert ("Route", "Gateway", "10.215.10.254") in pairs(storage)
    assert ("Route", "Metric", "200") in pairs(storage)
    default_route = storage.split("[Route]")[2]
    assert "Destination" not in default_route


def test_onlink_route_with_an_interface():
    routes = [{"to": "203.0.113.0/24", "via": "198.51.100.1", "onlink": True, "interface": "bond0.100"}]
    text = render(server(), routes=routes)["50-allmende-bond0.100.network"]
    assert ("Route", "GatewayOnLink", "yes") in pairs(text)


def test_route_problems():
    routes = [
        {"to": "10.216.0.0/16", "via": "10.99.0.1"},
        {"to": "10.216.0.1/16", "via": "10.214.10.1"},
        {"to": "fd00::/64", "via": "10.214.10.1"},
        {"to": "10.217.0.0/16", "via": "10.0.0.1"},
        {"to": "10.218.0.0/16", "via": "10.214.10.11"},
        {"via": "10.214.10.1"},
        {"to": "10.219.0.0/16", "via": "10.214.10.1", "interface": "eno4"},
        "10.0.0.0/8 via 10.214.10.1",
    ]
    problems = plan(server(), routes=routes)["problems"]
    text = "\n".join(problems)
    assert "route 10.216.0.0/16: via: no managed interface has an address in a subnet holding 10.99.0.1" in text
    assert "route 10.216.0.1/16: to: '10.216.0.1/16' is not a network" in text
    assert "route fd00::/64: via: fd00::/64 and 10.214.10.1 are different IP versions" in text
    assert "route 10.217.0.0/16: via: 10.0.0.1 is on eno1, which the role leaves alone" in text
    assert "route 10.218.0.0/16: via: 10.214.10.11 is an address of this host (bond0.100)" in text
    assert "route #5: to: missing" in text
    assert "route 10.219.0.0/16: interface: eno4 is not managed by the role" in text
    assert "route #7: not a mapping" in text
    assert len(problems) == 8


# ------------------------------------------------------------------ matching physical NICs


def test_physical_nics_match_by_permanent_mac_by_default():
    text = render(server())["50-allmende-eno2.network"]
    assert [(k, v) for s, k, v in pairs(text) if s == "Match"] == [
        ("Type", "ether"),
        ("PermanentMACAddress", "02:00:00:00:00:02"),
    ]
    assert [(k, v) for s, k, v in pairs(render(server())["50-allmende-bond0.network"]) if s == "Match"] == [
        ("Name", "bond0")
    ]
    assert values(render([nic("eth5", addresses=["10.5.0.1/24"])])["50-allmende-eth5.network"], "Match", "Name") == [
        "eth5"
    ]


def test_current_mac_matching_skips_lag_members():
    data = [*server(), nic("eth9", mac="02:00:00:00:00:09", addresses=["10.9.9.9/24"])]
    files = render(data, match_mac="current")
    assert [(k, v) for s, k, v in pairs(files["50-allmende-eth9.network"]) if s == "Match"] == [
        ("Type", "ether"),
        ("MACAddress", "02:00:00:00:00:09"),
    ]
    assert [(k, v) for s, k, v in pairs(files["50-allmende-eno2.network"]) if s == "Match"] == [("Name", "eno2")]


def test_mac_matching_off_and_invalid_setting():
    text = render(server(), match_mac="off")["50-allmende-eno2.network"]
    assert [k for s, k, _v in pairs(text) if s == "Match"] == ["Name"]
    assert any("network_match_mac: 'sometimes'" in p for p in plan(server(), match_mac="sometimes")["problems"])


# ------------------------------------------------------------------ validation lists everything


def test_every_problem_is_listed_at_once_with_host_interface_and_field():
    data = [
        nic("eth1", lag="bond9"),
        nic("eth2", bridge="eth1"),
        {"name": "vlan5", "type": "vlan", "parent": "eth7"},
        {"name": "vlan6", "type": "vlan", "vid": 6},
        {"name": "vlan7", "type": "vlan", "parent": "eth1", "vid": 5000},
        nic("eth1"),
        {"name": "this-name-is-too-long", "type": "physical"},
        {"name": "eth3", "type": "ethernet"},
        nic("eth4", mtu=20),
        nic("eth5", mac="zz:00:00:00:00:01", addresses=["x/24"]),
        {"name": "bond1", "type": "lag"},
        "eth6",
    ]
    problems = plan(data, host="node7")["problems"]
    expected = [
        "node7: interface eth1: lag: bond9 is not an interface of this host",
        "node7: interface eth2: bridge: eth1 is a physical interface, not a bridge",
        "node7: interface vlan5: vid: a VLAN needs a VLAN id",
        "node7: interface vlan5: parent: eth7 is not an interface of this host",
        "node7: interface vlan6: parent: a VLAN needs a parent interface",
        "node7: interface vlan7: vid: 5000 is not a VLAN id (1-4094)",
        "node7: interface eth1: name: duplicate (items #0 and #5)",
        "node7: interface #6: name: 'this-name-is-too-long' is not a valid interface name (1-15 of A-Z a-z 0-9 _ . -)",
        "node7: interface eth3: type: 'ethernet' is not one of physical, lag, vlan, bridge, virtual",
        "node7: interface eth4: mtu: 20 is not a number between 68 and 65535",
        "node7: interface eth5: mac: 'zz:00:00:00:00:01' is not a MAC address",
        "node7: interface bond1: lag: a LAG needs members (no enabled interface has lag: bond1)",
        "node7: interface #11: not a mapping",
    ]
    for line in expected:
        assert line in problems, line
    assert any(p.startswith("node7: interface eth5: addresses: 'x/24' is not a CIDR address") for p in problems)
    with pytest.raises(networkd.PlanError) as err:
        networkd.units(plan(data, host="node7"))
    assert "node7: interface vlan6: parent" in str(err.value)


def test_structural_problems():
    data = [
        nic("eth1", lag="bond0", bridge="br0", addresses=["10.0.1.1/24"]),
        nic("eth2", lag="bond0"),
        {"name": "bond0", "type": "lag"},
        {"name": "br0", "type": "bridge", "bridge": "br1"},
        {"name": "br1", "type": "bridge"},
        {"name": "eth2.5", "type": "vlan", "parent": "eth2", "vid": 5},
        {"name": "bond0.5", "type": "vlan", "parent": "bond0", "vid": 5},
        {"name": "bond0.5b", "type": "vlan", "parent": "bond0", "vid": 5},
        {"name": "bond0.5.6", "type": "vlan", "parent": "bond0.5", "vid": 6},
        {"name": "br1.3", "type": "lag", "lag": "bond0"},
    ]
    text = "\n".join(plan(data)["problems"])
    assert "interface eth1: bridge: a LAG member cannot also be a bridge port; put bond0 in the bridge" in text
    assert "interface eth1: addresses: a LAG member carries no addresses; put them on bond0" in text
    assert "interface br0: bridge: a bridge cannot be a port of another bridge" in text
    assert "interface eth2.5: parent: eth2 is a member of bond0; put the VLAN on bond0" in text
    assert "interface bond0.5b: vid: VLAN 5 on bond0 is also bond0.5" in text
    assert "interface bond0.5.6: parent: bond0.5 is a VLAN itself; stacked VLANs (QinQ) are not supported" in text
    assert "interface br1.3: lag: only physical interfaces can be LAG members (this is lag)" in text


# ------------------------------------------------------------------ management safety


def test_the_connection_interface_must_be_marked_mgmt_only():
    data = server()
    data[0]["mgmt_only"] = False
    problems = plan(data, connection_address="10.0.0.11")["problems"]
    assert problems == [
        "hv1: interface eno1: mgmt_only: carries 10.0.0.11, the address Ansible connects to, but is not marked "
        "mgmt_only; mark it mgmt_only, or set network_manage_mgmt: true to let the role reconfigure it"
    ]
    assert plan(data, connection_address="10.0.0.11", manage_mgmt=True)["problems"] == []


def test_the_live_connection_interface_is_found_even_if_the_data_has_another_address():
    data = server()
    data[0]["mgmt_only"] = False
    data[0]["addresses"] = ["10.0.0.99/24"]
    live = [{"ifname": "eno1", "address": MGMT_MAC, "addr_info": [{"local": "10.0.0.11", "prefixlen": 24}]}]
    p = plan(data, connection_address="10.0.0.11", live=live)
    assert p["connection_interface"] == "eno1"
    assert any("interface eno1: mgmt_only: carries 10.0.0.11" in x for x in p["problems"])


def test_a_management_vlan_protects_its_bond_and_members():
    data = server()
    data.append({"name": "bond0.10", "type": "vlan", "parent": "bond0", "vid": 10, "mgmt_only": True})
    p = plan(data)
    assert {"bond0.10", "bond0", "eno2", "eno3"} <= set(p["protected"])
    assert p["skipped"]["bond0"] == "under the management interface bond0.10, left alone"
    assert "hv1: interface bond0.100: parent: bond0 is part of the management connection, which the role " in (
        "\n".join(p["problems"])
    )
    assert plan(data, manage_mgmt=True)["problems"] == []


def test_a_bridge_cannot_take_the_management_nic_as_a_port():
    data = [nic("eno1", mgmt_only=True, bridge="br0"), {"name": "br0", "type": "bridge", "addresses": ["10.1.1.1/24"]}]
    assert "eno1 is part of the management connection" in "\n".join(plan(data)["problems"])


# ------------------------------------------------------------------ the host as it is


def live_nics(*links):
    return [
        {"ifname": name, "address": address, **({"permaddr": perm} if perm else {}), **extra}
        for name, address, perm, extra in links
    ]


def test_nics_are_found_by_mac_whatever_the_host_calls_them():
    live = live_nics(
        ("eno1", MGMT_MAC, None, {}),
        ("enp2s0f0", "02:00:00:00:00:02", None, {}),
        ("enp2s0f1", "02:00:00:00:00:02", "02:00:00:00:00:03", {}),  # enslaved: current MAC is the bond's
        ("bond0", "02:00:00:00:00:02", None, {"linkinfo": {"info_kind": "bond"}}),
    )
    p = ok_plan(server(), live=live)
    assert p["renamed"] == {"eno2": "enp2s0f0", "eno3": "enp2s0f1"}
    m = managed(p)
    assert (m["eno2"]["link"], m["eno3"]["link"], m["bond0"]["link"]) == ("enp2s0f0", "enp2s0f1", "bond0")
    assert m["bond0"]["lowers"] == ["eno2", "eno3"]
    assert m["bond0"]["lower_links"] == ["enp2s0f0", "enp2s0f1"]
    assert m["eno2"]["network_file"] == "50-allmende-eno2.network"


def test_live_checks_macs_names_and_existing_devices():
    data = [*server(), nic("eth7", addresses=["10.7.0.1/24"])]
    live = live_nics(
        ("eno1", MGMT_MAC, None, {}),
        ("eno2", "02:00:00:00:00:09", None, {}),
        ("x1", "02:00:00:00:00:03", None, {}),
        ("x2", "02:00:00:00:00:03", None, {"linkinfo": {"info_kind": "veth"}}),
        ("br-provider", "02:00:00:00:00:09", None, {"linkinfo": {"info_kind": "veth"}}),
    )
    assert plan(data, live=live)["problems"] == [
        "hv1: interface br-provider: type: the host already has br-provider as a veth device, not a bridge",
        "hv1: interface eno2: mac: no interface of the host has the permanent MAC 02:00:00:00:00:02",
        "hv1: interface eno3: mac: more than one interface of the host has 02:00:00:00:00:03",
        "hv1: interface eth7: name: the host has no interface eth7",
    ]


def test_the_connection_is_recognised_through_the_mac_of_a_renamed_nic():
    data = [
        nic("eth0", mac=MGMT_MAC, mgmt_only=True, addresses=["10.0.0.11/24"]),
        nic("eth1", mac="02:00:00:00:00:05", bridge="br-data", mtu=1450),
        {"name": "br-data", "type": "bridge", "addresses": ["10.214.20.11/24"]},
    ]
    live = live_nics(
        ("eth0", "02:00:00:00:00:05", None, {"linkinfo": {"info_kind": "veth"}}),
        ("eth1", MGMT_MAC, None, {"linkinfo": {"info_kind": "veth"}, "addr_info": [{"local": "10.0.0.11"}]}),
    )
    p = ok_plan(data, live=live, match_mac="current", connection_address="10.0.0.11")
    assert p["connection_interface"] == "eth1"
    assert p["protected"] == ["eth0"]
    assert p["protected_links"] == ["eth1"]
    assert p["renamed"] == {"eth1": "eth0"}
    assert managed(p)["br-data"]["lower_links"] == ["eth0"]
    text = networkd.units(p)["50-allmende-eth1.network"]
    assert values(text, "Match", "MACAddress") == ["02:00:00:00:00:05"]
    assert values(text, "Match", "Name") == []


def test_interfaces_configured_by_ifupdown_are_refused():
    config = "auto lo\niface lo inet loopback\nallow-hotplug eno2\niface eno2 inet manual # old\nauto eno1\n"
    assert networkd.ifupdown_names(config) == {"eno1", "eno2"}
    problems = plan(server(), ifupdown_config=config)["problems"]
    assert problems == [
        "hv1: interface eno2: also configured in /etc/network/interfaces (ifupdown); remove it there first, "
        "or the two fight over it"
    ]


def test_without_udev_networkd_needs_the_setting():
    problems = plan(server(), udev_active=False)["problems"]
    assert problems == [
        "hv1: systemd-udevd: does not run here, so systemd-networkd would leave every link pending; on container "
        "hosts set network_networkd_without_udev: true"
    ]
    assert plan(server(), udev_active=False, without_udev=True)["problems"] == []
    assert plan([nic("eth0", mgmt_only=True)], udev_active=False)["problems"] == []


def test_a_shared_machine_id_is_refused_for_bridges_and_bonds_without_a_mac():
    problems = plan(server(), machine_id_shared_with=["hv2"])["problems"]
    assert [p.split(":")[1] for p in problems] == [" interface bond0", " interface br-provider"]
    assert "which hv2 share(s) with this host" in problems[0]
    data = server()
    data[3]["mac"] = "02:00:00:00:bb:01"
    data[7]["mac"] = "02:00:00:00:bb:02"
    assert plan(data, machine_id_shared_with=["hv2"])["problems"] == []


def test_networks_must_agree_with_the_interfaces():
    networks = {
        "tunnel": {"interface": "bond0.100", "address": "10.214.10.11", "cidr": "10.214.10.11/24"},
        "storage": {"interface": "bond0.200", "cidr": "10.215.10.12/24"},
        "provider": {"interface": "br-nope"},
        "broken": "x",
    }
    problems = plan(server(), networks=networks)["problems"]
    assert problems == [
        "hv1: network broken: not a mapping",
        "hv1: network provider: interface: br-nope is not an interface of this host",
        "hv1: network storage: cidr: 10.215.10.12/24 is not an address of bond0.200",
    ]


# ------------------------------------------------------------------ DNS


def test_dns_modes():
    dns = ok_plan(server(), dns_servers=["10.0.0.2", " 10.0.0.3"], dns_search=["example.org."])["dns"]
    assert dns == {"mode": "resolvconf", "servers": ["10.0.0.2", "10.0.0.3"], "search": ["example.org"], "manage": True}
    assert ok_plan(server(), dns_mode="none", dns_servers=["10.0.0.2"])["dns"]["manage"] is False
    assert ok_plan(server(), dns_servers=[])["dns"]["manage"] is False


def test_dns_problems():
    text = "\n".join(
        plan(server(), dns_servers=["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "dns1"], dns_search=["a..b"])[
            "problems"
        ]
    )
    assert "allmende_dns_servers: 'dns1' is not an IP address" in text
    assert "allmende_dns_servers: /etc/resolv.conf takes at most 3 name servers, got 4" in text
    assert "network_dns_search: 'a..b' is not a domain name" in text
    linked = plan(server(), dns_servers=["10.0.0.1"], resolv_conf={"link": "../run/systemd/resolve/stub-resolv.conf"})
    assert "is a symbolic link to ../run/systemd/resolve/stub-resolv.conf" in linked["problems"][0]
    mounted = plan(server(), dns_mode="resolved", dns_servers=["10.0.0.1"], resolv_conf={"mount": True})
    assert "is mounted over" in mounted["problems"][0]
    assert plan(server(), dns_servers=["10.0.0.1"], resolv_conf={"mount": True})["problems"] == []
    assert "network_dns_mode: 'dnsmasq' is not one of" in plan(server(), dns_mode="dnsmasq")["problems"][0]


# ------------------------------------------------------------------ drift


def live_for(p, routes=()):
    """The live state a host would report if it matched the plan exactly."""
    links = []
    for rec in p["managed"]:
        info = {}
        if rec["kind"]:
            info = {"info_kind": rec["kind"], "info_data": {}}
            if rec["kind"] == "vlan":
                info["info_data"]["id"] = rec["vid"]
            if rec["kind"] == "bond":
                info["info_data"]["mode"] = rec["lag_mode"]
        addr_info = []
        for a in rec["addresses"]:
            ip, prefix = a.split("/")
            addr_info.append({"local": ip, "prefixlen": int(prefix), "scope": "global"})
        link = {
            "ifname": rec["name"],
            "flags": ["BROADCAST", "UP"],
            "mtu": rec["mtu"] or 1500,
            "linkinfo": info,
            "addr_info": addr_info,
        }
        if rec["master"]:
            link["master"] = rec["master"]
        if rec["kind"] == "vlan":
            link["link"] = rec["parent"]
        links.append(link)
    return {
        "links": links,
        "routes": list(routes),
        "networkd_active": True,
        "networkd_states": {r["name"]: "configured" for r in p["managed"]},
    }


def find(state, name):
    return next(x for x in state["links"] if x["ifname"] == name)


def test_no_drift_when_the_host_matches():
    routes = [{"to": "10.216.0.0/16", "via": "10.214.10.1"}]
    p = ok_plan(server(), routes=routes)
    live_routes = [{"dst": "10.216.0.0/16", "gateway": "10.214.10.1", "dev": "bond0.100"}]
    assert networkd.drift(p, live_for(p, live_routes)) == []
    assert networkd.drift(p, live_for(p, live_routes), names_only=True) == []


def test_drift_findings():
    routes = [{"to": "10.216.0.0/16", "via": "10.214.10.1"}]
    p = ok_plan(server(), routes=routes)
    state = live_for(p)
    find(state, "bond0")["mtu"] = 1500
    find(state, "bond0")["linkinfo"]["info_data"]["mode"] = "balance-rr"
    find(state, "bond0.100")["addr_info"] = [
        {"local": "10.214.10.99", "prefixlen": 24, "scope": "global"},
        {"local": "fe80::1", "prefixlen": 64, "scope": "link", "dadfailed": True},
    ]
    find(state, "bond0.200")["linkinfo"]["info_data"]["id"] = 201
    del find(state, "eno3")["master"]
    find(state, "br-provider")["flags"] = ["BROADCAST"]
    state["links"] = [x for x in state["links"] if x["ifname"] != "eno2"]
    state["networkd_states"]["eno3"] = "unmanaged"
    found = networkd.drift(p, state)
    assert found == [
        "hv1: bond0: bond mode is balance-rr, expected 802.3ad",
        "hv1: bond0: MTU is 1500, expected 9000",
        "hv1: bond0.100: address 10.214.10.11/24 is missing",
        "hv1: bond0.100: has address 10.214.10.99/24, which the inventory does not list",
        "hv1: bond0.100: address fe80::1 failed duplicate address detection",
        "hv1: bond0.200: VLAN id is 201, expected 200",
        "hv1: br-provider: is down",
        "hv1: eno2: missing on the host",
        "hv1: eno3: systemd-networkd state is unmanaged, expected configured (no .network file matches it: is "
        "02:00:00:00:00:03 its permanent MAC?)",
        "hv1: eno3: master is none, expected bond0",
        "hv1: bond0.100: route to 10.216.0.0/16 via 10.214.10.1 is missing",
    ]
    assert networkd.drift(p, state, names_only=True) == ["bond0", "bond0.100", "bond0.200", "br-provider", "eno3"]
    renamed = copy.deepcopy(live_for(p, [{"dst": "10.216.0.0/16", "gateway": "10.214.10.1", "dev": "bond0.100"}]))
    find(renamed, "eno2")["ifname"] = "enp2s0f0"
    find(renamed, "enp2s0f0")["mtu"] = 1500
    p2 = copy.deepcopy(p)
    managed(p2)["eno2"]["link"] = "enp2s0f0"
    assert networkd.drift(p2, renamed) == ["hv1: eno2 (enp2s0f0 on the host): MTU is 1500, expected 9000"]
    assert networkd.drift(p2, renamed, names_only=True) == ["enp2s0f0"]
    stopped = copy.deepcopy(live_for(p, [{"dst": "10.216.0.0/16", "gateway": "10.214.10.1", "dev": "bond0.100"}]))
    stopped["networkd_active"] = False
    assert networkd.drift(p, stopped) == ["hv1: systemd-networkd: is not running"]


# ------------------------------------------------------------------ unit files and the files module


def test_parse_unit_and_unit_name():
    text = "# c\n[Match]\nName=eth1 eth2\n\n[Network]\n; x\nAddress = 10.0.0.1/24\n"
    assert networkd.parse_unit(text) == [("Match", "Name", "eth1 eth2"), ("Network", "Address", "10.0.0.1/24")]
    assert networkd.unit_name(text, "Match") == "eth1"
    assert networkd.unit_name(text, "NetDev") is None


def test_files_module_finds_links_by_name_or_mac():
    macs = {("MACAddress", "02:00:00:00:00:05"): "eth0", ("PermanentMACAddress", "02:00:00:00:00:06"): "eno1"}
    assert files_module.matched_link("[Match]\nName=br0\n", macs) == "br0"
    assert files_module.matched_link("[Match]\nType=ether\nMACAddress=02:00:00:00:00:05\n", macs) == "eth0"
    assert files_module.matched_link("[Match]\nPermanentMACAddress=02:00:00:00:00:06\n", macs) == "eno1"
    assert files_module.matched_link("[Match]\nMACAddress=02:00:00:00:00:07\n", macs) is None
    written, _removed, changes = files_module.compare(
        {}, {"50-allmende-eth1.network": "[Match]\nType=ether\nMACAddress=02:00:00:00:00:05\n"}, macs
    )
    assert written == ["50-allmende-eth1.network"]
    assert changes["links"] == ["eth0"]


def test_files_module_classifies_changes():
    current = {
        "50-allmende-eth1.network": "[Match]\nName=eth1\n[Link]\nMTUBytes=1500\n",
        "50-allmende-eth2.network": "[Match]\nName=eth2\n",
        "50-allmende-br0.netdev": "[NetDev]\nName=br0\nKind=bridge\n",
        "50-allmende-br0.network": "[Match]\nName=br0\n",
        "50-allmende-bond0.netdev": "[NetDev]\nName=bond0\nKind=bond\n",
    }
    wanted = {
        "50-allmende-eth1.network": "[Match]\nName=eth1\n[Link]\nMTUBytes=9000\n",
        "50-allmende-br0.netdev": "[NetDev]\nName=br0\nKind=bridge\n[Bridge]\nSTP=yes\n",
        "50-allmende-br0.network": "[Match]\nName=br0\n",
        "50-allmende-vlan5.netdev": "[NetDev]\nName=vlan5\nKind=vlan\n[VLAN]\nId=5\n",
    }
    write, remove, changes = files_module.compare(current, wanted)
    assert write == ["50-allmende-br0.netdev", "50-allmende-eth1.network", "50-allmende-vlan5.netdev"]
    assert remove == ["50-allmende-bond0.netdev", "50-allmende-eth2.network"]
    assert changes == {
        "links": ["eth1", "eth2"],
        "netdevs_added": ["vlan5"],
        "netdevs_changed": ["br0"],
        "netdevs_removed": ["bond0"],
    }
    assert files_module.compare(wanted, wanted) == ([], [], files_module.empty_changes())
    merged = files_module.merge(changes, {"links": ["br0", "eth1"], "netdevs_added": []})
    assert merged["links"] == ["br0", "eth1", "eth2"]


def test_files_module_only_reads_its_own_files(tmp_path):
    (tmp_path / "50-allmende-eth1.network").write_text("[Match]\nName=eth1\n")
    (tmp_path / "10-other.network").write_text("[Match]\nName=eth9\n")
    (tmp_path / "50-allmende-notes.txt").write_text("x")
    assert list(files_module.existing_files(str(tmp_path), "50-allmende-")) == ["50-allmende-eth1.network"]
    assert files_module.existing_files(str(tmp_path / "missing"), "50-allmende-") == {}
    pending = tmp_path / "pending.json"
    assert files_module.load_pending(str(pending)) == files_module.empty_changes()
    pending.write_text('{"links": ["eth1"]}')
    assert files_module.load_pending(str(pending))["links"] == ["eth1"]
    pending.write_text("not json")
    assert files_module.load_pending(str(pending)) == files_module.empty_changes()


# ------------------------------------------------------------------ Open vSwitch bridges


def ovs_host(**bridge):
    """The testbed's data NIC as port of br-data carrying tunnel and storage addresses."""
    return [
        nic("eth0", mac=MGMT_MAC, mgmt_only=True, addresses=["10.0.0.11/24"]),
        nic("eth1", mac="02:00:00:00:00:02", mtu=1450, bridge="br-data"),
        {"name": "br-data", "type": "bridge", "addresses": ["10.214.0.11/16", "10.215.0.11/16"], **bridge},
    ]


def test_an_ovs_bridge_gets_a_network_file_but_no_netdev_and_its_port_no_bridge_setting():
    for p in (ok_plan(ovs_host(bridge_kind="ovs")), ok_plan(ovs_host(), ovs_bridges=["br-data"])):
        files = networkd.units(p)
        assert sorted(files) == ["50-allmende-br-data.network", "50-allmende-eth1.network"]
        bridge = files["50-allmende-br-data.network"]
        assert values(bridge, "Match", "Name") == ["br-data"]
        assert values(bridge, "Network", "Address") == ["10.214.0.11/16", "10.215.0.11/16"]
        assert values(bridge, "Link", "MTUBytes") == ["1450"]  # from its port, as for Linux bridges
        port = files["50-allmende-eth1.network"]
        assert values(port, "Network", "Bridge") == []
        assert values(port, "Network", "Address") == []
        assert values(port, "Link", "MTUBytes") == ["1450"]
        recs = managed(p)
        assert recs["br-data"]["ovs"] and recs["br-data"]["kind"] is None
        assert recs["eth1"]["ovs_bridge"] == "br-data" and recs["eth1"]["master"] is None
        assert p["ovs_bridges"] == ["br-data"]
    linux = networkd.units(ok_plan(ovs_host()))
    assert values(linux["50-allmende-br-data.netdev"], "NetDev", "Kind") == ["bridge"]
    assert values(linux["50-allmende-eth1.network"], "Network", "Bridge") == ["br-data"]


def test_ovs_bridge_kind_is_checked():
    p = plan(ovs_host(bridge_kind="openflow"))
    assert p["problems"] == ["hv1: interface br-data: bridge_kind: 'openflow' is not one of linux, ovs"]
    data = ovs_host()
    data[1]["bridge_kind"] = "ovs"
    assert plan(data)["problems"] == [
        "hv1: interface eth1: bridge_kind: only bridges can be Open vSwitch bridges (this is physical)"
    ]
    assert plan(ovs_host(), ovs_bridges=["eth1", "br-nope"])["problems"] == [
        "hv1: interface eth1: bridge_kind: only bridges can be Open vSwitch bridges (this is physical)",
        "hv1: allmende_ovs_bridges: br-nope is not an interface of this host",
    ]


def live_link(name, kind=None, mac=None, **kw):
    return {"ifname": name, "address": mac, "linkinfo": {"info_kind": kind} if kind else {}, **kw}


def test_an_ovs_bridge_the_host_lacks_waits_for_open_vswitch_and_is_not_drift():
    live = [live_link("eth0", "veth", MGMT_MAC), live_link("eth1", "veth", "02:00:00:00:00:02")]
    p = ok_plan(ovs_host(bridge_kind="ovs"), live=live, match_mac="current", connection_address="10.0.0.11")
    assert p["ovs_waiting"] == ["br-data"]
    state = {
        "links": [{**live[1], "flags": ["UP"], "mtu": 1450, "addr_info": []}],
        "routes": [],
        "networkd_active": True,
        "networkd_states": {"eth1": "configured"},
    }
    assert networkd.drift(p, state) == []
    # once Open vSwitch made it (a tap on the userspace datapath), its addresses are compared
    tap = {"ifname": "br-data", "flags": ["UP"], "mtu": 1450, "linkinfo": {"info_kind": "tun"}, "addr_info": []}
    state["links"].append(tap)
    assert networkd.drift(p, state) == [
        "hv1: br-data: address 10.214.0.11/16 is missing",
        "hv1: br-data: address 10.215.0.11/16 is missing",
    ]
    tap["addr_info"] = [{"local": ip, "prefixlen": 16, "scope": "global"} for ip in ("10.214.0.11", "10.215.0.11")]
    assert networkd.drift(p, state) == []
    # the kernel datapath makes ovs-system the port's master; a Linux bridge would be drift
    state["links"][0]["master"] = "ovs-system"
    assert networkd.drift(p, state) == []
    state["links"][0]["master"] = "br-old"
    assert networkd.drift(p, state) == [
        "hv1: eth1: master is br-old, expected none (a port of the Open vSwitch bridge br-data)"
    ]
    present = ok_plan(
        ovs_host(bridge_kind="ovs"), live=[*live, tap], match_mac="current", connection_address="10.0.0.11"
    )
    assert present["ovs_waiting"] == []


def test_a_device_of_another_kind_cannot_become_an_ovs_bridge():
    live = [
        live_link("eth0", "veth", MGMT_MAC),
        live_link("eth1", "veth", "02:00:00:00:00:02"),
        live_link("br-data", "vlan"),
    ]
    p = plan(ovs_host(bridge_kind="ovs"), live=live, match_mac="current", connection_address="10.0.0.11")
    assert p["problems"] == [
        "hv1: interface br-data: type: the host already has br-data as a vlan device, not an Open vSwitch bridge"
    ]
    # a Linux bridge of an earlier run is replaced (its .netdev goes, the device is deleted)
    live[2] = live_link("br-data", "bridge")
    assert (
        plan(ovs_host(bridge_kind="ovs"), live=live, match_mac="current", connection_address="10.0.0.11")["problems"]
        == []
    )


def test_ovs_bridges_need_no_mac_of_their_own_on_cloned_hosts():
    assert plan(ovs_host(bridge_kind="ovs"), machine_id_shared_with=["hv2"])["problems"] == []
    assert plan(ovs_host(), machine_id_shared_with=["hv2"])["problems"] != []
