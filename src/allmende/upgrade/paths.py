"""Which release-to-release upgrades are allowed.

OpenStack releases come twice a year, YYYY.1 and YYYY.2. Allowed: one release forward (N -> N+1),
and the SLURP skip from one .1 release to the next .1 (2025.1 -> 2026.1), which upstream tests and
supports provided every data migration of the source release is complete. Anything else - a
downgrade, staying put, skipping from a .2 release, skipping more than one release, a release
without a manifest - is refused before anything changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RELEASE = re.compile(r"^(\d{4})\.([12])$")


class PathError(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class UpgradePath:
    source: str
    target: str
    kind: str  # "next" (N -> N+1) or "slurp" (YYYY.1 -> YYYY+1.1)

    @property
    def preconditions(self) -> list[str]:
        if self.kind == "slurp":
            return [f"every online data migration of {self.source} has completed (SLURP skip over the .2 release)"]
        return []


def _ordinal(name: str) -> int:
    match = RELEASE.match(name)
    if not match:
        raise ValueError(name)
    return int(match.group(1)) * 2 + int(match.group(2)) - 1


def upgrade_path(source: str, target: str, known: list[str]) -> UpgradePath:
    """The path from SOURCE to TARGET, or PathError listing every reason it is refused."""
    problems = []
    for label, name in (("from", source), ("to", target)):
        if not RELEASE.match(name or ""):
            problems.append(f"{label} {name!r}: not a release name (expected YYYY.1 or YYYY.2)")
        elif name not in known:
            problems.append(f"{label} {name}: no release manifest (known: {', '.join(sorted(known)) or 'none'})")
    if problems:
        raise PathError(problems)
    step = _ordinal(target) - _ordinal(source)
    if step == 1:
        return UpgradePath(source, target, "next")
    if step == 2 and source.endswith(".1"):
        return UpgradePath(source, target, "slurp")
    if step <= 0:
        reason = "is the deployed release" if step == 0 else "is older: downgrades are not supported"
        raise PathError([f"{target} {reason} (deployed: {source})"])
    allowed = allowed_targets(source, known)
    raise PathError(
        [
            f"{source} -> {target} skips too far: allowed from {source} are "
            f"{', '.join(allowed) if allowed else 'none with a manifest'} (N+1, or .1 to the next .1)"
        ]
    )


def allowed_targets(source: str, known: list[str]) -> list[str]:
    """Every release with a manifest that SOURCE may upgrade to."""
    if not RELEASE.match(source or ""):
        return []
    found = []
    for name in sorted(known, key=lambda n: _ordinal(n) if RELEASE.match(n) else -1):
        if not RELEASE.match(name):
            continue
        step = _ordinal(name) - _ordinal(source)
        if step == 1 or (step == 2 and source.endswith(".1")):
            found.append(name)
    return found
