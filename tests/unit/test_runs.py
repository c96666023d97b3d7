import pytest

from allmende.runs import RunNotFound, find_run, list_runs, new_run_id, runs_dir, write_summary


def make_run(state, run_id, started):
    path = runs_dir(state) / run_id
    path.mkdir(parents=True)
    write_summary(path, {"id": run_id, "started": started, "status": "successful"})
    return path


def test_run_ids_are_sortable_and_named_after_the_target():
    rid = new_run_id("playbooks/site.yml", now=0)
    assert rid.startswith("1970") and "-site-" in rid
    assert "-bootstrap-" in new_run_id("bootstrap")


def test_find_by_id_prefix_suffix_and_last(tmp_path):
    make_run(tmp_path, "20260101-000000-site-aaaa", 1)
    make_run(tmp_path, "20260102-000000-site-bbbb", 2)
    assert [r.id for r in list_runs(tmp_path)] == ["20260101-000000-site-aaaa", "20260102-000000-site-bbbb"]
    assert find_run(tmp_path, "last").id.endswith("bbbb")
    assert find_run(tmp_path, "20260101").id.endswith("aaaa")
    assert find_run(tmp_path, "bbbb").id.endswith("bbbb")
    with pytest.raises(RunNotFound, match="matches 2 runs"):
        find_run(tmp_path, "2026")
    with pytest.raises(RunNotFound, match="no run"):
        find_run(tmp_path, "zzz")


def test_no_runs(tmp_path):
    with pytest.raises(RunNotFound, match="no runs"):
        find_run(tmp_path, "last")
