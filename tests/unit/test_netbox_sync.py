"""The declarative site file: structure checks and value normalisation (no NetBox needed)."""

from pathlib import Path

import pytest

from allmende.netbox_sync import SiteFileError, _depth, check_site_data, load_site_file, norm_existing, same

ROOT = Path(__file__).resolve().parents[2]


def test_the_sample_site_file_is_valid():
    data = load_site_file(ROOT / "inventories" / "netbox" / "sample-site.yml")
    assert len(data["devices"]) == 3


def test_structural_problems_are_all_listed_with_object_and_field():
    data = {
        "sites": [{"name": "A"}, {"name": "A"}],
        "vlans": [{"vid": 5000, "name": "x", "site": "a"}],
        "prefixes": [{"prefix": "10.0.0.1/24"}],
        "devices": [
            {
                "name": "d1",
                "site": "a",
                "role": "r",
                "device_type": "t",
                "colour": "red",
                "interfaces": [
                    {"name": "eth0", "type": "1000base-t", "mtu": 10, "mac": "zz", "addresses": ["10.0.0.300/24"]},
                    {"name": "eth0.5", "type": "virtual", "parent": "eth9"},
                    {"name": "eth0", "type": "1000base-t"},
                ],
            }
        ],
        "widgets": [],
    }
    problems = check_site_data(data, "f.yml")
    text = "\n".join(problems)
    assert "unknown section 'widgets'" in text
    assert "sites A: defined twice" in text
    assert "vlans x: vid: must be an integer 1-4094" in text
    assert "prefixes 10.0.0.1/24: prefix: 10.0.0.1/24 has host bits set" in text
    assert "devices d1: colour: unknown field" in text
    assert "d1 interface eth0: mtu: must be an integer" in text
    assert "d1 interface eth0: mac: not a MAC address" in text
    assert "d1 interface eth0: address:" in text
    assert "d1 interface eth0.5: parent: no interface 'eth9' on this device" in text
    assert "d1 interface eth0: defined twice" in text


def test_unreadable_file(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("a: [")
    with pytest.raises(SiteFileError, match="cannot read"):
        load_site_file(bad)


def test_netbox_values_normalise_to_what_is_written():
    assert norm_existing({"value": "active", "label": "Active"}) == "active"
    assert norm_existing({"id": 7, "name": "x"}) == 7
    assert norm_existing([{"id": 3}, {"id": 1}]) == [1, 3]
    assert norm_existing([{"slug": "b", "color": "f"}, {"slug": "a", "color": "f"}]) == ["a", "b"]
    assert same("0C:C4:7A:00:00:01", "0c:c4:7a:00:00:01", "mac_address")
    assert not same(1500, 9000, "mtu")


def test_interfaces_are_written_after_what_they_refer_to():
    by_name = {
        "bond0": {"name": "bond0"},
        "bond0.20": {"name": "bond0.20", "parent": "bond0"},
        "ens1": {"name": "ens1", "lag": "bond0"},
        "br": {"name": "br"},
        "bond0.20-br": {"name": "x", "bridge": "br"},
    }
    assert _depth(by_name["bond0"], by_name) == 0
    assert _depth(by_name["bond0.20"], by_name) == 1
    assert _depth(by_name["ens1"], by_name) == 1
