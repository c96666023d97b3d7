"""`allmende apply`: run a playbook or role through ansible-runner's Python API."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import yaml

from allmende import actions, paths, redact
from allmende.errors import ExitCode, RefusedError, UsageError
from allmende.events import RunTracker
from allmende.lock import DeploymentLock
from allmende.progress import Progress
from allmende.runs import new_run_id, process_start, runs_dir, write_summary

__all__ = ["ApplyRequest", "ApplyResult", "RefusedError", "UsageError", "apply"]


@dataclass
class ApplyRequest:
    target: str
    inventories: list[str] = field(default_factory=list)
    limit: str | None = None
    tags: str | None = None
    skip_tags: str | None = None
    check: bool = False
    diff: bool = False
    extra_vars: list[str] = field(default_factory=list)
    verbosity: int = 0
    forks: int | None = None
    action: str | None = None


@dataclass
class ApplyResult:
    run_id: str
    run_path: Path
    rc: int
    status: str
    tracker: RunTracker
    stdout_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.tracker.failed_hosts


def locate_target(target: str, root: Path) -> tuple[Path | None, str, str]:
    """(playbook or None, kind, name): a playbook path, a playbook of the collection, or a role."""
    as_path = Path(target).expanduser()
    if as_path.suffix in (".yml", ".yaml"):
        if not as_path.is_file():
            raise UsageError(f"playbook {target}: file not found")
        return as_path.resolve(), "playbook", as_path.name
    name = target.removeprefix(f"{paths.COLLECTION_NAMESPACE}.{paths.COLLECTION_NAME}.")
    for candidate in (root / "playbooks" / f"{name}.yml", root / "playbooks" / f"{name}.yaml"):
        if candidate.is_file():
            return candidate, "playbook", name
    if (root / "roles" / name / "tasks").is_dir():
        return None, "role", name
    known = sorted(p.stem for p in (root / "playbooks").glob("*.yml"))
    roles = sorted(p.name for p in (root / "roles").iterdir() if (p / "tasks").is_dir())
    raise UsageError(
        f"target {target!r}: not a playbook file, nor a playbook ({', '.join(known) or 'none'}) "
        f"or role ({', '.join(roles) or 'none'}) of allmende.cloud"
    )


def resolve_target(target: str, root: Path, run_path: Path) -> tuple[Path, str]:
    """A playbook path, a playbook name from the collection, or a role (written as a one-play playbook)."""
    playbook, kind, name = locate_target(target, root)
    if playbook is not None:
        return playbook, kind
    if kind == "role":
        play = [
            {
                "name": f"Apply role {name}",
                "hosts": "all",
                "gather_facts": True,
                "roles": [{"role": f"{paths.COLLECTION_NAMESPACE}.{paths.COLLECTION_NAME}.{name}"}],
            }
        ]
        path = run_path / f"role-{name}.yml"
        path.write_text(yaml.safe_dump(play, sort_keys=False))
        return path, "role"
    raise UsageError(f"target {target!r}: unknown kind {kind}")


def check_extra_vars(values: Sequence[str]) -> list[str]:
    problems = []
    for value in values:
        if value.startswith("@"):
            if not Path(value[1:]).expanduser().is_file():
                problems.append(f"-e {value}: file {value[1:]} not found")
        elif value.lstrip().startswith(("{", "[")):
            try:
                yaml.safe_load(value)
            except yaml.YAMLError as exc:
                problems.append(f"-e {value[:40]}: not valid JSON/YAML ({exc.__class__.__name__})")
        elif "=" not in value:
            problems.append(f"-e {value}: expected key=value, @file or a JSON object")
    return problems


def runner_env(root: Path) -> dict[str, str]:
    """Environment for ansible: the collection on the collections path, our ansible.cfg unless the operator has one."""
    env: dict[str, str] = {}
    collections = str(paths.collections_path(root))
    existing = os.environ.get("ANSIBLE_COLLECTIONS_PATH") or "~/.ansible/collections:/usr/share/ansible/collections"
    env["ANSIBLE_COLLECTIONS_PATH"] = f"{collections}:{existing}"
    if "ANSIBLE_CONFIG" not in os.environ:
        local = Path.cwd() / "ansible.cfg"
        env["ANSIBLE_CONFIG"] = str(local if local.is_file() else root / "ansible.cfg")
    env["PATH"] = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    # ansible-runner turns host key checking off unless told otherwise; keep Ansible's default (on).
    env["ANSIBLE_HOST_KEY_CHECKING"] = os.environ.get("ANSIBLE_HOST_KEY_CHECKING", "True")
    if "ANSIBLE_NOCOLOR" not in os.environ and "ANSIBLE_FORCE_COLOR" not in os.environ:
        env["ANSIBLE_NOCOLOR"] = "1"
    return env


def validate(request: ApplyRequest, root: Path) -> tuple[list[str], Path | None, str, str]:
    """Every problem of the request at once (usage errors), before anything is written."""
    problems = check_extra_vars(request.extra_vars)
    inventories = []
    for inv in request.inventories:
        resolved = Path(inv).expanduser()
        if not resolved.exists():
            problems.append(f"inventory {inv}: not found")
        inventories.append(str(resolved.resolve()))
    if request.forks is not None and request.forks < 1:
        problems.append(f"--forks {request.forks}: must be 1 or more")
    playbook: Path | None = None
    kind = name = ""
    try:
        playbook, kind, name = locate_target(request.target, root)
    except UsageError as exc:
        problems.append(str(exc))
    if request.action is not None and kind:
        reason = actions.check_action(root, request.action, kind, name, playbook)
        if reason:
            problems.append(reason)
    if problems:
        raise UsageError("\n".join(problems), problems)
    return inventories, playbook, kind, name


def apply(
    request: ApplyRequest,
    progress: Progress,
    state: Path | None = None,
    prechecks: Sequence[Callable[[], list[str]]] = (),
) -> ApplyResult:
    """Run REQUEST; raises UsageError, RefusedError or BusyError before anything ran."""
    root = paths.collection_root()
    state = state or paths.state_dir()
    inventories, _playbook, _kind, _name = validate(request, root)
    run_id = new_run_id(request.target)
    with DeploymentLock(state, inventories, run_id=run_id, target=request.target):
        problems: list[str] = []
        for check in prechecks:
            problems += check()
        if problems:
            raise RefusedError(f"{len(problems)} problem(s) in the inventory", problems)
        return _run(request, progress, state, root, inventories, run_id)


def _run(
    request: ApplyRequest, progress: Progress, state: Path, root: Path, inventories: list[str], run_id: str
) -> ApplyResult:
    run_path = runs_dir(state) / run_id
    run_path.mkdir(mode=0o700)
    playbook, kind = resolve_target(request.target, root, run_path)

    extra_vars = list(request.extra_vars)
    if request.action:
        extra_vars.append(json.dumps({"allmende_action": request.action}))
    cmdline: list[str] = []
    if request.check:
        cmdline.append("--check")
    if request.diff:
        cmdline.append("--diff")
    for value in extra_vars:
        cmdline += ["-e", value]
    started = time.time()
    summary: dict[str, Any] = {
        "id": run_id,
        "target": request.target,
        "kind": kind,
        "playbook": str(playbook),
        "inventories": inventories,
        "limit": request.limit,
        "tags": request.tags,
        "skip_tags": request.skip_tags,
        "action": request.action,
        "check": request.check,
        "diff": request.diff,
        "extra_vars": [redact.mask_extra_var(v) for v in request.extra_vars],
        "started": started,
        "status": "running",
        "rc": None,
        "pid": os.getpid(),
        "pid_started": process_start(os.getpid()),
    }
    write_summary(run_path, summary)

    tracker = RunTracker()
    canceled = threading.Event()
    artifact_dir = run_path / "artifacts" / run_id

    def on_event(event: dict[str, Any]) -> bool:
        result = tracker.handle(event)
        progress.update(tracker, event, result)
        return True

    def on_status(data: dict[str, Any], runner_config: Any = None) -> None:
        # ansible-runner has written its `command` artifact (command line and environment) by now.
        if data.get("status") != "starting":
            redact.scrub_command_artifact(artifact_dir / "command")

    kwargs: dict[str, Any] = {
        "private_data_dir": str(run_path),
        "artifact_dir": str(run_path / "artifacts"),
        "ident": run_id,
        "playbook": str(playbook),
        "envvars": runner_env(root),
        "quiet": True,
        "suppress_env_files": True,
        "event_handler": on_event,
        "status_handler": on_status,
        "cancel_callback": canceled.is_set,
    }
    if inventories:
        kwargs["inventory"] = inventories
    if request.limit:
        kwargs["limit"] = request.limit
    if request.tags:
        kwargs["tags"] = request.tags
    if request.skip_tags:
        kwargs["skip_tags"] = request.skip_tags
    if request.verbosity:
        kwargs["verbosity"] = request.verbosity
    if request.forks:
        kwargs["forks"] = request.forks
    if cmdline:
        kwargs["cmdline"] = shlex.join(cmdline)

    def interrupt(_sig: int, _frame: Any) -> None:
        canceled.set()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, interrupt)
    progress.start(f"allmende apply {request.target} (run {run_id})")
    try:
        thread, runner = ansible_runner.run_async(**kwargs)
        thread.join()
    finally:
        progress.stop(tracker)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        redact.scrub_command_artifact(artifact_dir / "command")

    ansible_rc = runner.rc if isinstance(runner.rc, int) else None
    if canceled.is_set():
        rc, status = ExitCode.INTERRUPTED, "interrupted"
    elif ansible_rc == 0 and not tracker.failed_hosts:
        rc, status = ExitCode.OK, "successful"
    else:
        rc, status = ExitCode.FAILED, "failed"
    stdout_tail = ""
    if rc != ExitCode.OK and tracker.stats is None:
        stdout_file = artifact_dir / "stdout"
        if stdout_file.exists():
            stdout_tail = "\n".join(stdout_file.read_text(errors="replace").strip().splitlines()[-15:])
    summary.update(
        {
            "finished": time.time(),
            "duration": round(time.time() - started, 2),
            "rc": int(rc),
            "ansible_rc": ansible_rc,
            "status": status,
            "artifact_dir": str(artifact_dir),
            "stdout_tail": stdout_tail,
            **tracker.summary(),
        }
    )
    write_summary(run_path, summary)
    return ApplyResult(run_id, run_path, int(rc), status, tracker, stdout_tail)
