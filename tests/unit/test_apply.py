from pathlib import Path

import pytest
import yaml

from allmende.apply import ApplyRequest, UsageError, apply, check_extra_vars, resolve_target
from allmende.paths import collection_root
from allmende.progress import LineProgress

ROOT = collection_root()


def test_extra_vars_are_checked_before_running(tmp_path):
    good = tmp_path / "vars.yml"
    good.write_text("a: 1\n")
    assert check_extra_vars(["a=1", f"@{good}", '{"b": 2}']) == []
    problems = check_extra_vars(["novalue", "@/nonexistent/file.yml", "{bad: [json"])
    assert len(problems) == 3
    assert "novalue" in problems[0] and "not found" in problems[1] and "not valid" in problems[2]


def test_targets_resolve_to_playbooks_or_generated_role_plays(tmp_path):
    path, kind = resolve_target("bootstrap", ROOT, tmp_path)
    assert (path, kind) == (ROOT / "playbooks" / "bootstrap.yml", "playbook")
    path, kind = resolve_target("allmende.cloud.site", ROOT, tmp_path)
    assert path.name == "site.yml"


def test_role_without_playbook_gets_a_one_play_playbook(tmp_path, monkeypatch):
    fake_root = tmp_path / "root"
    (fake_root / "roles" / "chrony" / "tasks").mkdir(parents=True)
    (fake_root / "playbooks").mkdir()
    path, kind = resolve_target("chrony", fake_root, tmp_path)
    assert kind == "role"
    play = yaml.safe_load(path.read_text())
    assert play[0]["roles"] == [{"role": "allmende.cloud.chrony"}]


def test_unknown_target_lists_what_exists(tmp_path):
    with pytest.raises(UsageError) as err:
        resolve_target("nope", ROOT, tmp_path)
    assert "bootstrap" in str(err.value)


def test_bad_input_is_refused_all_at_once_and_records_no_run(state_dir, tmp_path):
    request = ApplyRequest("bootstrap", inventories=[str(tmp_path / "missing")], extra_vars=["oops"])
    with pytest.raises(UsageError) as err:
        apply(request, LineProgress(), state=state_dir)
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    runs = Path(state_dir, "runs")
    assert not runs.exists() or not any(runs.iterdir())
