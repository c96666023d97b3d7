"""allmende.cloud.keystone on three control nodes against the real service: tokens behind the
VIP, the catalog, fernet keys identical everywhere and rotated without invalidating tokens, the
service users, one node down, and no generated password in any container log or journal."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import testinfra

from allmende import paths
from allmende.testbed import Testbed

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
from check_action import deploy

TESTBED = Testbed.load(os.environ.get("ALLMENDE_TESTBED_NAME", "molecule"))
assert TESTBED is not None, "the scenario's testbed does not exist"
NODES = [n for n in TESTBED.nodes if "control" in n.groups]
HOSTS = {n.name: testinfra.get_host(f"ssh://{n.name}?ssh_config={TESTBED.ssh_config}") for n in NODES}
ADDRESS = {n.name: n.address for n in NODES}
# No HAProxy yet: the scenario's VIP is node1's address (converge.yml).
VIP = ADDRESS["node1"]
PUBLIC_URL = f"http://{VIP}:5000"
PLAYBOOK = "keystone.yml"
VIP_VARS = ("-e", f"allmende_vip={VIP}")
UNIT = "allmende-keystone.service"
SERVICE_USERS = ["glance", "nova", "placement", "neutron", "cinder", "octavia"]
KEYS = "/etc/allmende/keystone-keys"
OPENSTACK = str(Path(sys.executable).parent / "openstack")


def secrets():
    store = paths.collection_module("plugins/plugin_utils/secret_store.py", "allmende_secret_store")
    return store.SecretStore(str(TESTBED.inventory_dir)).read_all()


def openstack(*args, user="admin", project="admin", url=PUBLIC_URL):
    password = secrets()["keystone_admin" if user == "admin" else f"keystone_user_{user}"]
    env = {
        **os.environ,
        "OS_AUTH_URL": f"{url}/v3",
        "OS_USERNAME": user,
        "OS_PASSWORD": password,
        "OS_PROJECT_NAME": project,
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
        "OS_IDENTITY_API_VERSION": "3",
        "OS_INTERFACE": "public",
    }
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
    deploy(PLAYBOOK, "-e", "allmende_action=rotate", *VIP_VARS)
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
    deploy(PLAYBOOK, *VIP_VARS)
    assert repositories("fernet-keys") == after


def test_stopping_keystone_on_one_node_leaves_the_others_serving():
    node2 = HOSTS["node2"]
    try:
        node2.check_output(f"systemctl stop {UNIT}")
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://{ADDRESS['node2']}:5000/v3", timeout=10)
        for name in ("node1", "node3"):
            assert token(url=f"http://{ADDRESS[name]}:5000")
    finally:
        node2.check_output(f"systemctl start {UNIT}")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://{ADDRESS['node2']}:5000/v3", timeout=5).status_code == 200:
                break
        except requests.RequestException:  # refused, or accepted but not answered yet
            pass
        time.sleep(2)
    assert token(url=f"http://{ADDRESS['node2']}:5000")


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
