"""playbooks/control_plane.yml on three control nodes against the real services: Galera behind the
VIP with one writer, tokens issued through the VIP, the catalog, fernet keys identical everywhere
and rotated without invalidating tokens, the service users, tokens issued without interruption
while keystone stops on one node and through a VIP failover (keepalived stopped, holder node
killed) measured with `allmende probe`, and no generated password in any container log or
journal."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from allmende import paths

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
import failover
from check_action import deploy
from failover import wait_for
from scenario_hosts import ADDRESS, HOSTS, TESTBED

VIP = failover.vip_of(TESTBED)
PUBLIC_URL = f"http://{VIP}:5000"
PLAYBOOK = "keystone.yml"
UNIT = "allmende-keystone.service"
SERVICE_USERS = ["glance", "nova", "placement", "neutron", "cinder", "octavia"]
KEYS = "/etc/allmende/keystone-keys"
OPENSTACK = str(Path(sys.executable).parent / "openstack")
PROBE_DIR = Path(os.environ.get("ALLMENDE_STATE_DIR", "/tmp")) / "probes-control-plane"


def secrets():
    store = paths.collection_module("plugins/plugin_utils/secret_store.py", "allmende_secret_store")
    return store.SecretStore(str(TESTBED.inventory_dir)).read_all()


def credentials(user="admin", project="admin", url=PUBLIC_URL):
    """The openstack CLI's OS_* environment for a user (the secret never on a command line)."""
    return {
        "OS_AUTH_URL": f"{url}/v3",
        "OS_USERNAME": user,
        "OS_PASSWORD": secrets()["keystone_admin" if user == "admin" else f"keystone_user_{user}"],
        "OS_PROJECT_NAME": project,
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_IDENTITY_API_VERSION": "3",
        "OS_INTERFACE": "public",
    }


def openstack(*args, user="admin", project="admin", url=PUBLIC_URL):
    env = {**os.environ, **credentials(user, project, url)}
    proc = subprocess.run(
        [OPENSTACK, *args, "-f", "json"], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def token(**kwargs):
    return openstack("token", "issue", **kwargs)["id"]


def validate(subject, url=PUBLIC_URL):
    """Status of GET /v3/auth/tokens for the subject token, asked with a fresh admin token."""
    reply = requests.get(
        f"{url}/v3/auth/tokens",
        headers={"X-Auth-Token": token(url=url), "X-Subject-Token": subject},
        timeout=30,
    )
    return reply.status_code


def repositories(name):
    """{host: {key file: sha256}} of one key repository on every node."""
    found = {}
    for host_name, host in HOSTS.items():
        out = host.check_output(f"cd {KEYS}/{name} && sha256sum *")
        found[host_name] = dict(reversed(line.split()) for line in out.splitlines())
    return found


def test_three_control_nodes():
    assert len(HOSTS) == 3


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_keystone_runs_healthy_under_its_systemd_unit(name):
    host = HOSTS[name]
    assert host.service(UNIT).is_running and host.service(UNIT).is_enabled
    assert host.check_output("podman container inspect --format '{{.State.Health.Status}}' keystone") == "healthy"
    reply = requests.get(f"http://{ADDRESS[name]}:5000/v3", timeout=10)
    assert reply.status_code == 200 and reply.json()["version"]["id"] == "v3.14"


def test_a_token_is_issued_from_the_deployment_host_against_the_public_url():
    assert len(token()) > 100


def test_the_catalog_lists_the_identity_endpoints_behind_the_vip():
    endpoints = openstack("endpoint", "list", "--service", "identity")
    assert sorted((e["Interface"], e["URL"], e["Region"]) for e in endpoints) == [
        ("admin", PUBLIC_URL, "RegionOne"),
        ("internal", PUBLIC_URL, "RegionOne"),
        ("public", PUBLIC_URL, "RegionOne"),
    ]


@pytest.mark.parametrize("name", ["fernet-keys", "credential-keys"])
def test_key_repositories_are_identical_on_all_nodes(name):
    repos = repositories(name)
    first = repos["node1"]
    assert "0" in first and len(first) >= 2, first
    assert all(repo == first for repo in repos.values()), repos
    for host in HOSTS.values():
        directory = host.file(f"{KEYS}/{name}")
        assert directory.mode == 0o700 and directory.user != "root"
        assert host.file(f"{KEYS}/{name}/0").mode == 0o600


def test_service_users_exist_and_get_tokens_in_the_service_project():
    names = {u["Name"] for u in openstack("user", "list", "--project", "service")}
    assert set(SERVICE_USERS) <= names, names
    for user in SERVICE_USERS:
        assert token(user=user, project="service")
    assignments = openstack("role", "assignment", "list", "--project", "service", "--names")
    assert {a["User"].split("@")[0] for a in assignments if a["Role"] == "admin"} >= set(SERVICE_USERS)


def test_a_token_issued_before_a_rotation_validates_after_it_on_every_node():
    before_keys = repositories("fernet-keys")["node1"]
    old = token()
    assert validate(old) == 200
    deploy(PLAYBOOK, "-e", "allmende_action=rotate")
    after = repositories("fernet-keys")
    # rotated: a new primary on every node, the same repository everywhere
    assert max(map(int, after["node1"])) == max(map(int, before_keys)) + 1, (before_keys, after["node1"])
    assert all(repo == after["node1"] for repo in after.values()), after
    for name in HOSTS:
        assert validate(old, url=f"http://{ADDRESS[name]}:5000") == 200, name
    # a token of the new primary key validates on every node too
    new = token()
    for name in HOSTS:
        assert validate(new, url=f"http://{ADDRESS[name]}:5000") == 200, name
    # a second deploy after the rotation changes no key
    deploy(PLAYBOOK)
    assert repositories("fernet-keys") == after


def mysql(host, sql):
    """A query on the host's MariaDB (root over the container's socket)."""
    return host.check_output(f"podman exec mariadb mariadb -N -B -e {shlex.quote(sql)}")


def test_galera_has_three_synced_members_and_keystone_data_on_each():
    for name, host in HOSTS.items():
        assert mysql(host, "SHOW STATUS LIKE 'wsrep_cluster_size'").split() == ["wsrep_cluster_size", "3"], name
        assert mysql(host, "SHOW STATUS LIKE 'wsrep_local_state_comment'").split()[1] == "Synced", name
    # keystone's rows went through the VIP to the one writer and are on every member
    counts = {name: mysql(host, "SELECT COUNT(*) FROM keystone.user") for name, host in HOSTS.items()}
    assert len(set(counts.values())) == 1 and int(counts["node1"]) >= 1 + len(SERVICE_USERS), counts


def test_rabbitmq_cluster_lists_three_running_nodes():
    for name, host in HOSTS.items():
        status = json.loads(host.check_output("podman exec rabbitmq rabbitmqctl -q cluster_status --formatter json"))
        assert sorted(status["running_nodes"]) == [f"rabbit@{n}" for n in sorted(HOSTS)], name


def token_probe(case, action):
    """Tokens issued through the VIP at 5/s for 30 s while action() happens (after 5 s)."""
    return failover.probe(PROBE_DIR, case, ["--token", f"keystone={PUBLIC_URL}/v3"], action, env=credentials())


def keystone_answers(name):
    try:
        return requests.get(f"http://{ADDRESS[name]}:5000/v3", timeout=5).status_code == 200
    except requests.RequestException:  # refused, or accepted but not answered yet
        return False


def test_tokens_are_issued_without_a_failure_while_keystone_stops_on_one_node():
    node2 = HOSTS["node2"]
    try:
        report, _samples = token_probe("keystone-stopped", lambda: node2.check_output(f"systemctl stop {UNIT}"))
        assert not keystone_answers("node2")
    finally:
        node2.check_output(f"systemctl start {UNIT}")
    assert report["requests"] >= 100 and report["failures"] == 0, report
    assert wait_for(lambda: keystone_answers("node2"), 90, 2)
    assert token(url=f"http://{ADDRESS['node2']}:5000")


def test_tokens_resume_when_keepalived_stops_on_the_vip_holder():
    old = failover.single_holder(TESTBED, VIP)
    assert old
    unit = "allmende-keepalived.service"
    try:
        report, samples = token_probe("keepalived-stopped", lambda: HOSTS[old].check_output(f"systemctl stop {unit}"))
        failover.assert_failover(TESTBED, VIP, report, samples, old)
    finally:
        HOSTS[old].run(f"systemctl start {unit}")
    assert wait_for(lambda: HOSTS[old].service(unit).is_running, 30)


def synced(host):
    try:
        return mysql(host, "SHOW STATUS LIKE 'wsrep_local_state_comment'").split()[1] == "Synced"
    except AssertionError:  # not running yet
        return False


def test_tokens_resume_when_the_vip_holder_node_is_killed_and_it_rejoins():
    old = failover.single_holder(TESTBED, VIP)
    assert old
    rows = mysql(HOSTS[old], "SELECT COUNT(*) FROM keystone.user")
    try:
        report, samples = token_probe("node-killed", lambda: failover.kill_node(TESTBED, old))
        failover.assert_failover(TESTBED, VIP, report, samples, old)
    finally:
        failover.revive(TESTBED)
    # the node's services start again by themselves; Galera takes it back in
    host = HOSTS[old]
    for unit in ("allmende-haproxy.service", "allmende-keepalived.service", "allmende-mariadb.service", UNIT):
        assert wait_for(lambda u=unit: host.service(u).is_running, 180, 3), unit
    assert wait_for(lambda: synced(host), 300, 5), mysql(host, "SHOW STATUS LIKE 'wsrep_%state%'")
    assert mysql(host, "SELECT COUNT(*) FROM keystone.user") == rows
    assert wait_for(lambda: keystone_answers(old), 120, 3)
    assert token(url=f"http://{ADDRESS[old]}:5000")


def test_no_generated_password_in_any_container_log_or_journal():
    values = [v for v in secrets().values() if isinstance(v, str) and len(v) >= 16]
    assert len(values) >= 3 + len(SERVICE_USERS)
    for name, host in HOSTS.items():
        containers = host.check_output("podman ps --all --format '{{.Names}}'").split()
        assert "keystone" in containers
        logs = {c: host.run(f"podman logs {c}") for c in containers}
        texts = {c: r.stdout + r.stderr for c, r in logs.items()}
        texts["journal"] = host.check_output("journalctl --no-pager -o cat")
        for source, text in texts.items():
            leaked = [i for i, v in enumerate(values) if v in text]
            assert not leaked, f"{name} {source}: secret(s) #{leaked} in the output"
