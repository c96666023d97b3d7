from conftest import load_plugin_module

apt_pins = load_plugin_module("plugins/module_utils/apt_pins.py")

DPKG = [
    "podman hi 5.4.2+ds1-2+b2",
    "crun ii 1.21-1",
    "uidmap ii 1:4.17.4-2+deb13u1",
    "ovn-host un ",
    "chrony rc 4.3-2",
]


def test_dpkg_query_lines_give_installed_versions_and_holds():
    installed = apt_pins.parse_dpkg_query(DPKG)
    assert installed == {
        "podman": {"version": "5.4.2+ds1-2+b2", "hold": True},
        "crun": {"version": "1.21-1", "hold": False},
        "uidmap": {"version": "1:4.17.4-2+deb13u1", "hold": False},
    }


def test_version_patterns_match_like_apt_globs():
    assert apt_pins.matches("5.4.2+ds1-2+b2", "5.4.2+*")
    assert apt_pins.matches("1:10.0.13+ds-0+deb13u1", "1:10.0.*")
    assert not apt_pins.matches("5.4.20+ds1-1", "5.4.2+*")
    assert not apt_pins.matches("15.4.2+ds1", "5.4.2+*")  # anchored
    assert not apt_pins.matches("3.5.0.1-1", "3.5.0-*")  # dots are literal


def test_a_fresh_host_installs_everything_at_the_pattern_and_holds_only_the_pinned():
    plan = apt_pins.plan({}, ["podman"], "5.4.2+*", component="podman", unpinned=["uidmap"])
    assert plan["install"] == ["podman=5.4.2+*", "uidmap"]
    assert plan["hold"] == ["podman"]
    assert plan["problems"] == [] and plan["moved"] == []


def test_an_installed_host_at_the_version_needs_nothing():
    installed = apt_pins.parse_dpkg_query(DPKG)
    plan = apt_pins.plan(installed, ["podman", "crun"], "5.4.2+*", unpinned=["uidmap"])
    # crun is at another version than this pattern: it is reported, not installed
    assert plan["install"] == []
    assert plan["unheld"] == ["crun"]
    plan = apt_pins.plan(installed, ["podman"], "5.4.2+*", unpinned=["uidmap"])
    assert plan == {"install": [], "hold": ["podman"], "moved": [], "problems": [], "unheld": []}


def test_a_changed_manifest_version_is_refused_by_deploy_and_moved_by_upgrade():
    installed = apt_pins.parse_dpkg_query(DPKG)
    deploy = apt_pins.plan(installed, ["podman"], "5.6.0+*", component="podman")
    assert deploy["install"] == []
    assert deploy["moved"] == [{"name": "podman", "installed": "5.4.2+ds1-2+b2", "wanted": "5.6.0+*"}]
    assert len(deploy["problems"]) == 1
    assert "podman: podman 5.4.2+ds1-2+b2 installed, the release manifest wants 5.6.0+*" in deploy["problems"][0]
    assert "allmende_action=upgrade" in deploy["problems"][0]
    upgrade = apt_pins.plan(installed, ["podman"], "5.6.0+*", upgrade=True, component="podman")
    assert upgrade["install"] == ["podman=5.6.0+*"]
    assert upgrade["problems"] == []


def test_preferences_file_pins_below_1000():
    text = apt_pins.preferences("ovn", ["ovn-*"], "25.03.0-*", "2026.1")
    assert text.splitlines()[1:] == ["Package: ovn-*", "Pin: version 25.03.0-*", "Pin-Priority: 990"]
    assert "release 2026.1" in text.splitlines()[0]
