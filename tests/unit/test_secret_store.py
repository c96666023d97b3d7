"""The deployment's secrets store: generated once, encrypted at rest, never replaced, never guessed anew."""

import base64
import multiprocessing
import os
import stat

import pytest
from conftest import load_plugin_module

store_mod = load_plugin_module("plugins/plugin_utils/secret_store.py")


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_secret_is_generated_once_and_read_back(tmp_path):
    store = store_mod.SecretStore(str(tmp_path / "site"))
    first = store.get("keystone_database_password")
    assert len(first) == 32 and first.isalnum()
    again = store_mod.SecretStore(str(tmp_path / "site")).get("keystone_database_password")
    assert again == first
    assert store.get("rabbitmq_password") != first
    assert store_mod.SecretStore(str(tmp_path / "site")).read_all() == {
        "keystone_database_password": first,
        "rabbitmq_password": store.get("rabbitmq_password"),
    }


def test_the_file_is_vault_encrypted_and_both_files_are_private(tmp_path):
    store = store_mod.SecretStore(str(tmp_path))
    value = store.get("db_root_password")
    raw = (tmp_path / "secrets.yml").read_bytes()
    assert raw.startswith(b"$ANSIBLE_VAULT;1.1;AES256")
    assert value.encode() not in raw and base64.b64encode(value.encode()) not in raw
    assert _mode(tmp_path / "secrets.yml") == 0o600
    assert _mode(tmp_path / "vault.key") == 0o600


def test_kinds(tmp_path):
    store = store_mod.SecretStore(str(tmp_path))
    assert len(base64.urlsafe_b64decode(store.get("fernet_0", kind="fernet"))) == 32
    assert len(bytes.fromhex(store.get("erlang_cookie", kind="hex", length=20))) == 20
    assert len(store.get("cluster_id", kind="uuid")) == 36
    assert len(store.get("long_one", length=64)) == 64
    with pytest.raises(store_mod.SecretStoreError, match="unknown secret kind"):
        store.get("x", kind="rot13")
    with pytest.raises(store_mod.SecretStoreError, match="between 16 and 256"):
        store.get("short", length=8)
    with pytest.raises(store_mod.SecretStoreError, match="lower-case"):
        store.get("Bad-Name")


def test_check_mode_stores_nothing(tmp_path):
    store = store_mod.SecretStore(str(tmp_path / "site"))
    store.get("a_password", store=False)
    assert not (tmp_path / "site").exists()
    kept = store.get("kept")
    assert store.get("kept", store=False) == kept
    assert "other" not in store.read_all()
    store.get("other", store=False)
    assert set(store.read_all()) == {"kept"}


def test_a_lost_key_or_a_damaged_file_stops_instead_of_starting_over(tmp_path):
    store = store_mod.SecretStore(str(tmp_path))
    store.get("keystone_admin_password")
    before = (tmp_path / "secrets.yml").read_bytes()
    (tmp_path / "vault.key").rename(tmp_path / "vault.key.away")
    with pytest.raises(store_mod.SecretStoreError, match="restore the key"):
        store.get("keystone_admin_password")
    assert (tmp_path / "secrets.yml").read_bytes() == before
    (tmp_path / "vault.key.away").rename(tmp_path / "vault.key")
    os.chmod(tmp_path / "vault.key", 0o644)
    with pytest.raises(store_mod.SecretStoreError, match="readable by others"):
        store.get("keystone_admin_password")
    os.chmod(tmp_path / "vault.key", 0o600)
    (tmp_path / "vault.key").write_text("another key\n")
    with pytest.raises(store_mod.SecretStoreError, match="cannot be decrypted"):
        store.get("keystone_admin_password")
    (tmp_path / "secrets.yml").write_text("plain: text\n")
    with pytest.raises(store_mod.SecretStoreError, match="not ansible-vault encrypted"):
        store.get("keystone_admin_password")


def test_an_operator_key_file_outside_the_directory(tmp_path):
    key = tmp_path / "keys" / "site.key"
    key.parent.mkdir()
    key.write_text("operator chosen key\n")
    key.chmod(0o600)
    store = store_mod.SecretStore(str(tmp_path / "site"), str(key))
    value = store.get("nova_password")
    assert not (tmp_path / "site" / "vault.key").exists()
    assert store_mod.SecretStore(str(tmp_path / "site"), str(key)).get("nova_password") == value


def _ask(directory, queue):
    queue.put(store_mod.SecretStore(directory).get("shared_secret"))


def test_concurrent_workers_agree_on_one_value(tmp_path):
    # Ansible templates with many forks at once; all must see the first value written.
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_ask, args=(str(tmp_path), queue)) for _worker in range(8)]
    for w in workers:
        w.start()
    values = [queue.get(timeout=60) for _worker in workers]
    for w in workers:
        w.join(timeout=60)
    assert len(set(values)) == 1
    assert store_mod.SecretStore(str(tmp_path)).read_all() == {"shared_secret": values[0]}
