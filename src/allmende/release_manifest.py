"""The release manifests for the driver: the collection's own loader and validation (module_utils/release.py)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from allmende import paths
from allmende.errors import RefusedError, UsageError


def _module(root: Path) -> ModuleType:
    return paths.collection_module("plugins/module_utils/release.py", "allmende_release_manifest", root)


def load(root: Path, name: str | None = None) -> dict[str, Any]:
    """The validated manifest of release `name` (default: releases/index.yml's current)."""
    module = _module(root)
    try:
        return module.load(str(root), name)
    except module.ManifestError as exc:
        if all(p.startswith("allmende_release:") for p in exc.problems):
            # An unknown release name is bad input, not bad data.
            raise UsageError(
                "unknown release", [p.replace("allmende_release", "--release", 1) for p in exc.problems]
            ) from exc
        raise RefusedError("invalid release manifest", exc.problems) from exc


def available(root: Path) -> list[str]:
    return list(_module(root).available_releases(str(root)))
