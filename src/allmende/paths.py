"""Where the driver keeps its state and finds the allmende.cloud collection."""

from __future__ import annotations

import importlib.util
import os
from functools import cache
from pathlib import Path
from types import ModuleType

import yaml

COLLECTION_NAMESPACE = "allmende"
COLLECTION_NAME = "cloud"


class CollectionNotFound(RuntimeError):
    pass


def state_dir() -> Path:
    """Run records, testbed state, generated inventories (ALLMENDE_STATE_DIR overrides)."""
    env = os.environ.get("ALLMENDE_STATE_DIR")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "allmende"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path.resolve()


def cache_dir() -> Path:
    """Reusable downloads (base image rootfs, package archives); safe to delete."""
    env = os.environ.get("ALLMENDE_CACHE_DIR")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "allmende"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def _is_collection_root(path: Path) -> bool:
    galaxy = path / "galaxy.yml"
    manifest = path / "MANIFEST.json"
    try:
        if galaxy.is_file():
            data = yaml.safe_load(galaxy.read_text()) or {}
            return data.get("namespace") == COLLECTION_NAMESPACE and data.get("name") == COLLECTION_NAME
        if manifest.is_file():
            return path.parts[-2:] == (COLLECTION_NAMESPACE, COLLECTION_NAME)
    except (OSError, yaml.YAMLError):
        return False
    return False


def collection_root() -> Path:
    """The allmende.cloud collection: ALLMENDE_COLLECTION_ROOT, the source checkout, or an installed copy."""
    env = os.environ.get("ALLMENDE_COLLECTION_ROOT")
    if env:
        root = Path(env).resolve()
        if not _is_collection_root(root):
            raise CollectionNotFound(f"ALLMENDE_COLLECTION_ROOT={env} is not the allmende.cloud collection")
        return root
    for parent in Path(__file__).resolve().parents:
        if _is_collection_root(parent):
            return parent
    search = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    candidates = [Path(p) for p in search.split(":") if p]
    candidates += [Path.home() / ".ansible" / "collections", Path("/usr/share/ansible/collections")]
    for base in candidates:
        root = base / "ansible_collections" / COLLECTION_NAMESPACE / COLLECTION_NAME
        if _is_collection_root(root):
            return root.resolve()
    raise CollectionNotFound(
        "cannot find the allmende.cloud collection: install it with ansible-galaxy or set ALLMENDE_COLLECTION_ROOT"
    )


def collections_path(root: Path | None = None) -> Path:
    """A directory D such that D/ansible_collections/allmende/cloud is the collection.

    For an installed collection that is its install path; for a source checkout it is the
    checkout's `.build/collections`, holding a symlink to the checkout (the same place
    the checkout's ansible.cfg points at).
    """
    root = root or collection_root()
    if root.parts[-3:] == ("ansible_collections", COLLECTION_NAMESPACE, COLLECTION_NAME):
        return root.parents[2]
    base = root / ".build" / "collections"
    link = base / "ansible_collections" / COLLECTION_NAMESPACE / COLLECTION_NAME
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            link.unlink()
        link.symlink_to(root, target_is_directory=True)
    return base


def collection_module(relative: str, name: str, root: Path | None = None) -> ModuleType:
    """A pure-Python file of the collection (module_utils, plugin_utils), loaded as module NAME.

    The driver shares the collection's logic without needing the collection installed where
    Python would import it from. ROOT defaults to the collection this driver uses.
    """
    return _load_module((root or collection_root()) / relative, name)


@cache
def _load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CollectionNotFound(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
