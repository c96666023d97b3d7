"""Every exit code of docs/driver.md, produced by the real `allmende` command (no testbed needed)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from allmende.errors import ExitCode
from allmende.lock import DeploymentLock

BIN = Path(sys.executable).parent
HERE = Path(__file__).parent
LOCAL = str(HERE / "data" / "local" / "hosts.yml")
NO_CONTROL = str(HERE / "data" / "local" / "no-control.yml")


@pytest.fixture
def env(tmp_path):
    state = {"ALLMENDE_STATE_DIR": str(tmp_path / "state"), "NETBOX_API": "", "NETBOX_TOKEN": ""}
    return {**{k: v for k, v in os.environ.items() if k != "ALLMENDE_NETBOX_DIR"}, **state}


def allmende(env, *args, timeout=300):
    return subprocess.run(
        [str(BIN / "allmende"), *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def no_traceback(proc):
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def summaries(env):
    runs = Path(env["ALLMENDE_STATE_DIR"]) / "runs"
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*/summary.json"))]


def test_ok(env):
    proc = allmende(env, "apply", str(HERE / "playbooks" / "local_ok.yml"), "-i", LOCAL, "--progress", "lines")
    assert proc.returncode == ExitCode.OK, proc.stdout + proc.stderr
    assert summaries(env)[-1]["status"] == "successful"


@pytest.mark.parametrize(
    "args",
    [
        ("testbed", "up", "--subnet", "foo"),
        ("testbed", "up", "--nodes", "0"),
        ("apply", "bootstrap", "--forks", "0"),
        ("runs", "--last", "0"),
        ("netbox", "up", "--port", "http"),
    ],
)
def test_bad_cli_values_are_usage_errors(env, args):
    proc = allmende(env, *args)
    assert proc.returncode == ExitCode.USAGE, proc.stdout + proc.stderr
    no_traceback(proc)
    assert proc.stderr.strip().splitlines()[-1].startswith("allmende"), proc.stderr
    assert not (Path(env["ALLMENDE_STATE_DIR"]) / "testbeds").exists()


def test_bogus_action_is_refused_with_the_valid_ones(env):
    proc = allmende(env, "apply", "bootstrap", "-i", LOCAL, "--action", "bogus")
    assert proc.returncode == ExitCode.USAGE
    assert "--action bogus: bootstrap offers deploy, check" in proc.stdout, proc.stdout
    no_traceback(proc)
    assert summaries(env) == []
    role = allmende(env, "apply", "ovn_central", "-i", LOCAL, "--action", "remove-member")
    assert role.returncode == ExitCode.USAGE and "remove_member" in role.stdout, role.stdout


def test_host_failure(env):
    proc = allmende(env, "apply", str(HERE / "playbooks" / "local_fail.yml"), "-i", LOCAL, "--progress", "lines")
    assert proc.returncode == ExitCode.FAILED, proc.stdout + proc.stderr
    assert "broken on purpose" in proc.stdout
    assert summaries(env)[-1]["status"] == "failed"


def test_refused_by_validation(env):
    check = allmende(env, "inventory", "check", "-i", NO_CONTROL)
    assert check.returncode == ExitCode.REFUSED, check.stdout
    assert "group control: no hosts" in check.stdout
    proc = allmende(env, "apply", str(HERE / "playbooks" / "local_fail.yml"), "-i", NO_CONTROL)
    assert proc.returncode == ExitCode.REFUSED, proc.stdout + proc.stderr
    assert "group control: no hosts" in proc.stdout
    assert summaries(env) == []  # nothing ran


def test_busy_while_another_run_holds_the_deployment(env):
    state = Path(env["ALLMENDE_STATE_DIR"])
    state.mkdir(parents=True)
    with DeploymentLock(state, [LOCAL], run_id="20261201-000000-other-abcd"):
        proc = allmende(env, "apply", str(HERE / "playbooks" / "local_fail.yml"), "-i", LOCAL)
    assert proc.returncode == ExitCode.BUSY, proc.stdout + proc.stderr
    assert "run 20261201-000000-other-abcd" in proc.stdout and f"pid {os.getpid()}" in proc.stdout
    no_traceback(proc)
    after = allmende(env, "apply", str(HERE / "playbooks" / "local_fail.yml"), "-i", LOCAL)
    assert after.returncode == ExitCode.FAILED  # the lock is free again


def start_sleeper(env):
    proc = subprocess.Popen(
        [str(BIN / "allmende"), "apply", str(HERE / "playbooks" / "local_sleep.yml"), "-i", LOCAL, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    for line in proc.stdout:
        if '"Sleep (bounded)"' in line or time.monotonic() > deadline:
            break
    return proc


def test_interrupted_by_sigterm(env):
    proc = start_sleeper(env)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED
    assert summaries(env)[-1]["status"] == "interrupted"


def test_a_killed_driver_shows_as_interrupted(env):
    proc = start_sleeper(env)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    subprocess.run(["pkill", "-f", "local_sleep.yml"], check=False)
    assert summaries(env)[-1]["status"] == "running"  # what the killed driver left behind
    listing = allmende(env, "runs")
    assert "interrupted" in listing.stdout and "running" not in listing.stdout, listing.stdout
    # its lock died with it
    again = allmende(env, "apply", str(HERE / "playbooks" / "local_fail.yml"), "-i", LOCAL)
    assert again.returncode == ExitCode.FAILED


def test_environment_errors(env, tmp_path):
    site = tmp_path / "site.yml"
    site.write_text("sites: []\n")
    unreachable = {**env, "NETBOX_API": "http://127.0.0.1:9", "NETBOX_TOKEN": "x" * 40}
    proc = allmende(unreachable, "netbox", "sync", str(site))
    assert proc.returncode == ExitCode.ENVIRONMENT, proc.stdout + proc.stderr
    assert "NetBox unreachable" in proc.stdout and "127.0.0.1:9" in proc.stdout
    assert len(proc.stdout.strip().splitlines()) == 1
    no_traceback(proc)
    state = Path(env["ALLMENDE_STATE_DIR"]) / "testbeds" / "broken"
    state.mkdir(parents=True)
    (state / "state.json").write_text("{not json")
    status = allmende(env, "testbed", "status", "--name", "broken")
    assert status.returncode == ExitCode.ENVIRONMENT
    assert "corrupt" in status.stdout and "state.json" in status.stdout
    no_traceback(status)


def test_run_records_hold_no_secret_from_the_environment_or_extra_vars(env):
    from allmende.redact import find_leaks

    secret_env, secret_var = "s3cr3t-from-the-environment-1234", "hunter2/hunter2+hunter2=="
    env = {**env, "OPERATOR_API_TOKEN": secret_env}
    proc = allmende(
        env,
        "apply",
        str(HERE / "playbooks" / "local_ok.yml"),
        "-i",
        LOCAL,
        "-e",
        f"db_password={secret_var}",
        "-e",
        json.dumps({"nested": {"admin_token": secret_var}, "plain": "visible-value"}),
    )
    assert proc.returncode == ExitCode.OK, proc.stdout + proc.stderr
    runs = Path(env["ALLMENDE_STATE_DIR"]) / "runs"
    command = next(runs.glob("*/artifacts/*/command"))
    recorded = json.loads(command.read_text())
    assert "-e" in recorded["command"] and "visible-value" in command.read_text()
    assert find_leaks(runs, [secret_env, secret_var]) == []
