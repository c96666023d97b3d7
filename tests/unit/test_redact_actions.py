import base64
import json
import urllib.parse
from pathlib import Path

from allmende import actions, redact
from allmende.paths import collection_root

ROOT = collection_root()


def test_secret_looking_extra_vars_are_masked_others_kept():
    assert redact.mask_extra_var("db_password=abc region=one") == f"db_password={redact.MASK} region=one"
    masked = json.loads(redact.mask_extra_var('{"a": {"api_token": "x"}, "b": "y"}'))
    assert masked == {"a": {"api_token": redact.MASK}, "b": "y"}
    assert redact.mask_extra_var("@vars.yml") == "@vars.yml"
    assert redact.mask_command(["ansible-playbook", "-e", "pass=1", "--extra-vars=token=2", "x.yml"]) == [
        "ansible-playbook",
        "-e",
        f"pass={redact.MASK}",
        f"--extra-vars=token={redact.MASK}",
        "x.yml",
    ]


def test_environment_keeps_only_ansible_and_driver_settings():
    env = redact.scrub_env({"ANSIBLE_CONFIG": "/a.cfg", "NETBOX_TOKEN": "t", "ALLMENDE_API_KEY": "k", "PATH": "/bin"})
    assert env == {"ALLMENDE_API_KEY": redact.MASK, "ANSIBLE_CONFIG": "/a.cfg", "PATH": "/bin"}


def test_leaks_are_found_in_every_form(tmp_path):
    secret = "s3cret/with+chars="
    (tmp_path / "plain").write_text(f"x {secret} y")
    (tmp_path / "url").write_text(urllib.parse.quote(secret, safe=""))
    (tmp_path / "b64").write_text(base64.b64encode(secret.encode()).decode())
    (tmp_path / "clean").write_text("nothing here")
    found = dict((p.rsplit("/", 1)[1], form) for p, form in redact.find_leaks(tmp_path, [secret]))
    assert found == {"plain": "plain", "url": "url-encoded", "b64": "base64"}


def test_roles_offer_the_actions_of_their_argument_specs():
    assert actions.role_actions(ROOT, "bootstrap") == ["deploy", "check"]
    assert "remove_member" in actions.role_actions(ROOT, "ovn_central")
    assert "upgrade" in actions.role_actions(ROOT, "ceph_osd")


def test_every_role_has_a_task_file_per_action_and_one_spelling():
    for role in sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir()):
        offered = actions.role_actions(ROOT, role)
        assert {"deploy", "check"} <= set(offered), role
        for action in offered:
            assert action.replace("_", "").isalpha() and action.islower(), (role, action)
            assert (ROOT / "roles" / role / "tasks" / f"{action}.yml").is_file(), (role, action)


def test_playbooks_offer_what_all_their_roles_offer():
    site = ROOT / "playbooks" / "site.yml"
    roles = actions.playbook_roles(site)
    assert {"bootstrap", "network", "ovn_central", "ceph_mon", "ceph_osd", "libvirt"} <= roles
    offered, per_role = actions.playbook_actions(ROOT, site)
    assert offered == ["deploy", "check"]
    assert per_role["ceph_mon"] == ["deploy", "check", "restart", "upgrade"]
    reason = actions.check_action(ROOT, "upgrade", "playbook", "ceph", ROOT / "playbooks" / "ceph.yml")
    assert reason and "ceph offers deploy, check" in reason and "ceph_common" in reason
    rolling = ROOT / "playbooks" / "ceph-rolling-restart.yml"
    assert actions.check_action(ROOT, "upgrade", "playbook", "ceph-rolling-restart", rolling) is None


def test_audit_finds_a_netbox_secret_in_a_run_record(tmp_path, monkeypatch):
    from allmende import audit

    monkeypatch.setenv("ALLMENDE_STATE_DIR", str(tmp_path))
    (tmp_path / "netbox").mkdir()
    (tmp_path / "netbox" / "secrets.json").write_text(json.dumps({"db_password": "pw-0123456789abcdef"}))
    record = tmp_path / "runs" / "r1" / "artifacts" / "r1" / "job_events"
    record.mkdir(parents=True)
    (record / "1-a.json").write_text('{"res": {"stdout": "nothing"}}')
    assert audit.audit(tmp_path).leaks == []
    (record / "2-b.json").write_text('{"res": {"stdout": "password=pw-0123456789abcdef"}}')
    leaks = audit.audit(tmp_path).leaks
    assert [(Path(f).name, form, source) for f, form, source in leaks] == [("2-b.json", "plain", "netbox")]
