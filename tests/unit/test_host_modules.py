"""Pure parts of the host modules: the KVM probe's boot sector, virt-host-validate parsing, OVSDB values."""

from conftest import load_plugin_module

kvm_probe = load_plugin_module("plugins/modules/kvm_probe.py")
validate = load_plugin_module("plugins/modules/virt_host_validate.py")
ovs_config = load_plugin_module("plugins/modules/ovs_config.py")

# Shortened from a real run in a container host (padding and details trimmed).
VALIDATE_OUTPUT = """\
  QEMU: Checking for hardware virtualization         : FAIL (Host not compatible with KVM; Only emulated CPUs)
  QEMU: Checking if device /dev/vhost-net exists     : WARN (Load the 'vhost_net' module)
  QEMU: Checking if device /dev/net/tun exists       : PASS
  QEMU: Checking for cgroup 'cpu' controller support : PASS
  QEMU: Checking for device assignment IOMMU support : WARN (Unknown if this platform has IOMMU support)
"""


def test_boot_sector_is_a_bootable_sector_that_prints_the_marker():
    sector = kvm_probe.boot_sector()
    assert len(sector) == 512
    assert sector[-2:] == b"\x55\xaa"
    # mov si, <address of the message> points right behind the code, at the marker.
    address = sector[1] | sector[2] << 8
    assert address - 0x7C00 == sector.index(kvm_probe.MARKER)
    assert sector[3:6] == b"\xba\xf8\x03"  # COM1
    # Right after the output loop: mov al, value; out port, al (isa-debug-exit ends QEMU).
    assert sector[0x0E:0x12] == bytes([0xB0, kvm_probe.EXIT_VALUE, 0xE6, kvm_probe.EXIT_PORT])
    assert kvm_probe.EXIT_STATUS == 33


def test_boot_sector_rejects_a_marker_that_does_not_fit():
    try:
        kvm_probe.boot_sector(b"x" * 600)
    except ValueError as exc:
        assert "too long" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_virt_host_validate_output_is_parsed_with_details():
    checks = validate.parse(VALIDATE_OUTPUT, ["Hardware Virtualization"])
    assert [c["result"] for c in checks] == ["FAIL", "WARN", "PASS", "PASS", "WARN"]
    assert checks[0]["check"] == "Checking for hardware virtualization"
    assert checks[0]["detail"].startswith("Host not compatible with KVM")
    assert checks[0]["ignored"] and not checks[1]["ignored"]
    assert checks[2]["detail"] == ""
    assert validate.summarize(checks) == {"PASS": 2, "WARN": 2, "FAIL": 1}


def test_ovsdb_json_values_become_python():
    assert ovs_config.ovsdb_value(["map", [["a", "1"], ["b", ["uuid", "x"]]]]) == {"a": "1", "b": "x"}
    assert ovs_config.ovsdb_value(["set", []]) == []
    assert ovs_config.ovsdb_value(["uuid", "1234"]) == "1234"
    assert ovs_config.ovsdb_value("netdev") == "netdev"
    rows = ovs_config.rows({"headings": ["name", "ports"], "data": [["br-int", ["uuid", "p1"]]]})
    assert rows == [{"name": "br-int", "ports": "p1"}]


def test_only_differing_keys_are_changed_and_null_removes():
    current = {"ovn-remote": "tcp:1.1.1.1:6642", "ovn-cms-options": "enable-chassis-as-gw", "keep": "x"}
    wanted = {"ovn-remote": "tcp:1.1.1.1:6642", "ovn-encap-ip": "10.0.0.1", "ovn-cms-options": None, "gone": None}
    commands = ovs_config.map_commands("Open_vSwitch", ".", "external_ids", current, wanted)
    assert commands == [
        ["remove", "Open_vSwitch", ".", "external_ids", '"ovn-cms-options"'],
        ["set", "Open_vSwitch", ".", 'external_ids:"ovn-encap-ip"="10.0.0.1"'],
    ]
    assert ovs_config.apply_map(current, wanted) == {
        "ovn-remote": "tcp:1.1.1.1:6642",
        "ovn-encap-ip": "10.0.0.1",
        "keep": "x",
    }


def test_kvm_judgement():
    fast_tcg = (True, 0.25, 33)
    limit = kvm_probe.kvm_limit(fast_tcg, 10, 4)
    assert limit == 1.0  # at least one second
    assert kvm_probe.kvm_limit((True, 0.6, 33), 10, 4) == 2.4
    assert kvm_probe.kvm_limit((False, 10, 137), 10, 4) == 10
    assert kvm_probe.judge((True, 0.3, 33), fast_tcg, 10, limit)[:2] == (True, "usable")
    # KVM cut off at the limit, while emulation needed a fraction of it: emulated KVM.
    usable, verdict, reason = kvm_probe.judge((False, 1.0, 137), fast_tcg, 10, limit)
    assert (usable, verdict) == (False, "slow") and "within 1.0 s" in reason
    # No emulated timing to compare with: the plain timeout.
    usable, verdict, reason = kvm_probe.judge((False, 10.0, 137), (False, 10, 137), 10, 10)
    assert (usable, verdict) == (False, "timeout") and "did not run within 10 s" in reason
    usable, verdict, reason = kvm_probe.judge((False, 0.1, 1), fast_tcg, 10, limit)
    assert (usable, verdict) == (False, "failed") and "exit 1" in reason
