"""Upgrade paths: N -> N+1 and the SLURP .1 -> .1 skip; everything else refused with the reason."""

import pytest

from allmende.upgrade.paths import PathError, allowed_targets, upgrade_path

KNOWN = ["2024.2", "2025.1", "2025.2", "2026.1"]


def test_next_release_and_the_slurp_skip_are_allowed():
    assert upgrade_path("2025.1", "2025.2", KNOWN).kind == "next"
    assert upgrade_path("2025.2", "2026.1", KNOWN).kind == "next"
    slurp = upgrade_path("2025.1", "2026.1", KNOWN)
    assert slurp.kind == "slurp" and "data migration of 2025.1" in slurp.preconditions[0]
    assert upgrade_path("2024.2", "2025.1", KNOWN).preconditions == []
    assert allowed_targets("2025.1", KNOWN) == ["2025.2", "2026.1"]
    assert allowed_targets("2024.2", KNOWN) == ["2025.1"]


@pytest.mark.parametrize(
    ("source", "target", "reason"),
    [
        ("2026.1", "2025.2", "downgrades are not supported"),
        ("2025.2", "2025.2", "is the deployed release"),
        ("2024.2", "2026.1", "skips too far: allowed from 2024.2 are 2025.1"),
        ("2025.2", "2026.2", "to 2026.2: no release manifest"),
        ("2025.1", "2027.1", "to 2027.1: no release manifest"),
        ("2025.3", "latest", "from '2025.3': not a release name"),
    ],
)
def test_everything_else_is_refused_naming_why(source, target, reason):
    with pytest.raises(PathError) as err:
        upgrade_path(source, target, KNOWN)
    assert reason in str(err.value)


def test_both_bad_names_are_reported_at_once():
    with pytest.raises(PathError) as err:
        upgrade_path("x", "y", KNOWN)
    assert len(err.value.problems) == 2
