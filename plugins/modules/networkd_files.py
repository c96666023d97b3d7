#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: networkd_files
author: Allmende developers (@allmende)
short_description: Keep a set of systemd-networkd files exactly as given and record what changed
description:
  - Writes every file of O(files) into O(directory) whose content differs, and removes the files
    in O(directory) that start with O(prefix) but are not in O(files) (files this module wrote
    earlier for interfaces that are gone). Files without the prefix are never touched.
  - Reports which links and devices the change affects, from the C([Match]) section of added,
    changed and removed C(.network) files (C(Name=), or the link that has the C(MACAddress=) or
    C(PermanentMACAddress=)) and the C([NetDev] Name=) of C(.netdev) files.
  - Until M(allmende.cloud.networkd_apply) has applied them, the changes are kept in
    O(pending_file), so that a run that stops between writing and applying is completed by the
    next run even though the files no longer change.
options:
  files:
    description: File name (without directory, starting with O(prefix)) to content.
    type: dict
    required: true
  directory:
    description: The systemd-networkd configuration directory.
    type: path
    default: /etc/systemd/network
  prefix:
    description: Name prefix of the files this module owns.
    type: str
    default: 50-allmende-
  pending_file:
    description: Where changes not yet applied are recorded (JSON).
    type: path
    default: /var/lib/allmende/network-pending.json
notes:
  - Supports check mode and diff mode.
"""

EXAMPLES = r"""
- name: Write the systemd-networkd files
  allmende.cloud.networkd_files:
    files:
      50-allmende-br-data.netdev: "[NetDev]\nName=br-data\nKind=bridge\n"
      50-allmende-br-data.network: "[Match]\nName=br-data\n\n[Network]\nAddress=10.214.10.11/24\n"
  register: network_files_result
"""

RETURN = r"""
written:
  description: Files written (or that would be written in check mode).
  type: list
  elements: str
  returned: always
removed:
  description: Files removed (or that would be removed).
  type: list
  elements: str
  returned: always
changes:
  description: What this run changed.
  type: dict
  returned: always
  contains:
    links:
      description: Links whose C(.network) file was added, changed or removed.
      type: list
      elements: str
    netdevs_added:
      description: Devices with a new C(.netdev) file.
      type: list
      elements: str
    netdevs_changed:
      description: Devices whose C(.netdev) file changed (they must be recreated).
      type: list
      elements: str
    netdevs_removed:
      description: Devices whose C(.netdev) file was removed.
      type: list
      elements: str
pending:
  description: The changes of this run merged with those earlier runs left unapplied, same keys as RV(changes).
  type: dict
  returned: always
"""

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.allmende.cloud.plugins.module_utils.networkd import unit_name

SUFFIXES = (".network", ".netdev", ".link")
KEYS = ("links", "netdevs_added", "netdevs_changed", "netdevs_removed")


def empty_changes():
    return dict((k, []) for k in KEYS)


def read(path):
    with open(path) as handle:
        return handle.read()


def existing_files(directory, prefix):
    if not os.path.isdir(directory):
        return {}
    out = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.startswith(prefix) and name.endswith(SUFFIXES) and os.path.isfile(path):
            out[name] = read(path)
    return out


def matched_link(text, macs):
    """The link a .network file applies to: [Match] Name=, else the link with its MAC."""
    name = unit_name(text, "Match")
    if name:
        return name
    for key in ("PermanentMACAddress", "MACAddress"):
        mac = unit_name(text, "Match", key)
        if mac:
            return macs.get((key, mac.lower()))
    return None


def host_macs(module):
    """{(match key, mac): link} for the host's NICs, from ip -j link show."""
    ip = module.get_bin_path("ip")
    if not ip:
        return {}
    rc, out, _err = module.run_command([ip, "-j", "link", "show"])
    try:
        links = json.loads(out) if rc == 0 else []
    except ValueError:
        links = []
    macs = {}
    for link in links:
        if (link.get("linkinfo") or {}).get("info_kind") not in (None, "veth"):
            continue
        address = (link.get("address") or "").lower()
        macs[("MACAddress", address)] = link.get("ifname")
        macs[("PermanentMACAddress", (link.get("permaddr") or address).lower())] = link.get("ifname")
    return macs


def compare(current, wanted, macs=None):
    """-> (to write, to remove, changes) for the current and wanted {name: content}."""
    macs = macs or {}
    write = sorted(n for n in wanted if current.get(n) != wanted[n])
    remove = sorted(n for n in current if n not in wanted)
    changes = empty_changes()
    for name in write + remove:
        old, new = current.get(name), wanted.get(name)
        if name.endswith(".network"):
            for text in (old, new):
                link = matched_link(text, macs) if text is not None else None
                if link and link not in changes["links"]:
                    changes["links"].append(link)
        elif name.endswith(".netdev"):
            old_dev = unit_name(old, "NetDev") if old is not None else None
            new_dev = unit_name(new, "NetDev") if new is not None else None
            if old is None and new_dev:
                changes["netdevs_added"].append(new_dev)
            elif new is None and old_dev:
                changes["netdevs_removed"].append(old_dev)
            else:
                for dev in (old_dev, new_dev):
                    if dev and dev not in changes["netdevs_changed"]:
                        changes["netdevs_changed"].append(dev)
    for key in KEYS:
        changes[key] = sorted(set(changes[key]))
    return write, remove, changes


def merge(first, second):
    out = empty_changes()
    for key in KEYS:
        out[key] = sorted(set(first.get(key) or []) | set(second.get(key) or []))
    return out


def load_pending(path):
    if not os.path.exists(path):
        return empty_changes()
    try:
        data = json.loads(read(path))
    except ValueError:
        return empty_changes()
    return merge(empty_changes(), data if isinstance(data, dict) else {})


def atomic_write(module, path, content, mode=0o644):
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".allmende-", dir=directory)
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(tmp, mode)
    module.atomic_move(tmp, path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            files=dict(type="dict", required=True),
            directory=dict(type="path", default="/etc/systemd/network"),
            prefix=dict(type="str", default="50-allmende-"),
            pending_file=dict(type="path", default="/var/lib/allmende/network-pending.json"),
        ),
        supports_check_mode=True,
    )
    directory = module.params["directory"]
    prefix = module.params["prefix"]
    wanted = {}
    bad = []
    for name, content in sorted(module.params["files"].items()):
        if os.path.basename(name) != name or not name.startswith(prefix) or not name.endswith(SUFFIXES):
            bad.append(name)
        wanted[name] = "" if content is None else str(content)
    if bad:
        module.fail_json(
            msg="file names must be plain names starting with %s and ending in %s: %s"
            % (prefix, " or ".join(SUFFIXES), ", ".join(bad))
        )
    current = existing_files(directory, prefix)
    write, remove, changes = compare(current, wanted, host_macs(module))
    pending_file = module.params["pending_file"]
    pending = merge(load_pending(pending_file), changes)
    changed = bool(write or remove)
    diff = [
        {
            "before_header": os.path.join(directory, name),
            "after_header": os.path.join(directory, name),
            "before": current.get(name, ""),
            "after": wanted.get(name, ""),
        }
        for name in write + remove
    ]
    if changed and not module.check_mode:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        # Record first: if this run dies after writing, the next run still applies the change.
        pending_dir = os.path.dirname(pending_file)
        if not os.path.isdir(pending_dir):
            os.makedirs(pending_dir, 0o700)
        atomic_write(module, pending_file, json.dumps(pending, sort_keys=True) + "\n", 0o600)
        for name in write:
            atomic_write(module, os.path.join(directory, name), wanted[name])
        for name in remove:
            os.unlink(os.path.join(directory, name))
    module.exit_json(changed=changed, written=write, removed=remove, changes=changes, pending=pending, diff=diff)


if __name__ == "__main__":
    main()
