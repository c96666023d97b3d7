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
    type: raw
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
    type: raw
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
        self.set_options(var_options=variables, direct=kwargs)
        # Variables reach a lookup untemplated; these may be templates (the testbed's group_vars).
        option = {
            key: self._templar.template(self.get_option(key))
            for key in ("registry", "namespace", "tags", "tag", "names", "release")
        }
        tags = option["tags"] or {}
        names = option["names"] or {}
        for key, value in (("tags", tags), ("names", names)):
            if not isinstance(value, dict):
                raise AnsibleLookupError("allmende_image_%s must be a mapping, got %r" % (key, value))
        default_tag = option["tag"]
        if not default_tag:
            try:
                default_tag = str(load(COLLECTION_ROOT, option["release"])["release"])
            except ManifestError as exc:
                raise AnsibleLookupError(str(exc)) from exc
        refs = []
        for term in terms:
            name = str(term)
            tag = tags.get(name) or default_tag
            refs.append(
                "%s/%s/%s:%s" % (option["registry"], option["namespace"], names.get(name, name), tag)
            )
        return refs
