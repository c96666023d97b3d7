# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for MariaDB Galera (documentation in galera_recovery_plan.yml and galera_deploy_plan.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.allmende.cloud.plugins.module_utils.galera import deploy_plan, recovery_plan


def _nodes(value, name):
    if not isinstance(value, dict):
        raise AnsibleFilterError("%s: expects a dict of per-host states, got %s" % (name, type(value).__name__))
    return dict((str(k), dict(v or {})) for k, v in value.items())


def galera_recovery_plan(nodes, group):
    return recovery_plan(list(group), _nodes(nodes, "galera_recovery_plan"))


def galera_deploy_plan(nodes, group, play_hosts):
    return deploy_plan(list(group), list(play_hosts), _nodes(nodes, "galera_deploy_plan"))


class FilterModule(object):
    def filters(self):
        return {"galera_recovery_plan": galera_recovery_plan, "galera_deploy_plan": galera_deploy_plan}
