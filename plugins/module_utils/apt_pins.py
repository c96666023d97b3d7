# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Debian packages held at the release manifest's version: what to install, what refuses to move.

Pure logic shared by the apt_pins filters (and through them by every role that installs
packages); no Ansible imports.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re


def parse_dpkg_query(lines):
    """{package: {version, status, hold}} from `dpkg-query --show --showformat
    '${Package} ${db:Status-Abbrev} ${Version}\\n'` (abbreviations such as 'ii ' or 'hi ')."""
    installed = {}
    for line in lines or []:
        fields = line.split()
        if len(fields) != 3:
            continue
        name, status, version = fields
        name = name.split(":", 1)[0]
        if len(status) < 2 or status[1] != "i":
            continue
        installed[name] = {"version": version, "hold": status[0] == "h"}
    return installed


def pattern_regex(pattern):
    """An apt version pattern ('3.5.0-*', '1:7.2+*') as an anchored regular expression."""
    return "^" + ".*".join(re.escape(part) for part in str(pattern).split("*")) + "$"


def matches(version, pattern):
    return re.match(pattern_regex(pattern), str(version)) is not None


def plan(installed, packages, version, upgrade=False, component="packages", unpinned=None):
    """What a deploy (or, with upgrade, an upgrade) does to the pinned packages of one component.

    installed: parse_dpkg_query() output. packages: names held at `version` (an apt pattern).
    unpinned: names installed at whatever version (dependencies such as udev), never held.
    Returns install (apt arguments), hold (names), moved (installed at another version) and
    problems (why a deploy refuses to run: never changes a version unless upgrade is true).
    """
    install = []
    moved = []
    for name in packages:
        current = installed.get(name)
        if current is None:
            install.append("%s=%s" % (name, version))
        elif not matches(current["version"], version):
            moved.append({"name": name, "installed": current["version"], "wanted": version})
            if upgrade:
                install.append("%s=%s" % (name, version))
    for name in unpinned or []:
        if name not in installed and name not in install:
            install.append(name)
    problems = []
    if moved and not upgrade:
        problems.append(
            "%s: %s installed, the release manifest wants %s; a deploy never changes installed versions "
            "(run the upgrade action, allmende_action=upgrade, to move them)"
            % (
                component,
                ", ".join("%s %s" % (m["name"], m["installed"]) for m in moved),
                version,
            )
        )
    return {
        "install": install,
        "hold": list(packages),
        "moved": moved,
        "problems": problems,
        "unheld": [n for n in packages if n in installed and not installed[n]["hold"]],
    }


def preferences(component, patterns, version, release=""):
    """The apt preferences file that keeps `patterns` at `version` (priority below 1000: apt never
    downgrades by itself)."""
    header = "# Managed by allmende.cloud: %s packages at the version of release %s.\n" % (component, release)
    return "%sPackage: %s\nPin: version %s\nPin-Priority: 990\n" % (header, " ".join(patterns), version)
