"""Every task of the Ceph roles that handles a cephx key or the cluster secrets has no_log."""

import yaml
from conftest import ROOT

SECRET_MARKERS = ("ceph_common_keys", "ceph_common_secrets", ".key }}", "allmende.cloud.ceph_secrets", "ceph_auth")


def tasks_in(node):
    """Every task of a task file, including those inside blocks."""
    for task in node or []:
        if not isinstance(task, dict):
            continue
        yield task
        for key in ("block", "rescue", "always"):
            yield from tasks_in(task.get(key))


def test_tasks_handling_keys_do_not_log():
    files = sorted(ROOT.glob("roles/ceph_*/tasks/*.yml"))
    assert files
    unprotected = []
    checked = 0
    for path in files:
        for task in tasks_in(yaml.safe_load(path.read_text())):
            body = {k: v for k, v in task.items() if k not in ("name", "block", "rescue", "always", "when")}
            text = yaml.safe_dump(body)
            if any(marker in text for marker in SECRET_MARKERS) and "ansible.builtin.assert" not in text:
                checked += 1
                if task.get("no_log") is not True:
                    unprotected.append(f"{path.relative_to(ROOT)}: {task.get('name')}")
    assert checked >= 8
    assert unprotected == []
