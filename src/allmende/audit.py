"""`allmende runs audit`: prove that no run record holds a secret the deployment generated.

The secrets are gathered from where they live: the local NetBox's secrets file (database and admin
passwords, secret key, pepper, API token), every testbed's SSH private key, the cephx keys in
the keyrings on every testbed node (read over the testbed's SSH), and the deployment secrets stores
(`secrets.yml`, ansible-vault) of every testbed and of every inventory directory a run used.
Every file under the run records is searched for each of them in plain, URL-encoded and base64 form.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from allmende import netbox_server, paths, redact, runs, testbed

KEY_LINE = re.compile(r"^\s*key\s*=\s*(\S+)\s*$", re.MULTILINE)


@dataclass
class AuditResult:
    secrets: dict[str, int] = field(default_factory=dict)  # source -> how many secrets it gave
    files: int = 0
    leaks: list[tuple[str, str, str]] = field(default_factory=list)  # file, form, source


def netbox_secrets(state: Path) -> list[str]:
    path = netbox_server.netbox_dir(state) / "secrets.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return []
    return [str(v) for v in data.values() if isinstance(v, str)]


def ssh_key_secrets(tb: testbed.Testbed) -> list[str]:
    try:
        text = tb.ssh_key.read_text()
    except OSError:
        return []
    body = [line for line in text.splitlines() if line and not line.startswith("-----")]
    return ["".join(body), *[line for line in body if len(line) >= 40]]


def ceph_key_secrets(tb: testbed.Testbed) -> list[str]:
    keys: list[str] = []
    for node in tb.nodes:
        proc = subprocess.run(
            [
                "ssh",
                "-F",
                str(tb.ssh_config),
                node.name,
                "cat /etc/ceph/*.keyring /var/lib/ceph/*/*/keyring 2>/dev/null",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        keys += KEY_LINE.findall(proc.stdout)
    return keys


def _secret_store_module() -> ModuleType:
    return paths.collection_module("plugins/plugin_utils/secret_store.py", "allmende_secret_store")


def store_secrets(directory: Path) -> list[str]:
    """Every value in the secrets store of DIRECTORY (none if it has no store or it cannot be read)."""
    if not (directory / "secrets.yml").is_file():
        return []
    store = _secret_store_module()
    try:
        values = store.SecretStore(str(directory)).read_all()
    except (store.SecretStoreError, OSError):
        return []
    return [str(v) for v in values.values() if v]


def config_dirs(state: Path) -> list[Path]:
    """The configuration directories of every testbed and of every inventory a recorded run used."""
    found: list[Path] = []
    for name in testbed.list_testbeds():
        tb = testbed.Testbed.load(name)
        if tb is not None:
            found.append(tb.inventory_dir)
    if runs.runs_dir(state).is_dir():
        for record in runs.list_runs(state):
            for inv in record.summary.get("inventories") or []:
                path = Path(inv)
                found.append(path if path.is_dir() else path.parent)
    return list(dict.fromkeys(p.resolve() for p in found))


def audit(state: Path) -> AuditResult:
    result = AuditResult()
    sources: dict[str, list[str]] = {"netbox": netbox_secrets(state)}
    for name in testbed.list_testbeds():
        tb = testbed.Testbed.load(name)
        if tb is None:
            continue
        sources[f"testbed {name} ssh key"] = ssh_key_secrets(tb)
        if any(testbed.container_state(n.container) == "running" for n in tb.nodes):
            sources[f"testbed {name} cephx keys"] = ceph_key_secrets(tb)
    for directory in config_dirs(state):
        values = store_secrets(directory)
        if values:
            sources[f"secrets store {directory}"] = values
    runs = state / "runs"
    result.files = sum(1 for p in runs.rglob("*") if p.is_file()) if runs.is_dir() else 0
    for source, secrets in sources.items():
        result.secrets[source] = len(set(secrets))
        if runs.is_dir():
            result.leaks += [(file, form, source) for file, form in redact.find_leaks(runs, secrets)]
    return result
