"""A real NetBox for the testbed and the tests: PyPI `netbox` on Python 3.12, PostgreSQL 15 and
Redis from Debian, all on 127.0.0.1, under the driver's state directory.

Migrating an empty database takes minutes, so a dump of the freshly migrated database is kept in
the cache directory (per NetBox version) and restored next time; without it the migration runs.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from allmende import paths
from allmende.netbox_client import auth_header

NETBOX_VERSION = os.environ.get("ALLMENDE_NETBOX_VERSION", "4.7.3")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DEFAULT_PORT = 18080
PG_PORT_OFFSET = 1  # postgres listens on port+1, redis on port+2
ADMIN_USER = "admin"

Log = Callable[[str], None]


class NetboxError(RuntimeError):
    pass


def _quiet(_msg: str) -> None:
    pass


@dataclass
class NetboxInstance:
    base: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pg_port(self) -> int:
        return self.port + PG_PORT_OFFSET

    @property
    def redis_port(self) -> int:
        return self.port + 2 * PG_PORT_OFFSET

    @property
    def venv(self) -> Path:
        return self.base / "venv"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def pg_base(self) -> Path:
        """PostgreSQL runs as the postgres user, which cannot enter a private home directory."""
        return Path(os.environ.get("ALLMENDE_NETBOX_PGDIR", f"/var/lib/allmende/netbox-{self.port}"))

    @property
    def pgdata(self) -> Path:
        return self.pg_base / "pgdata"

    @property
    def run_dir(self) -> Path:
        return self.pg_base / "run"

    @property
    def log_dir(self) -> Path:
        return self.base / "log"

    @property
    def secrets_file(self) -> Path:
        return self.base / "secrets.json"

    @property
    def env_file(self) -> Path:
        """NETBOX_API / NETBOX_TOKEN for clients (mode 0600)."""
        return self.base / "netbox.env"

    def secrets(self) -> dict[str, str]:
        if not self.secrets_file.exists():
            return {}
        return json.loads(self.secrets_file.read_text())

    def token(self) -> str:
        token = self.secrets().get("api_token")
        if not token:
            raise NetboxError(f"no API token yet: run `allmende netbox up` ({self.secrets_file})")
        return token

    def netbox_env(self) -> dict[str, str]:
        return {**os.environ, "NETBOX_ROOT": str(self.root), "DJANGO_SETTINGS_MODULE": "netbox.settings"}


def netbox_dir(state: Path | None = None) -> Path:
    """Where the local NetBox lives: ALLMENDE_NETBOX_DIR (one NetBox shared by several state
    directories, as the test lanes do), else `netbox` in the state directory."""
    env = os.environ.get("ALLMENDE_NETBOX_DIR")
    return Path(env) if env else (state or paths.state_dir()) / "netbox"


def instance(port: int | None = None) -> NetboxInstance:
    base = netbox_dir()
    saved = base / "port"
    if port is None:
        port = int(saved.read_text()) if saved.exists() else DEFAULT_PORT
    return NetboxInstance(base, port)


def find_python312() -> str:
    candidates = [os.environ.get("ALLMENDE_NETBOX_PYTHON", ""), shutil.which("python3.12") or ""]
    candidates += sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.12*/bin/python3.12")), reverse=True)
    candidates += ["/usr/bin/python3.12", "/usr/local/bin/python3.12"]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            proc = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=False)
            if proc.returncode == 0 and proc.stdout.startswith("Python 3.12"):
                return candidate
    raise NetboxError("NetBox 4.7 needs Python 3.12: none found (set ALLMENDE_NETBOX_PYTHON)")


def _run(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    user: str | None = None,
    cwd: str | None = None,
    stdin: str | None = None,
    hide: tuple[str, ...] = (),
) -> str:
    """Run CMD; secrets go in on STDIN, never as arguments, and HIDE's values never reach an error."""
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    proc = subprocess.run(
        cmd, env=env, input=stdin, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd
    )
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout)[-1500:]
        for secret in hide:
            if secret:
                detail = detail.replace(secret, "********")
        raise NetboxError(f"{' '.join(cmd)} failed (rc={proc.returncode}): {detail}")
    return proc.stdout


def _read_pid(pidfile: Path) -> int | None:
    """The pid in PIDFILE, or None while it is missing, empty (a daemon writes it after start) or garbled."""
    try:
        words = pidfile.read_text().split()
        return int(words[0]) if words else None
    except (OSError, ValueError):
        return None


def _alive(pidfile: Path) -> bool:
    pid = _read_pid(pidfile)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


# ---------------------------------------------------------------- pieces


def ensure_venv(nb: NetboxInstance, log: Log) -> None:
    marker = nb.venv / f".netbox-{NETBOX_VERSION}"
    if marker.exists():
        return
    log(f"installing NetBox {NETBOX_VERSION} from PyPI into {nb.venv} (about 2 minutes)")
    if not nb.venv.exists():
        _run([find_python312(), "-m", "venv", str(nb.venv)])
    _run([str(nb.venv / "bin" / "pip"), "install", "-q", f"netbox=={NETBOX_VERSION}"], timeout=1800)
    marker.touch()


def ensure_secrets(nb: NetboxInstance) -> dict[str, str]:
    data = nb.secrets()
    changed = False
    for key, size in (("secret_key", 50), ("pepper", 50), ("db_password", 24), ("admin_password", 24)):
        if not data.get(key):
            data[key] = secrets.token_urlsafe(size)[:size]
            changed = True
    if changed:
        _write_private(nb.secrets_file, json.dumps(data, indent=2))
    return data


def write_configuration(nb: NetboxInstance, data: dict[str, str]) -> bool:
    """Write configuration.py; True if it changed."""
    conf = nb.root / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "__init__.py").touch()
    text = f'''# Written by `allmende netbox up`: a local NetBox on 127.0.0.1 for the testbed and tests.
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DATABASES = {{
    "default": {{
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "netbox",
        "USER": "netbox",
        "PASSWORD": {data["db_password"]!r},
        "HOST": "127.0.0.1",
        "PORT": "{nb.pg_port}",
        "CONN_MAX_AGE": 300,
    }}
}}
REDIS = {{
    "tasks": {{"HOST": "127.0.0.1", "PORT": {nb.redis_port}, "DATABASE": 0, "SSL": False}},
    "caching": {{"HOST": "127.0.0.1", "PORT": {nb.redis_port}, "DATABASE": 1, "SSL": False}},
}}
SECRET_KEY = {data["secret_key"]!r}
API_TOKEN_PEPPERS = {{1: {data["pepper"]!r}}}
# No calls to the outside world: no census, no release check, no plugin catalog.
ISOLATED_DEPLOYMENT = True
CENSUS_REPORTING_ENABLED = False
RELEASE_CHECK_URL = None
# Duplicate addresses are allowed here, as in many production NetBoxes: `allmende inventory check`
# reports them (and the tests create some on purpose).
ENFORCE_GLOBAL_UNIQUE = False
TIME_ZONE = "UTC"
'''
    target = conf / "configuration.py"
    if target.exists() and target.read_text() == text:
        return False
    _write_private(target, text)
    return True


def ensure_postgres(nb: NetboxInstance, data: dict[str, str], log: Log) -> None:
    if not (PG_BIN / "pg_ctl").exists():
        raise NetboxError("PostgreSQL 15 is not installed (scripts/host-prereqs.sh installs postgresql-15)")
    nb.pg_base.mkdir(parents=True, exist_ok=True, mode=0o755)
    nb.run_dir.mkdir(parents=True, exist_ok=True)
    nb.log_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(nb.run_dir, "postgres", "postgres")
    if not (nb.pgdata / "PG_VERSION").exists():
        log("initialising a PostgreSQL 15 cluster")
        nb.pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.chown(nb.pgdata, "postgres", "postgres")
        _initdb(nb)
    pidfile = nb.pgdata / "postmaster.pid"
    if not _alive(pidfile):
        logfile = nb.pg_base / "postgres.log"
        logfile.touch()
        shutil.chown(logfile, "postgres", "postgres")
        _run(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(nb.pgdata),
                "-l",
                str(logfile),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {nb.pg_port} -k {nb.run_dir} -c listen_addresses=127.0.0.1",
                "start",
            ],
            user="postgres",
        )
    sql = (
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'netbox') THEN "
        f"CREATE ROLE netbox LOGIN PASSWORD '{data['db_password']}'; END IF; END $$;"
    )
    _psql(nb, sql, hide=(data["db_password"],))
    exists = _psql(nb, "SELECT 1 FROM pg_database WHERE datname = 'netbox'").strip()
    if not exists:
        _psql(nb, "CREATE DATABASE netbox OWNER netbox")


def _initdb(nb: NetboxInstance) -> None:
    _run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(nb.pgdata),
            "-A",
            "peer",
            "--auth-host=scram-sha-256",
            "-U",
            "postgres",
            "-E",
            "UTF8",
        ],
        user="postgres",
        cwd="/",
    )


def _psql(nb: NetboxInstance, sql: str, db: str = "postgres", hide: tuple[str, ...] = ()) -> str:
    """SQL goes in on standard input: a password in it never shows in a process list."""
    return _run(
        ["psql", "-h", str(nb.run_dir), "-p", str(nb.pg_port), "-d", db, "-tAq", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        user="postgres",
        cwd="/",
        stdin=sql,
        hide=hide,
    )


def ensure_redis(nb: NetboxInstance) -> None:
    if shutil.which("redis-server") is None:
        raise NetboxError("redis-server is not installed (scripts/host-prereqs.sh installs redis-server)")
    pidfile = nb.run_dir / "redis.pid"
    if _alive(pidfile):
        return
    (nb.base / "redis").mkdir(parents=True, exist_ok=True)
    _run(
        [
            "redis-server",
            "--port",
            str(nb.redis_port),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "yes",
            "--pidfile",
            str(pidfile),
            "--dir",
            str(nb.base / "redis"),
            "--save",
            "",
            "--logfile",
            str(nb.log_dir / "redis.log"),
        ]
    )
    _wait(lambda: _alive(pidfile), 20, "redis did not start")


def migrated_dump() -> Path:
    return paths.cache_dir() / "netbox" / f"netbox-{NETBOX_VERSION}-migrated.dump"


def ensure_schema(nb: NetboxInstance, log: Log) -> None:
    tables = _psql(nb, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", db="netbox").strip()
    dump = migrated_dump()
    if tables == "0" and dump.exists():
        log(f"restoring the migrated database from {dump}")
        _run(
            [
                "pg_restore",
                "-h",
                str(nb.run_dir),
                "-p",
                str(nb.pg_port),
                "-d",
                "netbox",
                "--no-owner",
                "--role=netbox",
                str(dump),
            ],
            user="postgres",
            cwd="/",
            timeout=600,
        )
        tables = "restored"
    # The database records which NetBox version migrated it; an up-to-date one needs no migrate run.
    marker = nb.pgdata / f"allmende-migrated-{NETBOX_VERSION}"
    if tables not in ("0", "restored") and marker.exists():
        return
    start = time.monotonic()
    if tables == "0":
        log("migrating the NetBox database (first time on this machine: about 5 minutes)")
    _run([str(nb.venv / "bin" / "netbox"), "migrate", "--no-input"], env=nb.netbox_env(), timeout=1800)
    marker.touch()
    if tables == "0":
        log(f"migrated in {time.monotonic() - start:.0f}s; caching a dump at {dump}")
        dump.parent.mkdir(parents=True, exist_ok=True)
        tmp = dump.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            proc = subprocess.run(
                [
                    "runuser",
                    "-u",
                    "postgres",
                    "--",
                    "pg_dump",
                    "-h",
                    str(nb.run_dir),
                    "-p",
                    str(nb.pg_port),
                    "-Fc",
                    "netbox",
                ],
                stdout=handle,
                stderr=subprocess.PIPE,
                check=False,
                cwd="/",
            )
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            log(f"could not cache the dump: {proc.stderr.decode()[-300:]}")
        else:
            tmp.replace(dump)


def ensure_gunicorn(nb: NetboxInstance, log: Log) -> None:
    pidfile = nb.run_dir / "gunicorn.pid"
    if not _alive(pidfile):
        log(f"starting NetBox on {nb.url}")
        _run(
            [
                str(nb.venv / "bin" / "gunicorn"),
                "--bind",
                f"127.0.0.1:{nb.port}",
                "--workers",
                "4",
                "--threads",
                "2",
                "--timeout",
                "300",
                "--daemon",
                "--pid",
                str(pidfile),
                "--access-logfile",
                str(nb.log_dir / "access.log"),
                "--access-logformat",
                '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(D)sus',
                "--error-logfile",
                str(nb.log_dir / "gunicorn.log"),
                "netbox.wsgi",
            ],
            env=nb.netbox_env(),
        )
    _wait(lambda: _status_ok(nb), 120, f"NetBox did not answer on {nb.url} (see {nb.log_dir})")


def ensure_rqworker(nb: NetboxInstance, log: Log) -> None:
    """NetBox's background worker (as netbox-rq.service in production): it renders the config context
    cache, without which every device request renders config contexts on the fly."""
    pidfile = nb.run_dir / "rqworker.pid"
    if _alive(pidfile):
        return
    log("starting the NetBox background worker")
    with open(nb.log_dir / "rqworker.log", "ab") as logfile:
        proc = subprocess.Popen(
            [str(nb.venv / "bin" / "netbox"), "rqworker", "high", "default", "low"],
            env=nb.netbox_env(),
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd="/",
        )
    pidfile.write_text(str(proc.pid))


def _status_ok(nb: NetboxInstance) -> bool:
    try:
        return requests.get(f"{nb.url}/login/", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _wait(check: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise NetboxError(message)


def ensure_token(nb: NetboxInstance, data: dict[str, str], log: Log) -> str:
    token = data.get("api_token")
    if token and _token_works(nb, token):
        return token
    env = {
        **nb.netbox_env(),
        "DJANGO_SUPERUSER_PASSWORD": data["admin_password"],
        "DJANGO_SUPERUSER_USERNAME": ADMIN_USER,
        "DJANGO_SUPERUSER_EMAIL": "admin@example.invalid",
    }
    proc = subprocess.run(
        [str(nb.venv / "bin" / "netbox"), "createsuperuser", "--no-input"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 and "already taken" not in proc.stderr + proc.stdout:
        raise NetboxError(f"createsuperuser failed: {proc.stderr[-500:]}")
    log("provisioning an API token")
    resp = requests.post(
        f"{nb.url}/api/users/tokens/provision/",
        json={"username": ADMIN_USER, "password": data["admin_password"]},
        timeout=30,
    )
    if resp.status_code != 201:
        raise NetboxError(f"token provisioning failed: HTTP {resp.status_code} {resp.text[:300]}")
    body = resp.json()
    token = body.get("token") or body.get("key")
    if body.get("version") == 2 or ("key" in body and body.get("token") and not token.startswith("nbt_")):
        token = f"nbt_{body['key']}.{body['token']}"
    if not _token_works(nb, token):
        raise NetboxError("the provisioned API token is not accepted")
    data["api_token"] = token
    _write_private(nb.secrets_file, json.dumps(data, indent=2))
    return token


def _token_works(nb: NetboxInstance, token: str) -> bool:
    try:
        resp = requests.get(f"{nb.url}/api/status/", headers=auth_header(token), timeout=10)
    except requests.RequestException:
        return False
    return resp.status_code == 200


# ---------------------------------------------------------------- commands


def up(port: int | None = None, log: Log = _quiet) -> NetboxInstance:
    nb = instance(port)
    nb.base.mkdir(parents=True, exist_ok=True, mode=0o700)
    (nb.base / "port").write_text(str(nb.port))
    data = ensure_secrets(nb)
    ensure_venv(nb, log)
    reconfigured = write_configuration(nb, data)
    ensure_postgres(nb, data, log)
    ensure_redis(nb)
    ensure_schema(nb, log)
    pidfile = nb.run_dir / "gunicorn.pid"
    pid = _read_pid(pidfile)
    if reconfigured and pid is not None and _alive(pidfile) and _is_ours(nb, "gunicorn.pid", pid):
        log("configuration changed: reloading NetBox")
        os.kill(pid, signal.SIGHUP)
        time.sleep(3)
    ensure_gunicorn(nb, log)
    ensure_rqworker(nb, log)
    token = ensure_token(nb, data, log)
    _write_private(nb.env_file, f"NETBOX_API={nb.url}\nNETBOX_TOKEN={token}\n")
    return nb


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _is_ours(nb: NetboxInstance, name: str, pid: int) -> bool:
    """Whether PID is the process this NetBox started for NAME (a pid file may be stale and the pid reused)."""
    args = _cmdline(pid)
    text = " ".join(args)
    if name == "redis.pid":
        return bool(args) and "redis-server" in args[0] and f":{nb.redis_port}" in text
    # gunicorn and the worker run from NetBox's own virtualenv
    return bool(args) and any(a.startswith(str(nb.venv)) for a in args[:2])


def down(purge: bool = False, log: Log = _quiet) -> None:
    nb = instance()
    for name in ("rqworker.pid", "gunicorn.pid", "redis.pid"):
        pidfile = nb.run_dir / name
        pid = _read_pid(pidfile)
        if pid is not None and _alive(pidfile):
            if not _is_ours(nb, name, pid):
                log(f"not stopping pid {pid} from {pidfile}: it is not the process this NetBox started")
                pidfile.unlink(missing_ok=True)
                continue
            os.kill(pid, signal.SIGTERM)
            _wait(lambda p=pidfile: not _alive(p), 30, f"{name} did not stop")
            log(f"stopped {name.removesuffix('.pid')}")
    if _alive(nb.pgdata / "postmaster.pid"):
        _run([str(PG_BIN / "pg_ctl"), "-D", str(nb.pgdata), "-m", "fast", "-w", "stop"], user="postgres", cwd="/")
        log("stopped postgres")
    if purge:
        for folder in (nb.base, nb.pg_base):
            if folder.exists():
                shutil.rmtree(folder)
                log(f"removed {folder}")


def status() -> dict[str, object]:
    nb = instance()
    return {
        "url": nb.url,
        "postgres": _alive(nb.pgdata / "postmaster.pid"),
        "redis": _alive(nb.run_dir / "redis.pid"),
        "netbox": _alive(nb.run_dir / "gunicorn.pid") and _status_ok(nb),
        "worker": _alive(nb.run_dir / "rqworker.pid"),
        "env_file": str(nb.env_file),
        "migrated_dump_cached": migrated_dump().exists(),
    }
