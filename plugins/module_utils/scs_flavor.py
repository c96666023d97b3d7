# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SCS flavor names (SCS standard scs-0100-v3) and what they promise.

A name is `SCS-` CPU `-` RAM [`-` disk] [`_` extension ...]:

- CPU: the number of vCPUs, the CPU type letter (L crowded-core, V shared-core, T dedicated-thread,
  C dedicated-core) and optionally `i` (insecure: mitigations against CPU vulnerabilities not
  committed to);
- RAM: GiB, whole or half (`3.5`), then optionally `u` (no ECC) and `o` (oversubscribed), in
  that order;
- disk (optional): [M`x`][N][type]: M disks of N GB each, type n (network), h (local HDD),
  s (local SSD), p (local NVMe); a `-` without a size means the cloud sizes the root disk, no
  disk part at all means the user boots from a volume;
- extensions, each optional, in this order: hypervisor (kvm, xen, vmw, hyv, bms), `hwv`
  (hardware/nested virtualization), CPU vendor/generation/frequency (i, z, a, r; `h` to `hhh`),
  GPU (`G` pass-through or `g` virtual, vendor N, A or I, generation, `-`units, `h`...), `ib`.

Version 1 of the standard wrote the same names with `:` where v3 has `-` and `-` where v3 has
`_` (`SCS-2V:4:20s`); v3 still tolerates them. Names outside the `SCS-` namespace are none of the
standard's business.

Pure logic: no Ansible imports, so that unit tests and the driver can load it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

PREFIX = "SCS-"

CPU_TYPES = {"L": "crowded-core", "V": "shared-core", "T": "dedicated-thread", "C": "dedicated-core"}
DISK_TYPES = {"n": "network", "h": "hdd", "s": "ssd", "p": "nvme"}
HYPERVISORS = {"kvm": "kvm", "xen": "xen", "vmw": "vmware", "hyv": "hyper-v", "bms": "bare-metal"}
CPU_VENDORS = {"i": "intel", "z": "amd", "a": "arm", "r": "risc-v"}
# The generations scs-0100-v3 defines per CPU vendor (0: older or unspecified).
CPU_GENERATIONS = {"i": (0, 1, 2, 3, 4), "z": (0, 1, 2, 3, 4), "a": (0, 1, 2, 3), "r": (0,)}
GPU_TYPES = {"G": "pass-through", "g": "virtual"}
GPU_VENDORS = {"N": "nvidia", "A": "amd", "I": "intel"}
# nVidia: Fermi, Kepler, Maxwell, Pascal, Volta, Turing, Ampere, Ada Lovelace; AMD: GCN 0.x,
# RDNA 1-3; Intel: Gen9 (0.9), Gen9.5 (0.95), Xe (1), Xe2 (2).
GPU_GENERATIONS = {
    "N": ("f", "k", "m", "p", "v", "t", "a", "l"),
    "A": ("0.4", "0.5", "1", "2", "3"),
    "I": ("0.9", "0.95", "1", "2"),
}
# At most three `h`: >2.75, >3.25, >3.75 GHz all-core for CPUs; ever higher performance for GPUs.
MAX_PERFORMANCE = 3

EXTENSION_ORDER = ("hypervisor", "hwv", "CPU", "GPU", "ib")

V3 = {"quantity": "-", "extension": "_"}
V1 = {"quantity": ":", "extension": "-"}

NUMBER = re.compile(r"^[0-9]+$")
CPU = re.compile(r"^([0-9]+)([LVTC])(i?)$")
RAM = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(u?)(o?)$")
DISK = re.compile(r"^(?:([0-9]+)x)?([0-9]+)?([nhsp]?)$")
CPU_EXTENSION = re.compile(r"^([izar])([0-9]*)(h*)$")


class InvalidName(ValueError):
    """The name is in the SCS- namespace but breaks the grammar; the message says why."""


def _cpu(text):
    match = CPU.match(text)
    if match:
        cpus = int(match.group(1))
        if cpus == 0:
            raise InvalidName("the number of vCPUs must be positive")
        return {"cpus": cpus, "cpu_type": CPU_TYPES[match.group(2)], "cpu_insecure": bool(match.group(3))}
    digits = re.match(r"^[0-9]*", text).group(0)
    rest = text[len(digits) :]
    if not digits:
        raise InvalidName("the name must start with the number of vCPUs, got %r" % text)
    if not rest:
        raise InvalidName("the number of vCPUs must be followed by the CPU type L, V, T or C")
    if rest[0] == "i" and rest[1:2] in CPU_TYPES:
        raise InvalidName("the insecure suffix i goes after the CPU type (%s%si, not %s)" % (digits, rest[1], text))
    if rest[0] not in CPU_TYPES:
        raise InvalidName("unknown CPU type %r: it must be L, V, T or C" % rest[0])
    raise InvalidName("unexpected %r after the CPU type %s (only the suffix i may follow)" % (rest[1:], rest[0]))


def _ram(text):
    match = RAM.match(text)
    if not match:
        if not text:
            raise InvalidName("the RAM size is missing")
        if re.match(r"^[0-9.]+ou$", text):
            raise InvalidName("the RAM suffixes go in the order u, o (%suo, not %s)" % (text[:-2], text))
        raise InvalidName("the RAM part %r is not a size in GiB with the optional suffixes u and o" % text)
    ram = float(match.group(1))
    if ram <= 0:
        raise InvalidName("the RAM size must be positive")
    if ram * 2 != int(ram * 2):
        raise InvalidName("the RAM size must be a whole or half number of GiB (like 4 or 3.5), got %s" % match.group(1))
    return {"ram": ram, "ram_no_ecc": bool(match.group(2)), "ram_oversubscribed": bool(match.group(3))}


def _disk(text):
    if text is None:
        return {"disk": None, "disk_count": None, "disk0_type": None, "root_disk": "volume"}
    match = DISK.match(text)
    if not match:
        if re.match(r"^(?:[0-9]+x)?[0-9]*\.[0-9]*[nhsp]?$", text):
            raise InvalidName("the disk size must be a whole number of GB, got %r" % text)
        raise InvalidName("the disk part %r is not [<count>x][<size in GB>][n|h|s|p]" % text)
    count, size, letter = match.groups()
    if count is not None and size is None:
        raise InvalidName("the disk multiplier %sx needs a disk size after it" % count)
    if count is not None and int(count) == 0:
        raise InvalidName("the disk multiplier must be positive")
    if size is not None and int(size) == 0:
        raise InvalidName("the disk size must be positive")
    return {
        "disk": int(size) if size is not None else None,
        "disk_count": (int(count) if count is not None else 1) if size is not None else None,
        "disk0_type": DISK_TYPES[letter] if letter else None,
        "root_disk": "fixed" if size is not None else "auto",
    }


def _performance(suffix, what):
    if len(suffix) > MAX_PERFORMANCE:
        raise InvalidName("%s: at most %s" % (what, "h" * MAX_PERFORMANCE))
    return len(suffix)


def _cpu_extension(token, match, sep):
    vendor, generation, frequency = match.groups()
    if generation:
        if int(generation) not in CPU_GENERATIONS[vendor]:
            raise InvalidName("unknown %s CPU generation %s in %s%s" % (CPU_VENDORS[vendor], generation, sep, token))
        generation = int(generation)
    else:
        generation = None
    return {
        "vendor": CPU_VENDORS[vendor],
        "generation": generation,
        "frequency": _performance(frequency, "CPU frequency suffix in %s%s" % (sep, token)),
    }


def _gpu_extension(token, quantity, sep):
    if token[1:2] not in GPU_VENDORS:
        raise InvalidName("unknown GPU vendor in %s%s: it must be N, A or I" % (sep, token))
    vendor = token[1]
    rest = re.match(r"^(.*?)(h*)$", token[2:])
    core, performance = rest.group(1), rest.group(2)
    generation, has_units, units = core.partition(quantity)
    if has_units and not NUMBER.match(units):
        raise InvalidName("the GPU units in %s%s must be a number after %s" % (sep, token, quantity))
    if has_units and int(units) == 0:
        raise InvalidName("the number of GPU units in %s%s must be positive" % (sep, token))
    if generation and generation not in GPU_GENERATIONS[vendor]:
        raise InvalidName(
            "unknown %s GPU generation %r in %s%s (known: %s)"
            % (GPU_VENDORS[vendor], generation, sep, token, ", ".join(GPU_GENERATIONS[vendor]))
        )
    return {
        "type": GPU_TYPES[token[0]],
        "vendor": GPU_VENDORS[vendor],
        "generation": generation or None,
        "units": int(units) if has_units else None,
        "performance": _performance(performance, "GPU performance suffix in %s%s" % (sep, token)),
    }


def _extensions(tokens, syntax):
    sep = syntax["extension"]
    found = {"hypervisor": None, "hwv": False, "cpu": None, "gpu": None, "ib": False}
    last = -1
    last_token = None
    for token in tokens:
        if not token:
            raise InvalidName("empty extension (%s twice in a row or at the end)" % sep)
        cpu = CPU_EXTENSION.match(token)
        if token in HYPERVISORS:
            rank = 0
            found["hypervisor"] = HYPERVISORS[token]
        elif token == "hwv":
            rank = 1
            found["hwv"] = True
        elif cpu:
            rank = 2
            found["cpu"] = _cpu_extension(token, cpu, sep)
        elif token[0] in GPU_TYPES:
            rank = 3
            found["gpu"] = _gpu_extension(token, syntax["quantity"], sep)
        elif token == "ib":
            rank = 4
            found["ib"] = True
        else:
            raise InvalidName("unknown extension %s%s" % (sep, token))
        if rank == last:
            raise InvalidName(
                "more than one %s extension (%s%s and %s%s)" % (EXTENSION_ORDER[rank], sep, last_token, sep, token)
            )
        if rank < last:
            raise InvalidName(
                "extension %s%s must come before %s%s (the order is %s)"
                % (sep, token, sep, last_token, ", ".join(EXTENSION_ORDER))
            )
        last, last_token = rank, token
    return found


def _parse_body(body, syntax):
    """The fields of the part after `SCS-` in one syntax; InvalidName if it breaks the grammar."""
    tokens = body.split(syntax["extension"])
    parts = tokens[0].split(syntax["quantity"])
    if len(parts) < 2:
        if not parts[0]:
            raise InvalidName("nothing after SCS-")
        _cpu(parts[0])
        raise InvalidName("the RAM size is missing (%s<vCPUs><type>%s<GiB>)" % (PREFIX, syntax["quantity"]))
    if len(parts) > 3:
        raise InvalidName(
            "too many %r-separated parts in %r: CPU, RAM and disk at most" % (syntax["quantity"], tokens[0])
        )
    fields = {}
    fields.update(_cpu(parts[0]))
    fields.update(_ram(parts[1]))
    fields.update(_disk(parts[2] if len(parts) == 3 else None))
    fields["extensions"] = _extensions(tokens[1:], syntax)
    return fields


def _v3_to_v1(body):
    return body.replace("-", ":").replace("_", "-")


def _v1_to_v3(body):
    return body.replace("-", "_").replace(":", "-")


def extra_specs(fields):
    """The scs: extra specs (scs-0103) for a parsed valid or tolerated name."""
    specs = {
        "scs:cpu-type": fields["cpu_type"],
        "scs:name-v1": fields["name_v1"],
        "scs:name-v2": fields["name_v2"],
    }
    if fields["disk0_type"] is not None:
        for index in range(fields["disk_count"] or 1):
            specs["scs:disk%d-type" % index] = fields["disk0_type"]
    return specs


def parse(name):
    """Parse a flavor name by scs-0100-v3.

    Returns a dict with `name` and `verdict`: `valid`, `tolerated` (v1 colon syntax), `invalid`
    (with `reason`) or `not-scs`. Valid and tolerated names add cpus, cpu_type, cpu_insecure, ram
    (GiB), ram_no_ecc, ram_oversubscribed, disk (GB per disk or None), disk_count, disk0_type,
    root_disk (fixed, auto or volume), extensions, name_v1, name_v2 and extra_specs.
    """
    name = str(name)
    if not name.startswith(PREFIX):
        return {"name": name, "verdict": "not-scs"}
    body = name[len(PREFIX) :]
    try:
        fields = _parse_body(body, V3)
        verdict = "valid"
        v3_body = body
    except InvalidName as v3_error:
        try:
            fields = _parse_body(body, V1)
        except InvalidName as v1_error:
            # A colon only occurs in the v1 syntax: its reason is the one that helps.
            reason = v1_error if ":" in body else v3_error
            return {"name": name, "verdict": "invalid", "reason": str(reason)}
        verdict = "tolerated"
        v3_body = _v1_to_v3(body)
    result = {"name": name, "verdict": verdict}
    result.update(fields)
    result["name_v1"] = PREFIX + _v3_to_v1(v3_body)
    result["name_v2"] = PREFIX + v3_body
    result["extra_specs"] = extra_specs(result)
    return result


def _number(value, what):
    if isinstance(value, bool):
        raise ValueError("%s must be a number, got %r" % (what, value))
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError("%s must be a number, got %r" % (what, value)) from None


def _gib(value):
    return ("%d" % value) if value == int(value) else ("%s" % value)


def promises_met(parsed, vcpus, ram_mib, disk_gb):
    """What a flavor (vCPUs, RAM in MiB, root disk in GB, as OpenStack counts them) lacks of what
    its parsed name promises: a list of problems, empty when it delivers at least the promise.

    RAM in a name is GiB (1024 MiB), disks are GB. A name without a disk size promises no disk.
    An invalid name is a problem of its own; a name outside SCS- promises nothing.
    """
    verdict = parsed.get("verdict")
    if verdict == "invalid":
        return ["invalid name: %s" % parsed.get("reason")]
    if verdict not in ("valid", "tolerated"):
        return []
    vcpus = _number(vcpus, "vcpus")
    ram_mib = _number(ram_mib, "ram")
    disk_gb = _number(disk_gb if disk_gb is not None else 0, "disk")
    problems = []
    if vcpus < parsed["cpus"]:
        problems.append("%d vCPUs, but the name promises %d" % (vcpus, parsed["cpus"]))
    wanted = int(parsed["ram"] * 1024)
    if ram_mib < wanted:
        problems.append(
            "%d MiB RAM, but the name promises %s GiB (%d MiB; RAM in flavor names is GiB, not GB)"
            % (ram_mib, _gib(parsed["ram"]), wanted)
        )
    if parsed["disk"] is not None and disk_gb < parsed["disk"]:
        problems.append("%d GB root disk, but the name promises %d GB" % (disk_gb, parsed["disk"]))
    return problems
