# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for SCS flavor names (documentation in scs_flavor.yml and scs_flavor_problems.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.allmende.cloud.plugins.module_utils import scs_flavor as scs


def scs_flavor(name):
    if not isinstance(name, str):
        raise AnsibleFilterError("scs_flavor: expects a flavor name, got %s" % type(name).__name__)
    return scs.parse(name)


def scs_flavor_problems(flavor):
    if not isinstance(flavor, Mapping):
        raise AnsibleFilterError("scs_flavor_problems: expects a flavor dict, got %s" % type(flavor).__name__)
    missing = [key for key in ("name", "vcpus", "ram") if flavor.get(key) is None]
    if missing:
        raise AnsibleFilterError("scs_flavor_problems: the flavor has no %s" % ", ".join(missing))
    if not isinstance(flavor["name"], str):
        raise AnsibleFilterError("scs_flavor_problems: the flavor name must be a string")
    try:
        return scs.promises_met(scs.parse(flavor["name"]), flavor["vcpus"], flavor["ram"], flavor.get("disk"))
    except ValueError as exc:
        raise AnsibleFilterError("scs_flavor_problems: %s: %s" % (flavor["name"], exc)) from exc


class FilterModule(object):
    def filters(self):
        return {"scs_flavor": scs_flavor, "scs_flavor_problems": scs_flavor_problems}
