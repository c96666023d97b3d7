"""The kolla_set_configs of the base image: config.json validation, copy plan, copies and permissions."""

import json
import os
import pwd

import pytest
from conftest import load_plugin_module

ksc = load_plugin_module("images/base/kolla_set_configs.py")
ME = pwd.getpwuid(os.getuid()).pw_name


def test_config_is_parsed_with_owner_and_mode():
    command, files, perms = ksc.load(
        json.dumps(
            {
                "command": "uwsgi --ini /etc/keystone/keystone-uwsgi.ini",
                "config_files": [
                    {
                        "source": "/k/keystone.conf",
                        "dest": "/etc/keystone/keystone.conf",
                        "owner": "keystone",
                        "perm": "0600",
                    },
                    {"source": "/k/extra/*", "dest": "/etc/extra/", "optional": True, "merge": True},
                ],
                "permissions": [{"path": "/var/log/kolla/keystone", "owner": "keystone:kolla", "recurse": True}],
            }
        )
    )
    assert command.startswith("uwsgi")
    assert files[0]["owner"] == ("keystone", "keystone") and files[0]["perm"] == 0o600
    assert files[1]["optional"] and files[1]["merge"] and files[1]["owner"] is None and files[1]["perm"] is None
    assert perms == [{"path": "/var/log/kolla/keystone", "owner": ("keystone", "kolla"), "perm": None, "recurse": True}]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[]", "must be an object"),
        ("{", "not JSON"),
        ('{"config_files": []}', "command is missing"),
        ('{"command": "x", "config_files": [{"dest": "/a"}]}', r"config_files\[0\]\.source is missing"),
        ('{"command": "x", "config_files": [{"source": "/a", "dest": "/b", "perm": "0999"}]}', "not an octal mode"),
        ('{"command": "x", "config_files": [{"source": "/a", "dest": "/b", "perm": "077777"}]}', "out of range"),
        ('{"command": "x", "config_files": [{"source": "/a", "dest": "/b", "owner": ":grp"}]}', "has no user"),
        ('{"command": "x", "permissions": [{"path": "/a"}]}', r"permissions\[0\]: needs owner or perm"),
    ],
)
def test_bad_config_is_refused_naming_the_field(config, message):
    with pytest.raises(ksc.ConfigError, match=message):
        ksc.load(config)


def test_copy_plan_globs_directories_and_optional_sources(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.conf").write_text("a")
    (src / "b.conf").write_text("b")
    entry = {"owner": None, "perm": None, "optional": False, "merge": False}
    plan = ksc.plan_copies(
        [
            dict(entry, source=str(src / "a.conf"), dest="/etc/x/x.conf"),
            dict(entry, source=str(src / "*.conf"), dest="/etc/y"),
            dict(entry, source=str(src / "none"), dest="/etc/z", optional=True),
        ]
    )
    assert [(s.rsplit("/", 1)[1], d) for s, d, _entry in plan] == [
        ("a.conf", "/etc/x/x.conf"),
        ("a.conf", "/etc/y/a.conf"),
        ("b.conf", "/etc/y/b.conf"),
    ]
    with pytest.raises(ksc.ConfigError, match="source not found"):
        ksc.plan_copies([dict(entry, source=str(src / "none"), dest="/etc/z")])


def test_copies_replace_and_set_modes_and_check_sees_changes(tmp_path, monkeypatch):
    src, dest = tmp_path / "config", tmp_path / "etc"
    src.mkdir()
    (src / "service.conf").write_text("[DEFAULT]\ndebug = true\n")
    (src / "policy.d").mkdir()
    (src / "policy.d" / "one.yaml").write_text("{}")
    dest.mkdir()
    (dest / "service.conf").write_text("old")
    (dest / "policy.d").mkdir()
    (dest / "policy.d" / "stale.yaml").write_text("stale")
    log_dir = tmp_path / "log" / "service"
    config = {
        "command": "/bin/true",
        "config_files": [
            {"source": str(src / "service.conf"), "dest": str(dest / "service.conf"), "owner": ME, "perm": "0600"},
            {"source": str(src / "policy.d"), "dest": str(dest / "policy.d"), "perm": "0750"},
        ],
        "permissions": [{"path": str(log_dir), "owner": f"{ME}:{ME}" if ME == "root" else ME, "perm": "0700"}],
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    run_command = tmp_path / "run_command"
    monkeypatch.setattr(ksc, "RUN_COMMAND", str(run_command))
    monkeypatch.setenv("KOLLA_CONFIG_STRATEGY", "COPY_ALWAYS")
    assert ksc.main(["--config", str(path), "--check"]) == 1
    assert ksc.main(["--config", str(path)]) == 0
    assert (dest / "service.conf").read_text().startswith("[DEFAULT]")
    assert (dest / "service.conf").stat().st_mode & 0o777 == 0o600
    # A directory source replaces the destination (no merge): the stale file is gone.
    assert sorted(p.name for p in (dest / "policy.d").iterdir()) == ["one.yaml"]
    assert (dest / "policy.d").stat().st_mode & 0o777 == 0o750
    assert log_dir.is_dir() and log_dir.stat().st_mode & 0o777 == 0o700
    assert run_command.read_text() == "/bin/true"
    assert ksc.main(["--config", str(path), "--check"]) == 0
    # COPY_ALWAYS: a changed source is copied again at the next start.
    (src / "service.conf").write_text("[DEFAULT]\ndebug = false\n")
    assert ksc.main(["--config", str(path), "--check"]) == 1
    assert ksc.main(["--config", str(path)]) == 0
    assert "false" in (dest / "service.conf").read_text()


def test_copy_once_copies_only_the_first_time_and_bad_strategy_fails(tmp_path, monkeypatch):
    src = tmp_path / "a"
    src.write_text("1")
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"command": "x", "config_files": [{"source": str(src), "dest": str(tmp_path / "b")}]}))
    monkeypatch.setattr(ksc, "RUN_COMMAND", str(tmp_path / "run_command"))
    monkeypatch.setattr(ksc, "CONFIGURED_MARKER", str(tmp_path / "configured"))
    monkeypatch.setenv("KOLLA_CONFIG_STRATEGY", "COPY_ONCE")
    assert ksc.main(["--config", str(path)]) == 0
    src.write_text("2")
    assert ksc.main(["--config", str(path)]) == 0
    assert (tmp_path / "b").read_text() == "1"
    monkeypatch.setenv("KOLLA_CONFIG_STRATEGY", "COPY_SOMETIMES")
    assert ksc.main(["--config", str(path)]) == 2


def test_unknown_owner_is_an_error(tmp_path, monkeypatch):
    src = tmp_path / "a"
    src.write_text("1")
    path = tmp_path / "config.json"
    entry = {"source": str(src), "dest": str(tmp_path / "b"), "owner": "no-such-user-here"}
    path.write_text(json.dumps({"command": "x", "config_files": [entry]}))
    monkeypatch.setattr(ksc, "RUN_COMMAND", str(tmp_path / "run_command"))
    assert ksc.main(["--config", str(path)]) == 2
