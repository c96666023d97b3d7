"""Live progress of a run: a per-host table on a terminal, lines in logs, or JSON events."""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from allmende.events import Failure, Result, RunTracker

STATUS_STYLE = {
    "ok": "green",
    "changed": "yellow",
    "failed": "bold red",
    "unreachable": "bold magenta",
    "skipped": "cyan",
    "ignored": "blue",
}


class Progress(Protocol):
    def start(self, title: str) -> None: ...

    def update(self, tracker: RunTracker, event: dict[str, Any], result: Result | None) -> None: ...

    def stop(self, tracker: RunTracker) -> None: ...


def host_table(tracker: RunTracker, title: str | None = None, live: bool = True) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("host")
    if live:
        table.add_column("state")
        table.add_column("current task", overflow="ellipsis", max_width=60, no_wrap=True)
    for column in ("ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(column, justify="right")
    for name, host in sorted(tracker.hosts.items()):
        row = [name]
        if live:
            state = host.state
            row += [Text(state, style=STATUS_STYLE.get(state, "")), host.task]
        row += [
            str(host.ok),
            Text(str(host.changed), style="yellow" if host.changed else ""),
            Text(str(host.failed), style="bold red" if host.failed else ""),
            Text(str(host.unreachable), style="bold magenta" if host.unreachable else ""),
            str(host.skipped),
        ]
        table.add_row(*row)
    return table


def failure_table(failures: list[Failure]) -> Table:
    table = Table(title="What failed where", title_justify="left", show_lines=True)
    table.add_column("host", style="bold")
    table.add_column("task")
    table.add_column("message", overflow="fold")
    for failure in failures:
        label = "UNREACHABLE" if failure.kind == "unreachable" else ""
        table.add_row(failure.host, failure.task, f"{label} {failure.message}".strip())
    return table


class LiveProgress:
    """Terminal: a table of hosts with their current task and counts, redrawn as events arrive."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.title = ""
        self.started = time.monotonic()
        self.live: Live | None = None

    def _render(self, tracker: RunTracker) -> Group:
        elapsed = time.monotonic() - self.started
        head = Text.assemble(
            (self.title, "bold"),
            "  ",
            (f"play: {tracker.play}", "cyan"),
            f"  tasks: {tracker.tasks_started}",
            f"  {elapsed:5.0f}s",
        )
        return Group(head, host_table(tracker))

    def start(self, title: str) -> None:
        self.title = title
        self.started = time.monotonic()
        self.live = Live(Text(title), console=self.console, refresh_per_second=4, transient=False)
        self.live.start()

    def update(self, tracker: RunTracker, event: dict[str, Any], result: Result | None) -> None:
        if self.live is None:
            return
        for warning in result.warnings if result else []:
            self.live.console.print(Text.assemble(("WARNING     ", "yellow"), f"{result.host}  {warning}"))
        if result and result.status in ("failed", "unreachable"):
            self.live.console.print(
                Text.assemble(
                    (f"{result.status.upper():12}", STATUS_STYLE[result.status]),
                    f"{result.host}  ",
                    (result.task, "bold"),
                    f"  {result.message}",
                )
            )
        self.live.update(self._render(tracker))

    def stop(self, tracker: RunTracker) -> None:
        if self.live is not None:
            self.live.update(self._render(tracker))
            self.live.stop()


class LineProgress:
    """Logs and CI: one line per host and task result, as it happens."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.play = ""

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def start(self, title: str) -> None:
        self._write(f"== {title}")

    def update(self, tracker: RunTracker, event: dict[str, Any], result: Result | None) -> None:
        if tracker.play != self.play:
            self.play = tracker.play
            self._write(f"-- play: {self.play}")
        if result is None:
            return
        stamp = time.strftime("%H:%M:%S")
        line = f"{stamp} {result.host:<16} {result.status:<11} {result.task}"
        if result.message:
            line += f" :: {result.message}"
        self._write(line)
        for warning in result.warnings:
            self._write(f"{stamp} {result.host:<16} {'WARNING':<11} {warning}")

    def stop(self, tracker: RunTracker) -> None:
        pass


class JsonProgress:
    """--json: one JSON object per line for every host result and play/stats event."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def _emit(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record, sort_keys=True) + "\n")
        self.stream.flush()

    def start(self, title: str) -> None:
        self._emit({"event": "run_start", "title": title})

    def update(self, tracker: RunTracker, event: dict[str, Any], result: Result | None) -> None:
        kind = event.get("event")
        if result is not None:
            self._emit(
                {
                    "event": kind,
                    "time": event.get("created"),
                    "play": tracker.play,
                    "host": result.host,
                    "task": result.task,
                    "status": result.status,
                    "message": result.message,
                    "warnings": result.warnings,
                }
            )
        elif kind in ("playbook_on_play_start", "playbook_on_task_start", "playbook_on_stats"):
            record: dict[str, Any] = {"event": kind, "time": event.get("created"), "play": tracker.play}
            if kind == "playbook_on_task_start":
                record["task"] = (event.get("event_data") or {}).get("task")
            if kind == "playbook_on_stats":
                record["stats"] = tracker.stats
            self._emit(record)

    def stop(self, tracker: RunTracker) -> None:
        pass


def make_progress(mode: str, console: Console) -> Progress:
    if mode == "json":
        return JsonProgress()
    if mode == "live" or (mode == "auto" and console.is_terminal):
        return LiveProgress(console)
    return LineProgress()
