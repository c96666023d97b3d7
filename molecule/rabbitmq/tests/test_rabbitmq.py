"""The RabbitMQ cluster of allmende.cloud.rabbitmq: three running nodes, one user and vhost per
service with quorum queues by default, messages through any node, no guest, messages kept through a
restart of every node one at a time and through a rolling recreate with the queue available, the
check action reporting drift, and no generated secret in any run output, container log or journal."""

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from allmende import paths

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
from check_action import deploy, drift
from scenario_hosts import ADDRESS, HOSTS, TESTBED

PLAYBOOK = "rabbitmq.yml"
UNIT = "allmende-rabbitmq.service"
SERVICES = ["nova", "neutron", "cinder", "octavia"]
CLIENT = Path(__file__).with_name("amqp_client.py")
# The JSON output of every playbook run of these tests (searched for secrets at the end).
RUN_OUTPUTS = []


def secrets():
    store = paths.collection_module("plugins/plugin_utils/secret_store.py", "allmende_secret_store")
    return store.SecretStore(str(TESTBED.inventory_dir)).read_all()


@pytest.fixture(scope="module")
def password():
    values = secrets()
    return {s: values[f"rabbitmq_{s}_password"] for s in SERVICES}


@pytest.fixture(scope="module")
def amqp(tmp_path_factory):
    """A function running one request of amqp_client.py with pika from a venv of its own."""
    venv = tmp_path_factory.mktemp("pika") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "pika==1.3.2"], check=True, timeout=300)

    def run(**req):
        proc = subprocess.run(
            [str(venv / "bin" / "python"), str(CLIENT)],
            input=json.dumps(req),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(proc.stdout)

    return run


def ctl(host, *args):
    return host.check_output("podman exec rabbitmq rabbitmqctl -q " + " ".join(args))


def cluster(host):
    return json.loads(ctl(host, "cluster_status", "--formatter", "json"))


def run(*args):
    result = deploy(PLAYBOOK, *args)
    RUN_OUTPUTS.append(json.dumps(result))
    return result


def wait(predicate, what, seconds=240):
    """Poll predicate() every 3 s until it is true, for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (AssertionError, ValueError):  # the CLI fails while the node starts
            pass
        time.sleep(3)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def three_running(host):
    return sorted(cluster(host)["running_nodes"]) == ["rabbit@node1", "rabbit@node2", "rabbit@node3"]


def container_ids():
    return {
        name: host.check_output("podman container inspect --format '{{.Id}}' rabbitmq") for name, host in HOSTS.items()
    }


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_cluster_of_three_running_nodes(name):
    status = cluster(HOSTS[name])
    assert sorted(status["running_nodes"]) == ["rabbit@node1", "rabbit@node2", "rabbit@node3"]
    assert sorted(status["disk_nodes"]) == ["rabbit@node1", "rabbit@node2", "rabbit@node3"]
    assert not status.get("partitions")
    assert HOSTS[name].service(UNIT).is_running


def test_erlang_cookie_is_the_generated_secret_on_every_node():
    cookie = secrets()["rabbitmq_erlang_cookie"]
    for host in HOSTS.values():
        assert host.check_output("podman exec rabbitmq cat /var/lib/rabbitmq/.erlang.cookie") == cookie
        assert (
            host.check_output("podman exec rabbitmq stat -c '%U %a' /var/lib/rabbitmq/.erlang.cookie") == "rabbitmq 400"
        )


def test_partition_handling_and_peer_discovery_configured():
    conf = HOSTS["node2"].check_output("podman exec rabbitmq cat /etc/rabbitmq/rabbitmq.conf")
    assert "cluster_partition_handling = pause_minority" in conf
    assert "cluster_formation.peer_discovery_backend = classic_config" in conf
    assert "pause_minority" in ctl(HOSTS["node2"], "eval", "'application:get_env(rabbit, cluster_partition_handling).'")


def test_data_lives_on_a_volume():
    mounts = HOSTS["node1"].check_output(
        "podman container inspect --format '{{range .Mounts}}{{.Name}}:{{.Destination}} {{end}}' rabbitmq"
    )
    assert "rabbitmq:/var/lib/rabbitmq" in mounts


@pytest.mark.parametrize("service", SERVICES)
def test_service_declares_a_quorum_queue_by_default_and_moves_messages_through_other_nodes(service, amqp, password):
    queue = f"test-{uuid.uuid4().hex[:8]}"
    creds = {"user": service, "password": password[service], "vhost": service, "queue": queue}
    assert amqp(op="declare", host=ADDRESS["node1"], **creds) == {"ok": True}
    queues = ctl(HOSTS["node1"], "list_queues", "-p", service, "name", "type", "--formatter", "json")
    assert {"name": queue, "type": "quorum"} in json.loads(queues)
    assert amqp(op="publish", host=ADDRESS["node2"], bodies=["hello", service], **creds) == {"ok": True}
    got = amqp(op="get", host=ADDRESS["node3"], count=5, **creds)
    assert got == {"ok": True, "bodies": ["hello", service]}


def test_a_service_user_has_no_access_to_another_vhost(amqp, password):
    reply = amqp(op="login", host=ADDRESS["node1"], user="nova", password=password["nova"], vhost="neutron")
    assert reply == {"ok": False, "error": "access"}
    reply = amqp(op="login", host=ADDRESS["node1"], user="nova", password=password["nova"], vhost="/")
    assert reply == {"ok": False, "error": "access"}


def test_service_vhosts_default_to_quorum_queues_and_each_user_has_only_its_own_vhost():
    vhosts = json.loads(ctl(HOSTS["node1"], "list_vhosts", "name", "default_queue_type", "--formatter", "json"))
    types = {v["name"]: v.get("default_queue_type") for v in vhosts}
    assert {s: types.get(s) for s in SERVICES} == {s: "quorum" for s in SERVICES}
    for service in SERVICES:
        perms = json.loads(ctl(HOSTS["node1"], "list_user_permissions", service, "--formatter", "json"))
        assert [p["vhost"] for p in perms] == [service], perms


def test_guest_cannot_log_in(amqp):
    users = [u["user"] for u in json.loads(ctl(HOSTS["node1"], "list_users", "--formatter", "json"))]
    assert "guest" not in users
    assert sorted(users) == sorted(SERVICES)
    for name in HOSTS:
        assert amqp(op="login", host=ADDRESS[name], user="guest", password="guest") == {
            "ok": False,
            "error": "authentication",
        }


def test_durable_messages_survive_a_restart_of_every_node_one_at_a_time(amqp, password):
    creds = {"user": "cinder", "password": password["cinder"], "vhost": "cinder", "queue": "restarts"}
    assert amqp(op="declare", host=ADDRESS["node1"], **creds) == {"ok": True}
    bodies = [f"kept-{i}" for i in range(10)]
    assert amqp(op="publish", host=ADDRESS["node2"], bodies=bodies, **creds) == {"ok": True}
    for name in sorted(HOSTS):
        host = HOSTS[name]
        wait(
            lambda h=host: h.run("podman exec rabbitmq rabbitmq-queues -q check_if_node_is_quorum_critical").rc == 0,
            f"{name} not quorum critical",
        )
        started = host.check_output("podman container inspect --format '{{.State.StartedAt}}' rabbitmq")
        host.check_output(f"systemctl restart {UNIT}")
        assert host.check_output("podman container inspect --format '{{.State.StartedAt}}' rabbitmq") != started
        wait(lambda h=host: three_running(h), f"{name} running in the cluster again")
    assert all(three_running(host) for host in HOSTS.values())
    got = amqp(op="get", host=ADDRESS["node3"], count=len(bodies) + 5, **creds)
    assert got == {"ok": True, "bodies": bodies}


def test_messages_survive_a_rolling_recreate_of_every_node_with_the_queue_available(amqp, password):
    creds = {"user": "nova", "password": password["nova"], "vhost": "nova", "queue": "rolling"}
    assert amqp(op="declare", host=ADDRESS["node1"], **creds)["ok"]
    before = [f"before-{i}" for i in range(20)]
    assert amqp(op="publish", host=ADDRESS["node1"], bodies=before, **creds) == {"ok": True}
    ids = container_ids()

    published, unavailable, stop = [], [], threading.Event()

    def publisher():
        i = 0
        while not stop.is_set():
            body = f"during-{i}"
            # a publish (confirmed) through any node that answers: the queue is available
            if any(amqp(op="publish", host=ADDRESS[n], bodies=[body], **creds)["ok"] for n in sorted(HOSTS)):
                published.append(body)
            else:
                unavailable.append(body)
            i += 1
            time.sleep(1)

    thread = threading.Thread(target=publisher, daemon=True)
    thread.start()
    try:
        run("-e", "allmende_action=upgrade", "-e", '{"rabbitmq_environment": {"ALLMENDE_PROBE": "1"}}')
    finally:
        stop.set()
        thread.join(timeout=120)
    after = container_ids()
    assert all(after[n] != ids[n] for n in HOSTS), (ids, after)
    assert "ALLMENDE_PROBE=1" in HOSTS["node3"].check_output(
        "podman container inspect --format '{{.Config.Env}}' rabbitmq"
    )
    assert not unavailable, f"no node accepted {len(unavailable)} of {len(unavailable) + len(published)} publishes"
    assert published
    got = amqp(op="get", host=ADDRESS["node2"], count=len(before) + len(published) + 10, **creds)
    assert got["ok"] and got["bodies"] == before + published
    assert sorted(cluster(HOSTS["node1"])["running_nodes"]) == ["rabbit@node1", "rabbit@node2", "rabbit@node3"]


def test_check_action_reports_drift_and_changes_nothing():
    # the previous test left the probe variable set: deploy back to the role's defaults
    run()
    assert drift(PLAYBOOK) == {}
    node2 = HOSTS["node2"]
    try:
        node2.check_output("echo 'log.console.level = debug' >> /etc/allmende/rabbitmq/rabbitmq.conf")
        found = drift(PLAYBOOK)
        assert set(found) == {"node2"}, found
        assert "/etc/allmende/rabbitmq/rabbitmq.conf differs" in found["node2"]
        assert "debug" in node2.file("/etc/allmende/rabbitmq/rabbitmq.conf").content_string
    finally:
        run()
    assert drift(PLAYBOOK) == {}


def test_no_generated_secret_in_any_run_output_container_log_or_journal():
    values = secrets()
    names = ["rabbitmq_erlang_cookie"] + [f"rabbitmq_{s}_password" for s in SERVICES]
    assert all(len(values[n]) >= 16 for n in names)
    texts = {f"run {i}": text for i, text in enumerate(RUN_OUTPUTS)}
    assert texts, "the earlier tests ran no playbook"
    for name, host in HOSTS.items():
        for container in host.check_output("podman ps --all --format '{{.Names}}'").split():
            logs = host.run(f"podman logs {container}")
            texts[f"{name} {container}"] = logs.stdout + logs.stderr
        texts[f"{name} journal"] = host.check_output("journalctl --no-pager -o cat")
    for source, text in texts.items():
        leaked = [n for n in names if values[n] in text]
        assert not leaked, f"{source}: {leaked} in the output"
