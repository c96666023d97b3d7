# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the network role: plan, render and check systemd-networkd configuration."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.allmende.cloud.plugins.module_utils import networkd


def networkd_plan(interfaces, **options):
    try:
        return networkd.plan(interfaces, **options)
    except TypeError as exc:
        raise AnsibleFilterError("networkd_plan: %s" % exc) from exc


def networkd_units(the_plan):
    if not isinstance(the_plan, dict) or "managed" not in the_plan:
        raise AnsibleFilterError("networkd_units expects the result of networkd_plan")
    try:
        return networkd.units(the_plan)
    except networkd.PlanError as exc:
        raise AnsibleFilterError("the plan has problems:\n%s" % exc) from exc


def networkd_drift(the_plan, state, names_only=False):
    if not isinstance(the_plan, dict) or "managed" not in the_plan:
        raise AnsibleFilterError("networkd_drift expects the result of networkd_plan")
    if not isinstance(state, dict):
        raise AnsibleFilterError("networkd_drift expects the result of the networkd_state module")
    return networkd.drift(the_plan, state, names_only=bool(names_only))


class FilterModule(object):
    def filters(self):
        return {
            "networkd_plan": networkd_plan,
            "networkd_units": networkd_units,
            "networkd_drift": networkd_drift,
        }
