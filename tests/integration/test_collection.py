"""The collection builds with ansible-galaxy, installs, and documents its plugins with ansible-doc."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLUGINS = {
    "module": [
        "allmende.cloud.kernel_modules",
        "allmende.cloud.networkd_files",
        "allmende.cloud.networkd_apply",
        "allmende.cloud.networkd_state",
        "allmende.cloud.ovs_config",
        "allmende.cloud.ovsdb_cluster_info",
        "allmende.cloud.kvm_probe",
        "allmende.cloud.virt_host_validate",
        "allmende.cloud.ceph_auth",
        "allmende.cloud.ceph_gate",
        "allmende.cloud.ceph_pool",
        "allmende.cloud.ceph_secrets",
    ],
    "lookup": ["allmende.cloud.release"],
    "inventory": ["allmende.cloud.testbed", "allmende.cloud.netbox"],
    "filter": [
        "allmende.cloud.networkd_plan",
        "allmende.cloud.networkd_units",
        "allmende.cloud.networkd_drift",
        "allmende.cloud.ovsdb_cluster_plan",
        "allmende.cloud.scs_flavor",
        "allmende.cloud.scs_flavor_problems",
    ],
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    dest = tmp_path_factory.mktemp("collections")
    (dest / "ansible.cfg").write_text("[defaults]\n")
    env = env_for(dest)
    subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    tarball = next(out.glob("allmende-cloud-*.tar.gz"))
    proc = subprocess.run(
        [str(BIN / "ansible-galaxy"), "collection", "install", "-p", str(dest), str(tarball)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    assert (dest / "ansible_collections" / "allmende" / "cloud" / "MANIFEST.json").is_file(), proc.stdout
    return tarball, dest


def env_for(dest):
    """Only the installed copy on the collections path, no checkout settings."""
    return {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(dest), "ANSIBLE_CONFIG": str(dest / "ansible.cfg")}


def test_tarball_holds_the_collection_but_not_the_driver_or_dev_files(installed):
    tarball = installed[0]
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    for wanted in (
        "MANIFEST.json",
        "roles/bootstrap/tasks/main.yml",
        "plugins/modules/kernel_modules.py",
        "releases/index.yml",
        "playbooks/site.yml",
    ):
        assert any(n == wanted or n.endswith("/" + wanted) for n in names) or wanted in names, wanted
    for unwanted in ("src/", "tests/", "molecule/", ".venv/", ".build/", "pyproject.toml", ".git/"):
        assert not any(n.startswith(unwanted) or f"/{unwanted}" in n for n in names), unwanted


def test_installed_plugins_are_documented(installed):
    dest = installed[1]
    env = env_for(dest)
    for kind, names in PLUGINS.items():
        for name in names:
            proc = subprocess.run(
                [str(BIN / "ansible-doc"), "-t", kind, "--json", name],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert proc.returncode == 0, proc.stderr
            doc = json.loads(proc.stdout)[name]["doc"]
            assert doc["short_description"], name


def test_installed_collection_resolves_the_release_lookup(installed, tmp_path):
    dest = installed[1]
    env = env_for(dest)
    proc = subprocess.run(
        [
            str(BIN / "ansible"),
            "localhost",
            "-m",
            "ansible.builtin.debug",
            "-a",
            "msg={{ lookup('allmende.cloud.release', 'components.podman.source') }}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"msg": "debian"' in proc.stdout
