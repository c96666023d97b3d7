# -*- coding: utf-8 -*-
# Copyright: Allmende developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared by the allmende.cloud Ceph modules: cephx keys, the ceph command line, gate checks.

The functions that only look at data (key format, caps comparison, gate evaluation) take plain
Python values so that they can be tested without a cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import contextlib
import json
import os
import struct
import time
import uuid

# A cephx secret is a CryptoKey: type (u16, 1 = AES), created (u32 seconds, u32 nanoseconds),
# length (u16) and the secret itself, little endian, base64 encoded.
KEY_HEADER = struct.Struct("<HIIH")
KEY_TYPE_AES = 1
KEY_SECRET_LEN = 16

# PG states that mean a placement group is not where a rolling restart may continue.
PG_NOT_CLEAN = (
    "unknown",
    "stale",
    "down",
    "incomplete",
    "inconsistent",
    "peering",
    "activating",
    "degraded",
    "undersized",
    "recovering",
    "recovery_wait",
    "backfilling",
    "backfill_wait",
    "backfill_toofull",
    "recovery_toofull",
    "repair",
    "remapped",
    "snaptrim_error",
)


def generate_key(secret=None, now=None):
    """A new cephx key in the text form ceph-authtool prints."""
    secret = os.urandom(KEY_SECRET_LEN) if secret is None else secret
    now = time.time() if now is None else now
    seconds = int(now)
    nanoseconds = int((now - seconds) * 1e9)
    raw = KEY_HEADER.pack(KEY_TYPE_AES, seconds, nanoseconds, len(secret)) + secret
    return base64.b64encode(raw).decode("ascii")


def valid_key(text):
    """True if text is a cephx key as generate_key or ceph-authtool make them."""
    if not isinstance(text, str) or not text:
        return False
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False
    if len(raw) < KEY_HEADER.size:
        return False
    key_type, _sec, _nsec, length = KEY_HEADER.unpack(raw[: KEY_HEADER.size])
    return key_type == KEY_TYPE_AES and length == len(raw) - KEY_HEADER.size and length >= KEY_SECRET_LEN


def normalise_cap(text):
    """Caps as ceph compares them: whitespace around commas and runs of blanks do not matter."""
    parts = [" ".join(part.split()) for part in (text or "").split(",")]
    return ", ".join(p for p in parts if p)


def caps_differ(current, wanted):
    """The daemon types whose caps differ between the cluster (current) and the wish (wanted)."""
    current = dict((k, normalise_cap(v)) for k, v in (current or {}).items() if normalise_cap(v))
    wanted = dict((k, normalise_cap(v)) for k, v in (wanted or {}).items() if normalise_cap(v))
    return sorted(k for k in set(current) | set(wanted) if current.get(k) != wanted.get(k))


def caps_args(caps):
    """`mon 'allow r' osd '...'` as an argument list, in a stable order."""
    args = []
    for daemon in sorted(caps):
        value = normalise_cap(caps[daemon])
        if value:
            args.extend([daemon, value])
    return args


# ---------------------------------------------------------------- cluster identity


def _fsid(value):
    return (value or "").strip().lower()


def parse_keyring(text):
    """{entity: key} from a keyring file's text ([entity] sections with `key = ...`)."""
    keys = {}
    entity = None
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            entity = line[1:-1].strip()
        elif entity and "=" in line:
            name, value = line.split("=", 1)
            if name.strip() == "key":
                keys[entity] = value.strip()
    return keys


def conf_fsid(text):
    """The fsid in the [global] section of a ceph.conf ("" when there is none)."""
    section = None
    for line in (text or "").splitlines():
        line = line.split("#", 1)[0].split(";", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
        elif section == "global" and "=" in line:
            name, value = line.split("=", 1)
            if "_".join(name.strip().lower().replace("-", " ").split()) == "fsid":
                return _fsid(value)
    return ""


def plan_identity(controller, monitors, entities, wanted_fsid="", controller_label="the deployment host", new_key=None):
    """What a deploy does with the cluster's identity (fsid and bootstrap keys). Pure: the callers
    gather the facts and write the files.

    controller: the record on the deployment host, {"fsid": str, "keys": {entity: key}}, or None.
    monitors: one dict per monitor (any order):
      host; secrets: the monitor's copy of the record (same form) or None; conf_fsid: fsid in its
      ceph.conf; store: whether it has a monitor store; store_fsid / running_fsid: the fsid of the
      store and of the running monitor's monmap ("" when unknown); keys: [{"entity", "source",
      "key"}] found in its keyrings or the cluster's auth database; errors: what could not be read.
    entities: the bootstrap entities whose keys the identity holds.

    The result's action is one of
      create   nothing exists anywhere: a new fsid (or wanted_fsid) and new keys;
      reuse    every copy is complete and agrees;
      recover  the cluster or a record exists, some copies are missing or incomplete: they are
               rebuilt from what exists, nothing of an existing cluster is generated;
      refuse   problems (all of them listed): copies that disagree, a cluster whose identity
               cannot be found, monitors that could not be read.
    """
    new_key = new_key or generate_key
    monitors = sorted(monitors, key=lambda m: m["host"])
    problems = []
    for mon in monitors:
        problems.extend("%s: %s" % (mon["host"], e) for e in mon.get("errors") or [])

    records = []
    if controller is not None:
        records.append((controller_label, controller))
    for mon in monitors:
        if mon.get("secrets") is not None:
            records.append(("%s (its copy of the identity)" % mon["host"], mon["secrets"]))

    recorded = [(label, _fsid(rec.get("fsid"))) for label, rec in records if _fsid(rec.get("fsid"))]
    found = []
    for kind, field in (
        ("running monitor", "running_fsid"),
        ("monitor store", "store_fsid"),
        ("ceph.conf", "conf_fsid"),
    ):
        found.extend(("%s (%s)" % (m["host"], kind), _fsid(m.get(field))) for m in monitors if _fsid(m.get(field)))
    stores = [m["host"] for m in monitors if m.get("store") or _fsid(m.get("running_fsid"))]
    exists = bool(stores) or any(_fsid(m.get("conf_fsid")) for m in monitors)

    claims = recorded + found
    if _fsid(wanted_fsid):
        claims.append(("ceph_common_fsid", _fsid(wanted_fsid)))
    reference = claims[0] if claims else None
    if reference is not None:
        for label, value in claims[1:]:
            if value != reference[1]:
                problems.append(
                    "%s has fsid %s, but %s has %s: a cluster's fsid never changes; nothing was written"
                    % (label, value, reference[0], reference[1])
                )
    elif stores:
        problems.append(
            "%s: a monitor store exists, but neither its fsid nor a recorded identity could be read;"
            " restore the identity from a backup (see docs/ceph.md)" % ", ".join(stores)
        )

    keys = {}
    generated = []
    for entity in entities:
        holders = {}
        for label, rec in records:
            key = (rec.get("keys") or {}).get(entity)
            if key:
                holders.setdefault(key, []).append(label)
        for mon in monitors:
            for entry in mon.get("keys") or []:
                if entry.get("entity") == entity and entry.get("key"):
                    holders.setdefault(entry["key"], []).append(
                        "%s (%s)" % (mon["host"], entry.get("source", "keyring"))
                    )
        bad = [label for key, labels in holders.items() if not valid_key(key) for label in labels]
        if bad:
            problems.append("the key of %s in %s is malformed" % (entity, ", ".join(sorted(bad))))
        elif len(holders) > 1:
            groups = sorted(", ".join(sorted(labels)) for labels in holders.values())
            problems.append(
                "the key of %s is not the same everywhere (%s): keys are never replaced; restore the right one"
                % (entity, " / ".join("one in " + g for g in groups))
            )
        elif holders:
            keys[entity] = next(iter(holders))
        elif stores:
            problems.append(
                "the key of %s is in no recorded identity, no keyring on a monitor and not in the cluster's"
                " answer: keys of an existing cluster are never generated; restore it (`ceph auth get %s`)"
                % (entity, entity)
            )
        else:
            keys[entity] = new_key()
            generated.append(entity)

    fsid = reference[1] if reference is not None else ""
    if not fsid and not problems:
        fsid = str(uuid.uuid4())
        generated.insert(0, "fsid")

    def complete(rec):
        return (
            rec is not None
            and _fsid(rec.get("fsid")) == fsid
            and all((rec.get("keys") or {}).get(e) == keys.get(e) for e in entities)
        )

    result = {
        "fsid": fsid,
        "keys": keys,
        "generated": generated,
        "problems": problems,
        "cluster_exists": exists,
        "mon_stores": stores,
        "write_controller": False,
        "write_monitors": [],
    }
    if problems:
        result.update(action="refuse", fsid="", keys={}, generated=[])
        return result
    result["write_controller"] = not complete(controller)
    result["write_monitors"] = [m["host"] for m in monitors if not complete(m.get("secrets"))]
    if not records and not exists:
        result["action"] = "create"
    elif result["write_controller"] or result["write_monitors"]:
        result["action"] = "recover"
    else:
        result["action"] = "reuse"
    return result


class CephError(Exception):
    pass


class Ceph(object):
    """The ceph command line, bounded in time, JSON output."""

    def __init__(self, module, cluster="ceph", connect_timeout=10, command_timeout=60):
        self.module = module
        self.cluster = cluster
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.binary = module.get_bin_path("ceph", required=True)
        self.timeout = module.get_bin_path("timeout")

    def argv(self, args, json_out=True):
        argv = [self.binary, "--cluster", self.cluster, "--connect-timeout", str(self.connect_timeout)]
        argv.extend(args)
        if json_out:
            argv.extend(["--format", "json"])
        if self.timeout:
            argv = [self.timeout, str(self.command_timeout), *argv]
        return argv

    def run(self, args, json_out=True):
        """(rc, parsed output or text, stderr) without failing."""
        rc, out, err = self.module.run_command(self.argv(args, json_out))
        data = out
        if json_out and rc == 0 and out.strip():
            try:
                data = json.loads(out)
            except ValueError:
                data = out
        return rc, data, err.strip()

    def check(self, args, json_out=True):
        rc, data, err = self.run(args, json_out)
        if rc != 0:
            raise CephError(describe_failure(args, rc, err))
        return data


def describe_failure(args, rc, err):
    if rc == 124:
        return "`ceph %s` did not answer in time (no monitor quorum reachable?)" % " ".join(args)
    last = (err.splitlines() or ["rc=%d" % rc])[-1]
    return "`ceph %s` failed: %s" % (" ".join(args), last)


def cli_args(cmd):
    """The ceph command line for a command given as JSON: the prefix words, then the values in
    the order the dict lists them (which is the order the command line expects)."""
    args = cmd["prefix"].split()
    for key, value in cmd.items():
        if key in ("prefix", "format"):
            continue
        args.extend(str(v) for v in (value if isinstance(value, list) else [value]))
    return args


class CephSession(object):
    """One connection to the cluster for many commands (python3-rados, which ceph-common
    installs); falls back to the ceph command line where the binding is missing.

    Commands are given as the JSON the monitors understand, e.g. {"prefix": "osd pool set",
    "pool": "images", "var": "size", "val": "3"}, arguments in command-line order; mgr commands
    (osd ok-to-stop) go to the active manager.
    """

    def __init__(self, module, cluster="ceph", connect_timeout=10, command_timeout=30):
        self.module = module
        self.cluster = cluster
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.client = None
        try:
            import rados

            self.rados = rados
        except ImportError:
            self.rados = None
            self.cli = Ceph(module, cluster, connect_timeout, command_timeout)

    def close(self):
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.shutdown()
            self.client = None

    def _connect(self):
        if self.client is None:
            client = self.rados.Rados(
                clustername=self.cluster, rados_id="admin", conffile="/etc/ceph/%s.conf" % self.cluster
            )
            try:
                client.connect(timeout=self.connect_timeout)
            except Exception as exc:  # pylint: disable=broad-except
                with contextlib.suppress(Exception):
                    client.shutdown()
                raise CephError("cannot connect to the cluster (no monitor quorum reachable?): %s" % exc) from exc
            self.client = client
        return self.client

    def call(self, cmd, target="mon"):
        """(rc, output, message) of one command; rc 0 is success, otherwise an errno."""
        if self.rados is None:
            return self.cli.run(cli_args(cmd), json_out=cmd.get("format") == "json")
        client = self._connect()
        send = client.mgr_command if target == "mgr" else client.mon_command
        try:
            ret, out, outs = send(json.dumps(cmd), b"", timeout=self.command_timeout)
        except Exception as exc:  # pylint: disable=broad-except
            self.close()
            raise CephError("`ceph %s` failed: %s" % (cmd["prefix"], exc)) from exc
        data = out.decode("utf-8", "replace") if isinstance(out, bytes) else out
        if ret == 0 and cmd.get("format") == "json" and data.strip():
            with contextlib.suppress(ValueError):
                data = json.loads(data)
        return -ret if ret < 0 else ret, data, (outs or "").strip()

    def check(self, cmd, target="mon"):
        """The output of a command that must succeed."""
        rc, data, err = self.call(cmd, target)
        if rc != 0:
            raise CephError("`ceph %s` failed: %s" % (" ".join(cli_args(cmd)), err or "errno %d" % rc))
        return data

    def json(self, prefix, **args):
        cmd = {"prefix": prefix}
        cmd.update(args)
        cmd["format"] = "json"
        return self.check(cmd)


# ---------------------------------------------------------------- gates


def pg_summary(status):
    """(number of PGs, {state: count} of PGs that are not active+clean) from `ceph status`."""
    pgmap = status.get("pgmap") or {}
    total = int(pgmap.get("num_pgs") or 0)
    bad = {}
    counted = 0
    for entry in pgmap.get("pgs_by_state") or []:
        state = entry.get("state_name", "")
        count = int(entry.get("count") or 0)
        counted += count
        parts = set(state.split("+"))
        if "active" not in parts or "clean" not in parts or parts.intersection(PG_NOT_CLEAN):
            bad[state] = bad.get(state, 0) + count
    if counted < total:
        bad["not reported"] = total - counted
    return total, bad


def osd_hosts(tree):
    """{osd id: host bucket name} from `ceph osd tree`."""
    hosts = {}
    for node in (tree or {}).get("nodes") or []:
        if node.get("type") == "host":
            for child in node.get("children") or []:
                hosts[child] = node.get("name")
    return hosts


def osd_states(osd_dump):
    """{osd id: {"up": bool, "in": bool, "up_from": int}} from `ceph osd dump`."""
    states = {}
    for osd in (osd_dump or {}).get("osds") or []:
        states[int(osd["osd"])] = {
            "up": bool(osd.get("up")),
            "in": bool(osd.get("in")),
            "up_from": int(osd.get("up_from") or 0),
        }
    return states


def _names(ids, hosts):
    return ", ".join("osd.%d (%s)" % (i, hosts.get(i, "no host")) for i in sorted(ids))


def evaluate(snapshot, wanted):
    """Every reason why the cluster in `snapshot` does not pass the gate `wanted` (empty: it passes).

    snapshot keys (each optional): error (str: the cluster could not be asked), status (`ceph
    status`), quorum (`ceph quorum_status`), osd_dump, tree (`ceph osd tree`), mgr_dump,
    ok_to_stop_osds / ok_to_stop_mon ((rc, message)), units ({unit: state}).
    """
    if snapshot.get("error"):
        return [snapshot["error"]]
    problems = []
    status = snapshot.get("status") or {}
    if wanted.get("health_not_err"):
        health = status.get("health") or {}
        if health.get("status") == "HEALTH_ERR":
            checks = health.get("checks") or {}
            detail = "; ".join(
                "%s: %s" % (code, (check.get("summary") or {}).get("message", ""))
                for code, check in sorted(checks.items())
                if check.get("severity") == "HEALTH_ERR"
            )
            problems.append("health is HEALTH_ERR (%s)" % (detail or "no detail"))

    quorum = snapshot.get("quorum")
    if quorum is not None:
        in_quorum = set(quorum.get("quorum_names") or [])
        members = [m.get("name") for m in (quorum.get("monmap") or {}).get("mons") or []]
        if wanted.get("quorum_complete"):
            missing = [m for m in members if m not in in_quorum]
            if missing:
                problems.append(
                    "monitor(s) %s not in quorum (quorum: %s)"
                    % (", ".join(missing), ", ".join(sorted(in_quorum)) or "none")
                )
        above = wanted.get("election_epoch_above")
        if above is not None and int(quorum.get("election_epoch") or 0) <= int(above):
            problems.append("no monitor election since epoch %s yet (the restarted monitor has not rejoined)" % above)
        for name in wanted.get("in_quorum") or []:
            if name not in members:
                problems.append("monitor %s is not in the monmap" % name)
            elif name not in in_quorum and not wanted.get("quorum_complete"):
                problems.append("monitor %s is not in quorum" % name)

    hosts = osd_hosts(snapshot.get("tree"))
    states = osd_states(snapshot.get("osd_dump"))
    if wanted.get("all_osds_up") and snapshot.get("osd_dump") is not None:
        down = [i for i, s in states.items() if s["in"] and not s["up"]]
        if down:
            problems.append("%d OSD(s) down: %s" % (len(down), _names(down, hosts)))
    host = wanted.get("host_osds_up")
    if host:
        mine = [i for i, h in hosts.items() if h == host]
        if not mine:
            problems.append("no OSDs of host %s in the CRUSH map" % host)
        down = [i for i in mine if not states.get(i, {}).get("up")]
        if down and not wanted.get("all_osds_up"):
            problems.append("OSD(s) of %s down: %s" % (host, _names(down, hosts)))
    for osd_id, before in sorted((wanted.get("osds_restarted") or {}).items()):
        state = states.get(int(osd_id))
        if state is None:
            problems.append("osd.%s is not in the OSD map" % osd_id)
        elif not state["up"] or state["up_from"] <= int(before):
            problems.append("osd.%s has not come back up since its restart" % osd_id)

    if wanted.get("mgr_available") or wanted.get("mgrs_present"):
        mgr = snapshot.get("mgr_dump") or {}
        if not mgr.get("available"):
            problems.append("no manager is active")
        present = set([mgr.get("active_name")] + [s.get("name") for s in mgr.get("standbys") or []])
        absent = [m for m in wanted.get("mgrs_present") or [] if m not in present]
        if absent:
            problems.append("manager(s) %s neither active nor standby" % ", ".join(absent))

    if wanted.get("pgs_active_clean"):
        total, bad = pg_summary(status)
        if bad:
            problems.append(
                "%d of %d PGs not active+clean (%s)"
                % (sum(bad.values()), total, ", ".join("%s: %d" % kv for kv in sorted(bad.items())))
            )

    for key, what in (("ok_to_stop_osds", "OSDs"), ("ok_to_stop_mon", "monitor")):
        answer = snapshot.get(key)
        if answer is not None and answer[0] != 0:
            problems.append("ceph says stopping the %s is unsafe: %s" % (what, answer[1] or "rc=%d" % answer[0]))

    for unit, state in sorted((snapshot.get("units") or {}).items()):
        if state != "active":
            problems.append("%s is %s" % (unit, state or "unknown"))
    return problems


def summarise(snapshot):
    """A short picture of the cluster for reports."""
    status = snapshot.get("status") or {}
    quorum = snapshot.get("quorum") or {}
    states = osd_states(snapshot.get("osd_dump"))
    total, bad = pg_summary(status)
    mgr = snapshot.get("mgr_dump") or {}
    gids = dict((s.get("name"), s.get("gid")) for s in mgr.get("standbys") or [])
    if mgr.get("active_name"):
        gids[mgr["active_name"]] = mgr.get("active_gid")
    flags = (snapshot.get("osd_dump") or {}).get("flags", "")
    return {
        "health": (status.get("health") or {}).get("status", "unknown"),
        "health_checks": sorted(((status.get("health") or {}).get("checks") or {}).keys()),
        "quorum": sorted(quorum.get("quorum_names") or []),
        "mons": [m.get("name") for m in (quorum.get("monmap") or {}).get("mons") or []],
        "osds": len(states),
        "osds_up": len([s for s in states.values() if s["up"]]),
        "osds_in": len([s for s in states.values() if s["in"]]),
        "pgs": total,
        "pgs_active_clean": total - sum(bad.values()),
        "flags": sorted(f for f in flags.split(",") if f),
        "election_epoch": int(quorum.get("election_epoch") or 0),
        "osd_up_from": dict((str(i), st["up_from"]) for i, st in sorted(states.items())),
        "mgr_active": mgr.get("active_name") or "",
        "mgr_gids": gids,
    }
