#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ovs_config
author: Allmende developers (@allmende)
short_description: Converge Open vSwitch settings and bridges in one transaction
description:
  - Reads the local Open vSwitch database and changes only what differs, in one C(ovs-vsctl)
    transaction. It manages keys of C(external_ids) and C(other_config) of the C(Open_vSwitch)
    table, and bridges with their datapath type, ports and C(external_ids).
  - Ports are only added, never removed, because OVN adds its own ports (patch ports, tunnels) to
    the bridges it uses.
options:
  external_ids:
    description:
      - Keys of C(Open_vSwitch . external_ids) to set; a null value removes the key. Keys not
        listed are left alone.
    type: dict
    default: {}
  other_config:
    description: Keys of C(Open_vSwitch . other_config), as for O(external_ids).
    type: dict
    default: {}
  bridges:
    description: Bridges that must exist.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Bridge name.
        type: str
        required: true
      datapath_type:
        description: C(system) (kernel datapath) or C(netdev) (userspace); omitted means leave as is.
        type: str
      ports:
        description: Interfaces to attach to the bridge (added if missing, never removed).
        type: list
        elements: str
        default: []
      external_ids:
        description: Keys of the bridge's C(external_ids), a null value removes the key.
        type: dict
        default: {}
  timeout:
    description: Seconds C(ovs-vsctl) waits for the database and for C(ovs-vswitchd).
    type: int
    default: 30
notes:
  - Supports check mode and diff mode.
"""

EXAMPLES = r"""
- name: Point this chassis at the OVN southbound cluster
  allmende.cloud.ovs_config:
    external_ids:
      ovn-remote: tcp:10.0.0.1:6642,tcp:10.0.0.2:6642,tcp:10.0.0.3:6642
      ovn-encap-type: geneve
      ovn-encap-ip: 10.214.0.11
      ovn-cms-options: null

- name: A provider bridge with its uplink
  allmende.cloud.ovs_config:
    bridges:
      - name: br-ex
        datapath_type: system
        ports: [eth2]
"""

RETURN = r"""
commands:
  description: The ovs-vsctl arguments run (or, in check mode, that would run).
  type: list
  elements: str
  returned: always
external_ids:
  description: C(Open_vSwitch . external_ids) after the change.
  type: dict
  returned: always
other_config:
  description: C(Open_vSwitch . other_config) after the change.
  type: dict
  returned: always
bridges:
  description: Per bridge name, its datapath type and port names after the change.
  type: dict
  returned: always
"""

import json

from ansible.module_utils.basic import AnsibleModule


def ovsdb_value(value):
    """Turn an OVSDB JSON value (atom, ["set", ...], ["map", ...], ["uuid", ...]) into Python."""
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
        kind, inner = value
        if kind == "map":
            return dict((ovsdb_value(k), ovsdb_value(v)) for k, v in inner)
        if kind == "set":
            return [ovsdb_value(v) for v in inner]
        if kind in ("uuid", "named-uuid"):
            return inner
    return value


def as_list(value):
    return value if isinstance(value, list) else [value]


def rows(data):
    headings = data.get("headings", [])
    return [dict((headings[i], ovsdb_value(v)) for i, v in enumerate(row)) for row in data.get("data", [])]


def quote(value):
    # OVSDB string atoms accept JSON string syntax.
    return json.dumps(str(value))


def map_commands(table, record, column, current, wanted):
    commands = []
    for key in sorted(wanted):
        value = wanted[key]
        if value is None:
            if key in current:
                commands.append(["remove", table, record, column, quote(key)])
        elif current.get(key) != str(value):
            commands.append(["set", table, record, "%s:%s=%s" % (column, quote(key), quote(value))])
    return commands


def apply_map(current, wanted):
    result = dict(current)
    for key, value in wanted.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = str(value)
    return result


class Vsctl(object):
    def __init__(self, module):
        self.module = module
        self.binary = module.get_bin_path("ovs-vsctl", required=True)
        self.timeout = module.params["timeout"]

    def run(self, args, check=True):
        cmd = [self.binary, "--timeout=%d" % self.timeout, *args]
        rc, out, err = self.module.run_command(cmd)
        if rc != 0 and check:
            self.module.fail_json(msg="ovs-vsctl failed: %s" % (err.strip() or out.strip()), cmd=cmd, rc=rc)
        return out

    def list(self, table, columns, record=None):
        args = ["--format=json", "--columns=%s" % ",".join(columns), "list", table]
        if record:
            args.append(record)
        return rows(json.loads(self.run(args)))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            external_ids=dict(type="dict", default={}),
            other_config=dict(type="dict", default={}),
            bridges=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    datapath_type=dict(type="str"),
                    ports=dict(type="list", elements="str", default=[]),
                    external_ids=dict(type="dict", default={}),
                ),
            ),
            timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    vsctl = Vsctl(module)
    ovs = vsctl.list("Open_vSwitch", ["external_ids", "other_config"], ".")[0]
    current_ids = ovs.get("external_ids") or {}
    current_other = ovs.get("other_config") or {}
    commands = []
    commands += map_commands("Open_vSwitch", ".", "external_ids", current_ids, module.params["external_ids"])
    commands += map_commands("Open_vSwitch", ".", "other_config", current_other, module.params["other_config"])

    port_names = dict((row["_uuid"], row["name"]) for row in vsctl.list("Port", ["_uuid", "name"]))
    existing = {}
    for row in vsctl.list("Bridge", ["name", "datapath_type", "ports", "external_ids"]):
        existing[row["name"]] = {
            "datapath_type": row.get("datapath_type") or "",
            "ports": sorted(port_names.get(uuid, uuid) for uuid in as_list(row.get("ports") or [])),
            "external_ids": row.get("external_ids") or {},
        }
    after = dict((name, dict(info)) for name, info in existing.items())
    for bridge in module.params["bridges"]:
        name = bridge["name"]
        have = existing.get(name)
        if have is None:
            commands.append(["add-br", name])
            have = {"datapath_type": "", "ports": [], "external_ids": {}}
        wanted_dp = bridge.get("datapath_type")
        if wanted_dp is not None and have["datapath_type"] != wanted_dp:
            commands.append(["set", "Bridge", name, "datapath_type=%s" % wanted_dp])
        for port in bridge["ports"]:
            if port not in have["ports"]:
                commands.append(["add-port", name, port])
        commands += map_commands("Bridge", name, "external_ids", have["external_ids"], bridge["external_ids"])
        after[name] = {
            "datapath_type": wanted_dp if wanted_dp is not None else have["datapath_type"],
            "ports": sorted(set(have["ports"]) | set(bridge["ports"]) | set([name])),
            "external_ids": apply_map(have["external_ids"], bridge["external_ids"]),
        }

    result = dict(
        changed=bool(commands),
        commands=[" ".join(c) for c in commands],
        external_ids=apply_map(current_ids, module.params["external_ids"]),
        other_config=apply_map(current_other, module.params["other_config"]),
        bridges=after,
    )
    if module._diff:
        result["diff"] = {
            "before": json.dumps(
                {"external_ids": current_ids, "other_config": current_other, "bridges": existing},
                indent=2,
                sort_keys=True,
            )
            + "\n",
            "after": json.dumps(
                {"external_ids": result["external_ids"], "other_config": result["other_config"], "bridges": after},
                indent=2,
                sort_keys=True,
            )
            + "\n",
        }
    if commands and not module.check_mode:
        args = []
        for command in commands:
            args += ["--", *command]
        vsctl.run(args)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
