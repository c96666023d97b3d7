#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: networkd_apply
author: Allmende developers (@allmende)
short_description: Apply changed systemd-networkd files, touching only the links they concern
description:
  - Applies the changes that M(allmende.cloud.networkd_files) recorded, without restarting
    systemd-networkd and without touching links whose files did not change.
  - Devices whose C(.netdev) file changed are deleted and recreated (networkd never changes an
    existing device's kind parameters such as bond mode or VLAN id), and the links below them
    are reconfigured so they rejoin; devices whose C(.netdev) file was removed are deleted.
  - Then C(networkctl reload) makes networkd create new devices and reconfigure exactly the
    links whose C(.network) file was added, changed or removed. If networkd is not running it
    is started instead, which configures every link it has a file for.
  - Waits (bounded by O(timeout)) until every link in O(links) reaches one of O(ready_states),
    then removes O(pending_file).
  - Never deletes or reconfigures a link listed in O(protected).
options:
  changes:
    description: The RV(allmende.cloud.networkd_files#module:pending) result of M(allmende.cloud.networkd_files).
    type: dict
    required: true
  reconfigure:
    description: Links to reconfigure although their files did not change (they drifted).
    type: list
    elements: str
    default: []
  links:
    description: Every link networkd should manage once the changes are applied.
    type: list
    elements: str
    default: []
  lowers:
    description: Device name to the links below it (LAG members, bridge ports, VLAN parent).
    type: dict
    default: {}
  link_files:
    description: Link name to its C(.network) file name, where it is not O(prefix) + link + C(.network).
    type: dict
    default: {}
  protected:
    description: Links this module must never delete or reconfigure (the management connection).
    type: list
    elements: str
    default: []
  directory:
    description: The systemd-networkd configuration directory.
    type: path
    default: /etc/systemd/network
  prefix:
    description: Name prefix of the managed files.
    type: str
    default: 50-allmende-
  pending_file:
    description: The pending-changes file of M(allmende.cloud.networkd_files), removed once applied.
    type: path
    default: /var/lib/allmende/network-pending.json
  ready_states:
    description: systemd-networkd setup states that count as applied.
    type: list
    elements: str
    default: [configured]
  timeout:
    description: Seconds to wait for devices to disappear, appear and links to become ready.
    type: int
    default: 60
notes:
  - Supports check mode (reports what it would do).
"""

EXAMPLES = r"""
- name: Apply the changed systemd-networkd files
  allmende.cloud.networkd_apply:
    changes: "{{ network_files_result.pending }}"
    links: [eth1, br-data]
    lowers:
      br-data: [eth1]
    protected: [eth0]
  when: network_files_result.pending.values() | flatten | length > 0
"""

RETURN = r"""
deleted:
  description: Devices deleted (to be recreated, or gone from the inventory).
  type: list
  elements: str
  returned: always
reloaded:
  description: Links networkd reconfigured on reload because their C(.network) file changed.
  type: list
  elements: str
  returned: always
reconfigured:
  description: Links reconfigured explicitly (below recreated devices, or failed ones).
  type: list
  elements: str
  returned: always
started:
  description: Whether systemd-networkd was started (it was not running).
  type: bool
  returned: always
states:
  description: Setup state of each link in O(links) at the end.
  type: dict
  returned: success
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

KEYS = ("links", "netdevs_added", "netdevs_changed", "netdevs_removed")


class Host(object):
    def __init__(self, module):
        self.module = module
        self.ip = module.get_bin_path("ip", required=True)
        self.networkctl = module.get_bin_path("networkctl", required=True)
        self.systemctl = module.get_bin_path("systemctl", required=True)

    def run(self, args, check=True):
        rc, out, err = self.module.run_command(args)
        if check and rc != 0:
            self.module.fail_json(msg="%s failed (rc=%d): %s" % (" ".join(args), rc, (err or out).strip()))
        return rc, out

    def networkd_active(self):
        return self.run([self.systemctl, "is-active", "--quiet", "systemd-networkd"], check=False)[0] == 0

    def links(self):
        _rc, out = self.run([self.ip, "-j", "link", "show"])
        try:
            return set(link["ifname"] for link in json.loads(out or "[]"))
        except (ValueError, KeyError, TypeError):
            self.module.fail_json(msg="cannot read `ip -j link show` output")

    def states(self):
        """{link: setup state} from networkctl list."""
        _rc, out = self.run([self.networkctl, "list", "--no-legend", "--no-pager"])
        states = {}
        for line in out.splitlines():
            cols = line.split()
            if len(cols) >= 5 and cols[0].isdigit():
                states[cols[1]] = cols[-1]
        return states


def wait_for(predicate, timeout, step=0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(step)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            changes=dict(type="dict", required=True),
            reconfigure=dict(type="list", elements="str", default=[]),
            links=dict(type="list", elements="str", default=[]),
            lowers=dict(type="dict", default={}),
            link_files=dict(type="dict", default={}),
            protected=dict(type="list", elements="str", default=[]),
            directory=dict(type="path", default="/etc/systemd/network"),
            prefix=dict(type="str", default="50-allmende-"),
            pending_file=dict(type="path", default="/var/lib/allmende/network-pending.json"),
            ready_states=dict(type="list", elements="str", default=["configured"]),
            timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    p = module.params
    changes = dict((k, sorted(set(p["changes"].get(k) or []))) for k in KEYS)
    protected = set(p["protected"])
    wanted_links = sorted(set(p["links"]) - protected)
    lowers = dict((k, list(v or [])) for k, v in p["lowers"].items())
    refused = sorted(
        protected & set(changes["links"] + changes["netdevs_changed"] + changes["netdevs_removed"])
    )
    for name in refused:
        module.warn("%s is part of the management connection; it was not deleted or reconfigured" % name)
    file_changes = any(changes[k] for k in KEYS)
    explicit = sorted(set(p["reconfigure"]) - protected)
    recreate = [d for d in changes["netdevs_changed"] if d not in protected]
    below = sorted(set(x for d in recreate for x in lowers.get(d, [])) - protected)
    host = Host(module)
    present = host.links()
    delete = sorted((set(recreate) | set(changes["netdevs_removed"])) & (present - protected))
    active = host.networkd_active()
    result = dict(
        changed=True,
        deleted=delete,
        reloaded=[x for x in changes["links"] if x not in protected] if active and file_changes else [],
        reconfigured=sorted(set(below) | set(explicit)) if active else [],
        started=not active,
    )
    if module.check_mode:
        module.exit_json(**result)

    for name in delete:
        host.run([host.ip, "link", "delete", "dev", name])
    if active and delete:
        # networkd must have dropped the old device before a reload, or it keeps the stale one.
        gone = wait_for(lambda: not (set(delete) & set(host.states())), p["timeout"])
        if not gone:
            module.fail_json(msg="systemd-networkd still lists %s after deleting it" % ", ".join(delete), **result)
    for name in below:
        # A new mtime makes networkd re-read the file, so the link refers to the recreated device.
        path = os.path.join(p["directory"], p["link_files"].get(name) or p["prefix"] + name + ".network")
        if os.path.exists(path):
            os.utime(path, None)
    if active:
        if file_changes:
            host.run([host.networkctl, "reload"])
    else:
        host.run([host.systemctl, "start", "systemd-networkd"])

    appeared = wait_for(lambda: set(wanted_links) <= set(host.states()), p["timeout"])
    if not appeared:
        missing = sorted(set(wanted_links) - set(host.states()))
        module.fail_json(msg="links did not appear within %ds: %s" % (p["timeout"], ", ".join(missing)), **result)
    if active:
        states = host.states()
        failed = [x for x in changes["links"] if states.get(x) in ("failed", "linger") and x not in protected]
        again = sorted((set(below) | set(failed) | set(explicit)) & set(states))
        if again:
            host.run([host.networkctl, "reconfigure", *again])
        result["reconfigured"] = again

    ready = set(p["ready_states"])

    def all_ready():
        states = host.states()
        return all(states.get(x) in ready for x in wanted_links) and states

    final = wait_for(all_ready, p["timeout"])
    states = host.states()
    result["states"] = dict((x, states.get(x, "missing")) for x in wanted_links)
    if not final:
        bad = ["%s is %s" % (x, states.get(x, "missing")) for x in wanted_links if states.get(x) not in ready]
        hint = ""
        if any(states.get(x) == "unmanaged" for x in wanted_links):
            hint = " (unmanaged: no .network file matches the link; check its name and MAC in the inventory)"
        if any(states.get(x) == "pending" for x in wanted_links):
            hint += " (pending: networkd waits for udev to initialise the link)"
        module.fail_json(
            msg="links not %s within %ds: %s%s" % ("/".join(sorted(ready)), p["timeout"], "; ".join(bad), hint),
            **result
        )
    if os.path.exists(p["pending_file"]):
        os.unlink(p["pending_file"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
