from allmende.events import RunTracker, failure_message, task_label


def ev(kind, **data):
    return {"event": kind, "event_data": data, "created": "2026-01-01T00:00:00"}


def run_events(tracker, events):
    return [tracker.handle(e) for e in events]


def test_counts_follow_ansible_recap_semantics():
    t = RunTracker()
    results = run_events(
        t,
        [
            ev("playbook_on_play_start", name="Bootstrap"),
            ev("playbook_on_task_start", task="Install"),
            ev("runner_on_start", host="n1", task="Install", role="bootstrap"),
            ev("runner_on_ok", host="n1", task="Install", role="bootstrap", res={"changed": True}),
            ev("runner_on_ok", host="n2", task="Install", role="bootstrap", res={"changed": False}),
            ev("runner_on_skipped", host="n3", task="Install"),
        ],
    )
    assert t.play == "Bootstrap"
    assert [r.status for r in results if r] == ["changed", "ok", "skipped"]
    assert (t.hosts["n1"].ok, t.hosts["n1"].changed) == (1, 1)
    assert (t.hosts["n2"].ok, t.hosts["n2"].changed) == (1, 0)
    assert t.hosts["n3"].skipped == 1
    assert t.tasks_started == 1


def test_current_task_per_host():
    t = RunTracker()
    t.handle(ev("runner_on_start", host="n1", task="Configure chrony", role="bootstrap"))
    assert t.hosts["n1"].task == "bootstrap : Configure chrony"
    assert t.hosts["n1"].state == "running"


def test_failure_names_host_and_task_and_is_final_only_if_stats_say_so():
    t = RunTracker()
    t.handle(ev("runner_on_failed", host="n2", task="Break", res={"msg": "boom", "rc": 3}))
    t.handle(ev("runner_on_failed", host="n1", task="Ignored", ignore_errors=True, res={"msg": "meh"}))
    t.handle(ev("runner_on_unreachable", host="n3", task="Gather", res={"msg": "ssh: connect refused"}))
    t.handle(ev("playbook_on_stats", ok={"n1": 3}, failures={"n2": 1}, dark={"n3": 1}, changed={}, skipped={}))
    assert t.failed_hosts == ["n2", "n3"]
    final = t.final_failures()
    assert [(f.host, f.task, f.kind) for f in final] == [("n2", "Break", "failed"), ("n3", "Gather", "unreachable")]
    assert "boom" in final[0].message and "rc=3" in final[0].message
    assert t.hosts["n1"].ignored == 1 and t.hosts["n1"].failed == 0


def test_rescued_failure_is_not_reported():
    t = RunTracker()
    t.handle(ev("runner_on_failed", host="n1", task="Try", res={"msg": "first attempt"}))
    t.handle(ev("playbook_on_stats", ok={"n1": 2}, failures={}, dark={}, rescued={"n1": 1}))
    assert t.failed_hosts == []
    assert t.final_failures() == []


def test_warnings_are_collected_once_per_host():
    t = RunTracker()
    res = {"changed": False, "warnings": ["module x not available"]}
    r = t.handle(ev("runner_on_ok", host="n1", task="Modules", res=res))
    t.handle(ev("runner_on_ok", host="n1", task="Modules again", res=res))
    assert r.warnings == ["module x not available"]
    assert t.warnings == ["n1: module x not available"]


def test_failure_message_prefers_error_lines_and_loop_items():
    apt = {
        "msg": "'/usr/bin/apt-get -y install foo' failed: E: Could not get lock",
        "rc": 100,
        "stderr": "debconf: delaying package configuration\nE: Could not get lock /var/lib/dpkg/lock\n",
    }
    message = failure_message(apt)
    assert "E: Could not get lock /var/lib/dpkg/lock" in message
    assert "rc=100" in message
    loop = {"results": [{"item": "a", "failed": False}, {"item": "b", "failed": True, "msg": "bad b"}]}
    assert failure_message(loop) == "item b: bad b"
    assert failure_message({}) == "failed without a message"
    assert len(failure_message({"msg": "x" * 5000})) <= 400


def test_task_label_does_not_repeat_role():
    assert task_label({"task": "bootstrap : Install", "role": "bootstrap"}) == "bootstrap : Install"
    assert task_label({"task": "Install", "role": "bootstrap"}) == "bootstrap : Install"
    assert task_label({"task": "Install"}) == "Install"
