"""What allmende.cloud.bootstrap must leave on every testbed host."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

from allmende.testbed import Testbed

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
from check_action import ansible_playbook

ROOT = Path(__file__).resolve().parents[3]
RELEASE = yaml.safe_load((ROOT / "releases" / "index.yml").read_text())["current"]
MANIFEST = yaml.safe_load((ROOT / "releases" / f"{RELEASE}.yml").read_text())
OPERATOR = "allmende"
TESTBED = Testbed.load(os.environ.get("ALLMENDE_TESTBED_NAME", "molecule"))
assert TESTBED is not None, "the scenario's testbed does not exist"
NODES = {n.name: n for n in TESTBED.nodes}
testinfra_hosts = TESTBED.testinfra_hosts()


def node_of(host):
    return NODES[host.backend.host.name]


def test_operator_account(host):
    user = host.user(OPERATOR)
    assert user.exists
    assert user.shell == "/bin/bash"
    keys = host.file(f"/home/{OPERATOR}/.ssh/authorized_keys")
    assert keys.mode == 0o600
    assert keys.user == OPERATOR
    pubkey = Path(f"{TESTBED.ssh_key}.pub").read_text().strip()
    assert keys.content_string.strip() == pubkey
    sudoers = host.file("/etc/sudoers.d/allmende-operator")
    assert sudoers.mode == 0o440


def test_operator_logs_in_with_sudo(host):
    """A real SSH login as the operator, from this machine, with passwordless sudo."""
    proc = subprocess.run(
        [
            "ssh",
            "-F",
            str(TESTBED.ssh_config),
            "-o",
            "BatchMode=yes",
            "-l",
            OPERATOR,
            node_of(host).name,
            "sudo",
            "-n",
            "id",
            "-u",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


def test_hostname_and_hosts_file(host):
    assert host.check_output("hostname") == node_of(host).name
    hosts = host.file("/etc/hosts").content_string
    for node in TESTBED.nodes:
        assert f"{node.address} {node.name}.testbed.allmende.internal {node.name}\n" in hosts
    other = TESTBED.nodes[-1].name
    assert host.run(f"getent hosts {other}.testbed.allmende.internal").rc == 0


def test_chrony_serves_the_testbed_without_public_servers(host):
    chrony = host.service("chrony")
    assert chrony.is_running
    assert chrony.is_enabled
    config = host.file("/etc/chrony/chrony.conf").content_string
    assert "pool " not in config
    assert "-x" in host.file("/etc/default/chrony").content_string
    first = NODES[TESTBED.group("control")[0]]
    if node_of(host) is first:
        assert "local stratum 8 orphan" in config
    else:
        assert first.address in host.check_output("chronyc -n sources")


def test_sysctl_only_namespaced_keys_in_the_testbed(host):
    assert host.sysctl("net.ipv4.ip_forward") == 1
    assert host.sysctl("net.core.somaxconn") == 4096
    content = host.file("/etc/sysctl.d/90-allmende.conf").content_string
    assert "net.ipv4.ip_forward = 1" in content
    assert "kernel.pid_max" not in content
    assert "vm.swappiness" not in content


def test_kernel_modules_persisted_only_where_loadable(host):
    listed = [
        line
        for line in host.file("/etc/modules-load.d/allmende.conf").content_string.splitlines()
        if line and not line.startswith("#")
    ]
    for module in listed:
        assert host.file(f"/sys/module/{module.replace('-', '_')}").is_directory, module
    assert "openvswitch" not in listed or host.file("/sys/module/openvswitch").is_directory


def test_packages_and_podman_version_from_the_manifest(host):
    for name in ("chrony", "curl", "jq", "tcpdump", "podman", "crun"):
        assert host.package(name).is_installed, name
    assert host.package("podman").version.startswith(MANIFEST["components"]["podman"]["version"])


def test_packages_held_and_pinned_at_the_manifest_version(host):
    held = host.check_output("apt-mark showhold").split()
    for component in ("podman", "crun", "chrony"):
        assert component in held, component
        version = host.package(component).version
        assert version.startswith(MANIFEST["components"][component]["version"]), (component, version)
        pref = host.file(f"/etc/apt/preferences.d/allmende-{component}.pref").content_string
        assert f"Package: {component}\nPin: version {MANIFEST['components'][component]['apt']}\n" in pref
    assert "uidmap" not in held  # a dependency installed at any version


def test_a_deploy_with_another_version_than_installed_refuses_and_changes_nothing(host):
    """A bumped version (as a changed manifest would give) stops a plain deploy before anything moves."""
    if node_of(host).name != "node1":
        return
    before = host.package("podman").version
    pref = host.file("/etc/apt/preferences.d/allmende-podman.pref").content_string
    rc, result = ansible_playbook(
        str(ROOT / "playbooks" / "bootstrap.yml"), "--limit", "node1", "-e", "bootstrap_podman_apt_version=99.1.0+*"
    )
    assert rc != 0
    messages = [
        str(res.get("msg", ""))
        for play in result["plays"]
        for task in play["tasks"]
        for name, res in task["hosts"].items()
        if name == "node1" and res.get("failed")
    ]
    assert len(messages) == 1, messages
    assert f"podman: podman {before} installed, the release manifest wants 99.1.0+*" in messages[0]
    assert "allmende_action=upgrade" in messages[0]
    assert result["stats"]["node1"]["changed"] == 0
    assert host.package("podman").version == before
    assert host.file("/etc/apt/preferences.d/allmende-podman.pref").content_string == pref


def test_podman_runs_a_container_inside_the_host(host):
    """A container engine that works: import a tiny local image and run it (no registry)."""
    script = (
        "set -e; d=$(mktemp -d); cd $d; mkdir -p bin lib lib64; cp /bin/echo bin/; "
        "cp /lib/x86_64-linux-gnu/libc.so.6 lib/; cp /lib64/ld-linux-x86-64.so.2 lib64/; "
        "tar -c . | podman import -q - localhost/allmende-probe:1 >/dev/null; cd /; rm -rf $d; "
        "podman run --rm localhost/allmende-probe:1 /bin/echo container-ok; "
        "podman rmi -f localhost/allmende-probe:1 >/dev/null"
    )
    out = host.check_output(f"bash -c '{script}'")
    assert "container-ok" in out
    conf = host.file("/etc/containers/containers.conf").content_string
    assert 'runtime = "crun"' in conf
