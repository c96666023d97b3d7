# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: release
author: Allmende developers (@allmende)
short_description: Read versions and sources from an Allmende release manifest
description:
  - Returns values from C(releases/<release>.yml) of the allmende.cloud collection, the single place
    where the versions of everything Allmende deploys are recorded.
  - The manifest is validated on every load; every problem is reported at once, naming file and field.
options:
  _terms:
    description: Dotted keys into the manifest, for example C(components.ceph.version).
    required: true
    type: list
    elements: str
  release:
    description:
      - Release to read. Defaults to the C(current) entry of C(releases/index.yml).
    type: str
    vars:
      - name: allmende_release
"""

EXAMPLES = r"""
- name: Install the podman version of the release
  ansible.builtin.apt:
    name: "podman={{ lookup('allmende.cloud.release', 'components.podman.apt') }}"

- name: Show the whole component table of release 2026.1
  ansible.builtin.debug:
    msg: "{{ lookup('allmende.cloud.release', 'components', release='2026.1') }}"
"""

RETURN = r"""
_raw:
  description: The value at each key (any type).
  type: list
  elements: raw
"""

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.allmende.cloud.plugins.module_utils.release import ManifestError, get, load

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        name = self.get_option("release")
        try:
            manifest = load(COLLECTION_ROOT, name)
        except ManifestError as exc:
            raise AnsibleLookupError("invalid release manifest:\n%s" % exc) from exc
        origin = "release manifest %s" % manifest["release"]
        values = []
        for term in terms:
            try:
                values.append(get(manifest, term, origin))
            except KeyError as exc:
                raise AnsibleLookupError(str(exc.args[0])) from exc
        return values
