# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for Keystone's key repositories (documentation in keystone_key_plan.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.allmende.cloud.plugins.module_utils.fernet import plan


def keystone_key_plan(repos, group, play_hosts, source=None):
    if not isinstance(repos, dict):
        raise AnsibleFilterError(
            "keystone_key_plan: expects a dict of per-host repositories, got %s" % type(repos).__name__
        )
    return plan(list(group), list(play_hosts), dict((str(k), dict(v or {})) for k, v in repos.items()), source or None)


class FilterModule(object):
    def filters(self):
        return {"keystone_key_plan": keystone_key_plan}
