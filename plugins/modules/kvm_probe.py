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
    that writes a marker line to the serial port and then ends QEMU (isa-debug-exit device). KVM
    counts as usable when that happens within O(timeout) seconds.
  - Only the KVM accelerator is tried in that run (no fallback inside QEMU), so a marker proves
    KVM ran it. The same guest first runs emulated (TCG) to measure how long it needs. Under
    hardware virtualization it is at least as fast; a guest that needs more than O(max_slowdown)
    times as long under KVM (and more than 1 s), as with KVM that is itself emulated or nested
    without hardware support, counts as unusable, and the KVM run is cut off at that point.
  - The guest runs with 16 MiB of memory, no network and a read-only disk image in a temporary
    directory, and is killed right after the answer. Changes nothing on the host; runs in check mode too.
options:
  qemu:
    description: QEMU system emulator for this host's architecture.
    type: path
    default: /usr/bin/qemu-system-x86_64
  timeout:
    description: Seconds the guest gets to print its marker, per run.
    type: float
    default: 10
  max_slowdown:
    description: How many times slower than TCG (and at least 1 s) a guest under KVM may be.
    type: float
    default: 4
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
verdict:
  description: >-
    In one word (stable across runs) usable, slow (slower than emulation), timeout, failed,
    no-kvm (no /dev/kvm), no-access or not-probed.
  type: str
  returned: always
reason:
  description: Why KVM is (not) usable, in words, with the timings.
  type: str
  returned: always
kvm_seconds:
  description: Seconds the guest needed under KVM (or until giving up).
  type: float
  returned: when probed
tcg_seconds:
  description: Seconds the guest needed under TCG, null if it did not run.
  type: float
  returned: when probed
qemu_stderr:
  description: The last lines QEMU wrote to stderr.
  type: str
  returned: always
"""

import os
import platform
import shutil
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule

MARKER = b"ALLMENDE-KVM-GUEST-RAN"
# The guest ends QEMU through the isa-debug-exit device: writing V to its port makes QEMU exit
# with status (V << 1) | 1.
EXIT_PORT = 0xF4
EXIT_VALUE = 0x10
EXIT_STATUS = (EXIT_VALUE << 1) | 1


def boot_sector(marker=MARKER):
    """A BIOS boot sector (real mode, loaded at 0x7c00): writes marker + newline to COM1, then
    ends QEMU through isa-debug-exit (and halts, should that device be missing)."""
    start = 0x16  # where the message begins, right after the code below
    # fmt: off
    code = bytes([
        0xBE, (0x7C00 + start) & 0xFF, (0x7C00 + start) >> 8,  # mov si, message
        0xBA, 0xF8, 0x03,  # mov dx, 0x3f8 (COM1)
        0xAC,              # next: lodsb
        0x84, 0xC0,        # test al, al
        0x74, 0x03,        # jz done
        0xEE,              # out dx, al
        0xEB, 0xF8,        # jmp next
        0xB0, EXIT_VALUE,  # done: mov al, EXIT_VALUE
        0xE6, EXIT_PORT,   # out EXIT_PORT, al
        0xFA,              # halt: cli
        0xF4,              # hlt
        0xEB, 0xFC,        # jmp halt
    ])
    # fmt: on
    if len(code) != start:
        raise ValueError("boot sector code is %d bytes, expected %d" % (len(code), start))
    sector = code + marker + b"\n\x00"
    if len(sector) > 510:
        raise ValueError("marker too long for a boot sector")
    return sector.ljust(510, b"\x00") + b"\x55\xaa"


def run_guest(module, qemu, accel, timeout, workdir):
    """Boot the probe guest with one accelerator. QEMU ends by itself once the guest has printed
    its marker, or is killed at the timeout. Returns (ran, seconds, exit status, stderr)."""
    image = os.path.join(workdir, "boot.img")
    serial = os.path.join(workdir, "serial-%s.out" % accel)
    with open(image, "wb") as handle:
        handle.write(boot_sector())
    cmd = [
        module.get_bin_path("timeout", required=True),
        "--signal=KILL",
        "%.2f" % timeout,
        qemu,
        "-accel",
        accel,
        "-display",
        "none",
        "-nodefaults",
        "-no-user-config",
        "-m",
        "16",
        "-serial",
        "file:%s" % serial,
        "-device",
        "isa-debug-exit,iobase=0x%x,iosize=0x01" % EXIT_PORT,
        "-drive",
        "file=%s,format=raw,if=floppy,readonly=on" % image,
        "-no-reboot",
    ]
    started = time.time()
    rc, _out, err = module.run_command(cmd)
    elapsed = round(time.time() - started, 2)
    output = b""
    if os.path.exists(serial):
        with open(serial, "rb") as handle:
            output = handle.read()
    return MARKER in output and rc == EXIT_STATUS, elapsed, rc, "\n".join(err.strip().splitlines()[-5:])


def kvm_limit(tcg, timeout, max_slowdown):
    """Seconds the KVM run gets: the timeout, or less once the emulated run has shown how long the
    guest needs (hardware virtualization is never much slower than emulation)."""
    tcg_ran, tcg_seconds, _tcg_rc = tcg
    if not tcg_ran:
        return timeout
    return round(min(timeout, max(1.0, max_slowdown * tcg_seconds)), 2)


def judge(kvm, tcg, timeout, limit):
    """Decide from the two runs ((ran, seconds, rc) each) whether KVM is usable.

    Returns (usable, verdict, reason): verdict is one of usable, slow, timeout, failed."""
    kvm_ran, kvm_seconds, kvm_rc = kvm
    _tcg_ran, tcg_seconds, _tcg_rc = tcg
    if kvm_ran and kvm_seconds <= limit:
        return True, "usable", "a guest ran under KVM (%.1f s, emulated %.1f s)" % (kvm_seconds, tcg_seconds)
    if kvm_ran or (kvm_rc in (124, 137, -9) and limit < timeout):
        return (
            False,
            "slow",
            (
                "a guest under KVM did not finish within %.1f s although it needs %.1f s emulated: "
                "no hardware virtualization behind /dev/kvm" % (limit, tcg_seconds)
            ),
        )
    if kvm_rc in (124, 137, -9):
        return False, "timeout", "a guest under KVM did not run within %s s" % timeout
    return False, "failed", "QEMU could not run a guest with KVM (exit %s)" % kvm_rc


def main():
    module = AnsibleModule(
        argument_spec=dict(
            qemu=dict(type="path", default="/usr/bin/qemu-system-x86_64"),
            timeout=dict(type="float", default=10),
            max_slowdown=dict(type="float", default=4),
        ),
        supports_check_mode=True,
    )
    result = dict(
        changed=False, usable=False, verdict="", reason="", kvm_seconds=None, tcg_seconds=None, qemu_stderr=""
    )
    qemu = module.params["qemu"]
    timeout = module.params["timeout"]
    if platform.machine() not in ("x86_64", "i686", "i386"):
        result.update(
            usable=None,
            verdict="not-probed",
            reason="the probe guest is x86 code; %s is not probed" % platform.machine(),
        )
        module.exit_json(**result)
    if not os.path.exists("/dev/kvm"):
        result.update(
            verdict="no-kvm", reason="/dev/kvm does not exist (no KVM in this kernel, or virtualization disabled)"
        )
        module.exit_json(**result)
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        result.update(verdict="no-access", reason="/dev/kvm is not accessible to this user")
        module.exit_json(**result)
    if not os.access(qemu, os.X_OK):
        module.fail_json(msg="%s is not installed" % qemu, **result)
    workdir = tempfile.mkdtemp(prefix="allmende-kvm-probe-")
    try:
        tcg = run_guest(module, qemu, "tcg", timeout, workdir)[:3]
        limit = kvm_limit(tcg, timeout, module.params["max_slowdown"])
        kvm_ran, kvm_seconds, kvm_rc, stderr = run_guest(module, qemu, "kvm", limit, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    usable, verdict, reason = judge((kvm_ran, kvm_seconds, kvm_rc), tcg, timeout, limit)
    tcg_ran, tcg_seconds = tcg[0], tcg[1]
    result.update(
        usable=usable,
        verdict=verdict,
        reason=reason,
        kvm_seconds=kvm_seconds,
        tcg_seconds=tcg_seconds if tcg_ran else None,
        qemu_stderr=stderr,
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
