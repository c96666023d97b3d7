"""The check action of the ceph_* roles on the deployed cluster: silent when nothing differs, names
host and drift after deliberate changes (none of which touch the cluster's health), changes nothing."""

import os
import sys
from pathlib import Path

import testinfra

from allmende.testbed import Testbed

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
from check_action import deploy, drift

TESTBED = Testbed.load(os.environ.get("ALLMENDE_TESTBED_NAME", "molecule"))
assert TESTBED is not None, "the scenario's testbed does not exist"
HOSTS = {n.name: testinfra.get_host(f"ssh://{n.name}?ssh_config={TESTBED.ssh_config}") for n in TESTBED.nodes}
PLAYBOOK = "ceph.yml"


def unit(host, pattern):
    units = host.check_output(f"systemctl list-units '{pattern}' --plain --no-legend --all | awk '{{print $1}}'")
    assert units.split(), f"no unit {pattern} on {host.backend.host.name}"
    return units.split()[0]


def test_check_action_reports_each_roles_drift_and_changes_nothing():
    assert drift(PLAYBOOK) == {}
    node1, node2, node3 = HOSTS["node1"], HOSTS["node2"], HOSTS["node3"]
    mon2, osd3 = unit(node2, "ceph-mon@*"), unit(node3, "ceph-osd@*")
    try:
        node1.check_output("echo '# changed by hand' >> /etc/ceph/ceph.conf")
        node2.check_output(f"systemctl disable {mon2}")
        node3.check_output(f"systemctl disable {osd3}")
        found = drift(PLAYBOOK)
        assert set(found) == {"node1", "node2", "node3"}, found
        assert "ceph_common role" in found["node1"] and "ceph.conf differs" in found["node1"]
        assert (
            "ceph_mon role" in found["node2"]
            and f"{mon2.removesuffix('.service')} does not start at boot" in found["node2"]
        )
        assert "ceph_osd role" in found["node3"] and "does not start at boot" in found["node3"]
        assert node2.run(f"systemctl is-enabled {mon2}").stdout.strip() != "enabled"  # not repaired by check
    finally:
        deploy(PLAYBOOK)
    mgr1 = unit(node1, "ceph-mgr@*")
    keyring = node2.check_output("ls /etc/ceph/ceph.client.*.keyring | grep -v client.admin | head -1").strip()
    assert keyring, "node2 holds no OpenStack client keyring"
    try:
        node1.check_output(f"systemctl disable {mgr1}")
        node2.check_output(f"chmod 0644 {keyring}")
        found = drift(PLAYBOOK)
        assert set(found) == {"node1", "node2"}, found
        assert "ceph_mgr role" in found["node1"] and "does not start at boot" in found["node1"]
        assert "ceph_openstack role" in found["node2"]
        assert node2.file(keyring).mode == 0o644
    finally:
        deploy(PLAYBOOK)
    assert drift(PLAYBOOK) == {}
