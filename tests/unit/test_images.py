"""Image definitions, build arguments from the manifests, inputs hash and tags (no podman needed)."""

import pytest
import yaml
from conftest import ROOT

from allmende import images, release_manifest
from allmende.errors import UsageError

DEFS = images.load_definitions(ROOT)


def test_the_shipped_definitions_are_valid_and_cover_the_wanted_images():
    wanted = {"base", "openstack-base", "keystone", "mariadb", "rabbitmq", "memcached", "haproxy", "keepalived"}
    assert {n for n, d in DEFS.items() if d.default} == wanted
    for name in ("glance", "placement", "nova", "neutron", "cinder", "octavia", "horizon"):
        assert not DEFS[name].default and DEFS[name].parent == "openstack-base"


def test_selection_puts_parents_first_and_only_adds_ancestors():
    assert images.selection(DEFS, ["keystone"]) == ["base", "openstack-base", "keystone"]
    assert images.selection(DEFS, ["memcached"]) == ["base", "memcached"]
    everything = images.selection(DEFS, [])
    assert everything[:2] == ["base", "openstack-base"] and "glance" not in everything
    with pytest.raises(UsageError, match="--only nope: unknown image"):
        images.selection(DEFS, ["nope"])


@pytest.mark.parametrize("release", release_manifest.available(ROOT))
def test_build_args_take_the_versions_from_each_manifest(release):
    manifest = release_manifest.load(ROOT, release)
    keystone = images.build_args(DEFS["keystone"], manifest)
    assert keystone["PROJECT"] == "keystone"
    assert keystone["VERSION"] == manifest["openstack"]["keystone"]["version"]
    assert keystone["SERVICE_USER"] == "keystone"
    assert "uwsgi-plugin-python3=" in keystone["PACKAGES"]
    mariadb = images.build_args(DEFS["mariadb"], manifest)
    apt = manifest["services"]["mariadb"]["apt"]
    assert f"mariadb-server={apt}" in mariadb["PACKAGES"] and "galera-4=" in mariadb["PACKAGES"]
    placement = images.build_args(DEFS["placement"], manifest)
    assert placement["PROJECT"] == "openstack-placement"
    files = images.context_files(DEFS["openstack-base"], ROOT, manifest, [])
    constraints = (ROOT / "releases" / manifest["images"]["constraints"]).read_bytes()
    assert files["upper-constraints.txt"] == constraints


def test_the_hash_covers_every_input_and_nothing_else():
    base = images.inputs_hash("FROM x\n", {"a": b"1", "b": b"2"}, {"VERSION": "1"}, "parent@1")
    assert base == images.inputs_hash("FROM x\n", {"b": b"2", "a": b"1"}, {"VERSION": "1"}, "parent@1")
    changed = [
        images.inputs_hash("FROM y\n", {"a": b"1", "b": b"2"}, {"VERSION": "1"}, "parent@1"),
        images.inputs_hash("FROM x\n", {"a": b"1", "b": b"3"}, {"VERSION": "1"}, "parent@1"),
        images.inputs_hash("FROM x\n", {"a": b"1", "c": b"2"}, {"VERSION": "1"}, "parent@1"),
        images.inputs_hash("FROM x\n", {"a": b"1", "b": b"2"}, {"VERSION": "2"}, "parent@1"),
        images.inputs_hash("FROM x\n", {"a": b"1", "b": b"2"}, {"VERSION": "1"}, "parent@2"),
        # Boundaries are part of the hash: moving bytes between name and content changes it.
        images.inputs_hash("FROM x\n", {"a": b"12"}, {"VERSION": "1"}, "parent@1"),
        images.inputs_hash("FROM x\n", {"a1": b"2"}, {"VERSION": "1"}, "parent@1"),
    ]
    assert len({base, *changed}) == len(changed) + 1
    tag = images.tag_for("2026.1", base)
    assert tag == f"2026.1-{base[:12]}"
    assert images.ref_for("keystone", tag) == f"localhost/allmende/keystone:{tag}"


def test_releases_differ_where_their_versions_differ():
    def keystone_args(release):
        return images.build_args(DEFS["keystone"], release_manifest.load(ROOT, release))

    assert keystone_args("2025.1")["VERSION"] != keystone_args("2026.1")["VERSION"]
    memcached = {r: images.build_args(DEFS["memcached"], release_manifest.load(ROOT, r)) for r in ("2025.1", "2026.1")}
    assert memcached["2025.1"] == memcached["2026.1"]


def test_ca_files_are_part_of_the_base_image_context(tmp_path):
    ca = tmp_path / "site-ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    manifest = release_manifest.load(ROOT)
    cas = images.ca_files(images.BuildRequest(ca_files=[str(ca)]))
    files = images.context_files(DEFS["base"], ROOT, manifest, cas)
    assert files["ca/00-site-ca.crt"] == ca.read_bytes()
    assert {"kolla_set_configs.py", "kolla_start", "sudoers", "policy-rc.d"} <= set(files)
    assert images.context_files(DEFS["memcached"], ROOT, manifest, cas) == {}
    bad = tmp_path / "bad.crt"
    bad.write_text("not a certificate")
    with pytest.raises(UsageError, match="not a PEM certificate"):
        images.ca_files(images.BuildRequest(ca_files=[str(bad)]))
    with pytest.raises(UsageError, match="file not found"):
        images.ca_files(images.BuildRequest(ca_files=[str(tmp_path / "missing.crt")]))
    assert images.ca_files(images.BuildRequest(ca_files=[])) == []


def test_definition_problems_are_all_listed(tmp_path):
    (tmp_path / "Containerfile").write_text("FROM x\n")
    data = yaml.safe_load(
        """
        images:
          a: {containerfile: Containerfile, parent: b, colour: red}
          b: {containerfile: Containerfile, parent: a}
          c: {containerfile: missing.Containerfile, context: nodir, user: "bad user"}
          d: {containerfile: Containerfile, openstack: keystone}
          e: [not, a, mapping]
          f: {parent: a}
        """
    )
    problems = images.validate_definitions(data, tmp_path)[0]
    text = "\n".join(problems)
    assert "images.a: unknown keys colour" in text
    assert "images.c.containerfile: missing.Containerfile not found" in text
    assert "images.c.context: directory nodir not found" in text
    assert "images.c.user: 'bad user' is not a user name" in text
    assert "images.d: an OpenStack image needs a parent" in text
    assert "images.e: must be a mapping" in text
    assert "images.f.containerfile: missing" in text
    assert "images.a.parent: cycle a -> b -> a" in text
    assert images.validate_definitions({}, tmp_path)[0] == ["images: missing or empty"]


def test_the_record_merges_images_and_is_a_vars_file(state_dir):
    first = images.ImageResult("base", "localhost/allmende/base:2026.1-aaa", "2026.1-aaa", "a" * 64, "built")
    second = images.ImageResult("keystone", "localhost/allmende/keystone:2026.1-bbb", "2026.1-bbb", "b" * 64, "built")
    images.write_record("2026.1", "bookworm", [first])
    path = images.write_record("2026.1", "bookworm", [second])
    data = yaml.safe_load(path.read_text())
    assert data["allmende_image_tags"] == {"base": "2026.1-aaa", "keystone": "2026.1-bbb"}
    assert data["allmende_image_namespace"] == "allmende"
    assert images.read_record("2026.1")["allmende_images"]["keystone"]["inputs"] == "b" * 64
