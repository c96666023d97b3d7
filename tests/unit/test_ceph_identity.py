"""The decision on a Ceph cluster's identity: create once, reuse, recover from what exists, or
refuse with every problem named; never a generated fsid or key for an existing cluster."""

import itertools

import pytest
from conftest import load_plugin_module

ceph = load_plugin_module("plugins/module_utils/ceph.py")

ENTITIES = ["mon.", "client.admin", "client.bootstrap-osd"]
FSID = "6f1c7a52-3d0e-4b8a-9a51-0c2f1e6d9b10"
OTHER = "0b9d2c11-7e4f-4a6b-8c3d-5e1f2a3b4c5d"
_secrets = itertools.count(1)


def key():
    return ceph.generate_key(secret=bytes([next(_secrets) % 256]) * 16, now=1700000000)


KEYS = {e: key() for e in ENTITIES}
RECORD = {"fsid": FSID, "keys": dict(KEYS)}


def mon(host, *, secrets="recorded", store=True, running=FSID, conf=FSID, keys=None, errors=()):
    """A monitor of a deployed cluster: its copy of the record, store, running monitor, ceph.conf."""
    secrets = RECORD if secrets == "recorded" else secrets
    if keys is None:
        keys = [{"entity": "mon.", "source": "mon keyring", "key": KEYS["mon."]}] if store else []
    return {
        "host": host,
        "secrets": None if secrets is None else {"fsid": secrets["fsid"], "keys": dict(secrets["keys"])},
        "store": store,
        "store_fsid": "",
        "running_fsid": running if store else "",
        "conf_fsid": conf,
        "keys": keys,
        "errors": list(errors),
    }


def fresh(host):
    return mon(host, secrets=None, store=False, conf="")


def plan(controller, monitors, **kw):
    return ceph.plan_identity(controller, monitors, ENTITIES, **kw)


def test_a_new_cluster_gets_a_new_identity_once():
    result = plan(None, [fresh("node1"), fresh("node2"), fresh("node3")])
    assert result["action"] == "create"
    assert result["generated"] == ["fsid", *ENTITIES]
    assert result["write_controller"] and result["write_monitors"] == ["node1", "node2", "node3"]
    assert all(ceph.valid_key(result["keys"][e]) for e in ENTITIES)
    assert len(set(result["keys"].values())) == 3
    again = plan(
        {"fsid": result["fsid"], "keys": result["keys"]},
        [
            mon(h, secrets={"fsid": result["fsid"], "keys": result["keys"]}, store=False, conf="")
            for h in ("node1", "node2")
        ],
    )
    assert again["action"] == "reuse" and again["generated"] == [] and again["fsid"] == result["fsid"]


def test_a_fixed_fsid_is_used_for_a_new_cluster():
    result = plan(None, [fresh("node1")], wanted_fsid=FSID.upper())
    assert result["action"] == "create" and result["fsid"] == FSID
    assert "fsid" not in result["generated"]


def test_everything_in_place_is_reused_unchanged():
    result = plan(RECORD, [mon("node1"), mon("node2"), mon("node3")])
    assert result["action"] == "reuse"
    assert (result["fsid"], result["keys"], result["generated"]) == (FSID, KEYS, [])
    assert not result["write_controller"] and result["write_monitors"] == []


@pytest.mark.parametrize("controller", [RECORD, None])
def test_reordered_monitors_and_a_lost_copy_recover_the_same_identity(controller):
    monitors = [mon("node3"), mon("node1", secrets=None), mon("node2")]
    for order in itertools.permutations(monitors):
        result = plan(controller, list(order))
        assert result["action"] == "recover"
        assert (result["fsid"], result["keys"], result["generated"]) == (FSID, KEYS, [])
        assert result["write_monitors"] == ["node1"]
        assert result["write_controller"] is (controller is None)


def test_no_record_anywhere_recovers_from_the_cluster_and_its_keyrings():
    auth = [{"entity": e, "source": "ceph auth", "key": KEYS[e]} for e in ENTITIES]
    monitors = [mon("node1", secrets=None, keys=auth), mon("node2", secrets=None), mon("node3", secrets=None)]
    result = plan(None, monitors)
    assert result["action"] == "recover"
    assert (result["fsid"], result["keys"], result["generated"]) == (FSID, KEYS, [])
    assert result["write_controller"] and result["write_monitors"] == ["node1", "node2", "node3"]


def test_an_existing_cluster_whose_key_is_nowhere_is_refused_not_given_a_new_key():
    only_mon_key = [mon(h, secrets=None) for h in ("node1", "node2", "node3")]
    result = plan(None, only_mon_key)
    assert result["action"] == "refuse" and result["keys"] == {} and result["generated"] == []
    text = " ".join(result["problems"])
    assert "client.admin" in text and "client.bootstrap-osd" in text and "never generated" in text


def test_a_store_with_an_unreadable_fsid_and_no_record_is_refused():
    monitors = [dict(mon("node1", secrets=None, conf=""), running_fsid="")]
    result = plan(None, monitors)
    assert result["action"] == "refuse" and result["fsid"] == ""
    assert any("node1" in p and "store" in p for p in result["problems"])


def test_a_ceph_conf_with_an_fsid_alone_forbids_a_new_fsid():
    monitors = [mon("node1", secrets=None, store=False, conf=FSID), fresh("node2")]
    result = plan(None, monitors)
    assert result["fsid"] == FSID and "fsid" not in result["generated"]
    assert result["cluster_exists"] and result["action"] == "recover"


def test_a_foreign_fsid_anywhere_stops_the_run_naming_host_and_both_fsids():
    monitors = [mon("node1"), mon("node2", conf=OTHER), mon("node3")]
    result = plan(RECORD, monitors)
    assert result["action"] == "refuse"
    assert result["write_monitors"] == [] and not result["write_controller"]
    [problem] = result["problems"]
    assert "node2 (ceph.conf)" in problem and OTHER in problem and FSID in problem


def test_all_problems_are_listed_at_once():
    other_admin = {"entity": "client.admin", "source": "/etc/ceph/ceph.client.admin.keyring", "key": key()}
    monitors = [
        mon("node1", conf=OTHER),
        mon("node2", keys=[other_admin]),
        mon("node3", errors=["/etc/ceph/ceph.conf cannot be read: permission denied"]),
    ]
    result = plan(RECORD, monitors, wanted_fsid=OTHER)
    problems = result["problems"]
    assert result["action"] == "refuse" and len(problems) == 4, problems
    assert any(p.startswith("node3: /etc/ceph/ceph.conf cannot be read") for p in problems)
    assert any("node1 (ceph.conf) has fsid " + OTHER in p for p in problems)
    assert any("ceph_common_fsid has fsid " + OTHER in p for p in problems)
    assert any("client.admin" in p and "node2" in p and "not the same" in p for p in problems)
    assert not any(k in " ".join(problems) for k in [*KEYS.values(), other_admin["key"]])


def test_a_record_that_disagrees_with_the_running_cluster_is_refused():
    monitors = [mon("node1", running=OTHER, conf=OTHER, secrets={"fsid": OTHER, "keys": KEYS})]
    result = plan(RECORD, monitors)
    assert result["action"] == "refuse"
    assert len(result["problems"]) == 3 and all(OTHER in p and FSID in p for p in result["problems"])


def test_a_malformed_key_is_refused():
    broken = {"fsid": FSID, "keys": dict(KEYS, **{"client.admin": "not-a-key"})}
    result = plan(broken, [mon("node1")])
    assert result["action"] == "refuse"
    assert any("client.admin" in p and "malformed" in p for p in result["problems"])


def test_a_missing_key_of_a_new_cluster_is_generated_but_recorded_ones_kept():
    partial = {"fsid": FSID, "keys": {"mon.": KEYS["mon."]}}
    result = plan(partial, [fresh("node1")])
    assert result["action"] == "recover" and result["fsid"] == FSID
    assert result["keys"]["mon."] == KEYS["mon."]
    assert result["generated"] == ["client.admin", "client.bootstrap-osd"]


def test_keyrings_and_ceph_conf_are_read_like_ceph_writes_them():
    text = '[client.admin]\n\tkey = AQBx==\n\tcaps mon = "allow *"\n[mon.]\n    key=AQBy==\n'
    assert ceph.parse_keyring(text) == {"client.admin": "AQBx==", "mon.": "AQBy=="}
    conf = f"# managed\n[global]\nmon host = x\n  FSID = {FSID.upper()} ; comment\n[mon]\nfsid = {OTHER}\n"
    assert ceph.conf_fsid(conf) == FSID
    assert ceph.conf_fsid(f"[mon]\nfsid = {OTHER}\n") == ""
