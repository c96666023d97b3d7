#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: inventory_validate
author: Allmende developers (@allmende)
short_description: Fail with every problem of the inventory before any host is touched
description:
  - The check C(allmende inventory check) runs, for plain C(ansible-playbook) and AWX runs. The
    first play of every Allmende playbook (playbooks/validate.yml) calls it.
  - Runs on the controller only (an action plugin; it never connects to a host) and reads the
    whole inventory, whatever C(--limit) says.
  - Gathers each host's C(allmende_inventory_problems) and group C(all)'s
    C(allmende_inventory_global_problems) (the NetBox data problems the allmende.cloud.netbox
    inventory plugin found), and adds the checks of the inventory model for any inventory source
    (C(allmende_interfaces) of hosts from other sources, two hosts with the same C(ansible_host),
    no hosts, no C(control) host).
  - Changes nothing and supports check mode. On success it sets the fact
    C(allmende_inventory_checked) on the play's hosts so later plays of the same run skip the check.
options:
  max_lines:
    description: Show at most this many problems in the message (all are in RV(problems)); C(0) for all.
    type: int
    default: 0
attributes:
  check_mode:
    support: full
    description: Reads the inventory only.
"""

EXAMPLES = r"""
- name: Check the inventory before touching any host
  allmende.cloud.inventory_validate:
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
problems:
  description: "Every problem found, as C(object: field: message)."
  returned: always
  type: list
  elements: str
hosts:
  description: Number of hosts in the inventory.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(max_lines=dict(type="int", default=0)), supports_check_mode=True)
    module.fail_json(msg="allmende.cloud.inventory_validate runs on the controller as an action plugin")


if __name__ == "__main__":
    main()
