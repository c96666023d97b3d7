#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ceph_identity_probe
author: Allmende developers (@allmende)
short_description: Read what a Ceph monitor host holds of its cluster's identity
description:
  - Read-only. Reports whether the host has a monitor store, the fsid of the running monitor
    (from its admin socket) or of the store (C(ceph-monstore-tool), only while the monitor is
    stopped), the fsid in C(ceph.conf), the host's copy of the identity record and the keys of
    the bootstrap entities found in its keyrings and, when the monitor is in quorum, in the
    cluster's auth database (asked as C(mon.) with the monitor's own keyring).
  - The result feeds M(allmende.cloud.ceph_identity), which decides whether an identity may be
    created, must be recovered or the run must stop. Tasks using this module must set C(no_log).
options:
  host:
    description: The inventory name of the host, returned as it is (to tell the results apart).
    type: str
    required: true
  cluster:
    description: Cluster name.
    type: str
    default: ceph
  mon_name:
    description: Name of this host's monitor.
    type: str
    required: true
  secrets_path:
    description: The host's copy of the identity record.
    type: path
    required: true
  entities:
    description: Bootstrap entities whose keys are looked for.
    type: list
    elements: str
    required: true
  timeout:
    description: Seconds any one ceph command may take.
    type: int
    default: 20
notes:
  - Supports check mode (it changes nothing in either mode).
"""

EXAMPLES = r"""
- name: Read what this monitor holds of the cluster's identity
  allmende.cloud.ceph_identity_probe:
    host: "{{ inventory_hostname }}"
    mon_name: "{{ inventory_hostname_short }}"
    secrets_path: /etc/ceph/allmende-secrets.json
    entities: [mon., client.admin, client.bootstrap-osd]
  register: probe
  no_log: true
"""

RETURN = r"""
monitor:
  description:
    - host, store (bool), store_fsid, running_fsid, in_quorum (bool), conf_fsid, secrets (the
      record or null), keys (list of entity, source, key), errors (list).
  type: dict
  returned: always
"""

import glob
import json
import os
import re
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.allmende.cloud.plugins.module_utils.ceph import conf_fsid, parse_keyring

FSID_RE = re.compile(r"^fsid\s+([0-9a-fA-F-]{36})\s*$", re.M)


def read_text(path, errors):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        errors.append("%s cannot be read: %s" % (path, exc))
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", required=True),
            cluster=dict(type="str", default="ceph"),
            mon_name=dict(type="str", required=True),
            secrets_path=dict(type="path", required=True),
            entities=dict(type="list", elements="str", required=True, no_log=False),
            timeout=dict(type="int", default=20),
        ),
        supports_check_mode=True,
    )
    p = module.params
    cluster = p["cluster"]
    errors = []
    found = {
        "host": p["host"],
        "store": False,
        "store_fsid": "",
        "running_fsid": "",
        "in_quorum": False,
        "conf_fsid": "",
        "secrets": None,
        "keys": [],
        "errors": errors,
    }
    timeout = module.get_bin_path("timeout")

    def run(argv):
        if timeout:
            argv = [timeout, str(p["timeout"]), *argv]
        return module.run_command(argv)

    # The host's copy of the record.
    if os.path.exists(p["secrets_path"]):
        text = read_text(p["secrets_path"], errors)
        if text is not None:
            try:
                data = json.loads(text)
                if not isinstance(data, dict) or not isinstance(data.get("keys", {}), dict):
                    raise ValueError("expected an object with 'fsid' and 'keys'")
                found["secrets"] = {"fsid": data.get("fsid") or "", "keys": dict(data.get("keys") or {})}
            except ValueError as exc:
                errors.append("%s is not a valid identity record: %s" % (p["secrets_path"], exc))

    conf = "/etc/ceph/%s.conf" % cluster
    if os.path.exists(conf):
        found["conf_fsid"] = conf_fsid(read_text(conf, errors))

    # Monitor stores: this monitor's, and any other of the cluster on this host (a renamed host).
    data_dir = "/var/lib/ceph/mon/%s-%s" % (cluster, p["mon_name"])
    stores = sorted(
        os.path.dirname(d)
        for d in glob.glob("/var/lib/ceph/mon/%s-*/store.db" % cluster) + glob.glob(data_dir + "/done")
    )
    found["store"] = bool(stores)
    ceph = module.get_bin_path("ceph")

    asok = "/var/run/ceph/%s-mon.%s.asok" % (cluster, p["mon_name"])
    if ceph and os.path.exists(asok):
        rc, out, _err = run([ceph, "--admin-daemon", asok, "mon_status"])
        if rc == 0:
            try:
                status = json.loads(out)
                found["running_fsid"] = ((status.get("monmap") or {}).get("fsid") or "").lower()
                found["in_quorum"] = status.get("state") in ("leader", "peon")
            except ValueError:
                pass

    monstore_tool = module.get_bin_path("ceph-monstore-tool")
    monmaptool = module.get_bin_path("monmaptool")
    if stores and not found["running_fsid"] and monstore_tool and monmaptool:
        tmp = tempfile.mkdtemp(prefix="allmende-monmap-")
        try:
            path = os.path.join(tmp, "monmap")
            rc, _out, _err = run([monstore_tool, stores[0], "get", "monmap", "--", "--out", path])
            if rc == 0 and os.path.exists(path):
                rc, out, _err = run([monmaptool, "--print", path])
                match = FSID_RE.search(out or "") if rc == 0 else None
                if match:
                    found["store_fsid"] = match.group(1).lower()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # Keys: keyrings on this host, then the cluster's own answer.
    keyrings = sorted(
        set(
            [os.path.join(d, "keyring") for d in stores]
            + glob.glob("/etc/ceph/%s.*.keyring" % cluster)
            + glob.glob("/var/lib/ceph/bootstrap-*/%s.keyring" % cluster)
        )
    )
    for path in keyrings:
        if not os.path.isfile(path):
            continue
        text = read_text(path, errors)
        for entity, key in parse_keyring(text).items():
            if entity in p["entities"]:
                found["keys"].append({"entity": entity, "source": path, "key": key})

    mon_keyring = os.path.join(data_dir, "keyring")
    if ceph and found["in_quorum"] and os.path.exists(mon_keyring) and os.path.exists(conf):
        for entity in p["entities"]:
            argv = [
                ceph,
                "--cluster",
                cluster,
                "--connect-timeout",
                str(p["timeout"]),
                "--name",
                "mon.",
                "--keyring",
                mon_keyring,
            ]
            rc, out, _err = run([*argv, "auth", "get-key", entity])
            if rc == 0 and out.strip():
                found["keys"].append({"entity": entity, "source": "ceph auth", "key": out.strip()})

    module.exit_json(changed=False, monitor=found)


if __name__ == "__main__":
    main()
