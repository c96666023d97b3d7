"""`allmende inventory check`: every problem of an inventory, before any host is touched.

The inventory is read through ansible-runner's inventory interface (ansible-inventory, so any
inventory source works). The allmende.cloud.netbox plugin reports the NetBox data problems it
finds in each host's `allmende_inventory_problems` (and those tied to no host in
`allmende_inventory_global_problems` of group `all`); the checks themselves, the same the
validation play (playbooks/validate.yml) runs, live in the collection's
plugins/module_utils/inventory_model.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import ansible_runner
from ansible_runner.exceptions import ConfigurationError

from allmende import paths
from allmende.apply import runner_env


def model() -> ModuleType:
    """The collection's inventory_model module (pure Python, no Ansible imports needed)."""
    try:
        return paths.collection_module("plugins/module_utils/inventory_model.py", "allmende_inventory_model")
    except paths.CollectionNotFound as exc:
        raise InventoryError(str(exc)) from exc


class InventoryError(RuntimeError):
    pass


def unwrap(value: Any) -> Any:
    """ansible-inventory marks untrusted strings as {"__ansible_unsafe": "..."}; plain values for checks."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


@dataclass
class Inventory:
    groups: dict[str, dict[str, Any]]
    hostvars: dict[str, dict[str, Any]]

    def group_vars(self, group: str) -> dict[str, Any]:
        return self.groups.get(group, {}).get("vars", {})

    def hosts_of(self, group: str) -> set[str]:
        seen, todo, hosts = set(), [group], set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            entry = self.groups.get(name, {})
            hosts.update(entry.get("hosts", []))
            todo.extend(entry.get("children", []))
        return hosts


def load(inventories: Sequence[str]) -> Inventory:
    root = paths.collection_root()
    try:
        out, err = ansible_runner.get_inventory(
            action="list",
            inventories=[str(Path(i).expanduser().resolve()) for i in inventories],
            response_format="json",
            export=True,
            envvars=runner_env(root),
            quiet=True,
        )
    except ConfigurationError as exc:
        raise InventoryError(f"cannot read the inventory: {exc}") from exc
    if not out:
        raise InventoryError(f"cannot read the inventory {', '.join(inventories)}: {str(err).strip()[-800:]}")
    data = out if isinstance(out, dict) else json.loads(out)
    data = unwrap(data)
    hostvars = data.pop("_meta", {}).get("hostvars", {})
    return Inventory(data, hostvars)


def problems(inv: Inventory) -> list[str]:
    m = model()
    hosts = inv.hosts_of("all")
    hostvars = {host: inv.hostvars.get(host, {}) for host in hosts}
    groups = {group: inv.hosts_of(group) for group in m.REQUIRED_GROUPS}
    found = list(inv.group_vars("all").get(m.GLOBAL_PROBLEMS_VAR) or [])
    return m.inventory_problems(hostvars, groups, found)


def check(inventories: Sequence[str]) -> list[str]:
    return problems(load(inventories))
