# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""allmende.cloud.secrets_check: open the deployment's secrets store on the controller (see the module's docs)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase

from ansible_collections.allmende.cloud.plugins.plugin_utils.secret_store import SecretStore, SecretStoreError


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False
    _VALID_ARGS = frozenset(("dir", "key_file"))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        result["changed"] = False
        args = self._task.args
        directory = args.get("dir") or self._templar.template(task_vars.get("allmende_config_dir"))
        directory = directory or task_vars.get("inventory_dir")
        key_file = args.get("key_file") or self._templar.template(task_vars.get("allmende_vault_key_file"))
        try:
            store = SecretStore(directory, key_file or None)
            result["path"] = store.path
            result["secrets"] = len(store.read_all())
        except (SecretStoreError, OSError) as exc:
            result["failed"] = True
            result["msg"] = "the deployment's secrets store cannot be used; no host was touched: %s" % exc
            return result
        result["msg"] = "secrets store %s: %d secret(s)" % (store.path, result["secrets"])
        return result
