"""Turn ansible-runner events into per-host progress, failures and a final summary.

Pure logic, no I/O: the progress renderers and the run record both read a RunTracker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}
MESSAGE_LIMIT = 400


@dataclass
class HostProgress:
    name: str
    task: str = ""
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    ignored: int = 0
    rescued: int = 0

    @property
    def state(self) -> str:
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        return "running" if self.task else "waiting"


@dataclass
class Failure:
    host: str
    task: str
    message: str
    kind: str  # "failed" or "unreachable"
    play: str = ""


@dataclass
class Result:
    """One host's result of one task, as shown in progress lines and JSON output."""

    host: str
    task: str
    status: str  # ok, changed, failed, unreachable, skipped, ignored
    message: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class RunTracker:
    play: str = ""
    hosts: dict[str, HostProgress] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    stats: dict[str, dict[str, int]] | None = None
    tasks_started: int = 0
    no_hosts_matched: bool = False
    warnings: list[str] = field(default_factory=list)

    def host(self, name: str) -> HostProgress:
        if name not in self.hosts:
            self.hosts[name] = HostProgress(name)
        return self.hosts[name]

    def handle(self, event: dict[str, Any]) -> Result | None:
        """Update the progress from one event; return the host result it carries, if any."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_play_start":
            self.play = data.get("name") or data.get("play") or ""
            return None
        if kind == "playbook_on_task_start":
            self.tasks_started += 1
            return None
        if kind == "playbook_on_no_hosts_matched":
            self.no_hosts_matched = True
            return None
        if kind == "playbook_on_stats":
            self.stats = _stats_by_host(data)
            for name, counts in self.stats.items():
                host = self.host(name)
                host.task = ""
                host.failed = counts["failures"]
                host.unreachable = counts["dark"]
            return None
        if kind == "runner_on_start":
            self.host(data.get("host", "?")).task = task_label(data)
            return None
        if kind in RESULT_EVENTS:
            return self._result(kind, data)
        return None

    def _result(self, kind: str, data: dict[str, Any]) -> Result:
        name = data.get("host", "?")
        host = self.host(name)
        res = data.get("res") or {}
        if not isinstance(res, dict):
            res = {"msg": str(res)}
        task = task_label(data)
        status = RESULT_EVENTS[kind]
        message = ""
        warnings = [str(w) for w in res.get("warnings") or []]
        for warning in warnings:
            line = f"{name}: {warning}"
            if line not in self.warnings:
                self.warnings.append(line)
        if status == "ok":
            host.ok += 1  # like Ansible's recap, ok includes changed
            if res.get("changed"):
                status = "changed"
                host.changed += 1
        elif status == "skipped":
            host.skipped += 1
        elif status == "failed" and data.get("ignore_errors"):
            status = "ignored"
            host.ignored += 1
            message = failure_message(res)
        else:
            message = failure_message(res)
            if status == "failed":
                host.failed += 1
            else:
                host.unreachable += 1
            self.failures.append(Failure(name, task, message, status, self.play))
        return Result(name, task, status, message, warnings)

    @property
    def failed_hosts(self) -> list[str]:
        """Hosts that ended failed or unreachable (rescued failures do not count)."""
        if self.stats is not None:
            return sorted(h for h, c in self.stats.items() if c["failures"] or c["dark"])
        return sorted({f.host for f in self.failures})

    def final_failures(self) -> list[Failure]:
        failed = set(self.failed_hosts)
        return [f for f in self.failures if f.host in failed]

    def summary(self) -> dict[str, Any]:
        return {
            "hosts": {name: asdict(h) for name, h in sorted(self.hosts.items())},
            "stats": self.stats,
            "failed_hosts": self.failed_hosts,
            "failures": [asdict(f) for f in self.final_failures()],
            "no_hosts_matched": self.no_hosts_matched,
            "warnings": self.warnings,
        }


def task_label(data: dict[str, Any]) -> str:
    task = data.get("task") or data.get("task_action") or "?"
    role = data.get("role")
    return f"{role} : {task}" if role and not task.startswith(f"{role} :") else task


def failure_message(res: dict[str, Any]) -> str:
    """The most useful single message of a failed or unreachable result."""
    if not isinstance(res, dict):
        return _clip(str(res))
    for item in res.get("results") or []:
        if isinstance(item, dict) and (item.get("failed") or item.get("unreachable")):
            inner = failure_message(item)
            label = item.get("item")
            if isinstance(label, (str, int)):
                return _clip(f"item {label}: {inner}")
            return inner
    parts = []
    msg = res.get("msg")
    if msg:
        parts.append(_middle(str(msg) if not isinstance(msg, list) else "; ".join(map(str, msg)), 160))
    stderr = [line for line in (res.get("stderr") or "").strip().splitlines() if line.strip()]
    stdout = [line for line in (res.get("stdout") or "").strip().splitlines() if line.strip()]
    if stderr:
        # The first error line is usually the cause; warnings like "debconf: ..." come first, skip them.
        errors = [line for line in stderr if line.lstrip().startswith(("E:", "ERROR", "Error", "error", "FATAL"))]
        parts.append(errors[0] if errors else stderr[-1])
    elif stdout and res.get("rc") not in (None, 0):
        parts.append(stdout[-1])
    if res.get("rc") not in (None, 0):
        parts.append(f"rc={res['rc']}")
    if not parts and res.get("exception"):
        parts.append(str(res["exception"]).strip().splitlines()[-1])
    return _clip(" | ".join(parts) or "failed without a message")


def _middle(text: str, limit: int) -> str:
    """Keep the start and the end of a long message: commands first, errors last."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = limit // 3
    return text[:head] + " … " + text[-(limit - head - 3) :]


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _stats_by_host(data: dict[str, Any]) -> dict[str, dict[str, int]]:
    keys = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored", "processed")
    hosts: set[str] = set()
    for key in keys:
        hosts.update((data.get(key) or {}).keys())
    return {h: {k: int((data.get(k) or {}).get(h, 0)) for k in keys if k != "processed"} for h in sorted(hosts)}
