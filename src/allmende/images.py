"""`allmende images build`: the kolla-contract images of a release, tagged by the hash of their inputs.

The images form a tree (images/images.yml in the collection): base on the project's debootstrap
Debian image, openstack-base on base, one image per service. An image's tag is
`<release>-<hash12>`, the hash covering its Containerfile, the files it copies, the versions and
constraints it installs, the trusted CA files and its parent's hash, so an image whose inputs did
not change is never built again. Built tags are recorded in the state directory
(`images/<release>.yml`) for the roles to read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from allmende import paths, release_manifest, testbed
from allmende.errors import AllmendeError, ExitCode, UsageError

__all__ = ["BuildRequest", "BuildResult", "ImageResult", "build", "load_definitions"]

NAMESPACE = "localhost/allmende"
# The debootstrap image of the testbed (src/allmende/testbed.py) for a suite is the root of the tree.
ROOT_IMAGE = "localhost/allmende-node:{suite}"
# Bumped when the way inputs are hashed changes.
HASH_VERSION = "1"
# The machine's own extra CA certificates (Debian's local CA directory).
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
BUILD_TIMEOUT = 1800
ALLOWED_KEYS = {
    "parent",
    "containerfile",
    "context",
    "trust_ca",
    "constraints",
    "services",
    "openstack",
    "user",
    "default",
    "kolla_name",
    "pip_extra",
}

Log = Callable[[str], None]


def _quiet(_msg: str) -> None:
    pass


class ImageBuildError(AllmendeError):
    code = ExitCode.FAILED


@dataclass
class Definition:
    name: str
    containerfile: str
    parent: str | None = None
    context: str | None = None
    trust_ca: bool = False
    constraints: bool = False
    services: list[str] = field(default_factory=list)
    openstack: str | None = None
    user: str = "root"
    default: bool = True
    kolla_name: str | None = None
    pip_extra: list[str] = field(default_factory=list)


@dataclass
class BuildRequest:
    release: str | None = None
    only: list[str] = field(default_factory=list)
    ca_files: list[str] | None = None  # None: the machine's local CA certificates
    force: bool = False


@dataclass
class ImageResult:
    name: str
    ref: str
    tag: str
    inputs: str
    action: str  # built, reused (same inputs under another tag), present
    seconds: float = 0.0
    size: int = 0
    image_id: str = ""


@dataclass
class BuildResult:
    release: str
    suite: str
    images: list[ImageResult]
    record: Path
    seconds: float

    @property
    def built(self) -> list[ImageResult]:
        return [i for i in self.images if i.action != "present"]


# ---------------------------------------------------------------- definitions


def images_dir(root: Path) -> Path:
    return root / "images"


def load_definitions(root: Path) -> dict[str, Definition]:
    """images/images.yml as Definitions, every problem reported at once (file and field)."""
    path = images_dir(root) / "images.yml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: {exc}") from exc
    problems, defs = validate_definitions(data, images_dir(root))
    if problems:
        raise UsageError("invalid image definitions", [f"images/images.yml: {p}" for p in problems])
    return defs


def validate_definitions(data: Any, base: Path | None = None) -> tuple[list[str], dict[str, Definition]]:
    problems: list[str] = []
    defs: dict[str, Definition] = {}
    entries = data.get("images") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not entries:
        return ["images: missing or empty"], {}
    for name, raw in entries.items():
        field_ = f"images.{name}"
        if not isinstance(raw, dict):
            problems.append(f"{field_}: must be a mapping")
            continue
        unknown = sorted(set(raw) - ALLOWED_KEYS)
        if unknown:
            problems.append(f"{field_}: unknown keys {', '.join(unknown)}")
        if not isinstance(raw.get("containerfile"), str):
            problems.append(f"{field_}.containerfile: missing")
            continue
        if base is not None and not (base / raw["containerfile"]).is_file():
            problems.append(f"{field_}.containerfile: {raw['containerfile']} not found")
        if raw.get("context") is not None and base is not None and not (base / raw["context"]).is_dir():
            problems.append(f"{field_}.context: directory {raw['context']} not found")
        services = raw.get("services") or []
        if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
            problems.append(f"{field_}.services: must be a list of service names")
            services = []
        pip_extra = raw.get("pip_extra") or []
        if not isinstance(pip_extra, list) or not all(isinstance(s, str) for s in pip_extra):
            problems.append(f"{field_}.pip_extra: must be a list of requirements")
            pip_extra = []
        user = raw.get("user", "root")
        if not isinstance(user, str) or not user.replace("-", "").replace("_", "").isalnum():
            problems.append(f"{field_}.user: {user!r} is not a user name")
        defs[name] = Definition(
            name=name,
            containerfile=raw["containerfile"],
            parent=raw.get("parent"),
            context=raw.get("context"),
            trust_ca=bool(raw.get("trust_ca", False)),
            constraints=bool(raw.get("constraints", False)),
            services=list(services),
            openstack=raw.get("openstack"),
            user=str(user),
            default=bool(raw.get("default", True)),
            kolla_name=raw.get("kolla_name"),
            pip_extra=list(pip_extra),
        )
    for name, d in defs.items():
        if d.parent is not None and d.parent not in defs:
            problems.append(f"images.{name}.parent: {d.parent!r} is not an image here")
        if d.openstack and d.parent is None:
            problems.append(f"images.{name}: an OpenStack image needs a parent with the virtual environment")
    for name in defs:
        seen = [name]
        node = defs[name].parent
        while node in defs:
            if node in seen:
                problems.append(f"images.{name}.parent: cycle {' -> '.join([*seen, node])}")
                break
            seen.append(node)
            node = defs[node].parent
    return problems, defs


def lineage(defs: dict[str, Definition], name: str) -> list[str]:
    """name and its ancestors, root first."""
    chain = []
    node: str | None = name
    while node is not None:
        chain.append(node)
        node = defs[node].parent
    return list(reversed(chain))


def selection(defs: dict[str, Definition], only: Sequence[str]) -> list[str]:
    """Images to build in order (parents first): `only` and their ancestors, or every default image."""
    unknown = [n for n in only if n not in defs]
    if unknown:
        raise UsageError(f"--only {', '.join(unknown)}: unknown image (known: {', '.join(sorted(defs))})")
    wanted = list(only) or [n for n, d in defs.items() if d.default]
    ordered: list[str] = []
    for name in wanted:
        for node in lineage(defs, name):
            if node not in ordered:
                ordered.append(node)
    # Stable: parents before children, otherwise the definition file's order.
    order = list(defs)
    ordered.sort(key=lambda n: (len(lineage(defs, n)), order.index(n)))
    return ordered


# ---------------------------------------------------------------- inputs


def build_args(d: Definition, manifest: dict[str, Any]) -> dict[str, str]:
    """The --build-arg values of an image, from the release manifest (the versions it installs)."""
    origin = f"releases/{manifest.get('release')}.yml"
    args: dict[str, str] = {"SERVICE_USER": d.user, "LOG_DIR": d.name}
    packages = []
    for key in d.services:
        entry = (manifest.get("services") or {}).get(key)
        if entry is None:
            raise UsageError(f"image {d.name}: {origin} has no services.{key}")
        packages += [f"{pkg}={entry['apt']}" for pkg in entry["packages"]]
    if packages:
        args["PACKAGES"] = " ".join(packages)
    if d.openstack:
        entry = (manifest.get("openstack") or {}).get(d.openstack)
        if entry is None:
            raise UsageError(f"image {d.name}: {origin} has no openstack.{d.openstack}")
        args["PROJECT"] = str(entry.get("package") or d.openstack)
        args["VERSION"] = str(entry["version"])
        if d.pip_extra:
            args["PIP_EXTRA"] = " ".join(d.pip_extra)
    return args


def inputs_hash(
    containerfile: str,
    files: dict[str, bytes],
    args: dict[str, str],
    parent: str,
) -> str:
    """sha256 over everything an image is made of; file names and contents, sorted, so order never matters."""
    h = hashlib.sha256()

    def part(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    part("version", HASH_VERSION.encode())
    part("parent", parent.encode())
    part("containerfile", containerfile.encode())
    for name in sorted(files):
        part(f"file:{name}", files[name])
    for key in sorted(args):
        part(f"arg:{key}", args[key].encode())
    return h.hexdigest()


def tag_for(release: str, digest: str) -> str:
    return f"{release}-{digest[:12]}"


def ref_for(name: str, tag: str) -> str:
    return f"{NAMESPACE}/{name}:{tag}"


def host_ca_files() -> list[Path]:
    if not HOST_CA_DIR.is_dir():
        return []
    return sorted(p for p in HOST_CA_DIR.rglob("*.crt") if p.is_file())


def ca_files(request: BuildRequest) -> list[Path]:
    if request.ca_files is None:
        return host_ca_files()
    found = []
    for name in request.ca_files:
        path = Path(name).expanduser()
        if not path.is_file():
            raise UsageError(f"--ca-file {name}: file not found")
        text = path.read_bytes()
        if b"-----BEGIN CERTIFICATE-----" not in text:
            raise UsageError(f"--ca-file {name}: not a PEM certificate")
        found.append(path)
    return found


def context_files(d: Definition, root: Path, manifest: dict[str, Any], cas: list[Path]) -> dict[str, bytes]:
    """Build context of an image: relative path -> content (what `podman build` copies from)."""
    files: dict[str, bytes] = {}
    base = images_dir(root)
    if d.context:
        ctx = base / d.context
        for path in sorted(ctx.rglob("*")):
            if path.is_file() and path.name != "Containerfile":
                files[str(path.relative_to(ctx))] = path.read_bytes()
    if d.trust_ca:
        files["ca/.keep"] = b""
        for index, path in enumerate(cas):
            files[f"ca/{index:02d}-{path.name}"] = path.read_bytes()
    if d.constraints:
        files["upper-constraints.txt"] = (root / "releases" / manifest["images"]["constraints"]).read_bytes()
    return files


def _mode(name: str, d: Definition, root: Path) -> int:
    if d.context:
        source = images_dir(root) / d.context / name
        if source.is_file():
            return source.stat().st_mode & 0o777
    return 0o644


# ---------------------------------------------------------------- podman


def _podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        return testbed.run(["podman", *args], timeout=timeout, check=check)
    except testbed.TestbedError as exc:
        raise ImageBuildError(str(exc)) from exc


def image_info(ref: str) -> dict[str, Any] | None:
    proc = _podman("image", "inspect", ref, check=False)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout or "[]")
    return data[0] if data else None


def image_with_inputs(digest: str) -> str | None:
    proc = _podman("images", "--noheading", "--filter", f"label=allmende.inputs={digest}", "--format", "{{.ID}}")
    ids = proc.stdout.split()
    return ids[0] if ids else None


def _build_one(
    d: Definition,
    ref: str,
    digest: str,
    release: str,
    files: dict[str, bytes],
    containerfile: str,
    args: dict[str, str],
    parent_ref: str,
    root: Path,
) -> None:
    work = Path(tempfile.mkdtemp(prefix="allmende-image-", dir=paths.cache_dir()))
    try:
        for name, content in files.items():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(_mode(name, d, root))
        (work / "Containerfile").write_text(containerfile)
        cmd = ["build", "--pull=never", "--layers=false", "--force-rm", "-f", str(work / "Containerfile"), "-t", ref]
        cmd += ["--build-arg", f"PARENT={parent_ref}"]
        for key, value in sorted(args.items()):
            cmd += ["--build-arg", f"{key}={value}"]
        for key, value in (
            ("allmende.inputs", digest),
            ("allmende.release", release),
            ("allmende.image", d.name),
        ):
            cmd += ["--label", f"{key}={value}"]
        cmd.append(str(work))
        proc = _podman(*cmd, timeout=BUILD_TIMEOUT, check=False)
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-25:])
            raise ImageBuildError(f"image {d.name}: podman build failed (rc={proc.returncode}):\n{tail}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------- record


def record_path(release: str) -> Path:
    return paths.state_dir() / "images" / f"{release}.yml"


def write_record(release: str, suite: str, results: list[ImageResult]) -> Path:
    """Merge the images into state/images/<release>.yml (a vars file the roles can read), atomically."""
    path = record_path(release)
    path.parent.mkdir(parents=True, exist_ok=True)
    current: dict[str, Any] = {}
    if path.exists():
        try:
            current = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            current = {}
    tags = dict(current.get("allmende_image_tags") or {})
    details = dict(current.get("allmende_images") or {})
    for r in results:
        tags[r.name] = r.tag
        details[r.name] = {"ref": r.ref, "inputs": r.inputs, "id": r.image_id, "size": r.size}
    data = {
        "allmende_release": release,
        "allmende_image_suite": suite,
        "allmende_image_namespace": "allmende",
        "allmende_image_tags": dict(sorted(tags.items())),
        "allmende_images": dict(sorted(details.items())),
    }
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as handle:
        handle.write("# Written by `allmende images build`; the tags of the images built for this release.\n")
        yaml.safe_dump(data, handle, sort_keys=False)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return path


def read_record(release: str) -> dict[str, Any]:
    path = record_path(release)
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text()) or {}


# ---------------------------------------------------------------- build


def plan(
    request: BuildRequest, root: Path | None = None
) -> tuple[dict[str, Any], dict[str, Definition], list[str], list[Path]]:
    root = root or paths.collection_root()
    manifest = release_manifest.load(root, request.release)
    if "images" not in manifest:
        raise UsageError(f"releases/{manifest['release']}.yml has no images section: nothing to build")
    defs = load_definitions(root)
    return manifest, defs, selection(defs, request.only), ca_files(request)


def build(request: BuildRequest, log: Log = _quiet, root: Path | None = None) -> BuildResult:
    """Build what is missing of the selected images (parents first); return every image with its action."""
    start = time.monotonic()
    root = root or paths.collection_root()
    manifest, defs, names, cas = plan(request, root)
    release = str(manifest["release"])
    suite = str(manifest["images"]["suite"])
    root_image = ROOT_IMAGE.format(suite=suite)
    try:
        testbed.ensure_image(root_image, suite=suite, log=log)
    except testbed.TestbedError as exc:
        raise ImageBuildError(f"root image {root_image}: {exc}") from exc
    # The root's recipe (suite, mirror, package list) stands for its content: rebuilding the same
    # recipe gives the same image, so it does not change every tag.
    root_inputs = f"{root_image}@{testbed.image_label(root_image)}"
    results: dict[str, ImageResult] = {}
    for name in names:
        d = defs[name]
        containerfile = (images_dir(root) / d.containerfile).read_text()
        files = context_files(d, root, manifest, cas)
        args = build_args(d, manifest)
        parent_inputs = results[d.parent].inputs if d.parent else root_inputs
        parent_ref = results[d.parent].ref if d.parent else root_image
        digest = inputs_hash(containerfile, files, args, parent_inputs)
        tag = tag_for(release, digest)
        ref = ref_for(name, tag)
        result = ImageResult(name, ref, tag, digest, "present")
        info = None if request.force else image_info(ref)
        if info is None and not request.force:
            same = image_with_inputs(digest)
            if same is not None:
                _podman("tag", same, ref)
                result.action = "reused"
                info = image_info(ref)
        if info is None:
            log(f"{name}: building {ref}")
            began = time.monotonic()
            _build_one(d, ref, digest, release, files, containerfile, args, parent_ref, root)
            result.seconds = time.monotonic() - began
            result.action = "built"
            info = image_info(ref)
            if info is None:
                raise ImageBuildError(f"image {name}: podman build succeeded but {ref} is missing")
            log(f"{name}: built in {result.seconds:.0f}s")
        result.size = int(info.get("Size") or 0)
        result.image_id = str(info.get("Id") or "")[:12]
        results[name] = result
    ordered = [results[n] for n in names]
    record = write_record(release, suite, ordered)
    return BuildResult(release, suite, ordered, record, time.monotonic() - start)


def as_dict(result: BuildResult) -> dict[str, Any]:
    return {
        "release": result.release,
        "suite": result.suite,
        "record": str(result.record),
        "seconds": round(result.seconds, 1),
        "images": [asdict(i) for i in result.images],
    }
