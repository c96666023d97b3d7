#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kernel_modules
author: Allmende developers (@allmende)
short_description: Load a list of kernel modules where the kernel can, and persist them
description:
  - Loads each listed kernel module with C(modprobe) unless it is already loaded or built in.
  - A module the kernel cannot load (not shipped, or a container without C(/lib/modules)) is
    skipped with a warning instead of failing the play, so the same list works on real servers
    and on container test hosts.
  - Writes the modules that are available to a C(modules-load.d) file so they load at boot;
    unavailable ones are left out so that C(systemd-modules-load) does not fail.
options:
  names:
    description: Kernel modules to load.
    type: list
    elements: str
    required: true
  persist_file:
    description: C(modules-load.d) file listing the available modules; empty string to not persist.
    type: path
    default: /etc/modules-load.d/allmende.conf
  required:
    description: Modules whose absence is an error rather than a warning.
    type: list
    elements: str
    default: []
notes:
  - Supports check mode; C(modprobe --dry-run) decides whether a module would load.
"""

EXAMPLES = r"""
- name: Load the modules OVS, bonding and VLANs need
  allmende.cloud.kernel_modules:
    names: [openvswitch, bonding, 8021q]
"""

RETURN = r"""
present:
  description: Modules that were already loaded or built in.
  type: list
  elements: str
  returned: always
loaded:
  description: Modules this run loaded (or would load, in check mode).
  type: list
  elements: str
  returned: always
unavailable:
  description: Modules the kernel cannot load, with the reason.
  type: dict
  returned: always
"""

import os
import platform

from ansible.module_utils.basic import AnsibleModule

HEADER = "# Managed by allmende.cloud.kernel_modules\n"


def normalise(name):
    return name.replace("-", "_")


def builtin_modules():
    path = "/lib/modules/%s/modules.builtin" % platform.release()
    names = set()
    if os.path.exists(path):
        with open(path) as handle:
            for line in handle:
                base = os.path.basename(line.strip())
                if base.endswith(".ko"):
                    names.add(normalise(base[:-3]))
    return names


def is_present(name, builtin):
    return os.path.isdir("/sys/module/%s" % normalise(name)) or normalise(name) in builtin


def main():
    module = AnsibleModule(
        argument_spec=dict(
            names=dict(type="list", elements="str", required=True),
            persist_file=dict(type="path", default="/etc/modules-load.d/allmende.conf"),
            required=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    names = module.params["names"]
    modprobe = module.get_bin_path("modprobe")
    builtin = builtin_modules()
    present, loaded, unavailable = [], [], {}
    for name in names:
        if is_present(name, builtin):
            present.append(name)
            continue
        if modprobe is None:
            unavailable[name] = "modprobe is not installed"
            continue
        args = [modprobe, "--dry-run", name] if module.check_mode else [modprobe, name]
        rc, _out, err = module.run_command(args)
        if rc == 0:
            loaded.append(name)
        else:
            unavailable[name] = (err.strip().splitlines() or ["modprobe rc=%d" % rc])[-1]

    missing_required = [n for n in module.params["required"] if n in unavailable]
    if missing_required:
        module.fail_json(
            msg="required kernel modules cannot be loaded: %s"
            % "; ".join("%s (%s)" % (n, unavailable[n]) for n in missing_required),
            present=present,
            loaded=loaded,
            unavailable=unavailable,
        )
    for name in sorted(unavailable):
        module.warn("kernel module %s is not available here and was skipped: %s" % (name, unavailable[name]))

    changed = bool(loaded)
    persist = module.params["persist_file"]
    if persist:
        content = HEADER + "".join("%s\n" % n for n in names if n not in unavailable)
        current = None
        if os.path.exists(persist):
            with open(persist) as handle:
                current = handle.read()
        if current != content:
            changed = True
            if not module.check_mode:
                directory = os.path.dirname(persist)
                if not os.path.isdir(directory):
                    os.makedirs(directory, 0o755)
                tmp = persist + ".tmp"
                with open(tmp, "w") as handle:
                    handle.write(content)
                os.chmod(tmp, 0o644)
                module.atomic_move(tmp, persist)
    module.exit_json(changed=changed, present=present, loaded=loaded, unavailable=unavailable)


if __name__ == "__main__":
    main()
