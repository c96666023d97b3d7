"""The `allmende` command line."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests
from rich.console import Console
from rich.table import Table

from allmende import (
    __version__,
    audit,
    images,
    inventory_check,
    netbox_server,
    paths,
    probe,
    registry,
    testbed,
    testbed_netbox,
)
from allmende.apply import ApplyRequest, ApplyResult, apply
from allmende.errors import AllmendeError, ExitCode, RefusedError, UsageError
from allmende.netbox_client import NetboxApiError, NetboxClient
from allmende.netbox_sync import SiteFileError, sync
from allmende.progress import failure_table, host_table, make_progress
from allmende.runs import RunNotFound, find_run, list_runs

EXIT_USAGE = ExitCode.USAGE


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be 1 or more")
    return value


def count_int(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value}: choose between {low} and {high}")
        return value

    return parse


def ipv4_subnet(text: str) -> str:
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a subnet like 10.213.40.0/24 ({exc})") from None
    if net.version != 4:
        raise argparse.ArgumentTypeError(f"{text}: the testbed needs an IPv4 subnet")
    return str(net)


port_number = count_int(1, 65533)  # NetBox uses the next two ports for PostgreSQL and Redis


def default_inventory() -> list[str]:
    env = os.environ.get("ALLMENDE_INVENTORY")
    if env:
        return [p for p in env.split(",") if p]
    tb = testbed.Testbed.load(os.environ.get("ALLMENDE_TESTBED_NAME", "default"))
    if tb is not None and tb.inventory_dir.exists():
        return [str(tb.inventory_dir)]
    return []


def cmd_apply(args: argparse.Namespace, console: Console) -> int:
    inventories = args.inventory or default_inventory()
    if not inventories:
        console.print("[red]no inventory:[/] pass -i INVENTORY, set ALLMENDE_INVENTORY, or run `allmende testbed up`")
        return EXIT_USAGE
    request = ApplyRequest(
        target=args.target,
        inventories=inventories,
        limit=args.limit,
        tags=args.tags,
        skip_tags=args.skip_tags,
        check=args.check,
        diff=args.diff,
        # The driver checks the inventory itself before the run (or was told not to): the playbooks'
        # own validation play need not read it again.
        extra_vars=[*(args.extra_vars or []), '{"allmende_inventory_check_skip": true}'],
        verbosity=args.verbose,
        forks=args.forks,
        action=args.action,
    )
    mode = "json" if args.json else args.progress
    prechecks = [] if args.skip_inventory_check else [lambda: _inventory_problems(inventories)]
    result = apply(request, make_progress(mode, console), prechecks=prechecks)
    if args.json:
        print(
            json.dumps(
                {
                    "event": "run_end",
                    "id": result.run_id,
                    "rc": result.rc,
                    "status": result.status,
                    "failed_hosts": result.tracker.failed_hosts,
                    "failures": [f.__dict__ for f in result.tracker.final_failures()],
                    "run_dir": str(result.run_path),
                    "stats": result.tracker.stats,
                },
                sort_keys=True,
            )
        )
        return result.rc
    report(result, console)
    return result.rc


def _inventory_problems(inventories: list[str]) -> list[str]:
    try:
        return inventory_check.check(inventories)
    except inventory_check.InventoryError as exc:
        return [str(exc)]


def print_problems(console: Console, headline: str, problems: list[str]) -> None:
    console.print(f"[red]{headline}[/]", highlight=False)
    for line in problems:
        console.print(f"  - {line}", markup=False, highlight=False)


def cmd_inventory(args: argparse.Namespace, console: Console) -> int:
    inventories = args.inventory or default_inventory()
    if not inventories:
        console.print("[red]no inventory:[/] pass -i INVENTORY or set ALLMENDE_INVENTORY")
        return EXIT_USAGE
    found = _inventory_problems(inventories)
    if args.json:
        print(json.dumps({"inventories": inventories, "problems": found}, indent=2))
        return ExitCode.REFUSED if found else ExitCode.OK
    if not found:
        console.print(f"inventory {', '.join(inventories)}: no problems", highlight=False)
        return ExitCode.OK
    print_problems(console, f"{len(found)} problem(s) in {', '.join(inventories)}:", found)
    return ExitCode.REFUSED


def cmd_netbox(args: argparse.Namespace, console: Console) -> int:
    def log(msg: str) -> None:
        console.print(f"[dim]netbox[/] {msg}", highlight=False)

    try:
        if args.netbox_cmd == "up":
            start = time.monotonic()
            nb = netbox_server.up(args.port, log=log)
            console.print(
                f"NetBox {netbox_server.NETBOX_VERSION} on {nb.url} in {time.monotonic() - start:.0f}s; "
                f"API token in {nb.env_file}",
                highlight=False,
            )
            return 0
        if args.netbox_cmd == "down":
            netbox_server.down(purge=args.purge, log=log)
            return 0
        if args.netbox_cmd == "status":
            info = netbox_server.status()
            print(json.dumps(info, indent=2))
            return 0 if info["netbox"] else ExitCode.ENVIRONMENT
        if args.netbox_cmd == "sync":
            return _sync(args, console)
    except (netbox_server.NetboxError, NetboxApiError) as exc:
        console.print(f"[red]netbox error:[/] {exc}", highlight=False)
        return ExitCode.ENVIRONMENT
    return EXIT_USAGE


def _sync(args: argparse.Namespace, console: Console) -> int:
    client = NetboxClient.from_env(netbox_server.instance().env_file)
    try:
        changes = sync(client, Path(args.site_file), dry_run=args.dry_run)
    except SiteFileError as exc:
        print_problems(console, f"refusing to sync {args.site_file}: {len(exc.problems)} problem(s)", exc.problems)
        return ExitCode.REFUSED
    for change in changes:
        console.print(change.render(), markup=False, highlight=False)
    verb = "would change" if args.dry_run else "changed"
    console.print(f"{args.site_file}: {verb} {len(changes)} object(s) in {client.url}", highlight=False)
    return 0


def report(result: ApplyResult, console: Console) -> None:
    tracker = result.tracker
    if tracker.hosts:
        console.print(host_table(tracker, title="Recap", live=False))
    if tracker.no_hosts_matched:
        console.print("[yellow]warning:[/] a play matched no hosts (check --limit and the inventory groups)")
    failures = tracker.final_failures()
    if failures:
        console.print(failure_table(failures))
    elif result.rc != 0 and result.stdout_tail:
        console.print(f"[red]ansible-playbook stopped before any host ran (rc={result.rc}):[/]")
        console.print(result.stdout_tail, markup=False, highlight=False)
    verdict = "[green]succeeded[/]" if result.ok else f"[red]{result.status}[/] (rc={result.rc})"
    console.print(f"run {result.run_id} {verdict}; artifacts: {result.run_path}", highlight=False)


def cmd_runs(args: argparse.Namespace, console: Console) -> int:
    state = paths.state_dir()
    if args.runs_cmd == "audit":
        found = audit.audit(state)
        for source, count in found.secrets.items():
            console.print(f"{source}: {count} secret(s)", highlight=False)
        if found.leaks:
            print_problems(
                console,
                f"{len(found.leaks)} secret(s) found in run records:",
                [f"{file}: {form} secret from {source}" for file, form, source in found.leaks],
            )
            return ExitCode.FAILED
        console.print(f"no secret in {found.files} files under {state / 'runs'}", highlight=False)
        return ExitCode.OK
    if args.runs_cmd == "show":
        try:
            record = find_run(state, args.id)
        except RunNotFound as exc:
            console.print(f"[red]{exc}[/]")
            return EXIT_USAGE
        if args.stdout:
            sys.stdout.write(record.stdout())
            return 0
        if args.events:
            for event in record.events():
                print(json.dumps(event, sort_keys=True))
            return 0
        s = record.summary
        console.print(
            f"[bold]run {record.id}[/]  target {s.get('target')}  status {s.get('status')}  rc {s.get('rc')}",
            highlight=False,
        )
        console.print(
            f"playbook: {s.get('playbook')}\ninventory: {', '.join(s.get('inventories') or [])}", highlight=False
        )
        for key in ("limit", "tags", "skip_tags"):
            if s.get(key):
                console.print(f"{key}: {s[key]}", highlight=False)
        if s.get("check"):
            console.print("check mode")
        started = s.get("started")
        if started:
            console.print(
                f"started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}, "
                f"took {s.get('duration', '?')} s"
            )
        table = Table(title="Recap", title_justify="left")
        for col in ("host", "ok", "changed", "failed", "unreachable", "skipped"):
            table.add_column(col, justify="left" if col == "host" else "right")
        for name, h in (s.get("hosts") or {}).items():
            table.add_row(name, *(str(h.get(k, 0)) for k in ("ok", "changed", "failed", "unreachable", "skipped")))
        console.print(table)
        if s.get("failures"):
            from allmende.events import Failure

            console.print(failure_table([Failure(**f) for f in s["failures"]]))
        elif s.get("stdout_tail"):
            console.print(s["stdout_tail"], markup=False, highlight=False)
        console.print(f"artifacts: {record.artifact_dir}", highlight=False)
        return 0
    records = list_runs(state)[-args.last :]
    table = Table(title=f"Runs ({paths.state_dir() / 'runs'})", title_justify="left")
    for col in ("id", "target", "started", "duration", "status", "failed hosts"):
        table.add_column(col)
    for r in records:
        s = r.summary
        started = s.get("started")
        table.add_row(
            r.id,
            str(s.get("target", "")),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "",
            f"{s.get('duration', '')}s" if s.get("duration") is not None else "",
            str(s.get("status", "")),
            ", ".join(s.get("failed_hosts") or []),
        )
    console.print(table)
    return 0


def cmd_probe(args: argparse.Namespace, console: Console) -> int:
    try:
        checks = probe.checks_from_args(args.tcp, args.http, args.rate, args.token)
        runner = probe.Probe(checks, args.duration)
    except probe.ProbeError as exc:
        console.print(f"[red]probe:[/] {exc}", highlight=False)
        return ExitCode.USAGE
    console.print(f"probing {len(checks)} check(s) for {args.duration:.0f} s at {args.rate:g}/s", highlight=False)
    result = runner.run()
    out = args.out or paths.state_dir() / "probes" / time.strftime("%Y%m%d-%H%M%S")
    data, picture = probe.write_report(result, out)
    worst = 0
    for rep in result.reports():
        worst = max(worst, rep.failures)
        console.print(
            f"{rep.name}: {rep.requests} calls, {rep.failures} failed, p50 {probe.ms(rep.p50)}, "
            f"p95 {probe.ms(rep.p95)}, p99 {probe.ms(rep.p99)}, longest gap {rep.longest_gap:.2f} s",
            highlight=False,
        )
    console.print(f"report: {data} and {picture}", highlight=False)
    if args.max_failures is not None and worst > args.max_failures:
        return ExitCode.FAILED
    return ExitCode.OK


def cmd_testbed(args: argparse.Namespace, console: Console) -> int:
    def log(msg: str) -> None:
        console.print(f"[dim]testbed[/] {msg}", highlight=False)

    try:
        if args.testbed_cmd == "up":
            start = time.monotonic()
            tb = testbed.up(
                args.name,
                nodes=args.nodes,
                subnet=args.subnet,
                disks=args.disks,
                disk_size=args.disk_size,
                log=log,
            )
            if args.netbox or tb.netbox_url:
                testbed_netbox.ensure_registered(tb, log)
            console.print(
                f"testbed {tb.name}: {len(tb.nodes)} nodes up in {time.monotonic() - start:.0f}s; "
                f"inventory {tb.inventory_dir}",
                highlight=False,
            )
            return 0
        if args.testbed_cmd == "down":
            names = testbed.list_testbeds() if args.all else [args.name]
            for name in names:
                testbed_netbox.ensure_unregistered(name, log)
                removed = testbed.down(name, log=log)
                console.print(f"testbed {name}: removed {len(removed)} objects", highlight=False)
            return 0
        if args.testbed_cmd == "inventory":
            tb = testbed.Testbed.load(args.name)
            if tb is None:
                console.print(f"[red]testbed {args.name} does not exist[/]")
                return ExitCode.ENVIRONMENT
            print(tb.inventory_dir)
            return 0
        info = testbed.status(args.name)
        if args.json:
            print(json.dumps(info, indent=2))
            return 0 if info["exists"] else ExitCode.ENVIRONMENT
        if not info["exists"]:
            console.print(f"testbed {args.name} does not exist (`allmende testbed up`)")
            return ExitCode.ENVIRONMENT
        table = Table(
            title=f"testbed {info['name']}  subnet {info['subnet']}  inventory {info['inventory']}",
            title_justify="left",
        )
        for col in ("node", "container", "state", "systemd", "address", "groups", "disks"):
            table.add_column(col)
        for n in info["nodes"]:
            table.add_row(
                n["name"],
                n["container"],
                n["state"],
                n["systemd"],
                n["address"],
                ",".join(n["groups"]),
                ", ".join(n["disks"]),
            )
        console.print(table)
        healthy = all(n["state"] == "running" for n in info["nodes"])
        return 0 if healthy else ExitCode.ENVIRONMENT
    except testbed.TestbedError as exc:
        console.print(f"[red]testbed error:[/] {exc}", highlight=False)
        return ExitCode.ENVIRONMENT


def _size(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def cmd_images(args: argparse.Namespace, console: Console) -> int:
    def log(msg: str) -> None:
        console.print(f"[dim]images[/] {msg}", highlight=False)

    ca = None if args.ca_file is None and not args.no_host_ca else list(args.ca_file or [])
    if args.images_cmd == "push":
        pushed = registry.push(
            registry.PushRequest(release=args.release, only=list(args.only or []), address=args.registry), log=log
        )
        for ref in pushed:
            console.print(f"pushed {ref}", highlight=False)
        if not pushed:
            console.print("nothing to push: the registry has every image", highlight=False)
        return 0
    request = images.BuildRequest(release=args.release, only=list(args.only or []), ca_files=ca, force=args.force)
    result = images.build(request, log=log)
    if args.json:
        print(json.dumps(images.as_dict(result), indent=2))
        return 0
    table = Table(title=f"images of release {result.release} (Debian {result.suite})", title_justify="left")
    for col in ("image", "tag", "action", "build time", "size"):
        table.add_column(col, justify="right" if col in ("build time", "size") else "left")
    for i in result.images:
        took = f"{i.seconds:.0f} s" if i.action == "built" else "-"
        table.add_row(i.name, i.tag, i.action, took, _size(i.size))
    console.print(table)
    if result.built:
        console.print(
            f"built {sum(1 for i in result.images if i.action == 'built')}, "
            f"tagged {sum(1 for i in result.images if i.action == 'reused')} in {result.seconds:.0f} s; "
            f"tags recorded in {result.record}",
            highlight=False,
        )
    else:
        console.print(
            f"nothing to build: all {len(result.images)} images are up to date; tags in {result.record}",
            highlight=False,
        )
    return 0


def cmd_registry(args: argparse.Namespace, console: Console) -> int:
    def log(msg: str) -> None:
        console.print(f"[dim]registry[/] {msg}", highlight=False)

    if args.registry_cmd == "up":
        info = registry.up(registry.RegistryRequest(port=args.port, testbeds=list(args.testbed or [])), log=log)
        console.print(
            f"registry on {', '.join(info.addresses)} (TLS, CA {info.ca_file}); storage {info.storage}",
            highlight=False,
        )
        return 0
    if args.registry_cmd == "down":
        stopped = registry.down(log=log)
        console.print(f"registry: stopped {stopped} listener(s)", highlight=False)
        return 0
    status = registry.status()
    print(json.dumps(status, indent=2))
    return 0 if status["running"] else ExitCode.ENVIRONMENT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="allmende", description="Deploy and operate an Allmende cloud.")
    parser.add_argument("--version", action="version", version=f"allmende {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    ap = sub.add_parser("apply", help="run a playbook or role of allmende.cloud (or a playbook file)")
    ap.add_argument("target", help="playbook file, playbook name (site, bootstrap, ...) or role name")
    ap.add_argument(
        "-i",
        "--inventory",
        action="append",
        help="inventory path (repeatable); default: ALLMENDE_INVENTORY or the default testbed",
    )
    ap.add_argument("-l", "--limit")
    ap.add_argument("-t", "--tags")
    ap.add_argument("--skip-tags")
    ap.add_argument("-C", "--check", action="store_true")
    ap.add_argument("-D", "--diff", action="store_true")
    ap.add_argument(
        "-a", "--action", help="what the roles do: deploy (default), check, upgrade, ... (sets allmende_action)"
    )
    ap.add_argument("-e", "--extra-vars", action="append", metavar="VARS", help="key=value, @file or JSON")
    ap.add_argument("-f", "--forks", type=positive_int)
    ap.add_argument("-v", "--verbose", action="count", default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object per event instead of progress")
    ap.add_argument(
        "--progress",
        choices=("auto", "live", "lines"),
        default="auto",
        help="live table on a terminal, lines in logs (default: auto)",
    )
    ap.add_argument(
        "--skip-inventory-check", action="store_true", help="run even if `allmende inventory check` reports problems"
    )

    ip = sub.add_parser("inventory", help="inventory tools")
    isub = ip.add_subparsers(dest="inventory_cmd", required=True)
    ic = isub.add_parser("check", help="list every problem of the inventory (exit 3 if any)")
    ic.add_argument("-i", "--inventory", action="append", help="inventory path (repeatable)")
    ic.add_argument("--json", action="store_true")

    np = sub.add_parser("netbox", help="a local NetBox, and syncing site files into NetBox")
    nsub = np.add_subparsers(dest="netbox_cmd", required=True)
    nup = nsub.add_parser("up", help="start NetBox (PostgreSQL, Redis, gunicorn on 127.0.0.1)")
    nup.add_argument(
        "--port", type=port_number, help=f"HTTP port (default {netbox_server.DEFAULT_PORT} or the last used)"
    )
    ndown = nsub.add_parser("down", help="stop NetBox")
    ndown.add_argument("--purge", action="store_true", help="also delete its database and files")
    nsub.add_parser("status", help="show whether the services run")
    nsync = nsub.add_parser("sync", help="make NetBox match a declarative site file")
    nsync.add_argument("site_file")
    nsync.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")

    rp = sub.add_parser("runs", help="list past runs, or show one")
    rp.add_argument("--last", type=positive_int, default=20, help="how many recent runs to list")
    rsub = rp.add_subparsers(dest="runs_cmd")
    show = rsub.add_parser("show", help="summary of one run")
    show.add_argument("id", help="run id, unique prefix/suffix, or 'last'")
    show.add_argument("--stdout", action="store_true", help="print the run's ansible output")
    show.add_argument("--events", action="store_true", help="print the run's events as JSON lines")
    rsub.add_parser("audit", help="search every run record for the deployment's generated secrets (exit 1 if any)")

    pp = sub.add_parser("probe", help="call services at a fixed rate for a bounded time and report availability")
    pp.add_argument("--tcp", action="append", default=[], metavar="NAME=HOST:PORT", help="TCP connect check")
    pp.add_argument("--http", action="append", default=[], metavar="NAME=URL", help="HTTP GET check (200 expected)")
    pp.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="issue a Keystone token at the identity URL with the OS_USERNAME/OS_PASSWORD/OS_PROJECT_NAME "
        "(and OS_*_DOMAIN_NAME) credentials from the environment (201 expected)",
    )
    pp.add_argument("--rate", type=float, default=5.0, help="calls per second per check (default 5, at most 50)")
    pp.add_argument("--duration", type=float, default=60.0, help="seconds to probe (default 60)")
    pp.add_argument("--out", type=Path, help="directory for probe.json and probe.svg (default: the state directory)")
    pp.add_argument(
        "--max-failures", type=int, default=None, help="exit 1 if any check has more failed calls than this"
    )

    tp = sub.add_parser("testbed", help="local testbed of podman-container hosts")
    tsub = tp.add_subparsers(dest="testbed_cmd", required=True)
    up = tsub.add_parser("up", help="create or complete the testbed (harmless to repeat)")
    down = tsub.add_parser("down", help="remove containers, networks, loop devices and state")
    st = tsub.add_parser("status", help="show nodes")
    inv = tsub.add_parser("inventory", help="print the inventory path")
    for p in (up, down, st, inv):
        p.add_argument(
            "--name",
            default=os.environ.get("ALLMENDE_TESTBED_NAME", "default"),
            help="testbed name (default: $ALLMENDE_TESTBED_NAME or 'default')",
        )
    up.add_argument("--nodes", type=count_int(1, 50), default=3)
    up.add_argument("--subnet", type=ipv4_subnet, help="management subnet (default: a free /24 in 10.213.0.0/16)")
    up.add_argument("--disks", type=count_int(0, 8), default=2, help="data disks per node")
    up.add_argument("--disk-size", default="20G", help="size of each sparse data disk")
    up.add_argument(
        "--netbox", action="store_true", help="register the nodes in the local NetBox and take the inventory from there"
    )
    down.add_argument("--all", action="store_true", help="remove every testbed")

    imp = sub.add_parser("images", help="build the release's container images (kolla contract), push them")
    imsub = imp.add_subparsers(dest="images_cmd", required=True)
    ib = imsub.add_parser("build", help="build what is missing; tags derive from the inputs")
    ipush = imsub.add_parser("push", help="push the built images to the local registry")
    for p in (ib, ipush):
        p.add_argument("--release", help="release manifest (default: releases/index.yml's current)")
        p.add_argument("--only", nargs="+", metavar="NAME", help="these images (and their parents) only")
    ib.add_argument(
        "--ca-file",
        action="append",
        metavar="FILE",
        help="trust this CA certificate in the images (repeatable; default: this machine's "
        "/usr/local/share/ca-certificates/*.crt)",
    )
    ib.add_argument("--no-host-ca", action="store_true", help="trust no extra CA (only the --ca-file ones)")
    ib.add_argument("--force", action="store_true", help="build even if an image with the same inputs exists")
    ib.add_argument("--json", action="store_true")
    ipush.add_argument("--registry", help="registry address host:port (default: the local registry's 127.0.0.1)")
    ipush.set_defaults(ca_file=None, no_host_ca=False, force=False, json=False)

    regp = sub.add_parser("registry", help="local OCI registry (Debian's docker-registry) for the nodes")
    regsub = regp.add_subparsers(dest="registry_cmd", required=True)
    rup = regsub.add_parser("up", help="start it on 127.0.0.1 and the testbeds' management gateways")
    rup.add_argument("--port", type=port_number, help=f"port (default {registry.DEFAULT_PORT} or the last used)")
    rup.add_argument(
        "--testbed", action="append", metavar="NAME", help="also listen on this testbed's management gateway"
    )
    regsub.add_parser("down", help="stop it (its storage stays)")
    regsub.add_parser("status", help="listeners and whether they answer")
    st.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # ansible-runner looks its executables up on PATH: make it the ones next to this interpreter.
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(":"):
        os.environ["PATH"] = f"{bindir}:{os.environ.get('PATH', '')}"
    parser = build_parser()
    args = parser.parse_args(argv)
    to_stderr = bool(getattr(args, "json", False)) and args.command == "apply"
    console = Console(stderr=to_stderr)
    if not console.is_terminal:
        console = Console(stderr=to_stderr, width=160)
    try:
        paths.collection_root()
    except paths.CollectionNotFound as exc:
        console.print(f"[red]{exc}[/]")
        return ExitCode.ENVIRONMENT
    handlers = {
        "apply": cmd_apply,
        "runs": cmd_runs,
        "testbed": cmd_testbed,
        "inventory": cmd_inventory,
        "netbox": cmd_netbox,
        "probe": cmd_probe,
        "images": cmd_images,
        "registry": cmd_registry,
    }
    try:
        return int(handlers[args.command](args, console))
    except RefusedError as exc:
        print_problems(console, f"refusing to run: {len(exc.problems)} problem(s)", exc.problems)
        return exc.code
    except UsageError as exc:
        print_problems(console, "refusing to run:", exc.problems or str(exc).splitlines())
        return exc.code
    except AllmendeError as exc:
        console.print(f"[red]{args.command}:[/] {exc}", highlight=False)
        return exc.code
    except (testbed.TestbedError, netbox_server.NetboxError, NetboxApiError) as exc:
        console.print(f"[red]{args.command}:[/] {exc}", highlight=False)
        return ExitCode.ENVIRONMENT
    except requests.RequestException as exc:
        console.print(f"[red]{args.command}:[/] NetBox unreachable: {_short(exc)}", highlight=False)
        return ExitCode.ENVIRONMENT
    except KeyboardInterrupt:
        console.print(f"[yellow]{args.command}: interrupted[/]")
        return ExitCode.INTERRUPTED


def _short(exc: Exception) -> str:
    text = str(exc)
    url = getattr(getattr(exc, "request", None), "url", None)
    reason = text.rsplit(":", 1)[-1].strip(" )'\"") if "Errno" in text or "Connection" in text else text[:200]
    return f"{url or ''} ({reason})".strip()


if __name__ == "__main__":
    sys.exit(main())
