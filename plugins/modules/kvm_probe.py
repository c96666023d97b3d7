#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kvm_probe
author: Allmende developers (@allmende)
short_description: Find out whether KVM really runs guests on this host
description:
  - C(/dev/kvm) existing, or the KVM API answering, does not mean that guests run under KVM
    (nested or emulated environments may accept C(KVM_CREATE_VM) and still not run a guest).
    This module boots a real guest for a moment, QEMU with C(-accel kvm) and a 512-byte boot sector
    that writes a marker line to the serial port. KVM counts as usable when the marker arrives
    within O(timeout) seconds.
  - Only the KVM accelerator is tried (no fallback inside QEMU), so a marker proves KVM ran it.
  - The guest runs with 16 MiB of memory, no network and a read-only disk image in a temporary
    directory, and is killed right after the answer. Changes nothing on the host; runs in check mode too.
options:
  qemu:
    description: QEMU system emulator for this host's architecture.
    type: path
    default: /usr/bin/qemu-system-x86_64
  timeout:
    description: Seconds the guest gets to print its marker.
    type: float
    default: 5
notes:
  - The boot sector is x86 code; on other architectures the module reports C(usable=null) and
    leaves the decision to libvirt's own capabilities.
"""

EXAMPLES = r"""
- name: Probe KVM
  allmende.cloud.kvm_probe:
    timeout: 5
  register: kvm

- name: Use TCG where KVM does not run guests
  ansible.builtin.set_fact:
    virt_type: "{{ 'kvm' if kvm.usable else 'qemu' }}"
"""

RETURN = r"""
usable:
  description: True if a guest ran under KVM, false if not, null if this architecture cannot be probed.
  type: bool
  returned: always
reason:
  description: Why KVM is (not) usable, in words.
  type: str
  returned: always
seconds:
  description: Seconds until the marker arrived (or until giving up).
  type: float
  returned: always
qemu_stderr:
  description: The last lines QEMU wrote to stderr.
  type: str
  returned: always
"""

import os
import platform
import shutil
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

MARKER = b"ALLMENDE-KVM-GUEST-RAN"


def boot_sector(marker=MARKER):
    """A BIOS boot sector (real mode, loaded at 0x7c00) that writes marker + newline to COM1 and halts."""
    start = 0x12  # where the message begins, right after the code below
    # fmt: off
    code = bytes([
        0xBE, (0x7C00 + start) & 0xFF, (0x7C00 + start) >> 8,  # mov si, message
        0xBA, 0xF8, 0x03,  # mov dx, 0x3f8 (COM1)
        0xAC,              # next: lodsb
        0x84, 0xC0,        # test al, al
        0x74, 0x03,        # jz done
        0xEE,              # out dx, al
        0xEB, 0xF8,        # jmp next
        0xFA,              # done: cli
        0xF4,              # hlt
        0xEB, 0xFC,        # jmp done
    ])
    # fmt: on
    assert len(code) == start
    sector = code + marker + b"\n\x00"
    if len(sector) > 510:
        raise ValueError("marker too long for a boot sector")
    return sector.ljust(510, b"\x00") + b"\x55\xaa"


def probe(qemu, timeout, workdir):
    image = os.path.join(workdir, "boot.img")
    serial = os.path.join(workdir, "serial.out")
    with open(image, "wb") as handle:
        handle.write(boot_sector())
    cmd = [
        qemu,
        "-accel",
        "kvm",
        "-display",
        "none",
        "-nodefaults",
        "-no-user-config",
        "-m",
        "16",
        "-serial",
        "file:%s" % serial,
        "-drive",
        "file=%s,format=raw,if=floppy,readonly=on" % image,
        "-no-reboot",
    ]
    started = time.time()
    seen = False
    with open(os.path.join(workdir, "stderr"), "w+") as errfile:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errfile)
        try:
            while time.time() - started < timeout:
                if os.path.exists(serial):
                    with open(serial, "rb") as handle:
                        if MARKER in handle.read():
                            seen = True
                            break
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        finally:
            elapsed = round(time.time() - started, 2)
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        errfile.seek(0)
        stderr = "\n".join(errfile.read().strip().splitlines()[-5:])
    if seen:
        return True, "a guest ran under KVM (marker after %.2f s)" % elapsed, elapsed, stderr
    if proc.returncode not in (None, -9) and elapsed < timeout:
        return False, "QEMU could not start with KVM (exit %s)" % proc.returncode, elapsed, stderr
    return False, "a guest under KVM did not run within %s s" % timeout, elapsed, stderr


def main():
    module = AnsibleModule(
        argument_spec=dict(
            qemu=dict(type="path", default="/usr/bin/qemu-system-x86_64"),
            timeout=dict(type="float", default=5),
        ),
        supports_check_mode=True,
    )
    result = dict(changed=False, usable=False, reason="", seconds=0.0, qemu_stderr="")
    qemu = module.params["qemu"]
    if platform.machine() not in ("x86_64", "i686", "i386"):
        result.update(usable=None, reason="the probe guest is x86 code; %s is not probed" % platform.machine())
        module.exit_json(**result)
    if not os.path.exists("/dev/kvm"):
        result["reason"] = "/dev/kvm does not exist (no KVM in this kernel, or virtualization disabled)"
        module.exit_json(**result)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        result["reason"] = "/dev/kvm is not accessible to this user"
        module.exit_json(**result)
    if not os.access(qemu, os.X_OK):
        module.fail_json(msg="%s is not installed" % qemu, **result)
    workdir = tempfile.mkdtemp(prefix="allmende-kvm-probe-")
    try:
        usable, reason, seconds, stderr = probe(qemu, module.params["timeout"], workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result.update(usable=usable, reason=reason, seconds=seconds, qemu_stderr=stderr)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
