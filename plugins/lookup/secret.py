# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: secret
author: Allmende developers (@allmende)
short_description: A deployment secret, generated once and kept encrypted with ansible-vault
description:
  - Returns the value of each named secret from the deployment's secrets store, C(secrets.yml) in
    the configuration directory, encrypted with ansible-vault using the key in C(vault.key) (both
    mode 0600; the key is created with the store unless I(key_file) names another).
  - A name asked for the first time gets a new random value, which is written before it is
    returned; every later run reads the same value back. Existing values are never replaced, and a
    store that cannot be read is an error, never a reason to generate new values.
  - In check mode nothing is written; a name not yet stored gets a throw-away value.
  - Tasks that use the values must set C(no_log).
options:
  _terms:
    description: Secret names (lower-case letters, digits and C(_)).
    required: true
    type: list
    elements: str
  kind:
    description: What to generate for a new name.
    type: str
    default: password
    choices: [password, hex, fernet, uuid]
  length:
    description: Characters of a new password, or bytes of a new hex secret.
    type: int
    default: 32
  dir:
    description:
      - The deployment's configuration directory holding the store. Defaults to the directory of
        the host's inventory source.
    type: path
    vars:
      - name: allmende_config_dir
  key_file:
    description: The vault key file. Defaults to C(vault.key) in I(dir).
    type: path
    vars:
      - name: allmende_vault_key_file
"""

EXAMPLES = r"""
- name: Keystone's database password
  ansible.builtin.set_fact:
    keystone_database_password: "{{ lookup('allmende.cloud.secret', 'keystone_database_password') }}"
  no_log: true

- name: A Fernet key for a service
  ansible.builtin.debug:
    msg: "{{ lookup('allmende.cloud.secret', 'horizon_secret_key', kind='fernet') | length }}"
"""

RETURN = r"""
_raw:
  description: The value of each secret.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.allmende.cloud.plugins.plugin_utils.secret_store import SecretStore, SecretStoreError


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        # The variables as values: ansible-core 2.19 hands a lookup the raw templates of variables
        # defined from other variables (the testbed's allmende_config_dir is).
        option_vars = ("allmende_config_dir", "allmende_vault_key_file", "inventory_dir", "ansible_check_mode")
        variables = {n: self._templar.template(variables[n]) for n in option_vars if n in (variables or {})}
        self.set_options(var_options=variables, direct=kwargs)
        directory = self.get_option("dir") or variables.get("inventory_dir")
        check_mode = bool(variables.get("ansible_check_mode", False))
        try:
            store = SecretStore(directory, self.get_option("key_file"))
            return [
                store.get(str(term), self.get_option("kind"), self.get_option("length"), store=not check_mode)
                for term in terms
            ]
        except (SecretStoreError, OSError) as exc:
            raise AnsibleLookupError("allmende.cloud.secret: %s" % exc) from exc
