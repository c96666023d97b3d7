"""Stand-in for the pip bootstrap script ansible-test downloads from ci-files.testing.ansible.com.

Where that host is not reachable, scripts/run-tests.sh places this file in ansible-test's cache:
it bootstraps pip from the interpreter's bundled wheel (ensurepip) and then installs the
requested pip/setuptools/wheel versions from PyPI.
"""

import ensurepip
import os
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
env = dict(os.environ)
bundle = "/etc/ssl/certs/ca-certificates.crt"  # trust the machine's CAs, as pip outside ansible-test does
if "PIP_CERT" not in env and os.path.exists(bundle):
    env["PIP_CERT"] = bundle
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args], env=env))
