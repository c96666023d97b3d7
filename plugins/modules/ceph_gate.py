#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ceph_gate
author: Allmende developers (@allmende)
short_description: Wait until a Ceph cluster meets the conditions for the next step
description:
  - Polls the cluster (C(ceph status), C(quorum_status), C(osd dump), C(osd tree), C(mgr dump),
    C(ok-to-stop)) and the local systemd units until every requested condition holds, or fails
    after O(timeout) seconds with one message listing everything that is still wrong.
  - Meant for rolling restarts and upgrades, where continuing on a degraded cluster could make
    data unavailable. Runs on a host with an admin keyring (usually a monitor). Read-only.
  - C(ceph status) alone can report HEALTH_OK while an OSD daemon is already dead, so the OSD
    conditions use the OSD map, and O(units_active) asks systemd on the host itself.
options:
  name:
    description: What the gate protects, used in messages (for example C(before restarting node2)).
    type: str
    required: true
  timeout:
    description: Seconds to wait for the conditions; C(0) checks once.
    type: int
    default: 300
  interval:
    description: Seconds between two checks.
    type: int
    default: 5
  settle:
    description:
      - Number of consecutive checks that must all pass. Statistics reach the manager a few
        seconds after an OSD changes state, so gates after a restart use 2 or more.
    type: int
    default: 1
  cluster:
    description: Cluster name.
    type: str
    default: ceph
  connect_timeout:
    description: Seconds the ceph command waits for a monitor before giving up.
    type: int
    default: 10
  health_not_err:
    description: The health status must not be C(HEALTH_ERR).
    type: bool
    default: true
  quorum_complete:
    description: Every monitor of the monmap must be in quorum.
    type: bool
    default: false
  in_quorum:
    description: Monitors that must be in quorum.
    type: list
    elements: str
    default: []
  election_epoch_above:
    description:
      - The monitors' election epoch must be higher than this, which proves that an election
        (a restarted monitor rejoining) has happened since the value was read.
    type: int
  all_osds_up:
    description: Every OSD that is C(in) must be C(up).
    type: bool
    default: false
  host_osds_up:
    description: Every OSD of this CRUSH host must be C(up).
    type: str
  osds_restarted:
    description:
      - OSD id to its C(up_from) epoch before a restart; each must be up again with a newer
        C(up_from), which proves the restarted daemon has rejoined.
    type: dict
    default: {}
  pgs_active_clean:
    description: Every placement group must be active+clean (scrubbing is fine).
    type: bool
    default: false
  mgr_available:
    description: A manager must be active.
    type: bool
    default: false
  mgrs_present:
    description: Managers that must be active or standby.
    type: list
    elements: str
    default: []
  ok_to_stop_osds:
    description: These OSDs must be safe to stop (C(ceph osd ok-to-stop)).
    type: list
    elements: int
    default: []
  ok_to_stop_mon:
    description: This monitor must be safe to stop (C(ceph mon ok-to-stop)).
    type: str
  ok_to_stop_host:
    description:
      - The OSDs of this CRUSH host must be safe to stop together; their ids are returned as
        RV(host_osds).
    type: str
  units_active:
    description: Systemd units on the host running the module that must be active.
    type: list
    elements: str
    default: []
notes:
  - Supports check mode (it only reads).
"""

EXAMPLES = r"""
- name: Refuse to start on HEALTH_ERR or an incomplete quorum
  allmende.cloud.ceph_gate:
    name: before the rolling restart
    timeout: 0
    quorum_complete: true

- name: Wait until the restarted OSDs are back and every PG is active+clean
  allmende.cloud.ceph_gate:
    name: after restarting node2
    osds_restarted: {"3": 141, "4": 141}
    all_osds_up: true
    pgs_active_clean: true
    settle: 2
    timeout: 600
  delegate_to: "{{ groups['control'][0] }}"
"""

RETURN = r"""
elapsed:
  description: Seconds spent waiting.
  type: int
  returned: always
checks:
  description: Number of checks made.
  type: int
  returned: always
problems:
  description: What was still wrong at the last check (empty when the gate passed).
  type: list
  elements: str
  returned: always
host_osds:
  description: Ids of the OSDs of O(ok_to_stop_host).
  type: list
  elements: int
  returned: when ok_to_stop_host is given
cluster:
  description:
    - Health, quorum, OSD and PG counts and OSD flags at the last check; also the election
      epoch, each OSD's up_from epoch and the managers' gids, for the gates after a restart.
  type: dict
  returned: always
  sample:
    health: HEALTH_OK
    quorum: [node1, node2, node3]
    osds: 6
    osds_up: 6
    osds_in: 6
    pgs: 129
    pgs_active_clean: 129
    flags: [noout, sortbitwise]
    election_epoch: 42
    osd_up_from: {"0": 120, "1": 118}
    mgr_active: node1
    mgr_gids: {node1: 4123, node2: 4301}
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.allmende.cloud.plugins.module_utils.ceph import (
    CephError,
    CephSession,
    evaluate,
    osd_hosts,
    summarise,
)


def snapshot(module, session, wanted):
    snap = {}
    try:
        snap["status"] = session.json("status")
        snap["quorum"] = session.json("quorum_status")
        snap["osd_dump"] = session.json("osd dump")
        snap["tree"] = session.json("osd tree")
        if any(wanted.get(k) for k in ("mgr_available", "mgrs_present", "pgs_active_clean")):
            snap["mgr_dump"] = session.json("mgr dump")
        osds = list(wanted.get("ok_to_stop_osds") or [])
        if wanted.get("ok_to_stop_host"):
            hosts = osd_hosts(snap["tree"])
            osds.extend(i for i, h in sorted(hosts.items()) if h == wanted["ok_to_stop_host"])
        if osds:
            rc, _out, err = session.call({"prefix": "osd ok-to-stop", "ids": [str(i) for i in osds]}, target="mgr")
            snap["ok_to_stop_osds"] = (rc, err)
        if wanted.get("ok_to_stop_mon"):
            rc, _out, err = session.call({"prefix": "mon ok-to-stop", "ids": [wanted["ok_to_stop_mon"]]})
            snap["ok_to_stop_mon"] = (rc, err)
    except CephError as exc:
        return {"error": str(exc)}
    if wanted.get("units_active"):
        systemctl = module.get_bin_path("systemctl", required=True)
        units = {}
        for unit in wanted["units_active"]:
            _rc, out, _err = module.run_command([systemctl, "is-active", unit])
            units[unit] = out.strip()
        snap["units"] = units
    return snap


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            timeout=dict(type="int", default=300),
            interval=dict(type="int", default=5),
            settle=dict(type="int", default=1),
            cluster=dict(type="str", default="ceph"),
            connect_timeout=dict(type="int", default=10),
            health_not_err=dict(type="bool", default=True),
            quorum_complete=dict(type="bool", default=False),
            in_quorum=dict(type="list", elements="str", default=[]),
            election_epoch_above=dict(type="int"),
            all_osds_up=dict(type="bool", default=False),
            host_osds_up=dict(type="str"),
            osds_restarted=dict(type="dict", default={}),
            pgs_active_clean=dict(type="bool", default=False),
            mgr_available=dict(type="bool", default=False),
            mgrs_present=dict(type="list", elements="str", default=[]),
            ok_to_stop_osds=dict(type="list", elements="int", default=[]),
            ok_to_stop_mon=dict(type="str"),
            ok_to_stop_host=dict(type="str"),
            units_active=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] < 0 or p["interval"] < 1 or p["settle"] < 1:
        module.fail_json(msg="timeout must be >= 0, interval and settle >= 1")
    wanted = dict((k, p[k]) for k in p)
    if wanted["pgs_active_clean"]:
        # PG states come from the active manager; without one they are stale.
        wanted["mgr_available"] = True
    settle = p["settle"] if p["timeout"] else 1
    session = CephSession(module, cluster=p["cluster"], connect_timeout=p["connect_timeout"])
    start = time.time()
    deadline = start + p["timeout"]
    checks = 0
    passed = 0
    while True:
        snap = snapshot(module, session, wanted)
        problems = evaluate(snap, wanted)
        checks += 1
        passed = 0 if problems else passed + 1
        if not problems and passed >= settle:
            break
        if time.time() + p["interval"] > deadline:
            break
        time.sleep(p["interval"])
    session.close()
    elapsed = round(time.time() - start)
    result = dict(changed=False, elapsed=elapsed, checks=checks, problems=problems, cluster=summarise(snap))
    if p["ok_to_stop_host"]:
        result["host_osds"] = sorted(i for i, h in osd_hosts(snap.get("tree")).items() if h == p["ok_to_stop_host"])
    if problems:
        waited = "after waiting %ds" % elapsed if p["timeout"] else "(checked once, no waiting)"
        module.fail_json(msg="gate '%s' not met %s: %s" % (p["name"], waited, "; ".join(problems)), **result)
    if passed < settle:
        module.fail_json(
            msg="gate '%s' not met after waiting %ds: the cluster passed only %d of %d consecutive checks"
            % (p["name"], elapsed, passed, settle),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
