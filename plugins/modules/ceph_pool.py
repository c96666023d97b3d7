#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ceph_pool
author: Allmende developers (@allmende)
short_description: Create a replicated Ceph pool and keep its settings
description:
  - Creates the pool if it is missing and sets replication (O(size), O(min_size)), the PG
    autoscaler mode and the application tag when they differ.
  - Never deletes a pool and never lowers O(pg_num) by itself; with the autoscaler on, Ceph
    manages the number of placement groups.
  - Runs on a host with an admin keyring.
options:
  name:
    description: Pool name.
    type: str
    required: true
  size:
    description: Number of replicas.
    type: int
    default: 3
  min_size:
    description: Replicas that must be available for I/O; defaults to C(size - size // 2).
    type: int
  pg_num:
    description: Placement groups when the pool is created (the autoscaler may change it later).
    type: int
    default: 32
  pg_autoscale_mode:
    description: PG autoscaler mode of the pool.
    type: str
    choices: ["on", "off", "warn"]
    default: "on"
  application:
    description: Application tag (C(rbd), C(rgw), C(cephfs)); empty for none.
    type: str
    default: ""
  target_size_ratio:
    description: Expected share of the cluster's capacity, a hint for the autoscaler; 0 for none.
    type: float
    default: 0
  cluster:
    description: Cluster name.
    type: str
    default: ceph
notes:
  - Supports check mode and diff mode.
"""

EXAMPLES = r"""
- name: Pool for cinder volumes
  allmende.cloud.ceph_pool:
    name: volumes
    size: 3
    application: rbd
"""

RETURN = r"""
pool:
  description: The pool's settings after the run.
  type: dict
  returned: always
  sample: {name: volumes, size: 3, min_size: 2, pg_num: 32, pg_autoscale_mode: "on", application: rbd}
created:
  description: Whether the pool was created.
  type: bool
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.allmende.cloud.plugins.module_utils.ceph import CephError, CephSession


def pool_view(entry):
    options = entry.get("options") or {}
    apps = sorted((entry.get("application_metadata") or {}).keys())
    return {
        "name": entry.get("pool_name"),
        "size": int(entry.get("size") or 0),
        "min_size": int(entry.get("min_size") or 0),
        "pg_num": int(entry.get("pg_num") or 0),
        "pg_autoscale_mode": str(entry.get("pg_autoscale_mode") or ""),
        "application": ",".join(apps),
        "target_size_ratio": float(options.get("target_size_ratio") or 0),
    }


def find(session, name):
    for entry in session.json("osd pool ls", detail="detail") or []:
        if entry.get("pool_name") == name:
            return pool_view(entry)
    return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            size=dict(type="int", default=3),
            min_size=dict(type="int"),
            pg_num=dict(type="int", default=32),
            pg_autoscale_mode=dict(type="str", choices=["on", "off", "warn"], default="on"),
            application=dict(type="str", default=""),
            target_size_ratio=dict(type="float", default=0.0),
            cluster=dict(type="str", default="ceph"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    name = p["name"]
    min_size = p["min_size"] if p["min_size"] is not None else p["size"] - p["size"] // 2
    if p["size"] < 1 or not 1 <= min_size <= p["size"] or p["pg_num"] < 1:
        module.fail_json(msg="pool %s: need size >= 1, 1 <= min_size <= size, pg_num >= 1" % name)
    wanted = {
        "size": p["size"],
        "min_size": min_size,
        "pg_autoscale_mode": p["pg_autoscale_mode"],
        "application": p["application"],
        "target_size_ratio": float(p["target_size_ratio"]),
    }
    session = CephSession(module, cluster=p["cluster"])
    try:
        before = find(session, name)
        created = before is None
        if created:
            before_view = {}
            if module.check_mode:
                after = dict(wanted, name=name, pg_num=p["pg_num"])
                module.exit_json(changed=True, created=True, pool=after, diff=dict(before={}, after=after))
            session.check(
                {
                    "prefix": "osd pool create",
                    "pool": name,
                    "pg_num": p["pg_num"],
                    "pgp_num": p["pg_num"],
                    "pool_type": "replicated",
                }
            )
            current = find(session, name)
        else:
            before_view = dict(before)
            current = before
        steps = []
        # Order matters: min_size may not exceed size at any moment.
        if current["size"] != wanted["size"]:
            if wanted["size"] > current["size"]:
                steps.append(["size", str(wanted["size"])])
            else:
                steps.append(["min_size", str(min(current["min_size"], wanted["size"]))])
                steps.append(["size", str(wanted["size"])])
        steps_min = ["min_size", str(wanted["min_size"])]
        if current["pg_autoscale_mode"] != wanted["pg_autoscale_mode"]:
            steps.append(["pg_autoscale_mode", wanted["pg_autoscale_mode"]])
        if abs(current["target_size_ratio"] - wanted["target_size_ratio"]) > 1e-9:
            steps.append(["target_size_ratio", str(wanted["target_size_ratio"])])
        app_wrong = wanted["application"] and wanted["application"] not in current["application"].split(",")
        min_wrong = current["min_size"] != wanted["min_size"] or any(s[0] == "min_size" for s in steps)
        changed = created or bool(steps) or bool(app_wrong) or min_wrong
        if changed and not module.check_mode:
            for key, value in [*steps, *([steps_min] if min_wrong else [])]:
                session.check({"prefix": "osd pool set", "pool": name, "var": key, "val": value})
            if app_wrong:
                session.check({"prefix": "osd pool application enable", "pool": name, "app": wanted["application"]})
            current = find(session, name)
        elif changed:
            current = dict(current, **wanted)
        module.exit_json(
            changed=changed,
            created=created,
            pool=current,
            diff=dict(before=before_view, after=current) if changed else {},
        )
    except CephError as exc:
        module.fail_json(msg="pool %s: %s" % (name, exc))
    finally:
        session.close()


if __name__ == "__main__":
    main()
