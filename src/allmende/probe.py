"""`allmende probe`: measure whether the cloud stays available while something happens to it.

Each check is a callable that raises on failure (an API call through the VIP, a TCP connect to a
floating IP). The probe calls every check at a fixed rate in its own thread, so a hanging call
never delays the others, and stops by itself after a bounded time and number of calls. The report
gives per check the calls, failures, latency percentiles and the longest gap (the longest time
between two successful answers), as JSON plus an SVG picture of latency over time with the events
(upgrade steps, induced failures) marked.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAX_DURATION = 6 * 3600.0  # seconds; a probe always stops by itself
MAX_RATE = 50.0  # calls per second per check


class ProbeError(ValueError):
    pass


@dataclass
class Check:
    name: str
    call: Callable[[], None]  # raises on failure
    rate: float = 5.0  # calls per second


@dataclass
class Sample:
    check: str
    start: float  # seconds since the probe started
    latency: float  # seconds
    ok: bool
    error: str = ""


@dataclass
class Mark:
    at: float  # seconds since the probe started
    label: str


@dataclass
class CheckReport:
    name: str
    requests: int
    failures: int
    p50: float | None
    p95: float | None
    p99: float | None
    longest_gap: float  # seconds between two successful answers (or probe edges)
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class ProbeResult:
    started: float  # wall clock
    duration: float
    samples: list[Sample] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)

    def reports(self) -> list[CheckReport]:
        names = list(dict.fromkeys(s.check for s in self.samples))
        return [summarise(name, [s for s in self.samples if s.check == name], self.duration) for name in names]

    def to_json(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "duration": self.duration,
            "checks": [asdict(r) for r in self.reports()],
            "marks": [asdict(m) for m in self.marks],
            "samples": [asdict(s) for s in self.samples],
        }


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by the nearest-rank method; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def summarise(name: str, samples: list[Sample], duration: float) -> CheckReport:
    ok = [s for s in samples if s.ok]
    latencies = [s.latency for s in ok]
    # edges count: a check that never answers has a gap as long as the probe
    answers = [0.0, *sorted(s.start + s.latency for s in ok), duration]
    gap = max(b - a for a, b in itertools.pairwise(answers))
    errors: dict[str, int] = {}
    for s in samples:
        if not s.ok:
            errors[s.error] = errors.get(s.error, 0) + 1
    return CheckReport(
        name=name,
        requests=len(samples),
        failures=len(samples) - len(ok),
        p50=percentile(latencies, 50),
        p95=percentile(latencies, 95),
        p99=percentile(latencies, 99),
        longest_gap=round(gap, 4),
        errors=errors,
    )


class Probe:
    """Run checks at their rates for at most DURATION seconds (and at most MAX_CALLS calls each)."""

    def __init__(self, checks: list[Check], duration: float, max_calls: int | None = None) -> None:
        problems = []
        if not checks:
            problems.append("no checks to run")
        if not 0 < duration <= MAX_DURATION:
            problems.append(f"duration {duration}: choose between 0 and {MAX_DURATION:.0f} seconds")
        for check in checks:
            if not 0 < check.rate <= MAX_RATE:
                problems.append(
                    f"check {check.name}: rate {check.rate}: choose between 0 and {MAX_RATE:.0f} per second"
                )
        if len({c.name for c in checks}) != len(checks):
            problems.append("check names must be unique")
        if problems:
            raise ProbeError("; ".join(problems))
        self.checks = checks
        self.duration = duration
        self.max_calls = max_calls or math.ceil(max(c.rate for c in checks) * duration) + 1
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._t0 = 0.0
        self.result = ProbeResult(started=0.0, duration=duration)

    def now(self) -> float:
        return time.monotonic() - self._t0

    def mark(self, label: str) -> None:
        """Record an event (an upgrade step, an induced failure) at the current time."""
        with self._lock:
            self.result.marks.append(Mark(round(self.now(), 4), label))

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, check: Check) -> None:
        interval = 1.0 / check.rate
        for index in range(self.max_calls):
            due = index * interval
            if due >= self.duration:
                return
            wait = due - self.now()
            if wait > 0 and self._stop.wait(wait):
                return
            if self._stop.is_set():
                return
            start = self.now()
            try:
                check.call()
                ok, error = True, ""
            except Exception as exc:  # a failed call is data, not a crash
                ok, error = False, _short(exc)
            sample = Sample(check.name, round(start, 4), round(self.now() - start, 4), ok, error)
            with self._lock:
                self.result.samples.append(sample)

    def run(self, during: Callable[[Probe], None] | None = None) -> ProbeResult:
        """Probe for the whole duration; DURING (if given) runs in this thread meanwhile (it may mark)."""
        self._t0 = time.monotonic()
        self.result.started = time.time()
        threads = [threading.Thread(target=self._loop, args=(c,), daemon=True) for c in self.checks]
        for thread in threads:
            thread.start()
        try:
            if during is not None:
                during(self)
            deadline = self.duration + 60.0  # calls time out by themselves; never wait forever
            for thread in threads:
                thread.join(max(0.0, deadline - self.now()))
        finally:
            self._stop.set()
        self.result.samples.sort(key=lambda s: (s.check, s.start))
        return self.result


# ---------------------------------------------------------------- checks


def tcp_check(host: str, port: int, timeout: float = 2.0) -> Callable[[], None]:
    """Connect and close: the data-plane check (a floating IP answering on a port)."""

    def call() -> None:
        with socket.create_connection((host, port), timeout=timeout):
            pass

    return call


def http_check(url: str, timeout: float = 5.0, expect: tuple[int, ...] = (200,)) -> Callable[[], None]:
    """GET URL; any status outside EXPECT (or no answer) is a failure."""

    def call() -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                status = resp.status
                resp.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
        if status not in expect:
            raise ProbeError(f"HTTP {status}")

    return call


# The credentials a token check authenticates with: the environment variables the openstack CLI
# reads (never command-line arguments, which every process on the host can see).
TOKEN_ENV = {
    "OS_USERNAME": None,
    "OS_PASSWORD": None,
    "OS_PROJECT_NAME": None,
    "OS_USER_DOMAIN_NAME": "Default",
    "OS_PROJECT_DOMAIN_NAME": "Default",
}


def token_credentials(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The OS_* credentials of a token check; ProbeError naming every missing variable."""
    environ = os.environ if environ is None else environ
    values = {key: environ.get(key) or default for key, default in TOKEN_ENV.items()}
    missing = [key for key, value in values.items() if not value]
    if missing:
        raise ProbeError(f"--token needs the environment variable(s) {', '.join(missing)}")
    return {key: str(value) for key, value in values.items()}


def token_check(url: str, credentials: dict[str, str], timeout: float = 5.0) -> Callable[[], None]:
    """Issue a new Keystone token (POST /v3/auth/tokens with a password): a write through the API,
    its database and its fernet keys, not only a GET."""
    base = url.rstrip("/")
    endpoint = (base if base.endswith("/v3") else base + "/v3") + "/auth/tokens"
    body = json.dumps(
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": credentials["OS_USERNAME"],
                            "domain": {"name": credentials["OS_USER_DOMAIN_NAME"]},
                            "password": credentials["OS_PASSWORD"],
                        }
                    },
                },
                "scope": {
                    "project": {
                        "name": credentials["OS_PROJECT_NAME"],
                        "domain": {"name": credentials["OS_PROJECT_DOMAIN_NAME"]},
                    }
                },
            }
        }
    ).encode()

    def call() -> None:
        request = urllib.request.Request(
            endpoint, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:
                status = resp.status
                issued = resp.headers.get("X-Subject-Token", "")
                resp.read()
        except urllib.error.HTTPError as exc:
            status, issued = exc.code, ""
        if status != 201 or not issued:
            raise ProbeError(f"HTTP {status}" + ("" if issued else ", no token"))

    return call


def parse_target(text: str, kind: str) -> tuple[str, str]:
    """NAME=VALUE from the command line (--tcp web=10.0.0.5:80, --http keystone=http://vip:5000/v3)."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise ProbeError(f"--{kind} {text!r}: expected NAME=" + ("HOST:PORT" if kind == "tcp" else "URL"))
    return name, value


def url_target(text: str, kind: str) -> tuple[str, str]:
    """NAME=URL of an --http or --token check; the URL must be http(s)."""
    name, url = parse_target(text, kind)
    if not url.startswith(("http://", "https://")):
        raise ProbeError(f"--{kind} {text!r}: the URL must start with http:// or https://")
    return name, url


def checks_from_args(tcp: list[str], http: list[str], rate: float, token: list[str] | None = None) -> list[Check]:
    checks: list[Check] = []
    problems = []
    for text in tcp:
        try:
            name, value = parse_target(text, "tcp")
            host, _sep, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ProbeError(f"--tcp {text!r}: expected NAME=HOST:PORT")
            checks.append(Check(name, tcp_check(host.strip("[]"), int(port)), rate))
        except ProbeError as exc:
            problems.append(str(exc))
    for text in http:
        try:
            name, url = url_target(text, "http")
            checks.append(Check(name, http_check(url), rate))
        except ProbeError as exc:
            problems.append(str(exc))
    if token:
        try:
            credentials = token_credentials()
        except ProbeError as exc:
            problems.append(str(exc))
            credentials = {}
        for text in token:
            try:
                name, url = url_target(text, "token")
                if credentials:
                    checks.append(Check(name, token_check(url, credentials), rate))
            except ProbeError as exc:
                problems.append(str(exc))
    if problems:
        raise ProbeError("; ".join(problems))
    return checks


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


# ---------------------------------------------------------------- report


def write_report(result: ProbeResult, directory: Path) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    data = directory / "probe.json"
    data.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    picture = directory / "probe.svg"
    picture.write_text(svg(result))
    return data, picture


COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#ff7f0e")


def svg(result: ProbeResult, width: int = 1000, row: int = 120) -> str:
    """Latency over time, one row per check; failures as red ticks; marks as labelled lines."""
    reports = result.reports()
    left, top, right = 170, 30, 20
    height = top + row * max(1, len(reports)) + 40
    plot_w = width - left - right
    duration = max(result.duration, 1e-6)

    def x(t: float) -> float:
        return left + plot_w * min(max(t, 0.0), duration) / duration

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="14">probe: {len(reports)} check(s) over {result.duration:.0f} s; '
        "latency (log scale) per call, failures in red, events as dashed lines</text>",
    ]
    for i, rep in enumerate(reports):
        y0 = top + i * row
        samples = [s for s in result.samples if s.check == rep.name]
        ok = [s.latency for s in samples if s.ok] or [0.001]
        lo, hi = math.log10(max(min(ok), 1e-4)), math.log10(max([*ok, 1e-3]))
        hi = hi if hi > lo else lo + 1

        def y(latency: float, y0: float = y0, lo: float = lo, hi: float = hi) -> float:
            value = (math.log10(max(latency, 1e-4)) - lo) / (hi - lo)
            return y0 + row - 15 - (row - 30) * min(max(value, 0.0), 1.0)

        colour = COLOURS[i % len(COLOURS)]
        out.append(f'<rect x="{left}" y="{y0 + 5}" width="{plot_w}" height="{row - 10}" fill="#f7f7f7"/>')
        label = f"{rep.name}: {rep.requests} calls, {rep.failures} failed"
        gap = f"p95 {ms(rep.p95)}, longest gap {rep.longest_gap:.2f} s"
        out.append(f'<text x="5" y="{y0 + row / 2 - 6}" font-weight="bold">{_esc(rep.name)}</text>')
        out.append(f'<text x="5" y="{y0 + row / 2 + 10}">{rep.requests} calls, {rep.failures} failed</text>')
        out.append(f'<text x="5" y="{y0 + row / 2 + 26}">{_esc(gap)}</text>')
        out.append(f"<title>{_esc(label)}</title>")
        points = " ".join(f"{x(s.start):.1f},{y(s.latency):.1f}" for s in samples if s.ok)
        if points:
            out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1"/>')
        for s in samples:
            if not s.ok:
                out.append(
                    f'<line x1="{x(s.start):.1f}" y1="{y0 + 8}" x2="{x(s.start):.1f}" y2="{y0 + row - 8}" '
                    'stroke="#d62728" stroke-width="1.5"/>'
                )
    bottom = top + row * max(1, len(reports))
    for mark in result.marks:
        out.append(
            f'<line x1="{x(mark.at):.1f}" y1="{top}" x2="{x(mark.at):.1f}" y2="{bottom}" stroke="black" '
            'stroke-dasharray="4,3"/>'
        )
        out.append(f'<text x="{x(mark.at) + 3:.1f}" y="{bottom + 14}" font-size="11">{_esc(mark.label)}</text>')
    for t in range(0, int(duration) + 1, max(1, int(duration // 10) or 1)):
        out.append(f'<text x="{x(t):.1f}" y="{bottom + 30}" font-size="10" fill="#555">{t}s</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
