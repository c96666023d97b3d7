import pytest
import yaml
from conftest import ROOT, load_plugin_module

release = load_plugin_module("plugins/module_utils/release.py")


def test_the_current_release_manifest_is_valid():
    data = release.load(str(ROOT))
    assert data["release"] == release.current_release(str(ROOT))
    assert release.get(data, "components.podman.source") == "debian"


def test_every_manifest_in_the_repository_is_valid():
    for name in release.available_releases(str(ROOT)):
        release.load(str(ROOT), name)


def test_all_problems_are_listed_with_field_names():
    bad = {
        "release": "26.1",
        "base": {"suite": "bookworm"},
        "components": {"ceph": {"source": "rpm"}, "ovn": {"source": "debian", "version": "23.03"}},
    }
    problems = release.validate(bad, "releases/x.yml")
    text = "\n".join(problems)
    assert "releases/x.yml: release:" in text
    assert "base.distribution: missing" in text
    assert "components.ceph.source" in text and "components.ceph.version: missing" in text
    assert "components.ovn.apt: missing" in text
    assert len(problems) == 5


def test_unknown_release_and_key_errors_name_what_is_missing(tmp_path):
    (tmp_path / "releases").mkdir()
    (tmp_path / "releases" / "index.yml").write_text(yaml.safe_dump({"current": "2030.1"}))
    with pytest.raises(release.ManifestError, match=r"no manifest for release 2030\.1"):
        release.load(str(tmp_path))
    with pytest.raises(release.ManifestError, match="not a release name"):
        release.load(str(tmp_path), "latest")
    with pytest.raises(KeyError, match=r"has no components\.nope"):
        release.get({"components": {}}, "components.nope.version", "release manifest 2030.1")


def _manifest(**sections):
    data = {
        "release": "2026.1",
        "base": {"distribution": "debian", "suite": "bookworm"},
        "components": {"podman": {"source": "debian", "version": "4.3.1", "apt": "4.3.1+*"}},
    }
    data.update(sections)
    return data


def test_every_manifest_names_images_services_and_openstack():
    for name in release.available_releases(str(ROOT)):
        data = release.load(str(ROOT), name)
        assert data["openstack"]["keystone"]["source"] == "pypi"
        assert (ROOT / "releases" / data["images"]["constraints"]).is_file()
        for service in ("mariadb", "galera", "rabbitmq", "memcached", "haproxy", "keepalived"):
            assert data["services"][service]["packages"], (name, service)


def test_the_image_sections_are_checked_with_file_and_field(tmp_path):
    bad = _manifest(
        images={"suite": "sid", "constraints": "../uc.txt", "kolla": {"registry": "quay.io", "tag": ""}},
        services={"mariadb": {"source": "debian", "version": "10.11", "apt": "1:10.11*", "packages": ["Maria DB"]}},
        openstack={"keystone": {"source": "pypi"}, "glance": "32.0.0"},
    )
    problems = release.validate(bad, "releases/2026.1.yml", str(tmp_path))
    text = "\n".join(problems)
    assert "releases/2026.1.yml: images.suite: must be one of bookworm, trixie, got 'sid'" in text
    assert "images.constraints: '../uc.txt' must be a path inside releases/" in text
    assert "images.kolla.namespace: missing" in text and "images.kolla.tag: missing" in text
    assert "services.mariadb.packages: 'Maria DB' is not a Debian package name" in text
    assert "openstack.keystone.version: missing" in text
    assert "openstack.glance: must be a mapping" in text
    assert len(problems) == 7


def test_constraints_must_exist_and_python_must_match_the_suite(tmp_path):
    data = _manifest(
        images={"suite": "trixie", "python": "3.11", "constraints": "constraints/uc.txt"},
        services={"memcached": {"source": "debian", "version": "1.6", "apt": "1.6*"}},
    )
    problems = release.validate(data, "releases/x.yml", str(tmp_path))
    assert problems == [
        "releases/x.yml: images.python: trixie ships Python 3.13, the manifest says '3.11'",
        "releases/x.yml: images.constraints: file releases/constraints/uc.txt not found",
        "releases/x.yml: services.memcached.packages: missing (the Debian packages installed at this version)",
    ]
    (tmp_path / "constraints").mkdir()
    (tmp_path / "constraints" / "uc.txt").write_text("pbr===6.1.1\n")
    data["images"]["python"] = "3.13"
    data["services"]["memcached"]["packages"] = ["memcached"]
    assert release.validate(data, "releases/x.yml", str(tmp_path)) == []


def test_openstack_needs_the_images_section():
    data = _manifest(openstack={"keystone": {"source": "pypi", "version": "29.1.0"}})
    assert release.validate(data, "releases/x.yml") == [
        "releases/x.yml: images: missing (the openstack section needs images.constraints)"
    ]


def test_versions_compare_by_number_and_as_many_fields_as_the_minimum_has():
    assert release.at_least("25.03.0", "24.03")
    assert release.at_least("24.03", "24.03")
    assert not release.at_least("23.03.1", "24.03")
    assert not release.at_least("3.1.0", "3.3")
    assert release.at_least("3.10", "3.3")  # numbers, not strings
    assert release.at_least("18.2.7", "18.2")
    with pytest.raises(ValueError, match="version number"):
        release.version_tuple("reef")


def test_a_version_below_its_minimum_is_a_manifest_problem():
    data = {
        "release": "2026.1",
        "base": {"distribution": "debian", "suite": "bookworm"},
        "components": {
            "ovn": {"source": "debian", "version": "23.03.1", "apt": "23.03.1-*", "minimum": "24.03"},
            "ceph": {"source": "debian", "version": "18.2.7", "apt": "18.2.7+*", "minimum": "latest"},
        },
    }
    problems = release.validate(data, "releases/x.yml")
    assert problems == [
        "releases/x.yml: components.ceph.minimum: 'latest' does not start with a version number",
        "releases/x.yml: components.ovn.version: 23.03.1 is below the minimum 24.03",
    ]


def test_the_current_release_meets_every_minimum_it_declares():
    data = release.load(str(ROOT))
    declared = {name: comp for name, comp in data["components"].items() if "minimum" in comp}
    assert {"ovn", "openvswitch"} <= set(declared)
    for comp in declared.values():
        assert release.at_least(comp["version"], comp["minimum"])
