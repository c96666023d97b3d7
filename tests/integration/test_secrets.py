"""The deployment secrets store through the real driver and Ansible (on the controller, no testbed)."""

import os
import shutil
import stat

import pytest
from test_exit_codes import HERE, allmende, no_traceback, summaries

from allmende.errors import ExitCode


@pytest.fixture
def env(tmp_path):
    state = {"ALLMENDE_STATE_DIR": str(tmp_path / "state"), "NETBOX_API": "", "NETBOX_TOKEN": ""}
    return {**{k: v for k, v in os.environ.items() if k != "ALLMENDE_NETBOX_DIR"}, **state}


def _site(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(HERE / "data" / "local" / "hosts.yml", site / "hosts.yml")
    return site


def _apply(env, site, playbook, output):
    return allmende(
        env, "apply", str(HERE / "playbooks" / playbook), "-i", str(site / "hosts.yml"),
        "-e", f"demo_output={output}", "--progress", "lines",
    )  # fmt: skip


def test_secrets_are_generated_once_encrypted_and_kept_out_of_run_records(env, tmp_path):
    site = _site(tmp_path)
    output = tmp_path / "demo.conf"
    first = _apply(env, site, "secrets_use.yml", output)
    assert first.returncode == ExitCode.OK, first.stdout + first.stderr
    rendered = output.read_text()
    second = _apply(env, site, "secrets_use.yml", output)
    assert second.returncode == ExitCode.OK, second.stdout + second.stderr
    assert output.read_text() == rendered, "a second run changed a secret"
    assert summaries(env)[-1]["stats"]["local"]["changed"] == 0

    store = site / "secrets.yml"
    assert store.read_bytes().startswith(b"$ANSIBLE_VAULT;1.1;AES256")
    password = rendered.split("demo:", 1)[1].split("@", 1)[0]
    assert len(password) == 32 and password.encode() not in store.read_bytes()
    for path in (store, site / "vault.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    audit = allmende(env, "runs", "audit")
    assert audit.returncode == ExitCode.OK, audit.stdout + audit.stderr
    assert f"secrets store {site.resolve()}: 2 secret(s)" in audit.stdout, audit.stdout


def test_the_audit_finds_a_store_secret_that_a_task_printed(env, tmp_path):
    site = _site(tmp_path)
    leak = _apply(env, site, "secrets_leak.yml", tmp_path / "unused")
    assert leak.returncode == ExitCode.OK, leak.stdout + leak.stderr
    audit = allmende(env, "runs", "audit")
    assert audit.returncode == ExitCode.FAILED, audit.stdout
    assert f"secret from secrets store {site.resolve()}" in audit.stdout, audit.stdout
    no_traceback(audit)


def test_a_store_without_its_key_stops_the_run_and_keeps_the_file(env, tmp_path):
    site = _site(tmp_path)
    output = tmp_path / "demo.conf"
    assert _apply(env, site, "secrets_use.yml", output).returncode == ExitCode.OK
    before = (site / "secrets.yml").read_bytes()
    (site / "vault.key").unlink()
    proc = _apply(env, site, "secrets_use.yml", output)
    assert proc.returncode == ExitCode.FAILED, proc.stdout + proc.stderr
    assert "restore the key" in proc.stdout, proc.stdout
    assert (site / "secrets.yml").read_bytes() == before
    assert not (site / "vault.key").exists()
