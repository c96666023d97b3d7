# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The deployment's secrets: generated once, kept encrypted with ansible-vault, never replaced.

A store is a directory (the deployment's configuration directory) holding

- ``secrets.yml``: an ansible-vault encrypted YAML mapping of secret name to value, mode 0600;
- ``vault.key``: the vault password, mode 0600, created with the store (unless the operator names
  another key file, for example one kept outside the configuration repository).

A value is generated the first time a name is asked for and written before it is returned; later
asks read it back. Writers serialise on a lock file, re-read under the lock and replace the file
atomically, so concurrent Ansible workers agree on one value. An existing value is never changed,
and a store that cannot be read (wrong key, damaged file) is an error, never a reason to start over.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import fcntl
import os
import re
import secrets as _random
import string
import tempfile
import uuid

import yaml
from ansible.parsing.vault import AnsibleVaultError, VaultLib, VaultSecret, is_encrypted

NAME = re.compile(r"^[a-z][a-z0-9_]{0,127}$")
SECRETS_FILE = "secrets.yml"
KEY_FILE = "vault.key"
ALPHABET = string.ascii_letters + string.digits


class SecretStoreError(Exception):
    pass


def generate(kind, length=32):
    """A new random value of KIND: password, hex, fernet, uuid."""
    if kind == "password":
        if not 16 <= length <= 256:
            raise SecretStoreError("a password needs a length between 16 and 256, got %d" % length)
        return "".join(_random.choice(ALPHABET) for _index in range(length))
    if kind == "hex":
        if not 8 <= length <= 256:
            raise SecretStoreError("a hex secret needs a length (bytes) between 8 and 256, got %d" % length)
        return _random.token_hex(length)
    if kind == "fernet":
        # what cryptography.fernet.Fernet.generate_key() returns: 32 random bytes, URL-safe base64
        return base64.urlsafe_b64encode(_random.token_bytes(32)).decode("ascii")
    if kind == "uuid":
        return str(uuid.uuid4())
    raise SecretStoreError("unknown secret kind %r (password, hex, fernet, uuid)" % (kind,))


def _write_private(path, data):
    """Replace PATH atomically with DATA (bytes), mode 0600 from the first byte."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", dir=folder)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class SecretStore(object):
    def __init__(self, directory, key_file=None):
        if not directory:
            raise SecretStoreError(
                "no configuration directory for the secrets store: set allmende_config_dir "
                "(the deployment's configuration directory)"
            )
        self.directory = os.path.abspath(os.path.expanduser(directory))
        self.path = os.path.join(self.directory, SECRETS_FILE)
        self.key_file = os.path.abspath(os.path.expanduser(key_file)) if key_file else None
        self.key_file = self.key_file or os.path.join(self.directory, KEY_FILE)
        self._lock_path = os.path.join(self.directory, "." + SECRETS_FILE + ".lock")

    # ------------------------------------------------------------ key and file

    def _vault(self, create):
        if not os.path.exists(self.key_file):
            if os.path.exists(self.path):
                raise SecretStoreError(
                    "%s exists but its vault key %s does not: restore the key (the secrets cannot be "
                    "read without it and are never generated anew)" % (self.path, self.key_file)
                )
            if not create:
                return None
            _write_private(self.key_file, ("".join(_random.choice(ALPHABET) for _index in range(48)) + "\n").encode())
        mode = os.stat(self.key_file).st_mode & 0o777
        if mode & 0o077:
            raise SecretStoreError(
                "vault key %s is readable by others (mode %03o): chmod 600 it" % (self.key_file, mode)
            )
        with open(self.key_file, "rb") as handle:
            password = handle.read().strip()
        if not password:
            raise SecretStoreError("vault key %s is empty" % self.key_file)
        return VaultLib([("default", VaultSecret(password))])

    def _read(self, vault):
        if not os.path.exists(self.path):
            return {}
        with open(self.path, "rb") as handle:
            data = handle.read()
        if not is_encrypted(data):
            raise SecretStoreError("%s is not ansible-vault encrypted: refusing to use it" % self.path)
        try:
            plain = vault.decrypt(data)
        except AnsibleVaultError as exc:
            raise SecretStoreError("%s cannot be decrypted with %s: %s" % (self.path, self.key_file, exc)) from exc
        try:
            values = yaml.safe_load(plain) or {}
        except yaml.YAMLError as exc:
            raise SecretStoreError("%s holds no valid YAML after decryption: %s" % (self.path, exc)) from exc
        if not isinstance(values, dict):
            raise SecretStoreError("%s must hold a mapping of secret names to values" % self.path)
        return values

    def _write(self, vault, values):
        plain = yaml.safe_dump(values, default_flow_style=False, sort_keys=True)
        _write_private(self.path, vault.encrypt(plain))

    # ------------------------------------------------------------ public

    def read_all(self):
        """Every stored secret (empty if the store does not exist yet)."""
        vault = self._vault(create=False)
        return self._read(vault) if vault else {}

    def get(self, name, kind="password", length=32, store=True):
        """The value of NAME, generated (and, with STORE, written) the first time it is asked for."""
        if not NAME.match(name or ""):
            raise SecretStoreError("secret name %r: use lower-case letters, digits and _" % (name,))
        if not store:
            values = self.read_all()
            return values[name] if name in values else generate(kind, length)
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, 0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            vault = self._vault(create=True)
            values = self._read(vault)
            if name not in values:
                values[name] = generate(kind, length)
                self._write(vault, values)
            return values[name]
        finally:
            os.close(fd)
