# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for clustered OVSDB databases (documentation in ovsdb_cluster_plan.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.allmende.cloud.plugins.module_utils.ovsdb_cluster import plan


def ovsdb_cluster_plan(states, database, group, play_hosts, addresses, servers=None):
    if not isinstance(states, dict):
        raise AnsibleFilterError("ovsdb_cluster_plan: expects a dict of host states, got %s" % type(states).__name__)
    return plan(database, list(group), list(play_hosts), states, dict(addresses), list(servers or []))


class FilterModule(object):
    def filters(self):
        return {"ovsdb_cluster_plan": ovsdb_cluster_plan}
