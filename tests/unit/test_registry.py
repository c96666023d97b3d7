"""The local registry's certificates and configuration (openssl, no registry process)."""

import shutil
import subprocess

import pytest

from allmende import registry

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def test_the_server_certificate_names_exactly_the_listening_addresses(state_dir):
    assert registry.ensure_server_cert(["127.0.0.1", "10.213.10.1"]) is True
    cert = registry.registry_dir() / "server.crt"
    assert registry.cert_ips(cert) == {"127.0.0.1", "10.213.10.1"}
    assert registry.ensure_server_cert(["127.0.0.1", "10.213.10.1"]) is False
    # Signed by the project CA, valid for TLS servers.
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(registry.ca_file()), "-purpose", "sslserver", str(cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    ca_before = registry.ca_file().read_bytes()
    assert registry.ensure_server_cert(["127.0.0.1"]) is True
    assert registry.cert_ips(cert) == {"127.0.0.1"}
    assert registry.ca_file().read_bytes() == ca_before  # the CA the nodes trust stays
    for key in ("ca.key", "server.key"):
        assert (registry.registry_dir() / key).stat().st_mode & 0o077 == 0


def test_each_listener_serves_tls_on_its_own_address_only(state_dir):
    config = registry.listener_config("10.213.10.1:5043", state_dir / "storage", "s")
    assert config["http"]["addr"] == "10.213.10.1:5043"
    assert config["http"]["tls"]["certificate"].endswith("server.crt")
    assert config["storage"]["filesystem"]["rootdirectory"] == str(state_dir / "storage")


def test_the_push_cert_dir_holds_the_ca(state_dir):
    d = registry.client_cert_dir("127.0.0.1:5043")
    assert (d / "ca.crt").read_bytes() == registry.ca_file().read_bytes()
    assert d.name == "127.0.0.1:5043"
