"""The logic behind the Ceph modules: cephx keys, caps, and the gates of the rolling restart."""

import base64
import struct

from conftest import load_plugin_module

ceph = load_plugin_module("plugins/module_utils/ceph.py")


# ---------------------------------------------------------------- keys and caps


def test_generated_keys_have_the_cephx_format():
    key = ceph.generate_key(secret=b"\x01" * 16, now=1700000000.5)
    raw = base64.b64decode(key)
    assert struct.unpack("<HIIH", raw[:12]) == (1, 1700000000, 500000000, 16)
    assert raw[12:] == b"\x01" * 16
    assert key.startswith("AQ")
    assert ceph.valid_key(key)
    assert ceph.generate_key() != ceph.generate_key()


def test_keys_made_by_ceph_authtool_are_valid_and_garbage_is_not():
    assert ceph.valid_key("AQCK7QNrkl1ZBxAAZhKMnPd6trM6tj1Nl+IeVQ==")
    for bad in ("", "not base64!", base64.b64encode(b"short").decode(), None, 42):
        assert not ceph.valid_key(bad)
    wrong_type = base64.b64encode(struct.pack("<HIIH", 2, 0, 0, 16) + b"x" * 16).decode()
    assert not ceph.valid_key(wrong_type)


def test_caps_compare_like_ceph_does():
    current = {"mon": "profile rbd", "osd": "profile rbd pool=vms,  profile rbd-read-only pool=images"}
    wanted = {"mon": "profile  rbd", "osd": "profile rbd pool=vms, profile rbd-read-only pool=images"}
    assert ceph.caps_differ(current, wanted) == []
    assert ceph.caps_differ(current, {**wanted, "mgr": "profile rbd pool=vms"}) == ["mgr"]
    assert ceph.caps_differ(current, {"mon": "profile rbd"}) == ["osd"]
    assert ceph.caps_args({"osd": "allow *", "mon": "allow r", "mds": ""}) == ["mon", "allow r", "osd", "allow *"]


# ---------------------------------------------------------------- gates


def status(health="HEALTH_OK", pgs=None, checks=None):
    pgs = pgs if pgs is not None else [("active+clean", 96)]
    return {
        "health": {"status": health, "checks": checks or {}},
        "pgmap": {
            "num_pgs": sum(count for _state, count in pgs),
            "pgs_by_state": [{"state_name": s, "count": c} for s, c in pgs],
        },
    }


def snapshot(**overrides):
    snap = {
        "status": status(),
        "quorum": {
            "election_epoch": 10,
            "quorum_names": ["node1", "node2", "node3"],
            "monmap": {"mons": [{"name": "node1"}, {"name": "node2"}, {"name": "node3"}]},
        },
        "osd_dump": {
            "flags": "sortbitwise,noout",
            "osds": [{"osd": i, "up": 1, "in": 1, "up_from": 100 + i} for i in range(6)],
        },
        "tree": {
            "nodes": [
                {"id": -3, "type": "host", "name": "node1", "children": [0, 3]},
                {"id": -5, "type": "host", "name": "node2", "children": [1, 4]},
                {"id": -7, "type": "host", "name": "node3", "children": [2, 5]},
            ]
        },
        "mgr_dump": {
            "available": True,
            "active_name": "node1",
            "active_gid": 4100,
            "standbys": [{"name": "node2", "gid": 4200}, {"name": "node3", "gid": 4300}],
        },
    }
    snap.update(overrides)
    return snap


EVERYTHING = {
    "health_not_err": True,
    "quorum_complete": True,
    "all_osds_up": True,
    "pgs_active_clean": True,
    "mgr_available": True,
    "mgrs_present": ["node1", "node2", "node3"],
}


def test_a_healthy_cluster_passes_every_gate():
    assert ceph.evaluate(snapshot(), EVERYTHING) == []


def test_scrubbing_pgs_count_as_clean_but_degraded_or_unknown_ones_do_not():
    snap = snapshot(status=status(pgs=[("active+clean", 90), ("active+clean+scrubbing+deep", 6)]))
    assert ceph.evaluate(snap, {"pgs_active_clean": True}) == []
    snap = snapshot(status=status(pgs=[("active+clean", 90), ("active+undersized+degraded", 4), ("unknown", 2)]))
    assert ceph.evaluate(snap, {"pgs_active_clean": True}) == [
        "6 of 96 PGs not active+clean (active+undersized+degraded: 4, unknown: 2)"
    ]


def test_pgs_the_manager_has_not_reported_are_not_clean():
    snap = snapshot(status={"health": {"status": "HEALTH_OK"}, "pgmap": {"num_pgs": 10, "pgs_by_state": []}})
    assert ceph.evaluate(snap, {"pgs_active_clean": True}) == ["10 of 10 PGs not active+clean (not reported: 10)"]


def test_health_err_is_refused_with_its_checks_but_warnings_pass():
    checks = {
        "MON_DISK_CRIT": {"severity": "HEALTH_ERR", "summary": {"message": "mon node1 is very low on disk space"}},
        "OSDMAP_FLAGS": {"severity": "HEALTH_WARN", "summary": {"message": "noout flag(s) set"}},
    }
    snap = snapshot(status=status("HEALTH_ERR", checks=checks))
    assert ceph.evaluate(snap, {"health_not_err": True}) == [
        "health is HEALTH_ERR (MON_DISK_CRIT: mon node1 is very low on disk space)"
    ]
    assert ceph.evaluate(snapshot(status=status("HEALTH_WARN")), {"health_not_err": True}) == []


def test_lost_quorum_names_the_missing_monitors():
    quorum = snapshot()["quorum"]
    snap = snapshot(quorum={**quorum, "quorum_names": ["node1", "node2"]})
    assert ceph.evaluate(snap, {"quorum_complete": True}) == ["monitor(s) node3 not in quorum (quorum: node1, node2)"]
    assert ceph.evaluate(snap, {"in_quorum": ["node3"]}) == ["monitor node3 is not in quorum"]
    assert ceph.evaluate(snap, {"in_quorum": ["node9"]}) == ["monitor node9 is not in the monmap"]


def test_a_restarted_monitor_must_have_caused_a_new_election():
    assert ceph.evaluate(snapshot(), {"election_epoch_above": 10}) == [
        "no monitor election since epoch 10 yet (the restarted monitor has not rejoined)"
    ]
    assert ceph.evaluate(snapshot(), {"election_epoch_above": 9}) == []


def test_down_osds_are_named_with_their_host_even_when_health_is_ok():
    dump = snapshot()["osd_dump"]
    osds = [dict(o, up=0) if o["osd"] in (2, 5) else o for o in dump["osds"]]
    snap = snapshot(osd_dump={**dump, "osds": osds})
    assert ceph.evaluate(snap, {"all_osds_up": True}) == ["2 OSD(s) down: osd.2 (node3), osd.5 (node3)"]
    assert ceph.evaluate(snap, {"host_osds_up": "node3"}) == ["OSD(s) of node3 down: osd.2 (node3), osd.5 (node3)"]
    assert ceph.evaluate(snap, {"host_osds_up": "node1"}) == []
    assert ceph.evaluate(snap, {"host_osds_up": "node9"}) == ["no OSDs of host node9 in the CRUSH map"]


def test_an_osd_that_is_out_and_down_does_not_block():
    dump = snapshot()["osd_dump"]
    osds = [dict(o, up=0, **{"in": 0}) if o["osd"] == 4 else o for o in dump["osds"]]
    assert ceph.evaluate(snapshot(osd_dump={**dump, "osds": osds}), {"all_osds_up": True}) == []


def test_restarted_osds_must_be_up_since_a_newer_epoch():
    wanted = {"osds_restarted": {"0": 100, "3": 103}}
    assert ceph.evaluate(snapshot(), wanted) == [
        "osd.0 has not come back up since its restart",
        "osd.3 has not come back up since its restart",
    ]
    dump = snapshot()["osd_dump"]
    osds = [dict(o, up_from=150) if o["osd"] in (0, 3) else o for o in dump["osds"]]
    assert ceph.evaluate(snapshot(osd_dump={**dump, "osds": osds}), wanted) == []
    assert ceph.evaluate(snapshot(), {"osds_restarted": {"9": 1}}) == ["osd.9 is not in the OSD map"]


def test_managers_must_be_active_and_all_reported():
    mgr = snapshot()["mgr_dump"]
    snap = snapshot(mgr_dump={**mgr, "standbys": [{"name": "node2", "gid": 4200}]})
    assert ceph.evaluate(snap, {"mgrs_present": ["node1", "node2", "node3"]}) == [
        "manager(s) node3 neither active nor standby"
    ]
    snap = snapshot(mgr_dump={"available": False, "active_name": "", "standbys": []})
    assert "no manager is active" in ceph.evaluate(snap, {"mgr_available": True})


def test_ok_to_stop_answers_and_systemd_units_are_reported():
    unsafe = "unsafe to stop osd(s) at this time (12 PGs are or would become offline)"
    snap = snapshot(
        ok_to_stop_osds=(16, unsafe),
        ok_to_stop_mon=(0, ""),
        units={"ceph-osd@0": "active", "ceph-osd@3": "failed"},
    )
    assert ceph.evaluate(snap, {}) == [
        f"ceph says stopping the OSDs is unsafe: {unsafe}",
        "ceph-osd@3 is failed",
    ]


def test_an_unreachable_cluster_is_the_only_problem():
    assert ceph.evaluate({"error": "cannot connect to the cluster"}, EVERYTHING) == ["cannot connect to the cluster"]


def test_the_summary_has_what_the_restart_gates_and_the_report_need():
    summary = ceph.summarise(snapshot(status=status(pgs=[("active+clean", 90), ("peering", 6)])))
    assert summary["health"] == "HEALTH_OK"
    assert summary["quorum"] == ["node1", "node2", "node3"]
    assert (summary["osds"], summary["osds_up"], summary["osds_in"]) == (6, 6, 6)
    assert (summary["pgs"], summary["pgs_active_clean"]) == (96, 90)
    assert summary["flags"] == ["noout", "sortbitwise"]
    assert summary["election_epoch"] == 10
    assert summary["osd_up_from"]["3"] == 103
    assert summary["mgr_active"] == "node1"
    assert summary["mgr_gids"] == {"node1": 4100, "node2": 4200, "node3": 4300}
