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
