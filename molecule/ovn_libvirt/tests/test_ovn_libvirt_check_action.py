"""The check action of openvswitch, ovn_central, ovn_controller and libvirt on the deployed hosts:
silent when nothing differs, names host and drift after a deliberate change, changes nothing."""

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
PLAYBOOK = "network_compute.yml"


def test_check_action_reports_each_roles_drift_and_changes_nothing():
    assert drift(PLAYBOOK) == {}
    node1, node2, node3 = HOSTS["node1"], HOSTS["node2"], HOSTS["node3"]
    try:
        node1.check_output("systemctl stop ovs-vswitchd")
        node2.check_output("echo '# changed by hand' >> /etc/default/ovn-central")
        found = drift(PLAYBOOK)
        # the OVN plays stop the whole run when a cluster member fails (any_errors_fatal): libvirt below
        assert set(found) == {"node1", "node2"}, found
        assert "openvswitch role" in found["node1"] and "ovs-vswitchd is not running" in found["node1"]
        assert "ovn_central role" in found["node2"] and "/etc/default/ovn-central differs" in found["node2"]
        # nothing was repaired by the check
        assert node1.run("systemctl is-active ovs-vswitchd").stdout.strip() != "active"
        assert "# changed by hand" in node2.file("/etc/default/ovn-central").content_string
    finally:
        deploy(PLAYBOOK)
    try:
        node1.check_output("ovs-vsctl set open . external_ids:ovn-remote-probe-interval=12345")
        found = drift(PLAYBOOK)
        assert set(found) == {"node1"}, found
        assert "ovn_controller role" in found["node1"] and "ovn-remote-probe-interval" in found["node1"]
    finally:
        deploy(PLAYBOOK)
    try:
        node3.check_output("echo '# changed by hand' >> /etc/libvirt/libvirtd.conf")
        found = drift("libvirt.yml")
        assert set(found) == {"node3"}, found
        assert "libvirt role" in found["node3"] and "/etc/libvirt/libvirtd.conf differs" in found["node3"]
        assert "# changed by hand" in node3.file("/etc/libvirt/libvirtd.conf").content_string
    finally:
        deploy("libvirt.yml")
    assert drift(PLAYBOOK) == {}
