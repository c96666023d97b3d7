"""Which actions (`allmende apply TARGET --action ACTION`) a role or playbook offers.

A role offers the choices of its `<role>_action` option in meta/argument_specs.yml. A playbook
offers the actions that every role it runs offers (roles whose action the playbook sets itself
do not count), unless meta/actions.yml of the collection names its actions explicitly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from allmende import paths

PREFIX = f"{paths.COLLECTION_NAMESPACE}.{paths.COLLECTION_NAME}."


def _load(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None


def role_actions(root: Path, role: str) -> list[str]:
    spec = _load(root / "roles" / role / "meta" / "argument_specs.yml") or {}
    option = (((spec.get("argument_specs") or {}).get("main") or {}).get("options") or {}).get(f"{role}_action") or {}
    return list(option.get("choices") or [])


def _role_name(name: Any) -> str | None:
    if not isinstance(name, str) or "{{" in name:
        return None
    return name.removeprefix(PREFIX)


def _walk_tasks(tasks: Any, found: set[str]) -> None:
    for task in tasks or []:
        if not isinstance(task, dict):
            continue
        for key in ("block", "rescue", "always"):
            _walk_tasks(task.get(key), found)
        for module in ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role"):
            args = task.get(module)
            if not isinstance(args, dict) or args.get("tasks_from"):
                continue
            role = _role_name(args.get("name"))
            if role and f"{role}_action" not in (task.get("vars") or {}):
                found.add(role)


def playbook_roles(path: Path, seen: set[Path] | None = None) -> set[str]:
    """Roles a playbook runs with the action it is given (following import_playbook)."""
    seen = seen if seen is not None else set()
    path = path.resolve()
    if path in seen:
        return set()
    seen.add(path)
    found: set[str] = set()
    for play in _load(path) or []:
        if not isinstance(play, dict):
            continue
        imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        if isinstance(imported, str):
            name = imported.removeprefix(PREFIX)
            target = path.parent / (name if name.endswith((".yml", ".yaml")) else f"{name}.yml")
            found |= playbook_roles(target, seen)
            continue
        for entry in play.get("roles") or []:
            role = _role_name(entry.get("role") or entry.get("name") if isinstance(entry, dict) else entry)
            if role and not (isinstance(entry, dict) and f"{role}_action" in (entry.get("vars") or {})):
                found.add(role)
        for key in ("pre_tasks", "tasks", "post_tasks"):
            _walk_tasks(play.get(key), found)
    return found


def playbook_actions(root: Path, playbook: Path) -> tuple[list[str], dict[str, list[str]]]:
    """The actions a playbook offers, and each role's own list (for error messages)."""
    declared = (_load(root / "meta" / "actions.yml") or {}).get("playbooks") or {}
    if playbook.stem in declared and playbook.parent.resolve() == (root / "playbooks").resolve():
        return list(declared[playbook.stem]), {}
    per_role = {role: role_actions(root, role) for role in sorted(playbook_roles(playbook))}
    per_role = {role: acts for role, acts in per_role.items() if acts}
    if not per_role:
        return [], {}
    common = set.intersection(*(set(acts) for acts in per_role.values()))
    first = next(iter(per_role.values()))
    return [a for a in first if a in common], per_role


def check_action(root: Path, action: str, kind: str, name: str, playbook: Path | None) -> str | None:
    """None if TARGET offers ACTION, else the reason (naming the valid actions)."""
    if kind == "role":
        offered = role_actions(root, name)
        if action in offered:
            return None
        valid = ", ".join(offered) or "none"
        return f"--action {action}: role {name} offers {valid}"
    assert playbook is not None
    offered, per_role = playbook_actions(root, playbook)
    if action in offered:
        return None
    lacking = [role for role, acts in per_role.items() if action not in acts]
    detail = f" (not offered by {', '.join(lacking)})" if lacking and len(lacking) < len(per_role) else ""
    valid = ", ".join(offered) or "none"
    return f"--action {action}: {name} offers {valid}{detail}"
