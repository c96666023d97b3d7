"""SCS flavor names (scs-0100-v3): verdicts, fields, both syntaxes, promises, the scs-0103 mandatory flavors."""

import importlib.util
import sys
import types

import pytest
import yaml
from conftest import ROOT, load_plugin_module

scs = load_plugin_module("plugins/module_utils/scs_flavor.py")

FLAVOR_LIST = ROOT / "releases" / "scs-0103-v1-flavors.yml"


def parsed(name, verdict="valid"):
    result = scs.parse(name)
    assert result["verdict"] == verdict, result
    return result


def base(result):
    return tuple(result[k] for k in ("cpus", "cpu_type", "ram", "disk", "disk0_type"))


# Examples of the standard's text (CPU suffixes, memory, disks, extensions, proposal examples).
@pytest.mark.parametrize(
    "name, fields",
    [
        ("SCS-2C-4-10n", (2, "dedicated-core", 4.0, 10, "network")),
        ("SCS-2T-4-10n", (2, "dedicated-thread", 4.0, 10, "network")),
        ("SCS-2V-4-10n", (2, "shared-core", 4.0, 10, "network")),
        ("SCS-2L-4-10n", (2, "crowded-core", 4.0, 10, "network")),
        ("SCS-2Li-4-10n", (2, "crowded-core", 4.0, 10, "network")),
        ("SCS-2C-3.5-10n", (2, "dedicated-core", 3.5, 10, "network")),
        ("SCS-2C-4uo-10n", (2, "dedicated-core", 4.0, 10, "network")),
        ("SCS-2C-4-10s", (2, "dedicated-core", 4.0, 10, "ssd")),
        ("SCS-2C-4-10s_bms_z3", (2, "dedicated-core", 4.0, 10, "ssd")),
        ("SCS-2C-4-3x10s", (2, "dedicated-core", 4.0, 10, "ssd")),
        ("SCS-2C-4-10", (2, "dedicated-core", 4.0, 10, None)),
        ("SCS-2C-4-n", (2, "dedicated-core", 4.0, None, "network")),
        ("SCS-2C-4-", (2, "dedicated-core", 4.0, None, None)),
        ("SCS-2C-4-_bms_z3h_GNa-64_ib", (2, "dedicated-core", 4.0, None, None)),
        ("SCS-2C-4-_ib", (2, "dedicated-core", 4.0, None, None)),
        ("SCS-2C-4", (2, "dedicated-core", 4.0, None, None)),
        ("SCS-2C-4_bms_z3", (2, "dedicated-core", 4.0, None, None)),
        ("SCS-2C-4-3x10", (2, "dedicated-core", 4.0, 10, None)),
        ("SCS-2C-4-10_kvm_hwv", (2, "dedicated-core", 4.0, 10, None)),
        ("SCS-2C-4-10_hwv", (2, "dedicated-core", 4.0, 10, None)),
        ("SCS-2C-4-10n_bms_z3hh", (2, "dedicated-core", 4.0, 10, "network")),
        ("SCS-16V-64-500s_GNa-14h", (16, "shared-core", 64.0, 500, "ssd")),
        ("SCS-8Ti-32-50p_i1", (8, "dedicated-thread", 32.0, 50, "nvme")),
        ("SCS-1L-1u-5", (1, "crowded-core", 1.0, 5, None)),
        ("SCS-16T-64-200s_GNa-64_ib", (16, "dedicated-thread", 64.0, 200, "ssd")),
        ("SCS-4C-16-2x200p_a1", (4, "dedicated-core", 16.0, 200, "nvme")),
        ("SCS-1V-0.5", (1, "shared-core", 0.5, None, None)),
        ("SCS-8T-16-50h", (8, "dedicated-thread", 16.0, 50, "hdd")),
    ],
)
def test_valid_names_of_the_standard(name, fields):
    result = parsed(name)
    assert base(result) == fields
    assert result["name_v2"] == name
    assert isinstance(result["cpus"], int) and isinstance(result["ram"], float)


def test_suffixes_of_cpu_and_ram_are_reported():
    plain = parsed("SCS-2V-4")
    assert (plain["cpu_insecure"], plain["ram_no_ecc"], plain["ram_oversubscribed"]) == (False, False, False)
    flagged = parsed("SCS-2Vi-4uo")
    assert (flagged["cpu_insecure"], flagged["ram_no_ecc"], flagged["ram_oversubscribed"]) == (True, True, True)
    only_o = parsed("SCS-2V-4o")
    assert (only_o["ram_no_ecc"], only_o["ram_oversubscribed"]) == (False, True)


def test_the_root_disk_kinds_and_the_disk_multiplier():
    assert (parsed("SCS-2V-4")["root_disk"], parsed("SCS-2V-4")["disk_count"]) == ("volume", None)
    assert (parsed("SCS-2V-4-")["root_disk"], parsed("SCS-2V-4-n")["root_disk"]) == ("auto", "auto")
    fixed = parsed("SCS-2V-4-20")
    assert (fixed["root_disk"], fixed["disk"], fixed["disk_count"]) == ("fixed", 20, 1)
    many = parsed("SCS-4C-16-2x200p_a1")
    assert (many["disk"], many["disk_count"], many["disk0_type"]) == (200, 2, "nvme")


def test_extensions_are_decoded():
    ext = parsed("SCS-2C-4-_bms_hwv_z3hh_GNa-64h_ib")["extensions"]
    assert ext["hypervisor"] == "bare-metal" and ext["hwv"] is True and ext["ib"] is True
    assert ext["cpu"] == {"vendor": "amd", "generation": 3, "frequency": 2}
    assert ext["gpu"] == {"type": "pass-through", "vendor": "nvidia", "generation": "a", "units": 64, "performance": 1}
    plain = parsed("SCS-2V-4")["extensions"]
    assert plain == {"hypervisor": None, "hwv": False, "cpu": None, "gpu": None, "ib": False}
    vgpu = parsed("SCS-4V-16_gA0.5-8")["extensions"]["gpu"]
    assert (vgpu["type"], vgpu["vendor"], vgpu["generation"], vgpu["units"]) == ("virtual", "amd", "0.5", 8)
    bare = parsed("SCS-4V-16_GI")["extensions"]["gpu"]
    assert (bare["vendor"], bare["generation"], bare["units"], bare["performance"]) == ("intel", None, None, 0)
    assert parsed("SCS-4V-16_i")["extensions"]["cpu"] == {"vendor": "intel", "generation": None, "frequency": 0}
    for hyp, word in (("kvm", "kvm"), ("xen", "xen"), ("vmw", "vmware"), ("hyv", "hyper-v")):
        assert parsed("SCS-2V-4_" + hyp)["extensions"]["hypervisor"] == word


@pytest.mark.parametrize(
    "name, words",
    [
        ("SCS-2-4-10n", "CPU type"),
        ("SCS-2iT-4-10n", "2Ti, not 2iT"),
        ("SCS-2X-4", "unknown CPU type 'X'"),
        ("SCS-2v-4", "unknown CPU type 'v'"),
        ("SCS-V-4", "number of vCPUs"),
        ("SCS-0V-4", "vCPUs must be positive"),
        ("SCS-2V", "RAM size is missing"),
        ("SCS-2V-", "RAM size is missing"),
        ("SCS-2C-4ou-10n", "4uo, not 4ou"),
        ("SCS-1V-1.75", "whole or half"),
        ("SCS-2V-0", "RAM size must be positive"),
        ("SCS-2V-4GB", "RAM part"),
        ("SCS-2C-4-1.5n", "whole number of GB"),
        ("SCS-2C-4-0", "disk size must be positive"),
        ("SCS-2C-4-3x", "needs a disk size"),
        ("SCS-2C-4-0x10", "multiplier must be positive"),
        ("SCS-2C-4-10q", "disk part '10q'"),
        ("SCS-2C-4-10-20", "too many"),
        ("SCS-2C-4-10_hwv_xen", "_xen must come before _hwv"),
        ("SCS-2C-4-10_ib_z3", "_z3 must come before _ib"),
        ("SCS-2C-4_kvm_bms", "more than one hypervisor"),
        ("SCS-2C-4-n_bms_3", "unknown extension _3"),
        ("SCS-2C-4_foo", "unknown extension _foo"),
        ("SCS-2C-4_i5", "intel CPU generation 5"),
        ("SCS-2C-4_a4", "arm CPU generation 4"),
        ("SCS-2C-4_z3hhhh", "at most hhh"),
        ("SCS-2C-4_GXa", "GPU vendor"),
        ("SCS-2C-4_GNx", "nvidia GPU generation 'x'"),
        ("SCS-2C-4_GNa-", "GPU units"),
        ("SCS-2C-4_GNa-0", "must be positive"),
        ("SCS-2C-4__ib", "empty extension"),
        ("SCS-2C-4_", "empty extension"),
        ("SCS-2V-4 ", "RAM part"),
        ("SCS-", "nothing after SCS-"),
        ("SCS-2V:4:20x", "needs a disk size"),
        ("SCS-2V:4-10", "unknown extension -10"),
    ],
)
def test_invalid_names_say_why(name, words):
    result = parsed(name, "invalid")
    assert words in result["reason"], result["reason"]
    assert set(result) == {"name", "verdict", "reason"}


@pytest.mark.parametrize("name", ["m1.small", "scs-2V-4", "SCS2V-4", "", "ds512M", "SCSX-2V-4"])
def test_names_outside_the_namespace_are_none_of_the_standards_business(name):
    assert scs.parse(name) == {"name": name, "verdict": "not-scs"}


@pytest.mark.parametrize(
    "v1, v2",
    [
        ("SCS-2V:4:20", "SCS-2V-4-20"),
        ("SCS-2V:4:20s", "SCS-2V-4-20s"),
        ("SCS-1L:1", "SCS-1L-1"),
        ("SCS-4C:16:2x200p-a1", "SCS-4C-16-2x200p_a1"),
        ("SCS-16T:64:200s-GNa:64-ib", "SCS-16T-64-200s_GNa-64_ib"),
        ("SCS-2C:4:-bms-z3h", "SCS-2C-4-_bms_z3h"),
        ("SCS-8Ti:32:50p-i1", "SCS-8Ti-32-50p_i1"),
    ],
)
def test_the_colon_syntax_of_v1_is_tolerated_and_both_syntaxes_round_trip(v1, v2):
    old = parsed(v1, "tolerated")
    new = parsed(v2)
    assert (old["name_v1"], old["name_v2"]) == (v1, v2)
    assert (new["name_v1"], new["name_v2"]) == (v1, v2)
    same = {k: v for k, v in new.items() if k not in ("name", "verdict")}
    assert {k: v for k, v in old.items() if k not in ("name", "verdict")} == same
    assert parsed(new["name_v1"], "tolerated")["name_v2"] == v2


def test_a_name_without_extensions_gets_colons_for_every_dash_after_the_first():
    # scs-0103: scs:name-v1 is the name "with each dash AFTER the first one replaced by a colon".
    for name in ("SCS-1V-4", "SCS-4V-16-100s", "SCS-2C-4-3x10", "SCS-1V-0.5", "SCS-2C-4-"):
        first = name.index("-") + 1
        assert parsed(name)["name_v1"] == name[:first] + name[first:].replace("-", ":")


def test_extra_specs_follow_scs_0103():
    assert parsed("SCS-2V-4-20s")["extra_specs"] == {
        "scs:cpu-type": "shared-core",
        "scs:name-v1": "SCS-2V:4:20s",
        "scs:name-v2": "SCS-2V-4-20s",
        "scs:disk0-type": "ssd",
    }
    assert "scs:disk0-type" not in parsed("SCS-1L-1")["extra_specs"]
    assert "scs:disk0-type" not in parsed("SCS-2V-4-20")["extra_specs"]
    multi = parsed("SCS-4C-16-2x200p")["extra_specs"]
    assert (multi["scs:disk0-type"], multi["scs:disk1-type"], "scs:disk2-type" in multi) == ("nvme", "nvme", False)
    assert parsed("SCS-2V:4:20s", "tolerated")["extra_specs"] == parsed("SCS-2V-4-20s")["extra_specs"]


def test_promises_are_met_by_at_least_what_the_name_says():
    name = parsed("SCS-2V-4-20s")
    assert scs.promises_met(name, 2, 4096, 20) == []
    assert scs.promises_met(name, 4, 8192, 50) == []  # more is allowed
    problems = scs.promises_met(name, 1, 4096, 20)
    assert len(problems) == 1 and "1 vCPUs" in problems[0] and "promises 2" in problems[0]
    problems = scs.promises_met(name, 2, 4096, 10)
    assert len(problems) == 1 and "10 GB root disk" in problems[0] and "20 GB" in problems[0]
    assert len(scs.promises_met(name, 1, 1024, 0)) == 3


def test_ram_in_a_name_is_gib_not_gb():
    name = parsed("SCS-2V-4")
    assert scs.promises_met(name, 2, 4096, 0) == []
    # 4 GB = 4000 MB is about 3815 MiB: short of 4 GiB.
    problems = scs.promises_met(name, 2, 4000, 0)
    assert len(problems) == 1 and "4000 MiB" in problems[0] and "4096 MiB" in problems[0]
    assert scs.promises_met(name, 2, 4095, 0) != []
    half = parsed("SCS-1V-0.5")
    assert scs.promises_met(half, 1, 512, 0) == [] and scs.promises_met(half, 1, 511, 0) != []
    assert scs.promises_met(parsed("SCS-2C-3.5"), 2, 3584, 0) == []


def test_names_without_a_disk_size_promise_no_disk():
    for name in ("SCS-2V-4", "SCS-2V-4-", "SCS-2V-4-n"):
        assert scs.promises_met(parsed(name), 2, 4096, 0) == []
    assert scs.promises_met(parsed("SCS-2V-4-3x10"), 2, 4096, 10) == []  # per disk
    assert scs.promises_met(parsed("SCS-2V-4-3x10"), 2, 4096, 5) != []


def test_invalid_and_foreign_names_in_promises():
    assert scs.promises_met(scs.parse("SCS-2iT-4"), 2, 4096, 0) == ["invalid name: " + scs.parse("SCS-2iT-4")["reason"]]
    assert scs.promises_met(scs.parse("m1.small"), 0, 0, 0) == []
    assert scs.promises_met(parsed("SCS-2V:4", "tolerated"), 2, 2048, 0) != []
    with pytest.raises(ValueError, match="ram"):
        scs.promises_met(parsed("SCS-2V-4"), 2, "lots", 0)


def test_the_mandatory_flavors_of_scs_0103_v1_keep_what_their_names_say():
    flavors = yaml.safe_load(FLAVOR_LIST.read_text())
    names = [f["name"] for f in flavors]
    assert len(names) == 15 and len(set(names)) == 15
    for flavor in flavors:
        name = parsed(flavor["name"])
        assert flavor["extra_specs"] == name["extra_specs"], flavor["name"]
        assert scs.promises_met(name, flavor["vcpus"], flavor["ram"], flavor["disk"]) == [], flavor["name"]
        # scs-0103: the figures must match precisely, not only be at least the promise.
        assert flavor["vcpus"] == name["cpus"] and flavor["ram"] == name["ram"] * 1024, flavor["name"]
        assert flavor["disk"] == (name["disk"] or 0), flavor["name"]
        # standard flavors are oversubscribed (V or L) and carry no extensions
        assert name["cpu_type"] in ("shared-core", "crowded-core") and name["name_v2"] == flavor["name"]


@pytest.fixture
def filters(monkeypatch):
    """The filter plugin, with the collection's module_utils where its import looks for them."""
    dotted = "ansible_collections.allmende.cloud.plugins.module_utils"
    parts = dotted.split(".")
    for i in range(1, len(parts) + 1):
        monkeypatch.setitem(sys.modules, ".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    monkeypatch.setitem(sys.modules, dotted + ".scs_flavor", scs)
    monkeypatch.setattr(sys.modules[dotted], "scs_flavor", scs, raising=False)
    path = ROOT / "plugins" / "filter" / "scs_flavor.py"
    spec = importlib.util.spec_from_file_location("scs_flavor_filter_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FilterModule().filters()


def test_the_filters(filters):
    from ansible.errors import AnsibleFilterError

    assert filters["scs_flavor"]("SCS-2V-4-20s")["name_v1"] == "SCS-2V:4:20s"
    with pytest.raises(AnsibleFilterError):
        filters["scs_flavor"](42)
    problems = filters["scs_flavor_problems"]
    assert problems({"name": "SCS-2V-4-20s", "vcpus": 2, "ram": 4096, "disk": 20}) == []
    assert problems({"name": "SCS-2V-4", "vcpus": 2, "ram": 4096}) == []
    assert problems({"name": "SCS-2V-4-20s", "vcpus": 2, "ram": 4096, "disk": 0}) != []
    assert problems({"name": "SCS-2V-4ou", "vcpus": 2, "ram": 4096})[0].startswith("invalid name: ")
    assert problems({"name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1}) == []
    for bad in ({"name": "SCS-2V-4"}, ["SCS-2V-4"], {"name": "SCS-2V-4", "vcpus": 2, "ram": "x"}):
        with pytest.raises(AnsibleFilterError):
            problems(bad)
