#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: key_repository_info
author: Allmende developers (@allmende)
short_description: Describe a Keystone key repository (fernet or credential keys) without reading it out
description:
  - Returns the SHA-256 digest of every file in the repository, by name, so that the repositories
    of several hosts can be compared (M(allmende.cloud.keystone_key_plan)) without any key leaving
    its host.
options:
  path:
    description: The key repository directory.
    type: path
    required: true
attributes:
  check_mode:
    support: full
    description: Reads only.
"""

EXAMPLES = r"""
- name: Describe the fernet keys
  allmende.cloud.key_repository_info:
    path: /etc/allmende/keystone/fernet-keys
  register: fernet_repo
"""

RETURN = r"""
exists:
  description: Whether the directory exists.
  type: bool
  returned: always
keys:
  description: File name to SHA-256 digest of its content.
  type: dict
  returned: always
"""

import hashlib
import os

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True)), supports_check_mode=True)
    path = module.params["path"]
    keys = {}
    exists = os.path.isdir(path)
    if exists:
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if os.path.isfile(full):
                with open(full, "rb") as handle:
                    keys[name] = hashlib.sha256(handle.read()).hexdigest()
    module.exit_json(changed=False, exists=exists, keys=keys)


if __name__ == "__main__":
    main()
