# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Layered INI configuration overrides (documentation in ini_merge.yml and ini_unknown.yml)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.six import string_types

SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
OPTION = re.compile(r"^\s*([^=:#;\s\[][^=:]*?)\s*[=:]\s?(.*)$")
DEFAULT = "DEFAULT"


def _parse(text, name):
    """Sections of an INI text: [(section, [(option, value)])], in order; options repeat for multi-valued ones."""
    sections = [(DEFAULT, [])]
    for number, line in enumerate((text or "").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        match = SECTION.match(line)
        if match:
            sections.append((match.group(1).strip(), []))
            continue
        match = OPTION.match(line)
        if not match:
            raise AnsibleFilterError(
                "%s line %d is neither a section, an option nor a comment: %s" % (name, number, stripped)
            )
        sections[-1][1].append((match.group(1).strip(), match.group(2).rstrip()))
    return sections


def _layer(layer, index):
    if isinstance(layer, string_types):
        return "layer %d" % (index + 1), layer
    if isinstance(layer, dict) and "content" in layer:
        return str(layer.get("name") or "layer %d" % (index + 1)), layer["content"]
    raise AnsibleFilterError("ini overrides: a layer is a string or a dict with name and content, got %r" % (layer,))


def _values(layers):
    """{section: {option: [values]}} of the layers together, a later layer replacing an option's values."""
    merged = {}
    for index, layer in enumerate(layers):
        name, text = _layer(layer, index)
        seen = {}
        for section, options in _parse(text, name):
            for option, value in options:
                key = (section, option)
                values = merged.setdefault(section, {})
                if key not in seen:
                    seen[key] = True
                    values[option] = []
                values[option].append(value)
    return merged


def ini_merge(template, layers=None):
    """The template with every layer applied over it, in order (template < global < service < host).

    Options the template has keep their place (and its comments stay); an option a layer sets
    replaces all of its values in the template; new options go to the end of their section, new
    sections to the end of the file.
    """
    if not isinstance(template, string_types):
        raise AnsibleFilterError("ini_merge: expects the rendered template as a string")
    layers = [layer for layer in (layers or []) if layer]
    if not layers:
        return template
    overrides = _values(layers)
    parsed = _parse(template, "the template")  # rejects what is not INI before rewriting it
    explicit_default = any(
        SECTION.match(line) and SECTION.match(line).group(1).strip() == DEFAULT for line in template.splitlines()
    )
    implicit_default = bool(parsed[0][1])
    out = []
    written = set()

    def emit(section, option):
        if (section, option) in written:
            return
        written.add((section, option))
        for value in overrides[section][option]:
            out.append("%s = %s" % (option, value) if value != "" else "%s =" % option)

    def flush(section):
        while out and not out[-1].strip():
            out.pop()
        for option in overrides.get(section, {}):
            emit(section, option)

    if DEFAULT in overrides and not explicit_default and not implicit_default:
        out.append("[%s]" % DEFAULT)
        flush(DEFAULT)
        out.append("")
    section = DEFAULT
    in_header = False
    present = set([DEFAULT]) if (explicit_default or implicit_default or DEFAULT in overrides) else set()
    for line in template.splitlines():
        match = SECTION.match(line)
        if match:
            if in_header or implicit_default:
                flush(section)
                out.append("")
            in_header = True
            section = match.group(1).strip()
            present.add(section)
            out.append(line)
            continue
        stripped = line.strip()
        match = OPTION.match(line) if stripped and stripped[0] not in "#;" else None
        if match and match.group(1).strip() in overrides.get(section, {}):
            emit(section, match.group(1).strip())
            continue
        out.append(line)
    flush(section)
    for new in overrides:
        if new not in present and overrides[new]:
            out.extend(["", "[%s]" % new])
            present.add(new)
            flush(new)
    while out and not out[0].strip():
        out.pop(0)
    return "\n".join(out) + "\n"


def ini_unknown(layers, schema, service=""):
    """Problems of override layers against an option schema: unknown sections and options.

    The schema maps each section name to the option names it knows (a list, or a dict keyed by
    option name, as oslo-config-generator's YAML output gives). A section whose list is ["*"]
    takes any option; a section name with shell wildcards (C(backend_*)) covers the sections of
    dynamic names it matches.
    """
    if not isinstance(schema, dict):
        raise AnsibleFilterError(
            "ini_unknown: the schema is a dict of section -> options, got %s" % type(schema).__name__
        )
    known = {}
    for section, options in schema.items():
        if isinstance(options, dict):
            options = list(options)
        known[str(section)] = set(str(option) for option in (options or []))
    problems = []
    prefix = ("%s: " % service) if service else ""
    for index, layer in enumerate(layers or []):
        if not layer:
            continue
        name, text = _layer(layer, index)
        for section, options in _parse(text, name):
            if section not in known:
                patterns = [p for p in known if any(c in p for c in "*?[")]
                pattern = next((p for p in patterns if fnmatch.fnmatchcase(section, p)), None)
                if pattern is not None:
                    section = pattern
            if section not in known:
                if options or section != DEFAULT:
                    problems.append("%s%s: unknown section [%s]" % (prefix, name, section))
                continue
            if "*" in known[section]:
                continue
            for option, _value in options:
                if option not in known[section]:
                    problems.append("%s%s: unknown option %s in [%s]" % (prefix, name, option, section))
    return problems


class FilterModule(object):
    def filters(self):
        return {"ini_merge": ini_merge, "ini_unknown": ini_unknown}
