"""The availability probe: bounded, fixed-rate, and its gaps and failures measured from real calls."""

import http.server
import json
import socket
import threading
import time
import urllib.request

import pytest

from allmende import probe


def test_percentiles_and_gaps_from_samples():
    samples = [probe.Sample("api", t / 10, 0.01 * (t % 5 + 1), True) for t in range(30)]
    samples[10:20] = [probe.Sample("api", t / 10, 0.5, False, "ConnectionRefusedError") for t in range(10, 20)]
    rep = probe.summarise("api", samples, 3.0)
    assert (rep.requests, rep.failures) == (30, 10)
    assert rep.errors == {"ConnectionRefusedError": 10}
    assert rep.p50 == pytest.approx(0.03) and rep.p99 == pytest.approx(0.05)
    # last answer before the outage ends at 0.9 + 0.05, the first after it at 2.0 + 0.01
    assert rep.longest_gap == pytest.approx(2.01 - 0.95)
    never = probe.summarise("dead", [probe.Sample("dead", 0.0, 1.0, False, "x")], 5.0)
    assert never.longest_gap == 5.0 and never.p50 is None


def test_bad_settings_are_refused_all_at_once():
    with pytest.raises(probe.ProbeError) as err:
        probe.Probe([probe.Check("a", lambda: None, rate=0), probe.Check("a", lambda: None, rate=500)], duration=0)
    text = str(err.value)
    assert "duration 0" in text and "rate 0" in text and "rate 500" in text and "unique" in text


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def _serve(port):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_an_outage_of_a_real_server_shows_as_failures_and_a_gap(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    servers = [_serve(port)]

    def call():
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as resp:
            assert resp.status == 200

    def outage(p):
        time.sleep(1.0)
        p.mark("server stopped")
        servers[0].shutdown()
        servers[0].server_close()
        time.sleep(1.5)
        servers.append(_serve(port))
        p.mark("server started")

    runner = probe.Probe([probe.Check("http", call, rate=20)], duration=4.0)
    started = time.monotonic()
    result = runner.run(during=outage)
    elapsed = time.monotonic() - started
    servers[-1].shutdown()
    rep = result.reports()[0]
    assert elapsed < 6.0, "the probe did not stop by itself"
    assert rep.requests <= 81
    assert 10 <= rep.failures <= 40, rep
    assert 1.4 <= rep.longest_gap <= 2.5, rep
    assert [m.label for m in result.marks] == ["server stopped", "server started"]
    data, picture = probe.write_report(result, tmp_path / "report")
    loaded = json.loads(data.read_text())
    assert loaded["checks"][0]["failures"] == rep.failures and len(loaded["samples"]) == rep.requests
    text = picture.read_text()
    assert text.startswith("<svg") and "server stopped" in text and "#d62728" in text


def test_the_cli_probes_real_listeners_and_refuses_bad_targets(tmp_path, capsys):
    from allmende import cli

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    tcp_port = listener.getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    server = _serve(0)
    http_port = server.server_address[1]
    try:
        rc = cli.main([
            "probe", "--duration", "1", "--rate", "10", "--out", str(tmp_path),
            "--tcp", f"open=127.0.0.1:{tcp_port}", "--tcp", f"closed=127.0.0.1:{closed_port}",
            "--http", f"web=http://127.0.0.1:{http_port}/", "--max-failures", "0",
        ])  # fmt: skip
    finally:
        listener.close()
        server.shutdown()
    out = capsys.readouterr().out
    assert rc == 1, out  # the closed port failed every call
    report = {c["name"]: c for c in json.loads((tmp_path / "probe.json").read_text())["checks"]}
    assert report["open"]["failures"] == 0 and report["web"]["failures"] == 0
    assert report["closed"]["failures"] == report["closed"]["requests"] >= 5
    assert "closed: " in out and "longest gap 1.00 s" in out
    bad = cli.main(["probe", "--tcp", "nohost", "--http", "x=ftp://a", "--duration", "1"])
    text = capsys.readouterr().out
    assert bad == 2 and "--tcp 'nohost'" in text and "--http 'x=ftp://a'" in text


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    """Answers POST /v3/auth/tokens like Keystone: 201 and a token for the one right password."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        identity = body["auth"]["identity"]["password"]["user"]
        scope = body["auth"]["scope"]["project"]
        good = (
            self.path == "/v3/auth/tokens"
            and identity == {"name": "admin", "domain": {"name": "Default"}, "password": "right"}
            and scope == {"name": "admin", "domain": {"name": "Default"}}
        )
        self.send_response(201 if good else 401)
        if good:
            self.send_header("X-Subject-Token", "gAAAA-token")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_token_checks_post_the_credentials_from_the_environment(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for key in probe.TOKEN_ENV:
            monkeypatch.delenv(key, raising=False)
        with pytest.raises(probe.ProbeError) as err:
            probe.checks_from_args([], [], 5.0, [f"keystone={url}/v3", "bad=ftp://x"])
        text = str(err.value)
        assert "OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME" in text and "--token 'bad=ftp://x'" in text
        monkeypatch.setenv("OS_USERNAME", "admin")
        monkeypatch.setenv("OS_PROJECT_NAME", "admin")
        monkeypatch.setenv("OS_PASSWORD", "right")
        # with or without the /v3 suffix
        for target in (f"keystone={url}/v3", f"keystone={url}"):
            (check,) = probe.checks_from_args([], [], 5.0, [target])
            check.call()
        monkeypatch.setenv("OS_PASSWORD", "wrong")
        (check,) = probe.checks_from_args([], [], 5.0, [f"keystone={url}"])
        with pytest.raises(probe.ProbeError, match="HTTP 401"):
            check.call()
    finally:
        server.shutdown()
