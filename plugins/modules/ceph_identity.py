#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ceph_identity
author: Allmende developers (@allmende)
short_description: Decide on a Ceph cluster's identity and keep its record on the deployment host
description:
  - Runs on the deployment host (delegated to localhost). Takes what
    M(allmende.cloud.ceph_identity_probe) found on every monitor and the record kept on the
    deployment host, and decides once for the whole run. The decision is create (nothing exists
    anywhere), reuse, recover (copies are rebuilt from the cluster, never generated) or refuse.
  - Refuses, listing every problem at once, when an fsid anywhere differs from the recorded one,
    keys disagree, a monitor could not be read, or a cluster exists whose identity cannot be
    found. Nothing is written then.
  - Otherwise writes the record (mode 0600, directory 0700) when it is missing or incomplete
    and returns which monitors need their copy written. Tasks using this module must set
    C(no_log).
options:
  path:
    description: The record on the deployment host (JSON with C(fsid) and C(keys)).
    type: path
    required: true
  monitors:
    description: The C(monitor) results of M(allmende.cloud.ceph_identity_probe), one per monitor.
    type: list
    elements: dict
    required: true
  entities:
    description: Bootstrap entities whose keys the identity holds.
    type: list
    elements: str
    required: true
  fsid:
    description: The fsid a new cluster gets; must match an existing one. Empty, it is generated.
    type: str
    default: ""
notes:
  - Supports check mode; the plan is returned, nothing is written.
"""

EXAMPLES = r"""
- name: Decide on the cluster's identity
  allmende.cloud.ceph_identity:
    path: "{{ inventory_dir }}/ceph-identity/ceph.json"
    monitors: "{{ probes.results | map(attribute='monitor') | list }}"
    entities: [mon., client.admin, client.bootstrap-osd]
  delegate_to: localhost
  run_once: true
  become: false
  register: identity
  no_log: true
"""

RETURN = r"""
action:
  description: create, reuse or recover (refuse fails the task with the problems).
  type: str
  returned: success
fsid:
  description: The cluster's fsid.
  type: str
  returned: success
keys:
  description: Entity name to cephx key.
  type: dict
  returned: success
generated:
  description: What was generated (C(fsid), entity names); never anything of an existing cluster.
  type: list
  elements: str
  returned: always
write_monitors:
  description: Monitors whose copy of the record is missing or incomplete.
  type: list
  elements: str
  returned: always
mon_stores:
  description: Monitors that have a store or a running monitor.
  type: list
  elements: str
  returned: always
cluster_exists:
  description: Whether any monitor has a store, a running monitor or a ceph.conf with an fsid.
  type: bool
  returned: always
problems:
  description: Why the run stops (empty on success).
  type: list
  elements: str
  returned: always
"""

import json
import os
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.allmende.cloud.plugins.module_utils.ceph import plan_identity


def read_record(module, path):
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        module.fail_json(msg="%s cannot be read as JSON: %s; restore it from a backup" % (path, exc))
    if not isinstance(data, dict) or not isinstance(data.get("keys", {}), dict):
        module.fail_json(msg="%s: expected an object with 'fsid' and 'keys'; restore it from a backup" % path)
    return data


def write_record(path, record):
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o700)
    os.chmod(directory, 0o700)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".identity-")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(record, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            monitors=dict(type="list", elements="dict", required=True, no_log=False),
            entities=dict(type="list", elements="str", required=True, no_log=False),
            fsid=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    controller = read_record(module, path)
    plan = plan_identity(
        controller,
        module.params["monitors"],
        module.params["entities"],
        wanted_fsid=module.params["fsid"],
        controller_label="the deployment host (%s)" % path,
    )
    if plan["action"] == "refuse":
        module.fail_json(
            msg="the cluster's identity: %s" % "; ".join(plan["problems"]),
            problems=plan["problems"],
            generated=[],
            write_monitors=[],
            mon_stores=plan["mon_stores"],
            cluster_exists=plan["cluster_exists"],
        )

    changed = False
    if plan["write_controller"]:
        record = dict(controller or {})
        record["fsid"] = plan["fsid"]
        record["keys"] = dict((record.get("keys") or {}), **plan["keys"])
        changed = True
        if not module.check_mode:
            write_record(path, record)
    elif not module.check_mode:
        directory = os.path.dirname(path) or "."
        for target, mode in ((directory, 0o700), (path, 0o600)):
            if stat.S_IMODE(os.stat(target).st_mode) != mode:
                os.chmod(target, mode)
                changed = True
    plan.pop("write_controller")
    module.exit_json(changed=changed, **plan)


if __name__ == "__main__":
    main()
