"""Build upstream kolla's keystone image with kolla's own `kolla-build` and push it to the local registry.

The kolla contract check (docs/images.md, "Checked against kolla-build"): PyPI `kolla` at the
release of scripts/kolla-requirements.txt, installed with the release's upper constraints into
$ALLMENDE_STATE_DIR/kolla/venv, builds `base`, `openstack-base`, `keystone-base` and `keystone`
with podman (through a `podman system service` socket of its own) from the project's Debian image
(`localhost/allmende-node:<suite>` plus this machine's CA certificates). Nothing comes from an
image registry or a git server: the sources are local tarballs (keystone's sdist from PyPI, the
release's upper constraints as kolla's `requirements` tarball), the packages come from the Debian
mirror and PyPI, and scripts/kolla/template-overrides.j2 holds what kolla's templates need for that.
The keystone image goes to the local registry (`allmende registry up`) as
`127.0.0.1:<port>/<namespace>/keystone:<tag>`. Prints the build time and the size of each image.

Usage: .venv/bin/python scripts/kolla-build-keystone.py [--release 2026.1] [--namespace kolla] [--tag TAG] [--no-push]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from allmende import images, paths, registry, release_manifest, testbed

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "scripts" / "kolla-requirements.txt"
OVERRIDES = ROOT / "scripts" / "kolla" / "template-overrides.j2"
# kolla 22.x (2026.1) builds on Debian 13 (trixie) and refuses other Debian releases.
KOLLA_SUITE = "trixie"
KOLLA_IMAGES = ["base", "openstack-base", "keystone-base", "keystone"]
ROOT_IMAGE = "localhost/allmende-kolla-root"
ROOT_CONTAINERFILE = """\
FROM {parent}
# This machine's CA certificates; kolla's base image merges them into the system bundle.
COPY ca/ /usr/local/share/ca-certificates/allmende/
"""


def log(msg: str) -> None:
    print(f"kolla-build-keystone: {msg}", flush=True)


def run(cmd: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]


def kolla_version() -> str:
    for line in REQUIREMENTS.read_text().splitlines():
        if line.startswith("kolla=="):
            return line.split("==", 1)[1].strip()
    raise SystemExit(f"{REQUIREMENTS} pins no kolla version")


def ensure_venv(venv: Path, constraints: Path) -> Path:
    if not (venv / "bin" / "python").exists():
        run([sys.executable, "-m", "venv", str(venv)], timeout=300)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "-r", str(REQUIREMENTS), "-c", str(constraints)]
    run(pip, timeout=900)
    return venv / "bin" / "kolla-build"


def ensure_root(state: Path) -> str:
    """The project's Debian image of kolla's suite plus this machine's CA certificates."""
    parent = testbed.ensure_image(suite=KOLLA_SUITE, log=log)
    ref = f"{ROOT_IMAGE}:{KOLLA_SUITE}"
    ctx = Path(tempfile.mkdtemp(prefix="kolla-root-", dir=state))
    try:
        (ctx / "ca").mkdir()
        for n, ca in enumerate(images.host_ca_files()):
            shutil.copyfile(ca, ctx / "ca" / f"{n:02d}-{ca.name}")
        (ctx / "Containerfile").write_text(ROOT_CONTAINERFILE.format(parent=parent))
        run(["podman", "build", "-q", "-t", ref, "-f", str(ctx / "Containerfile"), str(ctx)], timeout=600)
    finally:
        shutil.rmtree(ctx, ignore_errors=True)
    return ref


def sources(state: Path, manifest: dict, constraints: Path) -> dict[str, Path]:
    """Local tarballs of kolla's sources: keystone's sdist from PyPI, the upper constraints."""
    src = state / "sources"
    src.mkdir(parents=True, exist_ok=True)
    version = manifest["openstack"]["keystone"]["version"]
    sdist = src / f"keystone-{version}.tar.gz"
    if not sdist.exists():
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
        run([*pip, "-d", str(src), f"keystone=={version}"], timeout=600)
    release = manifest["release"]
    requirements = src / f"requirements-{release}.tar.gz"
    data = constraints.read_bytes()
    with tarfile.open(requirements, "w:gz") as tar:
        info = tarfile.TarInfo(f"requirements-{release}/upper-constraints.txt")
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return {"keystone-base": sdist, "openstack-base": requirements}


def write_config(state: Path, root: str, namespace: str, tag: str, socket: Path, srcs: dict[str, Path]) -> Path:
    name, base_tag = root.rsplit(":", 1)
    lines = [
        "[DEFAULT]",
        "base = debian",
        f"base_image = {name}",
        f"base_tag = {base_tag}",
        "engine = podman",
        f"podman_base_url = unix://{socket}",
        f"namespace = {namespace}",
        f"tag = {tag}",
        "pull = false",
        "push = false",
        "threads = 1",
        "retries = 0",
        f"template_override = {OVERRIDES}",
        f"logs_dir = {state / 'logs'}",
    ]
    for section, path in sorted(srcs.items()):
        lines += ["", f"[{section}]", "type = local", f"location = {path}"]
    (state / "logs").mkdir(exist_ok=True)
    conf = state / "kolla-build.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def wait_socket(socket: Path, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("podman system service exited")
        if socket.exists():
            return
        time.sleep(0.5)
    raise SystemExit(f"podman system service: no socket {socket} after {timeout:.0f}s")


def image_size(ref: str) -> int:
    out = run(["podman", "image", "inspect", ref], timeout=60, capture_output=True).stdout
    return int(json.loads(out)[0].get("Size") or 0)


def push(ref: str, namespace: str, tag: str) -> str:
    address = registry.push_address()
    target = f"{address}/{namespace}/keystone:{tag}"
    cert_dir = registry.client_cert_dir(address)
    run(["podman", "push", "-q", "--cert-dir", str(cert_dir), ref, f"docker://{target}"], timeout=1800)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default="2026.1", help="release manifest (the one kolla is pinned for)")
    parser.add_argument("--namespace", default="kolla", help="registry namespace of the images")
    parser.add_argument("--tag", help="image tag (default: <release>-debian-trixie, as kolla names its own)")
    parser.add_argument("--no-push", action="store_true", help="build only")
    parser.add_argument("--skip-build", action="store_true", help="push the images built before (no kolla-build)")
    args = parser.parse_args(argv)

    manifest = release_manifest.load(paths.collection_root(), args.release)
    release = str(manifest["release"])
    constraints = ROOT / "releases" / manifest["images"]["constraints"]
    tag = args.tag or f"{release}-debian-{KOLLA_SUITE}"
    state = paths.state_dir() / "kolla"
    state.mkdir(parents=True, exist_ok=True)

    if not args.skip_build and build_images(state, manifest, constraints, args.namespace, tag) != 0:
        return 1
    for name in KOLLA_IMAGES:
        ref = f"localhost/{args.namespace}/{name}:{tag}"
        log(f"  {ref}: {image_size(ref) / 1e6:.0f} MB")
    if not args.no_push:
        start = time.monotonic()
        target = push(f"localhost/{args.namespace}/keystone:{tag}", args.namespace, tag)
        log(f"pushed {target} ({time.monotonic() - start:.0f}s)")
    return 0


def build_images(state: Path, manifest: dict, constraints: Path, namespace: str, tag: str) -> int:
    began = time.monotonic()
    kolla_build = ensure_venv(state / "venv", constraints)
    log(f"kolla {kolla_version()} in {state / 'venv'} ({time.monotonic() - began:.0f}s)")
    root = ensure_root(state)
    srcs = sources(state, manifest, constraints)
    log(f"root image {root}; sources {', '.join(str(p.name) for p in srcs.values())}")

    socket = state / "podman.sock"
    socket.unlink(missing_ok=True)
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{socket}"])
    try:
        wait_socket(socket, service)
        conf = write_config(state, root, namespace, tag, socket, srcs)
        log(f"kolla-build --config-file {conf} ^keystone$ (and its parents)")
        start = time.monotonic()
        env = dict(os.environ, PATH=f"{kolla_build.parent}:{os.environ.get('PATH', '')}")
        build = subprocess.run(
            [str(kolla_build), "--config-file", str(conf), "^keystone$"], env=env, timeout=5400, check=False
        )
        seconds = time.monotonic() - start
    finally:
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(timeout=30)
        socket.unlink(missing_ok=True)
    if build.returncode != 0:
        log(f"kolla-build failed (exit {build.returncode}) after {seconds:.0f}s; logs in {state / 'logs'}")
        return 1

    log(f"kolla-build: {seconds:.0f}s for {', '.join(KOLLA_IMAGES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
