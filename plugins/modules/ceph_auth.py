#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ceph_auth
author: Allmende developers (@allmende)
short_description: Manage a cephx entity (client or daemon key) and its capabilities
description:
  - Creates the entity if it does not exist, sets its caps to exactly O(caps) if they differ,
    and returns its key, so that a keyring can be written where it is needed.
  - Runs on a host with an admin keyring. The returned key is a secret; tasks must set C(no_log).
options:
  name:
    description: Entity name, for example C(client.glance) or C(mgr.node1).
    type: str
    required: true
  caps:
    description: Daemon type (C(mon), C(osd), C(mgr), C(mds)) to capability string.
    type: dict
    default: {}
  state:
    description: C(present) creates or updates the entity, C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  cluster:
    description: Cluster name.
    type: str
    default: ceph
notes:
  - Supports check mode; an entity that would be created has no key yet, so RV(key) is empty then.
"""

EXAMPLES = r"""
- name: Client for glance, images pool only
  allmende.cloud.ceph_auth:
    name: client.glance
    caps:
      mon: profile rbd
      osd: profile rbd pool=images
      mgr: profile rbd pool=images
  register: glance_key
  no_log: true
"""

RETURN = r"""
key:
  description: The entity's cephx key (empty in check mode when it does not exist yet).
  type: str
  returned: when state is present
caps:
  description: The caps the entity has now.
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.allmende.cloud.plugins.module_utils.ceph import CephError, CephSession, caps_args, caps_differ

ENOENT = 2


def current(session, name):
    rc, data, err = session.call({"prefix": "auth get", "entity": name, "format": "json"})
    if rc == ENOENT or (rc != 0 and "does not exist" in err):
        return None
    if rc != 0:
        raise CephError("`ceph auth get %s` failed: %s" % (name, err or "errno %d" % rc))
    for entry in data if isinstance(data, list) else []:
        if entry.get("entity") == name:
            return entry
    raise CephError("`ceph auth get %s` returned no entry for it" % name)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            caps=dict(type="dict", default={}),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            cluster=dict(type="str", default="ceph"),
        ),
        supports_check_mode=True,
    )
    name = module.params["name"]
    caps = dict((k, str(v)) for k, v in module.params["caps"].items())
    session = CephSession(module, cluster=module.params["cluster"])
    try:
        entry = current(session, name)
        if module.params["state"] == "absent":
            if entry is None:
                module.exit_json(changed=False, caps={})
            if not module.check_mode:
                session.check({"prefix": "auth del", "entity": name})
            module.exit_json(changed=True, caps={})
        if entry is None:
            if module.check_mode:
                module.exit_json(changed=True, key="", caps=caps)
            session.check({"prefix": "auth get-or-create", "entity": name, "caps": caps_args(caps)})
            entry = current(session, name)
            module.exit_json(changed=True, key=entry["key"], caps=entry.get("caps") or {})
        before = entry.get("caps") or {}
        differ = caps_differ(before, caps)
        if differ and not module.check_mode:
            session.check({"prefix": "auth caps", "entity": name, "caps": caps_args(caps)})
            entry = current(session, name)
        module.exit_json(
            changed=bool(differ),
            key=entry["key"],
            caps=caps if differ else before,
            diff=dict(before={"caps": before}, after={"caps": caps}) if differ else {},
        )
    except CephError as exc:
        module.fail_json(msg="%s: %s" % (name, exc))
    finally:
        session.close()


if __name__ == "__main__":
    main()
