"""The scenario's testbed and its control hosts, as the service scenarios' tests see them."""

import os

import testinfra

from allmende.testbed import Testbed

TESTBED = Testbed.load(os.environ.get("ALLMENDE_TESTBED_NAME", "molecule"))
assert TESTBED is not None, "the scenario's testbed does not exist"
# the control group's nodes, their testinfra hosts (over the testbed's SSH config) and addresses
NODES = [n for n in TESTBED.nodes if "control" in n.groups]
HOSTS = {n.name: testinfra.get_host(f"ssh://{n.name}?ssh_config={TESTBED.ssh_config}") for n in NODES}
ADDRESS = {n.name: n.address for n in NODES}
