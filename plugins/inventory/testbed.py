# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: testbed
author: Allmende developers (@allmende)
short_description: Hosts of a local Allmende testbed
description:
  - Reads the state that C(allmende testbed up) records for a testbed and returns its nodes,
    reachable over SSH with the testbed's key, in the groups C(testbed), C(control), C(network),
    C(compute) and C(storage).
  - Each host gets C(allmende_nics) (name, network, MAC, address) and C(allmende_data_disks)
    (the loop devices that stand in for its data disks).
  - The configuration file must end in C(testbed.yml) or C(testbed.yaml).
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: Marks the file as a configuration of this plugin.
    required: true
    choices: [allmende.cloud.testbed]
    type: str
  name:
    description: Testbed name, as given to C(allmende testbed up --name).
    type: str
    default: default
    env:
      - name: ALLMENDE_TESTBED_NAME
  state_dir:
    description:
      - The driver's state directory. Defaults to C($XDG_STATE_HOME/allmende), that is
        C(~/.local/state/allmende).
    type: path
    env:
      - name: ALLMENDE_STATE_DIR
"""

EXAMPLES = r"""
# inventory/testbed.yml
plugin: allmende.cloud.testbed
name: default
"""

import json
import os

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable


def default_state_dir():
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "allmende")


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "allmende.cloud.testbed"
    # The state file is written by the allmende driver itself, not by a third party.
    trusted_by_default = True

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith(("testbed.yml", "testbed.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        name = self.get_option("name")
        state_dir = self.get_option("state_dir") or default_state_dir()
        testbed_dir = os.path.join(state_dir, "testbeds", name)
        state_file = os.path.join(testbed_dir, "state.json")
        if not os.path.exists(state_file):
            raise AnsibleParserError(
                "testbed %s does not exist (%s missing): run `allmende testbed up --name %s`" % (name, state_file, name)
            )
        with open(state_file) as handle:
            try:
                state = json.load(handle)
            except ValueError as exc:
                raise AnsibleParserError("testbed %s: %s is not valid JSON: %s" % (name, state_file, exc)) from exc

        group_all = "all"
        common = {
            "ansible_user": "root",
            "ansible_ssh_private_key_file": os.path.join(testbed_dir, "id_ed25519"),
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes -o UserKnownHostsFile="
            + os.path.join(testbed_dir, "known_hosts"),
            "ansible_python_interpreter": "/usr/bin/python3",
            "allmende_testbed": name,
            "allmende_mgmt_subnet": state["mgmt_subnet"],
        }
        for key, value in common.items():
            self.inventory.set_variable(group_all, key, value)
        self.inventory.add_group("testbed")
        strict = self.get_option("strict")
        for node in state.get("nodes", []):
            host = node["name"]
            self.inventory.add_host(host, group="testbed")
            for group in node.get("groups", []):
                self.inventory.add_group(group)
                self.inventory.add_child(group, host)
            mgmt = next(nic for nic in node["nics"] if nic["network"] == "mgmt")
            hostvars = {
                "ansible_host": mgmt["address"].split("/")[0],
                "allmende_testbed_container": node["container"],
                "allmende_nics": node["nics"],
                "allmende_data_disks": [disk["device"] for disk in node.get("disks", [])],
            }
            for key, value in hostvars.items():
                self.inventory.set_variable(host, key, value)
            variables = self.inventory.get_host(host).get_vars()
            self._set_composite_vars(self.get_option("compose"), variables, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)
