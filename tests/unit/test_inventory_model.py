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
