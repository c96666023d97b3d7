# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Put a container's configuration into place from /var/lib/kolla/config_files/config.json.

The kolla image contract: config.json names the command to run, the files to copy
(source, dest, owner, perm, optional, merge) and the paths whose owner and mode to set
(path, owner, perm, recurse). KOLLA_CONFIG_STRATEGY=COPY_ALWAYS copies at every start,
COPY_ONCE only at the first. The command is written to /run_command for kolla_start.
`--check` exits 1 when a destination differs from its source (the configuration changed).
"""

import argparse
import filecmp
import glob
import grp
import json
import os
import pwd
import shutil
import sys

CONFIG_FILE = os.environ.get("KOLLA_CONFIG_FILE", "/var/lib/kolla/config_files/config.json")
STRATEGIES = ("COPY_ALWAYS", "COPY_ONCE")
CONFIGURED_MARKER = "/configured"
RUN_COMMAND = "/run_command"


class ConfigError(Exception):
    pass


def parse_perm(value, field):
    """'0640' or 0o640 -> 0o640."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str) and value.strip():
        try:
            mode = int(value, 8)
        except ValueError:
            raise ConfigError(f"{field}: {value!r} is not an octal mode") from None
    else:
        raise ConfigError(f"{field}: {value!r} is not an octal mode")
    if not 0 <= mode <= 0o7777:
        raise ConfigError(f"{field}: {value!r} is out of range")
    return mode


def parse_owner(value, field):
    """'user' or 'user:group' -> (user, group); the group defaults to the user's name."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{field}: {value!r} is not user or user:group")
    user, _sep, group = value.partition(":")
    if not user:
        raise ConfigError(f"{field}: {value!r} has no user")
    return user, group or user


def load(text):
    """Validate config.json text; return (command, config_files, permissions) as plain lists."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"config.json is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("config.json must be an object")
    command = data.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ConfigError("config.json: command is missing")
    files = []
    for index, entry in enumerate(data.get("config_files") or []):
        field = f"config_files[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{field}: must be an object")
        for key in ("source", "dest"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ConfigError(f"{field}.{key} is missing")
        files.append(
            {
                "source": entry["source"],
                "dest": entry["dest"],
                "owner": parse_owner(entry["owner"], field + ".owner") if entry.get("owner") else None,
                "perm": parse_perm(entry["perm"], field + ".perm") if entry.get("perm") is not None else None,
                "optional": bool(entry.get("optional", False)),
                "merge": bool(entry.get("merge", False)),
            }
        )
    perms = []
    for index, entry in enumerate(data.get("permissions") or []):
        field = f"permissions[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
            raise ConfigError(f"{field}.path is missing")
        if not entry.get("owner") and entry.get("perm") is None:
            raise ConfigError(f"{field}: needs owner or perm")
        perms.append(
            {
                "path": entry["path"],
                "owner": parse_owner(entry["owner"], field + ".owner") if entry.get("owner") else None,
                "perm": parse_perm(entry["perm"], field + ".perm") if entry.get("perm") is not None else None,
                "recurse": bool(entry.get("recurse", False)),
            }
        )
    return command, files, perms


def plan_copies(files):
    """(source, dest, entry) for every file to copy; sources are globs; a dest ending in / is a directory.

    Raises ConfigError for a missing source that is not optional.
    """
    copies = []
    for entry in files:
        sources = sorted(glob.glob(entry["source"]))
        if not sources:
            if entry["optional"]:
                continue
            raise ConfigError("{}: source not found (and not optional)".format(entry["source"]))
        into_dir = entry["dest"].endswith("/") or len(sources) > 1
        for source in sources:
            dest = os.path.join(entry["dest"], os.path.basename(source)) if into_dir else entry["dest"]
            copies.append((source, dest, entry))
    return copies


def _ids(owner):
    user, group = owner
    try:
        uid = pwd.getpwnam(user).pw_uid
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"owner {user}:{group} does not exist in this image") from None
    return uid, gid


def _apply_attrs(path, owner, perm):
    if owner is not None:
        uid, gid = _ids(owner)
        os.lchown(path, uid, gid)
    if perm is not None and not os.path.islink(path):
        os.chmod(path, perm)


def copy_one(source, dest, entry):
    """Copy a file or a directory tree to dest; a directory replaces dest unless merge is set."""
    parent = os.path.dirname(dest.rstrip("/"))
    if parent:
        os.makedirs(parent, exist_ok=True)
    if os.path.isdir(source):
        if os.path.isdir(dest) and not entry["merge"]:
            shutil.rmtree(dest)
        shutil.copytree(source, dest, dirs_exist_ok=True)
        for root, dirs, names in os.walk(dest):
            for name in dirs + names:
                _apply_attrs(os.path.join(root, name), entry["owner"], entry["perm"])
        _apply_attrs(dest, entry["owner"], entry["perm"])
        return
    if os.path.lexists(dest) and (os.path.isdir(dest) and not os.path.islink(dest)):
        shutil.rmtree(dest)
    elif os.path.lexists(dest):
        os.unlink(dest)
    shutil.copy2(source, dest)
    _apply_attrs(dest, entry["owner"], entry["perm"])


def set_permissions(perms):
    for entry in perms:
        paths = sorted(glob.glob(entry["path"])) or [entry["path"]]
        for path in paths:
            if not os.path.lexists(path):
                os.makedirs(path, exist_ok=True)
            _apply_attrs(path, entry["owner"], entry["perm"])
            if entry["recurse"] and os.path.isdir(path):
                for root, dirs, names in os.walk(path):
                    for name in dirs + names:
                        _apply_attrs(os.path.join(root, name), entry["owner"], entry["perm"])


def differs(source, dest):
    if os.path.isdir(source):
        if not os.path.isdir(dest):
            return True
        cmp = filecmp.dircmp(source, dest)
        return bool(cmp.left_only or cmp.diff_files or cmp.funny_files)
    return not (os.path.isfile(dest) and filecmp.cmp(source, dest, shallow=False))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a destination differs from its source")
    parser.add_argument("--config", default=CONFIG_FILE)
    args = parser.parse_args(argv)
    strategy = os.environ.get("KOLLA_CONFIG_STRATEGY", "COPY_ALWAYS")
    try:
        if strategy not in STRATEGIES:
            raise ConfigError("KOLLA_CONFIG_STRATEGY={}: use {}".format(strategy, " or ".join(STRATEGIES)))
        try:
            with open(args.config) as handle:
                text = handle.read()
        except OSError as exc:
            raise ConfigError(f"cannot read {args.config}: {exc.strerror}") from None
        command, files, perms = load(text)
        copies = plan_copies(files)
        if args.check:
            changed = [dest for source, dest, _entry in copies if differs(source, dest)]
            for dest in changed:
                print(f"changed: {dest}")
            return 1 if changed else 0
        if strategy == "COPY_ONCE" and os.path.exists(CONFIGURED_MARKER):
            print("COPY_ONCE: already configured, copying nothing")
        else:
            for source, dest, entry in copies:
                copy_one(source, dest, entry)
                print(f"copied {source} -> {dest}")
            if strategy == "COPY_ONCE":
                open(CONFIGURED_MARKER, "w").close()
        set_permissions(perms)
        with open(RUN_COMMAND, "w") as handle:
            handle.write(command)
    except ConfigError as exc:
        print(f"kolla_set_configs: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
