# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""allmende.cloud.inventory_validate: the inventory check, on the controller (see the module's docs)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.allmende.cloud.plugins.module_utils.inventory_model import (
    GLOBAL_PROBLEMS_VAR,
    PROBLEMS_VAR,
    REQUIRED_GROUPS,
    inventory_problems,
)

# The only variables the checks read.
WANTED = ("ansible_host", PROBLEMS_VAR, "allmende_interfaces")
CHECKED_FACT = "allmende_inventory_checked"


def _plain(value):
    """Variables as plain str/list/dict (ansible-core tags inventory values)."""
    if isinstance(value, dict):
        return dict((to_text(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    return to_text(value)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False
    _VALID_ARGS = frozenset(("max_lines",))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super(ActionModule, self).run(tmp, task_vars)
        result["changed"] = False
        max_lines = int(self._task.args.get("max_lines", 0) or 0)
        hostvars = task_vars["hostvars"]
        groups = task_vars.get("groups") or {}
        hosts = sorted(set(groups.get("all") or []))  # the whole inventory, whatever --limit says
        found_vars = {}
        global_problems = []
        for host in hosts:
            variables = hostvars.raw_get(host)
            found_vars[host] = dict((key, _plain(variables[key])) for key in WANTED if key in variables)
            if not global_problems and variables.get(GLOBAL_PROBLEMS_VAR):
                global_problems = [to_text(p) for p in variables[GLOBAL_PROBLEMS_VAR]]
        members = dict((group, set(groups.get(group) or [])) for group in REQUIRED_GROUPS)
        problems = inventory_problems(found_vars, members, global_problems)
        result["problems"] = problems
        result["hosts"] = len(hosts)
        if problems:
            shown = problems[:max_lines] if max_lines else problems
            more = len(problems) - len(shown)
            result["failed"] = True
            result["msg"] = "the inventory has %d problem(s); no host was touched:\n%s%s" % (
                len(problems), "\n".join(shown), "\n... and %d more" % more if more else "")
            return result
        result["msg"] = "inventory of %d host(s): no problems" % len(hosts)
        # later playbooks of the same run (site.yml imports every layer) need not check again
        result["ansible_facts"] = {CHECKED_FACT: True}
        return result
