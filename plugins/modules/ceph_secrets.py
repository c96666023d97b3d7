#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: ceph_secrets
author: Allmende developers (@allmende)
short_description: Keep the identity of a Ceph cluster (fsid and bootstrap keys) in one protected file
description:
  - Reads the cluster's fsid and the cephx keys needed to bootstrap it (for example C(mon.),
    C(client.admin), C(client.bootstrap-osd)) from a JSON file readable by root only, generating
    whatever is missing. Existing values are never changed.
  - The file lives on the first monitor; the play fetches the values from there and writes
    keyrings only to the hosts that need them. Tasks using this module must set C(no_log).
options:
  path:
    description: The secrets file (created with mode 0600).
    type: path
    required: true
  fsid:
    description:
      - The fsid the cluster must have. Used when the file is created; if the file holds another
        fsid the module fails, because a cluster cannot change its fsid.
      - Empty or omitted, a new random fsid is generated once.
    type: str
  keys:
    description: Names of the cephx entities whose keys the file keeps.
    type: list
    elements: str
    required: true
  values:
    description:
      - The keys the file must hold (entity name to key), as M(allmende.cloud.ceph_identity)
        decided them. Given, nothing is generated - missing keys are taken from here, and a key
        in the file that differs fails the module (an existing key is never replaced).
    type: dict
notes:
  - Supports check mode; values that would be generated are returned but not stored.
"""

EXAMPLES = r"""
- name: Read or create the cluster's fsid and bootstrap keys
  allmende.cloud.ceph_secrets:
    path: /etc/ceph/allmende-secrets.json
    keys: [mon., client.admin, client.bootstrap-osd]
  register: secrets
  no_log: true
"""

RETURN = r"""
fsid:
  description: The cluster fsid.
  type: str
  returned: always
keys:
  description: Entity name to cephx key.
  type: dict
  returned: always
generated:
  description: What this run added to the file (C(fsid) and entity names); empty when nothing changed.
  type: list
  elements: str
  returned: always
"""

import json
import os
import tempfile
import uuid

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.allmende.cloud.plugins.module_utils.ceph import generate_key, valid_key


def read(module, path):
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        module.fail_json(msg="%s cannot be read as JSON: %s" % (path, exc))
    if not isinstance(data, dict) or not isinstance(data.get("keys", {}), dict):
        module.fail_json(msg="%s: expected an object with 'fsid' and 'keys'" % path)
    return data


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            fsid=dict(type="str"),
            keys=dict(type="list", elements="str", required=True, no_log=False),
            values=dict(type="dict", no_log=False),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    wanted_fsid = (module.params["fsid"] or "").strip().lower()
    if wanted_fsid:
        try:
            wanted_fsid = str(uuid.UUID(wanted_fsid))
        except ValueError:
            module.fail_json(msg="fsid %r is not a UUID" % module.params["fsid"])

    data = read(module, path) or {}
    generated = []
    fsid = data.get("fsid")
    if fsid and wanted_fsid and fsid != wanted_fsid:
        module.fail_json(
            msg="%s holds fsid %s but %s was asked for: the fsid of an existing cluster cannot change"
            % (path, fsid, wanted_fsid)
        )
    if not fsid:
        fsid = wanted_fsid or str(uuid.uuid4())
        generated.append("fsid")
    keys = dict(data.get("keys") or {})
    bad = sorted(name for name, key in keys.items() if not valid_key(key))
    if bad:
        module.fail_json(msg="%s holds malformed keys for %s; restore the file from a backup" % (path, ", ".join(bad)))
    values = module.params["values"]
    if values is not None:
        differ = sorted(n for n in module.params["keys"] if n in keys and n in values and keys[n] != values[n])
        absent = sorted(n for n in module.params["keys"] if n not in keys and not values.get(n))
        if differ or absent:
            module.fail_json(
                msg="%s: keys of %s differ from the cluster's identity, none given for %s; nothing was changed"
                % (path, ", ".join(differ) or "no entity", ", ".join(absent) or "no entity")
            )
    for name in module.params["keys"]:
        if name not in keys:
            keys[name] = generate_key() if values is None else values[name]
            generated.append(name)

    changed = bool(generated)
    mode_wrong = os.path.exists(path) and (os.stat(path).st_mode & 0o777) != 0o600
    if (changed or mode_wrong) and not module.check_mode:
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".secrets-")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({"fsid": fsid, "keys": keys}, handle, indent=2, sort_keys=True)
                handle.write("\n")
            os.chmod(tmp, 0o600)
            os.rename(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    module.exit_json(changed=changed or mode_wrong, fsid=fsid, keys=keys, generated=generated)


if __name__ == "__main__":
    main()
