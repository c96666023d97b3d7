"""The local NetBox keeps its database password out of process lists and errors, and stops only its own processes."""

import subprocess
import time

import pytest

from allmende import audit, netbox_server


def test_sql_with_the_password_goes_in_on_stdin_never_as_an_argument(monkeypatch, tmp_path):
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["argv"], seen["input"] = cmd, kwargs.get("input")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(netbox_server.subprocess, "run", fake_run)
    nb = netbox_server.NetboxInstance(tmp_path, 18080)
    netbox_server._psql(nb, "CREATE ROLE netbox LOGIN PASSWORD 'pw-0123456789'", hide=("pw-0123456789",))
    assert not any("pw-0123456789" in arg for arg in seen["argv"])
    assert "pw-0123456789" in seen["input"]


def test_a_failing_command_does_not_repeat_the_secret_in_its_error():
    with pytest.raises(netbox_server.NetboxError) as err:
        netbox_server._run(["sh", "-c", "cat >&2; exit 3"], stdin="PASSWORD 'pw-0123456789'", hide=("pw-0123456789",))
    assert "pw-0123456789" not in str(err.value) and "********" in str(err.value)


def test_down_does_not_signal_a_process_that_is_not_the_netbox_it_started(monkeypatch, tmp_path):
    monkeypatch.setenv("ALLMENDE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("ALLMENDE_NETBOX_PGDIR", str(tmp_path / "pg"))
    nb = netbox_server.instance()
    nb.run_dir.mkdir(parents=True)
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        for name in ("gunicorn.pid", "rqworker.pid", "redis.pid"):
            (nb.run_dir / name).write_text(f"{stranger.pid}\n")
        messages = []
        netbox_server.down(log=messages.append)
        time.sleep(0.2)
        assert stranger.poll() is None, "down killed a process it did not start"
        assert any("not the process this NetBox started" in m for m in messages)
        assert not (nb.run_dir / "gunicorn.pid").exists()
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.parametrize("content", ["", "\n", "not-a-pid\n"])
def test_a_pid_file_still_being_written_reads_as_not_running(tmp_path, content):
    # redis creates its pid file first and writes the pid a moment later: waiting for it must not crash
    pidfile = tmp_path / "redis.pid"
    pidfile.write_text(content)
    assert netbox_server._read_pid(pidfile) is None
    assert netbox_server._alive(pidfile) is False


def test_a_pid_file_of_a_live_process_reads_as_running(tmp_path):
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(f"{subprocess.os.getpid()}\n")
    assert netbox_server._alive(pidfile) is True


def test_one_netbox_can_serve_several_state_directories(monkeypatch, tmp_path):
    monkeypatch.setenv("ALLMENDE_STATE_DIR", str(tmp_path / "lane2"))
    monkeypatch.delenv("ALLMENDE_NETBOX_DIR", raising=False)
    assert netbox_server.instance().base == tmp_path / "lane2" / "netbox"
    monkeypatch.setenv("ALLMENDE_NETBOX_DIR", str(tmp_path / "shared"))
    assert netbox_server.instance().base == tmp_path / "shared"
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "secrets.json").write_text('{"api_token": "t0ken-in-the-shared-netbox"}')
    assert audit.netbox_secrets(tmp_path / "lane2") == ["t0ken-in-the-shared-netbox"]
