#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: virt_host_validate
author: Allmende developers (@allmende)
short_description: Run virt-host-validate and report its checks
description:
  - Runs C(virt-host-validate) for a hypervisor type and returns every check with its result
    (PASS, WARN, FAIL) and detail.
  - With O(fatal=true), failed checks stop the play, except those matching O(ignore). Otherwise
    they are returned and shown as warnings. Changes nothing; runs in check mode too.
options:
  hypervisor:
    description: Hypervisor type to validate.
    type: str
    default: qemu
  fatal:
    description: Fail when a check fails (and is not ignored).
    type: bool
    default: true
  ignore:
    description: Checks whose failure is accepted, as case-insensitive substrings of the check text.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Validate the hypervisor host, accepting emulated CPUs
  allmende.cloud.virt_host_validate:
    ignore: [hardware virtualization]
"""

RETURN = r"""
checks:
  description: Every check, in order.
  type: list
  elements: dict
  returned: always
  contains:
    check:
      description: What was checked.
      type: str
    result:
      description: PASS, WARN or FAIL.
      type: str
    detail:
      description: The explanation virt-host-validate gives, or an empty string.
      type: str
    ignored:
      description: Whether a failure of this check is accepted.
      type: bool
failed_checks:
  description: The failed checks that are not ignored, as text.
  type: list
  elements: str
  returned: always
summary:
  description: Counts per result, for example PASS 8, WARN 2, FAIL 1.
  type: dict
  returned: always
"""

import re

from ansible.module_utils.basic import AnsibleModule

LINE = re.compile(r"^\s*([A-Za-z]+):\s+(.*?)\s*:\s+(PASS|WARN|FAIL)\b\s*(?:\((.*)\))?\s*$")


def parse(text, ignore=()):
    checks = []
    lowered = [i.lower() for i in ignore]
    for line in (text or "").splitlines():
        match = LINE.match(line)
        if not match:
            continue
        check = match.group(2).strip()
        checks.append(
            {
                "check": check,
                "result": match.group(3),
                "detail": (match.group(4) or "").strip(),
                "ignored": any(i in check.lower() for i in lowered),
            }
        )
    return checks


def summarize(checks):
    summary = {"PASS": 0, "WARN": 0, "FAIL": 0}
    for check in checks:
        summary[check["result"]] = summary.get(check["result"], 0) + 1
    return summary


def main():
    module = AnsibleModule(
        argument_spec=dict(
            hypervisor=dict(type="str", default="qemu"),
            fatal=dict(type="bool", default=True),
            ignore=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    binary = module.get_bin_path("virt-host-validate", required=True)
    # A failed check makes virt-host-validate exit non-zero; its output is what counts.
    _rc, out, err = module.run_command([binary, module.params["hypervisor"]], environ_update={"LC_ALL": "C"})
    checks = parse(out + "\n" + err, module.params["ignore"])
    if not checks:
        module.fail_json(msg="virt-host-validate printed no checks: %s" % (err.strip() or out.strip()))
    failed = [
        "%s: %s" % (c["check"], c["detail"] or "FAIL") for c in checks if c["result"] == "FAIL" and not c["ignored"]
    ]
    result = dict(changed=False, checks=checks, failed_checks=failed, summary=summarize(checks))
    if failed and module.params["fatal"]:
        module.fail_json(msg="virt-host-validate: %s" % "; ".join(failed), **result)
    for text in failed:
        module.warn("virt-host-validate: %s" % text)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
