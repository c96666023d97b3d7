"""Run records: every `allmende apply` keeps its events, stdout and a summary under runs/<id>/."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"


class RunNotFound(LookupError):
    pass


def runs_dir(state: Path) -> Path:
    path = state / "runs"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def new_run_id(target: str, now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(target).stem if "/" in target else target).strip("-")[:32]
    return f"{stamp}-{slug or 'run'}-{secrets.token_hex(2)}"


@dataclass
class RunRecord:
    path: Path
    summary: dict[str, Any]

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def artifact_dir(self) -> Path:
        return self.path / "artifacts" / self.id

    def stdout(self) -> str:
        out = self.artifact_dir / "stdout"
        return out.read_text(errors="replace") if out.exists() else ""

    def events(self) -> list[dict[str, Any]]:
        folder = self.artifact_dir / "job_events"
        if not folder.is_dir():
            return []

        def order(p: Path) -> int:
            head = p.name.split("-", 1)[0]
            return int(head) if head.isdigit() else 0

        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"), key=order)]


def process_start(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot), to tell a live run from a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def effective_status(summary: dict[str, Any]) -> str:
    """`running` only while the driver that started the run is alive; else `interrupted`."""
    status = str(summary.get("status") or "unknown")
    if status != "running":
        return status
    pid = summary.get("pid")
    if not isinstance(pid, int) or process_start(pid) is None:
        return "interrupted"
    started = summary.get("pid_started")
    if started is not None and process_start(pid) != started:
        return "interrupted"
    return status


def write_summary(run_path: Path, summary: dict[str, Any]) -> None:
    """Atomically: a killed driver leaves the previous summary, never half of one."""
    tmp = run_path / (SUMMARY + ".tmp")
    with tmp.open("w") as handle:
        handle.write(json.dumps(summary, indent=2, sort_keys=True, default=str))
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(run_path / SUMMARY)


def list_runs(state: Path) -> list[RunRecord]:
    records = []
    for path in runs_dir(state).iterdir():
        summary_file = path / SUMMARY
        if not summary_file.is_file():
            continue
        try:
            summary = json.loads(summary_file.read_text())
        except (OSError, json.JSONDecodeError):
            summary = {"status": "unreadable"}
        if not isinstance(summary, dict):
            summary = {"status": "unreadable"}
        summary["status"] = effective_status(summary)
        records.append(RunRecord(path, summary))
    return sorted(records, key=lambda r: (r.summary.get("started") or 0, r.id))


def find_run(state: Path, ref: str) -> RunRecord:
    """A run by id, unique id prefix, or `last`."""
    records = list_runs(state)
    if not records:
        raise RunNotFound("no runs recorded yet")
    if ref == "last":
        return records[-1]
    exact = [r for r in records if r.id == ref]
    if exact:
        return exact[0]
    matches = [r for r in records if r.id.startswith(ref) or r.id.endswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunNotFound(f"no run with id {ref!r} (see `allmende runs`)")
    raise RunNotFound(f"{ref!r} matches {len(matches)} runs: " + ", ".join(r.id for r in matches[:5]))
