"""Run records: every `allmende apply` keeps its events, stdout and a summary under runs/<id>/."""

from __future__ import annotations

import json
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


def write_summary(run_path: Path, summary: dict[str, Any]) -> None:
    tmp = run_path / (SUMMARY + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str))
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
