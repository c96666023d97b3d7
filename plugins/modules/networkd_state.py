#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: networkd_state
author: Allmende developers (@allmende)
short_description: Read a host's live network state (read-only)
description:
  - Returns links with their addresses and details (C(ip -j -d addr show)), the routes of the
    main table (IPv4 and IPv6), whether systemd-networkd and systemd-udevd run, the setup state
    networkd reports per link, the host's ifupdown configuration and what C(/etc/resolv.conf) is
    (a file, a symbolic link, or a file mounted over by a container runtime), and the machine-id.
  - Changes nothing; runs the same in check mode.
options:
  ifupdown_files:
    description: ifupdown configuration files and directories to read.
    type: list
    elements: path
    default: [/etc/network/interfaces, /etc/network/interfaces.d]
  resolv_conf:
    description: Path of the resolver configuration.
    type: path
    default: /etc/resolv.conf
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Read the network state
  allmende.cloud.networkd_state:
  register: network_state
"""

RETURN = r"""
links:
  description: C(ip -j -d addr show) output.
  type: list
  elements: dict
  returned: always
routes:
  description: C(ip -j route show table main) and C(ip -j -6 route show table main) output together.
  type: list
  elements: dict
  returned: always
networkd_active:
  description: Whether systemd-networkd is running.
  type: bool
  returned: always
networkd_states:
  description: Link name to the setup state networkd reports (empty when it does not run).
  type: dict
  returned: always
udev_active:
  description: Whether systemd-udevd is running.
  type: bool
  returned: always
ifupdown_config:
  description: Text of the ifupdown configuration files (empty if there are none).
  type: str
  returned: always
machine_id:
  description: Content of C(/etc/machine-id) (empty if missing).
  type: str
  returned: always
resolv_conf:
  description: C(exists), C(link) (target of a symbolic link, or null), C(mount) (a mount point) and C(content).
  type: dict
  returned: always
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError, UnicodeDecodeError):
        return ""


def mount_points():
    points = set()
    for line in read_text("/proc/self/mountinfo").splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.add(fields[4].replace("\\040", " "))
    return points


def main():
    module = AnsibleModule(
        argument_spec=dict(
            ifupdown_files=dict(
                type="list", elements="path", default=["/etc/network/interfaces", "/etc/network/interfaces.d"]
            ),
            resolv_conf=dict(type="path", default="/etc/resolv.conf"),
        ),
        supports_check_mode=True,
    )
    ip = module.get_bin_path("ip", required=True)
    systemctl = module.get_bin_path("systemctl")
    networkctl = module.get_bin_path("networkctl")

    def ip_json(args):
        rc, out, err = module.run_command([ip, "-j", *args])
        if rc != 0:
            module.fail_json(msg="ip -j %s failed: %s" % (" ".join(args), err.strip()))
        try:
            return json.loads(out or "[]")
        except ValueError:
            module.fail_json(msg="ip -j %s printed no JSON" % " ".join(args))

    def active(unit):
        if not systemctl:
            return False
        return module.run_command([systemctl, "is-active", "--quiet", unit])[0] == 0

    links = ip_json(["-d", "addr", "show"])
    routes = ip_json(["route", "show", "table", "main"]) + ip_json(["-6", "route", "show", "table", "main"])
    networkd_active = active("systemd-networkd")
    states = {}
    if networkd_active and networkctl:
        rc, out, _err = module.run_command([networkctl, "list", "--no-legend", "--no-pager"])
        if rc == 0:
            for line in out.splitlines():
                cols = line.split()
                if len(cols) >= 5 and cols[0].isdigit():
                    states[cols[1]] = cols[-1]
    texts = []
    for path in module.params["ifupdown_files"]:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if os.path.isfile(full) and not name.startswith("."):
                    texts.append(read_text(full))
        elif os.path.isfile(path):
            texts.append(read_text(path))
    resolv = module.params["resolv_conf"]
    resolv_conf = {
        "exists": os.path.lexists(resolv),
        "link": os.readlink(resolv) if os.path.islink(resolv) else None,
        "mount": resolv in mount_points(),
        "content": read_text(resolv) if os.path.isfile(resolv) else "",
    }
    module.exit_json(
        changed=False,
        links=links,
        routes=routes,
        networkd_active=networkd_active,
        networkd_states=states,
        udev_active=active("systemd-udevd"),
        ifupdown_config="\n".join(texts),
        resolv_conf=resolv_conf,
        machine_id=read_text("/etc/machine-id").strip(),
    )


if __name__ == "__main__":
    main()
