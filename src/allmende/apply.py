"""`allmende apply`: run a playbook or role through ansible-runner's Python API."""

from __future__ import annotations

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

from allmende import paths
from allmende.events import RunTracker
from allmende.progress import Progress
from allmende.runs import new_run_id, runs_dir, write_summary


class UsageError(ValueError):
    """Bad command-line input, reported before anything runs."""


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


def resolve_target(target: str, root: Path, run_path: Path) -> tuple[Path, str]:
    """A playbook path, a playbook name from the collection, or a role (written as a one-play playbook)."""
    as_path = Path(target).expanduser()
    if as_path.suffix in (".yml", ".yaml"):
        if not as_path.is_file():
            raise UsageError(f"playbook {target}: file not found")
        return as_path.resolve(), "playbook"
    name = target.removeprefix(f"{paths.COLLECTION_NAMESPACE}.{paths.COLLECTION_NAME}.")
    for candidate in (root / "playbooks" / f"{name}.yml", root / "playbooks" / f"{name}.yaml"):
        if candidate.is_file():
            return candidate, "playbook"
    if (root / "roles" / name / "tasks").is_dir():
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
    known = sorted(p.stem for p in (root / "playbooks").glob("*.yml"))
    roles = sorted(p.name for p in (root / "roles").iterdir() if (p / "tasks").is_dir())
    raise UsageError(
        f"target {target!r}: not a playbook file, nor a playbook ({', '.join(known) or 'none'}) "
        f"or role ({', '.join(roles) or 'none'}) of allmende.cloud"
    )


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
    if "ANSIBLE_NOCOLOR" not in os.environ and "ANSIBLE_FORCE_COLOR" not in os.environ:
        env["ANSIBLE_NOCOLOR"] = "1"
    return env


def apply(
    request: ApplyRequest,
    progress: Progress,
    state: Path | None = None,
    prechecks: Sequence[Callable[[], list[str]]] = (),
) -> ApplyResult:
    root = paths.collection_root()
    state = state or paths.state_dir()
    problems = check_extra_vars(request.extra_vars)
    inventories = []
    for inv in request.inventories:
        resolved = Path(inv).expanduser()
        if not resolved.exists():
            problems.append(f"inventory {inv}: not found")
        inventories.append(str(resolved.resolve()))
    for check in prechecks:
        problems += check()
    if problems:
        raise UsageError("\n".join(problems))

    run_id = new_run_id(request.target)
    run_path = runs_dir(state) / run_id
    run_path.mkdir(mode=0o700)
    try:
        playbook, kind = resolve_target(request.target, root, run_path)
    except UsageError:
        for leftover in run_path.iterdir():
            leftover.unlink()
        run_path.rmdir()
        raise

    cmdline: list[str] = []
    if request.check:
        cmdline.append("--check")
    if request.diff:
        cmdline.append("--diff")
    for value in request.extra_vars:
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
        "check": request.check,
        "diff": request.diff,
        "started": started,
        "status": "running",
        "rc": None,
    }
    write_summary(run_path, summary)

    tracker = RunTracker()
    canceled = threading.Event()

    def on_event(event: dict[str, Any]) -> bool:
        result = tracker.handle(event)
        progress.update(tracker, event, result)
        return True

    kwargs: dict[str, Any] = {
        "private_data_dir": str(run_path),
        "artifact_dir": str(run_path / "artifacts"),
        "ident": run_id,
        "playbook": str(playbook),
        "envvars": runner_env(root),
        "quiet": True,
        "suppress_env_files": True,
        "event_handler": on_event,
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

    previous = signal.getsignal(signal.SIGINT)

    def interrupt(_sig: int, _frame: Any) -> None:
        canceled.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, interrupt)
    progress.start(f"allmende apply {request.target} (run {run_id})")
    try:
        thread, runner = ansible_runner.run_async(**kwargs)
        thread.join()
    finally:
        progress.stop(tracker)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)

    rc = runner.rc if isinstance(runner.rc, int) else 1
    status = "canceled" if canceled.is_set() else (runner.status or "unknown")
    stdout_tail = ""
    if rc != 0 and tracker.stats is None:
        stdout_file = run_path / "artifacts" / run_id / "stdout"
        if stdout_file.exists():
            stdout_tail = "\n".join(stdout_file.read_text(errors="replace").strip().splitlines()[-15:])
    if rc == 0 and tracker.failed_hosts:
        rc = 2
    summary.update(
        {
            "finished": time.time(),
            "duration": round(time.time() - started, 2),
            "rc": rc,
            "status": "successful" if rc == 0 else status if status != "successful" else "failed",
            "artifact_dir": str(run_path / "artifacts" / run_id),
            "stdout_tail": stdout_tail,
            **tracker.summary(),
        }
    )
    write_summary(run_path, summary)
    return ApplyResult(run_id, run_path, rc, summary["status"], tracker, stdout_tail)
