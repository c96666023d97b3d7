# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the apt_pins role: packages held at the release's version (documentation in apt_pins_*.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.allmende.cloud.plugins.module_utils import apt_pins


def apt_pins_installed(lines):
    if isinstance(lines, str):
        lines = lines.splitlines()
    return apt_pins.parse_dpkg_query(list(lines or []))


def apt_pins_plan(installed, packages, version, upgrade=False, component="packages", unpinned=None):
    if not isinstance(installed, dict):
        raise AnsibleFilterError("apt_pins_plan expects the result of apt_pins_installed")
    if not version:
        raise AnsibleFilterError("apt_pins_plan: %s has no version pattern" % component)
    return apt_pins.plan(installed, list(packages), str(version), bool(upgrade), str(component), list(unpinned or []))


def apt_pins_preferences(patterns, component, version, release=""):
    return apt_pins.preferences(str(component), list(patterns), str(version), str(release))


class FilterModule(object):
    def filters(self):
        return {
            "apt_pins_installed": apt_pins_installed,
            "apt_pins_plan": apt_pins_plan,
            "apt_pins_preferences": apt_pins_preferences,
        }
