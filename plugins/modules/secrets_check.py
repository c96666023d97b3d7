#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: secrets_check
author: Allmende developers (@allmende)
short_description: Fail clearly when the deployment's secrets store cannot be read
description:
  - Opens the secrets store that the M(allmende.cloud.secret) lookup uses (C(secrets.yml) in the
    deployment's configuration directory, ansible-vault encrypted) and fails, naming the file and
    the reason, when its vault key is missing, readable by others or wrong, or the file is damaged.
  - Tasks that use secrets set C(no_log), which hides the lookup's own error; the first play of
    every Allmende playbook (playbooks/validate.yml) runs this check so such a run stops before any
    host is touched, with a readable message.
  - Runs on the controller only (an action plugin) and never shows or changes a value. A store
    that does not exist yet passes (it is created on first use).
options:
  dir:
    description:
      - The configuration directory. Defaults to C(allmende_config_dir), else the directory of
        the host's inventory source.
    type: path
  key_file:
    description: The vault key file. Defaults to C(allmende_vault_key_file), else C(vault.key) in I(dir).
    type: path
attributes:
  check_mode:
    support: full
    description: Reads the store only.
"""

EXAMPLES = r"""
- name: The deployment's secrets store opens
  allmende.cloud.secrets_check:
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The secrets file checked.
  returned: always
  type: str
secrets:
  description: Number of secrets it holds (names and values are never returned).
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(
        argument_spec=dict(dir=dict(type="path"), key_file=dict(type="path", no_log=False)), supports_check_mode=True
    )
    module.fail_json(msg="allmende.cloud.secrets_check runs on the controller as an action plugin")


if __name__ == "__main__":
    main()
