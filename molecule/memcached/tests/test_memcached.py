"""memcached in containers through the service_container mechanism: systemd supervision, the
cache answering, restarts and recreates of only what changed, the check and stop actions."""

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
from check_action import deploy, drift
from scenario_hosts import ADDRESS, HOSTS

PLAYBOOK = "memcached.yml"
UNIT = "allmende-memcached.service"


def inspect(host, fmt):
    return host.check_output(f"podman container inspect --format '{fmt}' memcached")


def started(host):
    return inspect(host, "{{.State.StartedAt}}")


def container_ids():
    return {name: inspect(host, "{{.Id}}") for name, host in HOSTS.items()}


def start_times():
    return {name: started(host) for name, host in HOSTS.items()}


def memcached(host, address, commands):
    """Send memcached text protocol commands over TCP from host; the reply."""
    script = "".join(f"{c}\\r\\n" for c in [*commands, "quit"])
    return host.check_output(f"timeout 10 bash -c 'exec 3<>/dev/tcp/{address}/11211; printf \"{script}\" >&3; cat <&3'")


def memcached_args(host):
    return host.check_output("ps -o args= -C memcached")


def test_three_control_nodes():
    assert len(HOSTS) == 3


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_container_runs_under_its_systemd_unit(name):
    host = HOSTS[name]
    assert host.service(UNIT).is_running
    assert host.service(UNIT).is_enabled
    assert inspect(host, "{{.State.Status}}") == "running"
    main_pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    assert host.check_output(f"ps -o args= -p {main_pid}") == "/usr/bin/podman start --attach memcached"
    # the kolla contract: rendered files mounted read-only, copied into place at start
    assert host.file("/etc/allmende/memcached/config.json").exists
    mounts = inspect(host, "{{range .Mounts}}{{.Source}} {{.Destination}} {{.RW}}\n{{end}}").splitlines()
    mounts = [tuple(m.rstrip("/") for m in line.split()) for line in mounts]
    assert ("/etc/allmende/memcached", "/var/lib/kolla/config_files", "false") in mounts
    assert inspect(host, '{{index .Config.Labels "allmende.config-hash"}}')
    assert f"-l {ADDRESS[name]} -p 11211" in memcached_args(host)


def test_memcached_answers_set_and_get_over_tcp_from_another_host():
    node1, node2 = HOSTS["node1"], HOSTS["node2"]
    assert "STORED" in memcached(node1, ADDRESS["node2"], ["set allmende 0 0 5", "hello"])
    reply = memcached(node2, ADDRESS["node2"], ["get allmende"])
    assert "VALUE allmende 0 5" in reply and "hello" in reply


def test_an_override_file_restarts_only_the_container_of_that_host(tmp_path):
    overrides = tmp_path / "overrides"
    (overrides / "memcached" / "node2").mkdir(parents=True)
    (overrides / "memcached" / "node2" / "memcached.conf").write_text(
        "-u memcache\n-l {{ memcached_listen_address }}\n-p {{ memcached_port }}\n-U 0\n-m 96\n-c 4096\n"
    )
    override = ("-e", f"allmende_overrides_dir={overrides}")
    before = start_times()
    try:
        deploy(PLAYBOOK, *override)
        after = start_times()
        assert after["node2"] != before["node2"]
        assert {n: after[n] for n in ("node1", "node3")} == {n: before[n] for n in ("node1", "node3")}
        assert "-m 96" in memcached_args(HOSTS["node2"])
        assert "-m 64" in memcached_args(HOSTS["node1"])
        # a second run with the same override changes nothing
        again = start_times()
        deploy(PLAYBOOK, *override)
        assert start_times() == again
    finally:
        deploy(PLAYBOOK)
    assert "-m 64" in memcached_args(HOSTS["node2"])


def test_an_environment_change_recreates_the_containers():
    before = container_ids()
    try:
        deploy(PLAYBOOK, "-e", '{"memcached_environment": {"ALLMENDE_PROBE": "1"}}')
        after = container_ids()
        assert all(after[n] != before[n] for n in HOSTS), (before, after)
        assert "ALLMENDE_PROBE=1" in inspect(HOSTS["node1"], "{{.Config.Env}}")
        assert all(HOSTS[n].service(UNIT).is_running for n in HOSTS)
    finally:
        deploy(PLAYBOOK)
    assert "ALLMENDE_PROBE" not in inspect(HOSTS["node1"], "{{.Config.Env}}")


def test_a_moved_image_tag_recreates_the_container_on_that_host_only():
    node3 = HOSTS["node3"]
    # The image the role deployed: <testbed gateway>:<port>/allmende/memcached:<tag> from the local registry.
    image = inspect(node3, "{{.ImageName}}")
    assert image.split("/")[1:] == ["allmende", image.split("/")[-1]] and ":" in image.split("/")[0]
    old_image = node3.check_output(f"podman image inspect --format '{{{{.Id}}}}' {image}")
    before = container_ids()
    try:
        recipe = f"FROM {image}\\nLABEL allmende.test=moved\\n"
        node3.check_output(f"printf '{recipe}' | podman build -q -t {image} -f - /tmp")
        new_image = node3.check_output(f"podman image inspect --format '{{{{.Id}}}}' {image}")
        assert new_image != old_image
        deploy(PLAYBOOK)
        after = container_ids()
        assert after["node3"] != before["node3"]
        assert {n: after[n] for n in ("node1", "node2")} == {n: before[n] for n in ("node1", "node2")}
        assert inspect(node3, "{{.Image}}") == new_image
    finally:
        node3.run(f"podman tag {old_image} {image}")
        deploy(PLAYBOOK)
    assert inspect(node3, "{{.Image}}") == old_image


def test_check_action_reports_drift_and_changes_nothing():
    assert drift(PLAYBOOK) == {}
    node1, node2 = HOSTS["node1"], HOSTS["node2"]
    try:
        node1.check_output("echo '-v' >> /etc/allmende/memcached/memcached.conf")
        # systemctl: a container stopped behind systemd's back exits non-zero and is started again
        node2.check_output(f"systemctl stop {UNIT}")
        found = drift(PLAYBOOK)
        assert set(found) == {"node1", "node2"}, found
        assert "memcached role" in found["node1"]
        assert "/etc/allmende/memcached/memcached.conf differs" in found["node1"]
        assert f"{UNIT} is not running" in found["node2"]
        # nothing was repaired by the check
        assert "-v" in node1.file("/etc/allmende/memcached/memcached.conf").content_string
        assert not node2.service(UNIT).is_running
    finally:
        deploy(PLAYBOOK)
    assert drift(PLAYBOOK) == {}


def test_stop_action_stops_every_container_and_deploy_starts_them_again():
    try:
        deploy(PLAYBOOK, "-e", "allmende_action=stop")
        for host in HOSTS.values():
            assert not host.service(UNIT).is_running
            assert not host.service(UNIT).is_enabled
            assert inspect(host, "{{.State.Status}}") != "running"
    finally:
        deploy(PLAYBOOK)
    for host in HOSTS.values():
        assert host.service(UNIT).is_running


def test_a_killed_container_is_started_again_by_systemd():
    node3 = HOSTS["node3"]
    before = started(node3)
    restarts = int(node3.check_output(f"systemctl show -p NRestarts --value {UNIT}"))
    node3.check_output("podman kill memcached")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = node3.run("podman container inspect --format '{{.State.Status}}' memcached").stdout.strip()
        if state == "running" and started(node3) != before:
            break
        time.sleep(2)
    assert started(node3) != before
    assert int(node3.check_output(f"systemctl show -p NRestarts --value {UNIT}")) == restarts + 1
    assert "VERSION" in memcached(node3, ADDRESS["node3"], ["version"])
