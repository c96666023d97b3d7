# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load and validate Allmende release manifests (releases/<name>.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

RELEASE_NAME = re.compile(r"^\d{4}\.[12]$")
VERSION = re.compile(r"^\d+(\.\d+)*")
SOURCES = ("debian", "pypi", "upstream", "container")
# Debian suites an image can be built on (images.suite), with the Python 3 they ship.
IMAGE_SUITES = {"bookworm": "3.11", "trixie": "3.13"}
PACKAGE_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


class ManifestError(Exception):
    """One or more problems in a release manifest; str() lists all of them."""

    def __init__(self, problems):
        self.problems = list(problems)
        super(ManifestError, self).__init__("\n".join(self.problems))


def releases_dir(collection_root):
    return os.path.join(collection_root, "releases")


def current_release(collection_root):
    index = os.path.join(releases_dir(collection_root), "index.yml")
    with open(index) as handle:
        data = yaml.safe_load(handle) or {}
    name = str(data.get("current", ""))
    if not name:
        raise ManifestError(["%s: field 'current' is missing" % index])
    return name


def available_releases(collection_root):
    names = []
    for entry in sorted(os.listdir(releases_dir(collection_root))):
        stem, ext = os.path.splitext(entry)
        if ext == ".yml" and RELEASE_NAME.match(stem):
            names.append(stem)
    return names


def version_tuple(version):
    """The leading numeric part of an upstream version ('25.03.0', '18.2.7', '10.0') as a tuple of ints."""
    match = VERSION.match(str(version))
    if not match:
        raise ValueError("%r does not start with a version number" % (version,))
    return tuple(int(part) for part in match.group(0).split("."))


def at_least(version, minimum):
    """Whether `version` is `minimum` or newer, comparing as many fields as `minimum` has ('25.03.0' >= '24.03')."""
    wanted = version_tuple(minimum)
    return version_tuple(version)[: len(wanted)] >= wanted


def _validate_versioned(section, entries, add, needs_packages):
    """Problems of a components-like table (services, openstack): source, version, apt, packages."""
    for cname, comp in sorted(entries.items()):
        field = "%s.%s" % (section, cname)
        if not isinstance(comp, dict):
            add(field, "must be a mapping")
            continue
        source = comp.get("source")
        if source not in SOURCES:
            add(field + ".source", "must be one of %s, got %r" % (", ".join(SOURCES), source))
        if not comp.get("version"):
            add(field + ".version", "missing")
        if source == "debian" and not comp.get("apt"):
            add(field + ".apt", "missing (Debian package version pattern, e.g. '1.2.3-*')")
        if needs_packages and source == "debian":
            packages = comp.get("packages")
            if not isinstance(packages, list) or not packages:
                add(field + ".packages", "missing (the Debian packages installed at this version)")
            else:
                for pkg in packages:
                    if not isinstance(pkg, str) or not PACKAGE_NAME.match(pkg):
                        add(field + ".packages", "%r is not a Debian package name" % (pkg,))
        package = comp.get("package")
        if package is not None and (not isinstance(package, str) or not package.strip()):
            add(field + ".package", "must be a PyPI project name")
        if "minimum" in comp:
            try:
                below = comp.get("version") and not at_least(comp["version"], comp["minimum"])
            except ValueError as exc:
                add(field + ".minimum", str(exc))
                continue
            if below:
                add(field + ".version", "%s is below the minimum %s" % (comp["version"], comp["minimum"]))


def _validate_images(images, add, releases_root):
    if not isinstance(images, dict):
        add("images", "must be a mapping (suite, python, constraints, kolla)")
        return
    suite = images.get("suite")
    if suite not in IMAGE_SUITES:
        add("images.suite", "must be one of %s, got %r" % (", ".join(sorted(IMAGE_SUITES)), suite))
    elif images.get("python") is not None and str(images.get("python")) != IMAGE_SUITES[suite]:
        add(
            "images.python",
            "%s ships Python %s, the manifest says %r" % (suite, IMAGE_SUITES[suite], images.get("python")),
        )
    constraints = images.get("constraints")
    if not constraints or not isinstance(constraints, str):
        add("images.constraints", "missing (path of the upper constraints, relative to releases/)")
    elif os.path.isabs(constraints) or ".." in constraints.split("/"):
        add("images.constraints", "%r must be a path inside releases/" % constraints)
    elif releases_root is not None and not os.path.isfile(os.path.join(releases_root, constraints)):
        add("images.constraints", "file releases/%s not found" % constraints)
    kolla = images.get("kolla")
    if kolla is not None:
        if not isinstance(kolla, dict):
            add("images.kolla", "must be a mapping (registry, namespace, tag)")
        else:
            for key in ("registry", "namespace", "tag"):
                if not kolla.get(key) or not isinstance(kolla.get(key), str):
                    add("images.kolla.%s" % key, "missing")


def validate(data, origin, releases_root=None):
    """Return every problem of a manifest as '<origin>: <field>: <problem>'.

    releases_root, when given, is the releases/ directory: files the manifest names must exist there.
    """
    problems = []

    def add(field, message):
        problems.append("%s: %s: %s" % (origin, field, message))

    if not isinstance(data, dict):
        return ["%s: the manifest must be a mapping" % origin]
    name = str(data.get("release", ""))
    if not RELEASE_NAME.match(name):
        add("release", "expected YYYY.1 or YYYY.2, got %r" % data.get("release"))
    base = data.get("base")
    if not isinstance(base, dict):
        add("base", "missing (distribution and suite)")
    else:
        for key in ("distribution", "suite"):
            if not base.get(key):
                add("base.%s" % key, "missing")
    components = data.get("components")
    if not isinstance(components, dict) or not components:
        add("components", "missing or empty")
        components = {}
    _validate_versioned("components", components, add, needs_packages=False)
    # Optional sections, validated when present (images need all three).
    if "images" in data:
        _validate_images(data["images"], add, releases_root)
    for section, needs_packages in (("services", True), ("openstack", False)):
        if section not in data:
            continue
        entries = data[section]
        if not isinstance(entries, dict) or not entries:
            add(section, "must be a non-empty mapping")
            continue
        _validate_versioned(section, entries, add, needs_packages)
    if "openstack" in data and "images" not in data:
        add("images", "missing (the openstack section needs images.constraints)")
    return problems


def load(collection_root, name=None):
    """The manifest of release `name` (default: the current one), validated."""
    name = str(name) if name else current_release(collection_root)
    if not RELEASE_NAME.match(name):
        raise ManifestError(["allmende_release: %r is not a release name (expected YYYY.1 or YYYY.2)" % name])
    path = os.path.join(releases_dir(collection_root), "%s.yml" % name)
    if not os.path.isfile(path):
        known = ", ".join(available_releases(collection_root)) or "none"
        raise ManifestError(["allmende_release: no manifest for release %s (known: %s)" % (name, known)])
    with open(path) as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as exc:
            raise ManifestError(["%s: not valid YAML: %s" % (path, exc)]) from exc
    problems = validate(data, "releases/%s.yml" % name, releases_dir(collection_root))
    if problems:
        raise ManifestError(problems)
    return data


def get(data, key, origin="manifest"):
    """A dotted key (components.ceph.version) from a manifest."""
    node = data
    walked = []
    for part in key.split("."):
        walked.append(part)
        if not isinstance(node, dict) or part not in node:
            raise KeyError("%s has no %s" % (origin, ".".join(walked)))
        node = node[part]
    return node
