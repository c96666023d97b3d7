"""The local OCI registry: Debian's `docker-registry` (the distribution registry) on the deployment host.

It listens only on 127.0.0.1 (where the images are pushed) and on the management gateway of each
testbed it was asked for (the deployment host as the nodes see it), one `docker-registry serve`
process per address, all on the same storage under the state directory. It speaks TLS with a
certificate from a CA the project generates; nodes trust that CA in
/etc/containers/certs.d/<address>/ca.crt, as production nodes trust their site mirror.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from allmende import images, paths, release_manifest, testbed
from allmende.errors import AllmendeError, ExitCode, UsageError

__all__ = ["PushRequest", "RegistryInfo", "RegistryRequest", "down", "push", "status", "up"]

DEFAULT_PORT = 5043
BINARY = "docker-registry"
CERT_DIR_NAME = "containers-certs.d"

Log = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


class RegistryError(AllmendeError):
    code = ExitCode.ENVIRONMENT


@dataclass
class RegistryRequest:
    port: int | None = None
    testbeds: list[str] = field(default_factory=list)


@dataclass
class RegistryInfo:
    addresses: list[str]
    ca_file: Path
    storage: Path


@dataclass
class PushRequest:
    release: str | None = None
    only: list[str] = field(default_factory=list)
    address: str | None = None


def registry_dir() -> Path:
    path = paths.state_dir() / "registry"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def ca_file() -> Path:
    return registry_dir() / "ca.crt"


def _state_file() -> Path:
    return registry_dir() / "state.json"


def _read_state() -> dict[str, Any]:
    try:
        return json.loads(_state_file().read_text())
    except (OSError, ValueError):
        return {}


def _write_state(state: dict[str, Any]) -> None:
    tmp = _state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(_state_file())


def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    try:
        return testbed.run(cmd, timeout=timeout)
    except testbed.TestbedError as exc:
        raise RegistryError(str(exc)) from exc


# ---------------------------------------------------------------- certificates


def ensure_ca() -> Path:
    """The project's registry CA (created once; its key never leaves the state directory)."""
    d = registry_dir()
    key, cert = d / "ca.key", d / "ca.crt"
    if key.exists() and cert.exists():
        return cert
    _run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)])
    key.chmod(0o600)
    _run(
        [
            "openssl",
            "req",
            "-x509",
            "-new",
            "-key",
            str(key),
            "-sha256",
            "-days",
            "3650",
            "-subj",
            "/CN=Allmende local registry CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            str(cert),
        ]
    )
    return cert


def cert_ips(cert: Path) -> set[str]:
    if not cert.exists():
        return set()
    proc = testbed.run(["openssl", "x509", "-in", str(cert), "-noout", "-ext", "subjectAltName"], check=False)
    parts = proc.stdout.replace("\n", ",").split(",")
    return {part.split(":", 1)[1].strip() for part in parts if "IP Address:" in part}


def ensure_server_cert(ips: list[str]) -> bool:
    """A server certificate for exactly these addresses; True when it had to be (re)issued."""
    d = registry_dir()
    key, cert, csr = d / "server.key", d / "server.crt", d / "server.csr"
    if key.exists() and cert_ips(cert) == set(ips):
        return False
    ca = ensure_ca()
    _run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)])
    key.chmod(0o600)
    _run(["openssl", "req", "-new", "-key", str(key), "-subj", "/CN=allmende-registry", "-out", str(csr)])
    ext = d / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        f"subjectAltName={','.join(f'IP:{ip}' for ip in ips)}\n"
    )
    _run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            "825",
            "-sha256",
            "-extfile",
            str(ext),
            "-out",
            str(cert),
        ]
    )
    csr.unlink(missing_ok=True)
    return True


def client_cert_dir(address: str) -> Path:
    """A certs.d-style directory (<address>/ca.crt) for `podman push --cert-dir`."""
    d = registry_dir() / CERT_DIR_NAME / address
    d.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ensure_ca(), d / "ca.crt")
    return d


# ---------------------------------------------------------------- processes


def gateway(tb: testbed.Testbed) -> str:
    return str(next(ipaddress.ip_network(tb.mgmt_subnet).hosts()))


def _address_present(ip: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((ip, 0))
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(part.endswith(BINARY.encode()) for part in cmdline[:1])


def listener_config(listen: str, storage: Path, secret: str) -> dict[str, Any]:
    d = registry_dir()
    return {
        "version": 0.1,
        "log": {"level": "info", "fields": {"service": "allmende-registry"}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {
            "addr": listen,
            "secret": secret,
            "tls": {"certificate": str(d / "server.crt"), "key": str(d / "server.key")},
            "headers": {"X-Content-Type-Options": ["nosniff"]},
        },
    }


def answers(address: str, timeout: float = 3) -> bool:
    """GET https://<address>/v2/ verified against the project CA: 200 means a registry answers."""
    context = ssl.create_default_context(cafile=str(ca_file()))
    try:
        with urllib.request.urlopen(f"https://{address}/v2/", timeout=timeout, context=context) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def registry_config_digest(address: str, repository: str, tag: str, timeout: float = 10) -> str | None:
    """The config digest (the image ID) of repository:tag in the registry, None when it has no such tag."""
    context = ssl.create_default_context(cafile=str(ca_file()))
    request = urllib.request.Request(
        f"https://{address}/v2/{repository}/manifests/{tag}", headers={"Accept": MANIFEST_TYPES}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            manifest = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise RegistryError(f"registry {address}: {repository}:{tag}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, ssl.SSLError, ValueError) as exc:
        raise RegistryError(f"registry {address}: {repository}:{tag}: {exc}") from exc
    digest = (manifest.get("config") or {}).get("digest")
    return str(digest) if digest else None


def _start(listen: str, storage: Path, secret: str) -> int:
    if shutil.which(BINARY) is None:
        raise RegistryError(f"{BINARY} is not installed (run scripts/host-prereqs.sh)")
    d = registry_dir()
    slug = listen.replace(":", "_")
    config = d / f"config-{slug}.yml"
    config.write_text(yaml.safe_dump(listener_config(listen, storage, secret), sort_keys=False))
    config.chmod(0o600)
    with open(d / f"registry-{slug}.log", "ab") as logf:
        proc = subprocess.Popen(
            [BINARY, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (d / f"registry-{slug}.log").read_text(errors="replace").strip().splitlines()[-5:]
            raise RegistryError(f"{BINARY} on {listen} exited (rc={proc.returncode}): {' | '.join(tail)}")
        if answers(listen, timeout=1):
            return proc.pid
        time.sleep(0.3)
    raise RegistryError(f"{BINARY} on {listen} did not answer within 20 s (log {d / f'registry-{slug}.log'})")


def _stop(pid: int) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def trust_on_nodes(tb: testbed.Testbed, address: str, log: Log = _quiet) -> None:
    """Install the registry CA on every node of a testbed, where podman looks for it."""
    for node in tb.nodes:
        target = f"/etc/containers/certs.d/{address}"
        testbed.node_exec(node.container, "mkdir", "-p", target)
        _run(["podman", "cp", str(ensure_ca()), f"{node.container}:{target}/ca.crt"])
    log(f"testbed {tb.name}: {len(tb.nodes)} node(s) trust the registry CA for {address}")


def up(request: RegistryRequest, log: Log = _quiet) -> RegistryInfo:
    state = _read_state()
    port = request.port or int(state.get("port") or DEFAULT_PORT)
    listeners: dict[str, int] = {k: int(v) for k, v in (state.get("listeners") or {}).items()}
    testbeds = sorted(set(state.get("testbeds") or []) | set(request.testbeds))
    loaded = []
    for name in testbeds:
        tb = testbed.Testbed.load(name)
        if tb is None:
            if name in request.testbeds:
                raise UsageError(f"--testbed {name}: no such testbed (`allmende testbed up --name {name}`)")
            log(f"testbed {name} is gone; no longer listening for it")
            continue
        loaded.append(tb)
    ips = ["127.0.0.1"]
    for tb in loaded:
        ip = gateway(tb)
        if not _address_present(ip):
            raise RegistryError(
                f"testbed {tb.name}: its management gateway {ip} is not on this machine (is the testbed up?)"
            )
        ips.append(ip)
    wanted = [f"{ip}:{port}" for ip in ips]
    storage = registry_dir() / "storage"
    storage.mkdir(exist_ok=True)
    secret = state.get("secret") or secrets.token_hex(16)
    if port != state.get("port"):
        for pid in listeners.values():
            _stop(pid)
        listeners = {}
    if ensure_server_cert(ips):
        log(f"issued a server certificate for {', '.join(ips)}")
        for pid in listeners.values():
            _stop(pid)
        listeners = {}
    for listen in list(listeners):
        if listen not in wanted or not _alive(listeners[listen]):
            _stop(listeners.pop(listen))
    for listen in wanted:
        if listen not in listeners:
            listeners[listen] = _start(listen, storage, secret)
            log(f"listening on {listen} (pid {listeners[listen]})")
    _write_state({"port": port, "listeners": listeners, "testbeds": [tb.name for tb in loaded], "secret": secret})
    _state_file().chmod(0o600)
    for tb in loaded:
        trust_on_nodes(tb, f"{gateway(tb)}:{port}", log)
        write_testbed_vars(tb, f"{gateway(tb)}:{port}", None)
    return RegistryInfo(wanted, ca_file(), storage)


def testbed_vars_file(tb: testbed.Testbed) -> Path:
    """Where a testbed's inventory finds its registry and image tags (inventories/testbed/group_vars)."""
    return tb.dir / "images.yml"


def write_testbed_vars(tb: testbed.Testbed, address: str, release: str | None) -> Path:
    """Record for a testbed the registry its nodes pull from and the tags of the release's images."""
    root = paths.collection_root()
    name = str(release_manifest.load(root, release)["release"])
    record = images.read_record(name)
    data = {
        "allmende_image_registry": address,
        "allmende_image_namespace": "allmende",
        "allmende_image_tags": dict(record.get("allmende_image_tags") or {}),
    }
    path = testbed_vars_file(tb)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        f"# Written by `allmende registry up` and `allmende images push` (release {name}).\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    tmp.replace(path)
    return path


def down(log: Log = _quiet) -> int:
    state = _read_state()
    listeners = state.get("listeners") or {}
    for listen, pid in listeners.items():
        _stop(int(pid))
        log(f"stopped {listen}")
    state["listeners"] = {}
    state["testbeds"] = []
    if state:
        _write_state(state)
    return len(listeners)


def status() -> dict[str, Any]:
    state = _read_state()
    listeners = []
    for listen, pid in (state.get("listeners") or {}).items():
        listeners.append(
            {"address": listen, "pid": int(pid), "alive": _alive(int(pid)), "answers": answers(listen, timeout=2)}
        )
    return {
        "running": bool(listeners) and all(entry["answers"] for entry in listeners),
        "listeners": listeners,
        "testbeds": state.get("testbeds") or [],
        "ca": str(ca_file()),
        "storage": str(registry_dir() / "storage"),
    }


def push_address() -> str:
    state = _read_state()
    port = state.get("port")
    listen = f"127.0.0.1:{port}"
    if not port or listen not in (state.get("listeners") or {}) or not answers(listen):
        raise RegistryError("the local registry is not running (`allmende registry up`)")
    return listen


def push(request: PushRequest, log: Log = _quiet) -> list[str]:
    """Push the release's built images (from its record) to the registry; return the pushed references."""
    root = paths.collection_root()
    manifest = release_manifest.load(root, request.release)
    release = str(manifest["release"])
    record = images.read_record(release)
    tags = record.get("allmende_image_tags") or {}
    if not tags:
        raise UsageError(f"no images built for release {release} yet (`allmende images build --release {release}`)")
    names = list(request.only) or sorted(tags)
    missing = [n for n in names if n not in tags]
    if missing:
        raise UsageError(f"not built for release {release}: {', '.join(missing)}")
    address = request.address or push_address()
    cert_dir = client_cert_dir(address)
    pushed = []
    for name in names:
        source = images.ref_for(name, tags[name])
        target = f"{address}/allmende/{name}:{tags[name]}"
        local = testbed.run(["podman", "image", "inspect", "--format", "{{.Id}}", source], check=False)
        if local.returncode != 0:
            raise UsageError(f"{source} is not on this machine (`allmende images build --only {name}`)")
        if registry_config_digest(address, f"allmende/{name}", tags[name]) == f"sha256:{local.stdout.strip()}":
            log(f"{target} is already in the registry")
            continue
        log(f"pushing {source}")
        try:
            testbed.run(["podman", "push", "--cert-dir", str(cert_dir), source, f"docker://{target}"], timeout=900)
        except testbed.TestbedError as exc:
            raise RegistryError(str(exc)) from exc
        pushed.append(target)
    state = _read_state() if request.address is None else {}
    for tb_name in state.get("testbeds") or []:
        tb = testbed.Testbed.load(tb_name)
        if tb is not None:
            write_testbed_vars(tb, f"{gateway(tb)}:{state.get('port')}", release)
    return pushed
