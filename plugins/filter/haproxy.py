# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for HAProxy (documentation in haproxy_listen.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.allmende.cloud.plugins.module_utils.haproxy import render


def haproxy_listen(spec, name, backends, vip):
    try:
        return render(str(name), dict(spec or {}), [dict(b) for b in backends or []], str(vip))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule(object):
    def filters(self):
        return {"haproxy_listen": haproxy_listen}
