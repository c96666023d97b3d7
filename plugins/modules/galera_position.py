#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: galera_position
author: Allmende developers (@allmende)
short_description: Read the saved Galera position of a stopped MariaDB node
description:
  - Reads C(grastate.dat) in the node's data directory. When it says seqno -1 (the node did not
    shut down cleanly) and I(recover_command) is given, runs that command (a fresh
    C(mariadbd --wsrep-recover), for example in a throw-away container on the node's data volume)
    and reads the position it prints. A position from an older log is never used.
  - The result feeds M(allmende.cloud.galera_recovery_plan), which picks the node to bootstrap from.
options:
  datadir:
    description: The node's MariaDB data directory, as seen from the host.
    type: path
    required: true
  recover_command:
    description: Command (argv) that runs C(mariadbd --wsrep-recover) on this data directory and prints its log.
    type: list
    elements: str
  timeout:
    description: Seconds the recovery run may take.
    type: int
    default: 300
attributes:
  check_mode:
    support: full
    description: Reads only; the recovery run changes nothing in the data directory and also runs in check mode.
"""

EXAMPLES = r"""
- name: Read this node's position
  allmende.cloud.galera_position:
    datadir: /var/lib/containers/storage/volumes/mariadb/_data
    recover_command: [podman, run, --rm, -v, "mariadb:/var/lib/mysql", "{{ image }}",
                      mariadbd, --wsrep-recover, --log-error=/dev/stderr]
  register: galera_position
"""

RETURN = r"""
uuid:
  description: The cluster state UUID from grastate.dat (null if the node never joined a cluster).
  type: str
  returned: always
seqno:
  description: The seqno in grastate.dat (-1 after an unclean stop).
  type: int
  returned: always
safe_to_bootstrap:
  description: Galera's own flag (set on the last node to leave a cluster cleanly).
  type: bool
  returned: always
recovered_uuid:
  description: The UUID the recovery run printed.
  type: str
  returned: when a recovery run was made
recovered_seqno:
  description: The seqno the recovery run printed.
  type: int
  returned: when a recovery run was made
datadir_initialized:
  description: Whether the data directory holds a MariaDB system database.
  type: bool
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.allmende.cloud.plugins.module_utils.galera import parse_grastate, parse_recovered_position


def main():
    module = AnsibleModule(
        argument_spec=dict(
            datadir=dict(type="path", required=True),
            recover_command=dict(type="list", elements="str"),
            timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )
    datadir = module.params["datadir"]
    result = dict(changed=False, datadir_initialized=os.path.isdir(os.path.join(datadir, "mysql")))
    grastate = os.path.join(datadir, "grastate.dat")
    text = ""
    if os.path.isfile(grastate):
        with open(grastate) as handle:
            text = handle.read()
    result.update(parse_grastate(text))
    command = module.params["recover_command"]
    if command and result["uuid"] and (result["seqno"] is None or result["seqno"] < 0):
        rc, out, err = module.run_command(command, environ_update={"LC_ALL": "C"})
        found = parse_recovered_position(out + "\n" + err)
        if rc != 0 or found is None:
            module.fail_json(
                msg="the recovery run on %s printed no position (rc=%d)" % (datadir, rc),
                stderr=err[-2000:],
                **result
            )
        result["recovered_uuid"], result["recovered_seqno"] = found
    module.exit_json(**result)


if __name__ == "__main__":
    main()
