"""Keep secrets out of run records.

ansible-runner writes `artifacts/<id>/command` with the command line and the driver's whole
environment. The driver rewrites that file as soon as the run starts: environment variables are
kept only if they configure Ansible or the driver and do not look secret, and `-e` values whose
key looks secret are masked. The summary records masked `-e` values only.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

MASK = "********"
SECRET_NAME = re.compile(r"pass|secret|token|key|credential|pwd|auth|cookie|private", re.IGNORECASE)
ENV_KEPT = ("ANSIBLE_", "ALLMENDE_", "PATH", "HOME", "LANG", "LC_", "TERM", "USER", "PWD", "VIRTUAL_ENV")
_KV = re.compile(r"(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>'[^']*'|\"[^\"]*\"|\S*)")


def looks_secret(name: str) -> bool:
    return name not in ("PWD", "OLDPWD") and bool(SECRET_NAME.search(name))


def _mask_data(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: MASK if looks_secret(str(k)) and v not in (None, "") else _mask_data(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_mask_data(v) for v in data]
    return data


def mask_extra_var(value: str) -> str:
    """An `-e` argument with the values of secret-looking keys masked (files are left as named)."""
    if value.startswith("@"):
        return value
    if value.lstrip().startswith(("{", "[")):
        try:
            data = yaml.safe_load(value)
        except yaml.YAMLError:
            return MASK
        return json.dumps(_mask_data(data), sort_keys=True)
    return _KV.sub(lambda m: f"{m['key']}={MASK}" if looks_secret(m["key"]) else m[0], value)


def mask_command(command: Sequence[str]) -> list[str]:
    out, after_e = [], False
    for arg in command:
        if after_e:
            out.append(mask_extra_var(arg))
            after_e = False
            continue
        if arg in ("-e", "--extra-vars"):
            after_e = True
        elif arg.startswith("--extra-vars="):
            arg = "--extra-vars=" + mask_extra_var(arg.split("=", 1)[1])
        out.append(arg)
    return out


def scrub_env(env: dict[str, str]) -> dict[str, str]:
    return {
        k: (MASK if looks_secret(k) else v)
        for k, v in sorted(env.items())
        if k.startswith(ENV_KEPT) and k != "ANSIBLE_VAULT_PASSWORD"
    }


def scrub_command_artifact(path: Path) -> bool:
    """Rewrite ansible-runner's `command` artifact without secrets; True if the file was there."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    command = data.get("command") or []
    clean = {
        "command": mask_command([str(c) for c in command]) if isinstance(command, list) else MASK,
        "cwd": data.get("cwd"),
        "env": scrub_env({str(k): str(v) for k, v in (data.get("env") or {}).items()}),
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(clean, ensure_ascii=False))
    tmp.chmod(0o600)
    tmp.replace(path)
    return True


def forms(secret: str) -> dict[str, str]:
    """The ways a secret may show up in a file: plain, URL-encoded, base64."""
    raw = secret.encode()
    found = {
        "plain": secret,
        "url-encoded": urllib.parse.quote(secret, safe=""),
        "base64": base64.b64encode(raw).decode(),
    }
    found["base64 (no padding)"] = found["base64"].rstrip("=")
    return {k: v for k, v in found.items() if v}


def find_leaks(folder: Path, secrets: Iterable[str], minimum: int = 8) -> list[tuple[str, str]]:
    """(file, form) for every file under FOLDER that holds one of SECRETS in any of its forms."""
    patterns = []
    for secret in {s for s in secrets if s and len(s) >= minimum}:
        for form, text in forms(secret).items():
            patterns.append((form, text.encode()))
    leaks = []
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            data = file.read_bytes()
        except OSError:
            continue
        for form, needle in patterns:
            if needle in data:
                leaks.append((str(file), form))
                break
    return leaks
