#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ovsdb_cluster_info
author: Allmende developers (@allmende)
short_description: Report the state of clustered OVSDB databases on a host
description:
  - For each database file, tells whether it is absent, standalone, a member of a RAFT cluster
    (with cluster ID, server ID and local address), or joining one; with C(ovsdb-tool).
  - When the database server runs, adds its C(cluster/status) with role, term, leader and the
    servers the cluster lists.
  - Changes nothing; runs in check mode too.
options:
  databases:
    description: Databases to inspect.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Database name, for example C(OVN_Northbound).
        type: str
        required: true
      file:
        description: Path of the database file.
        type: path
        required: true
      control:
        description: Control socket of the running C(ovsdb-server) (its C(--unixctl) path).
        type: path
        required: true
"""

EXAMPLES = r"""
- name: Read the OVN database state
  allmende.cloud.ovsdb_cluster_info:
    databases:
      - name: OVN_Northbound
        file: /var/lib/ovn/ovnnb_db.db
        control: /var/run/ovn/ovnnb_db.ctl
  register: ovn_db
"""

RETURN = r"""
databases:
  description: Per database name, what was found.
  type: dict
  returned: always
  contains:
    state:
      description: absent, standalone, clustered, joining or unknown.
      type: str
    cid:
      description: Cluster ID (clustered only).
      type: str
    sid:
      description: Server ID of this host's member.
      type: str
    local_address:
      description: RAFT address this member was created with, for example C(tcp:10.0.0.1:6643).
      type: str
    running:
      description: Whether the server answered C(cluster/status).
      type: bool
    status:
      description: Parsed C(cluster/status) (role, leader, term, servers, ...), or null.
      type: dict
    error:
      description: Why something could not be read, or null.
      type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.allmende.cloud.plugins.module_utils.ovsdb_cluster import (
    ABSENT,
    CLUSTERED,
    JOINING,
    STANDALONE,
    UNKNOWN,
    parse_cluster_status,
)


def inspect(module, tool, appctl, spec):
    path, name = spec["file"], spec["name"]
    info = {"state": ABSENT, "cid": None, "sid": None, "local_address": None, "running": False, "status": None}
    info["error"] = None
    if os.path.exists(path):
        if tool is None:
            info.update(state=UNKNOWN, error="ovsdb-tool is not installed")
        else:
            rc, _out, err = module.run_command([tool, "db-is-standalone", path])
            if rc == 0:
                info["state"] = STANDALONE
            else:
                rc, _out, err = module.run_command([tool, "db-is-clustered", path])
                if rc != 0:
                    info.update(state=UNKNOWN, error=err.strip())
                else:
                    rc, out, _err = module.run_command([tool, "db-cid", path])
                    info["state"] = CLUSTERED if rc == 0 else JOINING
                    info["cid"] = out.strip() if rc == 0 else None
                    rc, out, _err = module.run_command([tool, "db-sid", path])
                    info["sid"] = out.strip() if rc == 0 else None
                    rc, out, _err = module.run_command([tool, "db-local-address", path])
                    info["local_address"] = out.strip() if rc == 0 else None
    if appctl is not None and os.path.exists(spec["control"]) and info["state"] in (CLUSTERED, JOINING):
        rc, out, err = module.run_command([appctl, "-t", spec["control"], "cluster/status", name])
        if rc == 0:
            info["running"] = True
            info["status"] = parse_cluster_status(out)
        else:
            info["error"] = (err or out).strip() or None
    return info


def main():
    module = AnsibleModule(
        argument_spec=dict(
            databases=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    name=dict(type="str", required=True),
                    file=dict(type="path", required=True),
                    control=dict(type="path", required=True),
                ),
            ),
        ),
        supports_check_mode=True,
    )
    tool = module.get_bin_path("ovsdb-tool")
    appctl = module.get_bin_path("ovs-appctl")
    result = {}
    for spec in module.params["databases"]:
        result[spec["name"]] = inspect(module, tool, appctl, spec)
    module.exit_json(changed=False, databases=result)


if __name__ == "__main__":
    main()
