"""Galera positions and the bootstrap decision: never from a stale node, never over existing data."""

from conftest import load_plugin_module

galera = load_plugin_module("plugins/module_utils/galera.py")

UUID = "3b2c4f0a-9d1e-11ef-8c5a-2a5e1f0c7b11"
OTHER = "7f00aa11-9d1e-11ef-8c5a-2a5e1f0c7b11"
GROUP = ["db1", "db2", "db3"]

GRASTATE_CRASHED = f"""# GALERA saved state
version: 2.1
uuid:    {UUID}
seqno:   -1
safe_to_bootstrap: 0
"""

RECOVER_LOG = f"""2026-12-02  1:00:00 0 [Note] Starting MariaDB 10.11.14-MariaDB-0+deb13u1 source revision
2026-12-02  1:00:00 0 [Note] InnoDB: Starting crash recovery from checkpoint LSN=46846
2026-12-02  1:00:01 0 [Note] WSREP: Recovered position: {UUID}:1841
2026-12-02  1:00:01 0 [Note] mariadbd: Shutdown complete
"""


def node(seqno=-1, recovered=None, uuid=UUID, safe=False, **extra):
    state = {"reachable": True, "running": False, "uuid": uuid, "seqno": seqno, "safe_to_bootstrap": safe}
    if recovered is not None:
        state.update(recovered_uuid=uuid, recovered_seqno=recovered)
    state.update(extra)
    return state


def test_grastate_and_the_recovery_output_are_read():
    assert galera.parse_grastate(GRASTATE_CRASHED) == {"uuid": UUID, "seqno": -1, "safe_to_bootstrap": False}
    clean = GRASTATE_CRASHED.replace("seqno:   -1", "seqno:   1900").replace(
        "safe_to_bootstrap: 0", "safe_to_bootstrap: 1"
    )
    assert galera.parse_grastate(clean) == {"uuid": UUID, "seqno": 1900, "safe_to_bootstrap": True}
    assert galera.parse_grastate("") == {"uuid": None, "seqno": None, "safe_to_bootstrap": None}
    assert galera.parse_recovered_position(RECOVER_LOG) == (UUID, 1841)
    assert galera.parse_recovered_position("InnoDB: nothing here") is None
    twice = RECOVER_LOG + f"0 [Note] WSREP: Recovered position: {UUID}:1850\n"
    assert galera.parse_recovered_position(twice) == (UUID, 1850)


def test_the_most_advanced_node_bootstraps_and_the_rest_join():
    plan = galera.recovery_plan(
        GROUP, {"db1": node(recovered=1800), "db2": node(recovered=1841), "db3": node(recovered=1799)}
    )
    assert plan["errors"] == []
    assert plan["bootstrap"] == "db2"
    assert plan["join"] == ["db1", "db3"]
    assert plan["positions"] == {"db1": 1800, "db2": 1841, "db3": 1799}
    assert plan["stale"] == ["db1", "db3"]


def test_a_stale_node_marked_safe_to_bootstrap_is_not_chosen():
    # db1 was stopped cleanly earlier (safe_to_bootstrap: 1, seqno 1500); rows were written after.
    nodes = {"db1": node(seqno=1500, safe=True), "db2": node(recovered=1900), "db3": node(recovered=1900)}
    plan = galera.recovery_plan(GROUP, nodes)
    assert plan["bootstrap"] == "db2" and "db1" in plan["stale"]


def test_among_equals_galeras_own_safe_flag_decides():
    nodes = {"db1": node(recovered=1900), "db2": node(seqno=1900, safe=True), "db3": node(recovered=1900)}
    assert galera.recovery_plan(GROUP, nodes)["bootstrap"] == "db2"
    nodes["db2"]["safe_to_bootstrap"] = False
    assert galera.recovery_plan(GROUP, nodes)["bootstrap"] == "db1"


def test_a_missing_running_or_positionless_member_or_two_clusters_stop_the_recovery():
    plan = galera.recovery_plan(GROUP, {"db1": node(recovered=5), "db2": node(recovered=9)})
    assert plan["bootstrap"] is None and any(e.startswith("db3: not reachable") for e in plan["errors"])
    nodes = {"db1": node(recovered=5), "db2": node(recovered=9), "db3": node(recovered=9, reachable=False)}
    assert galera.recovery_plan(GROUP, nodes)["bootstrap"] is None
    nodes = {"db1": node(recovered=5), "db2": node(recovered=9), "db3": node(running=True)}
    assert "db3: MariaDB is running" in galera.recovery_plan(GROUP, nodes)["errors"][0]
    nodes = {"db1": node(recovered=5), "db2": node(), "db3": node(recovered=3)}
    assert galera.recovery_plan(GROUP, nodes)["errors"] == [
        "db2: no position: grastate.dat seqno is -1 and the recovery run printed none"
    ]
    nodes = {"db1": node(recovered=5), "db2": node(recovered=7, uuid=OTHER), "db3": node(recovered=3)}
    errors = galera.recovery_plan(GROUP, nodes)["errors"]
    assert len(errors) == 1 and "different clusters" in errors[0] and OTHER in errors[0]


def test_deploy_bootstraps_only_an_empty_cluster_seen_whole():
    empty = {"uuid": None, "seqno": None, "running": False}
    nodes = {h: dict(empty) for h in GROUP}
    assert galera.deploy_plan(GROUP, GROUP, nodes) == {"bootstrap": "db1", "start": ["db2", "db3"], "errors": []}
    limited = galera.deploy_plan(GROUP, ["db2", "db3"], nodes)
    assert limited["bootstrap"] is None and "db1 is not in the run" in limited["errors"][0]


def test_deploy_joins_a_running_primary_and_never_bootstraps_over_data():
    nodes = {
        "db1": {"running": True, "primary": True, "synced": True, "uuid": UUID},
        "db2": {"running": False, "uuid": UUID, "seqno": 10},
        "db3": {"running": False, "uuid": None, "seqno": None},
    }
    assert galera.deploy_plan(GROUP, GROUP, nodes) == {"bootstrap": None, "start": ["db2", "db3"], "errors": []}
    down = {h: {"running": False, "uuid": UUID, "seqno": -1} for h in GROUP}
    plan = galera.deploy_plan(GROUP, GROUP, down)
    assert plan["bootstrap"] is None and "recover action" in plan["errors"][0]
    split = {h: {"running": True, "primary": False, "uuid": UUID} for h in GROUP}
    assert "lost quorum" in galera.deploy_plan(GROUP, GROUP, split)["errors"][0]
