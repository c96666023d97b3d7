# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: image
author: Allmende developers (@allmende)
short_description: The image reference of a service container
description:
  - Returns C(<registry>/<namespace>/<name>:<tag>) for each image name, the one rule by which every
    service role of the collection names its images (docs/images.md).
  - The tag is the image's entry in O(tags) (what C(allmende images build) records), else O(tag),
    else the release name of the manifest.
  - O(names) renames images for a registry that calls them differently (upstream kolla's
    C(mariadb-server) for C(mariadb)).
options:
  _terms:
    description: Image names as C(images/images.yml) spells them (C(keystone), C(mariadb), ...).
    required: true
    type: list
    elements: str
  registry:
    description: Registry host (and port).
    type: str
    default: localhost
    vars:
      - name: allmende_image_registry
  namespace:
    description: Namespace (path) in the registry.
    type: str
    default: allmende
    vars:
      - name: allmende_image_namespace
  tags:
    description: Tag per image name.
    type: dict
    default: {}
    vars:
      - name: allmende_image_tags
  tag:
    description: Tag of every image not in O(tags); the release name when unset.
    type: str
    vars:
      - name: allmende_image_tag
  names:
    description: Name in the registry per image name, where it differs.
    type: dict
    default: {}
    vars:
      - name: allmende_image_names
  release:
    description: Release whose name is the default tag (the C(current) release when unset).
    type: str
    vars:
      - name: allmende_release
"""

EXAMPLES = r"""
- name: Show the keystone image
  ansible.builtin.debug:
    msg: "{{ lookup('allmende.cloud.image', 'keystone') }}"

# Upstream kolla images: one tag for all, kolla's names
# allmende_image_registry: quay.io
# allmende_image_namespace: openstack.kolla
# allmende_image_tag: 2025.1-ubuntu-noble
# allmende_image_names: {mariadb: mariadb-server}
"""

RETURN = r"""
_raw:
  description: One image reference per name.
  type: list
  elements: str
"""

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.allmende.cloud.plugins.module_utils.release import ManifestError, load

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        # The options' variables as values: ansible-core 2.19 hands a lookup the raw templates of
        # variables defined from other variables (the testbed's images.yml ones are).
        option_vars = ("allmende_image_registry", "allmende_image_namespace", "allmende_image_tags")
        option_vars += ("allmende_image_tag", "allmende_image_names", "allmende_release")
        if variables is not None:
            variables = {n: self._templar.template(variables[n]) for n in option_vars if n in variables}
        self.set_options(var_options=variables, direct=kwargs)
        tags = self.get_option("tags") or {}
        names = self.get_option("names") or {}
        default_tag = self.get_option("tag")
        if not default_tag:
            try:
                default_tag = str(load(COLLECTION_ROOT, self.get_option("release"))["release"])
            except ManifestError as exc:
                raise AnsibleLookupError(str(exc)) from exc
        refs = []
        for term in terms:
            name = str(term)
            tag = tags.get(name) or default_tag
            refs.append(
                "%s/%s/%s:%s" % (self.get_option("registry"), self.get_option("namespace"), names.get(name, name), tag)
            )
        return refs
