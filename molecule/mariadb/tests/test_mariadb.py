"""MariaDB Galera on three control nodes: a synced cluster of three, the clustercheck endpoint,
replication, and the must-shows: recovery of a cluster killed hard from its most advanced node,
never from a stale one, and a backup that a restore brings back."""

import shlex
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared" / "tests"))
from check_action import deploy
from scenario_hosts import ADDRESS, HOSTS

PLAYBOOK = "mariadb.yml"
UNIT = "allmende-mariadb.service"
DATADIR = "/var/lib/allmende/mariadb"


def sql(name, query):
    """Run SQL in the mariadb container of a node (as the datadir's owner, over the socket)."""
    return HOSTS[name].check_output(f"podman exec mariadb mariadb -N -B -e {shlex.quote(query)}")


def wsrep(name):
    """The node's wsrep status variables, {} when the server does not answer."""
    query = shlex.quote("SHOW GLOBAL STATUS WHERE Variable_name LIKE 'wsrep_%'")
    # podman exec into a stopped container exits 255, which testinfra takes for a lost connection
    cmd = HOSTS[name].run(f"podman exec mariadb mariadb -N -B -e {query} 2>/dev/null || exit 1")
    if cmd.rc != 0:
        return {}
    return dict(line.split("\t", 1) for line in cmd.stdout.splitlines() if "\t" in line)


def clustercheck(client, name):
    """HTTP status of the clustercheck endpoint of node `name`, asked from node `client`."""
    return HOSTS[client].check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 http://{ADDRESS[name]}:4569/"
    )


def all_synced():
    states = {name: wsrep(name) for name in HOSTS}
    return all(
        s.get("wsrep_local_state_comment") == "Synced" and s.get("wsrep_cluster_size") == "3" for s in states.values()
    ), states


def table_state(name, table):
    """(row count, CHECKSUM TABLE) of a table, read on one node."""
    count = sql(name, f"SELECT COUNT(*) FROM allmende_test.{table}")
    checksum = sql(name, f"CHECKSUM TABLE allmende_test.{table}").split("\t")[1]
    return int(count), checksum


def write_rows(name, table, count, tag, fresh=False):
    """Insert rows into allmende_test.<table> on one node (fresh: drop the table first)."""
    sql(
        name,
        "CREATE DATABASE IF NOT EXISTS allmende_test; "
        + (f"DROP TABLE IF EXISTS allmende_test.{table}; " if fresh else "")
        + f"CREATE TABLE IF NOT EXISTS allmende_test.{table} "
        f"(id INT AUTO_INCREMENT PRIMARY KEY, tag VARCHAR(32), payload VARCHAR(64)); "
        + " ".join(
            f"INSERT INTO allmende_test.{table} (tag, payload) VALUES ('{tag}', SHA2('{tag}-{i}', 256));"
            for i in range(count)
        ),
    )


def kill_hard(names):
    """SIGKILL the MariaDB containers of `names` at the same moment, each also losing gvwstate.dat.

    With gvwstate.dat (pc.recovery, Galera's default) the members would form their last primary
    component again on their own when systemd restarts them; without it, members restarted after
    a hard kill of all of them find no primary component and the cluster stays down.
    """

    def kill(name):
        HOSTS[name].check_output(f"podman kill --signal KILL mariadb && rm -f {DATADIR}/gvwstate.dat")

    threads = [threading.Thread(target=kill, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def assert_stays_down(seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        primary = [n for n in HOSTS if wsrep(n).get("wsrep_cluster_status") == "Primary"]
        assert not primary, f"a primary component formed on {primary} without recover"
        time.sleep(3)


def messages(result, prefix):
    """msg values of the play's debug tasks that start with prefix."""
    found = []
    for play in result["plays"]:
        for task in play["tasks"]:
            for res in task["hosts"].values():
                msg = res.get("msg")
                if isinstance(msg, str) and msg.startswith(prefix):
                    found.append(msg)
    return found


def test_three_synced_members_in_one_primary_component():
    synced, states = all_synced()
    assert synced, states
    assert {s["wsrep_cluster_state_uuid"] for s in states.values()} == {states["node1"]["wsrep_cluster_state_uuid"]}
    assert all(s["wsrep_cluster_status"] == "Primary" and s["wsrep_ready"] == "ON" for s in states.values())


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_containers_run_under_systemd_with_the_data_on_the_host(name):
    host = HOSTS[name]
    assert host.service(UNIT).is_running
    assert host.service("allmende-mariadb_clustercheck.service").is_running
    assert host.file(f"{DATADIR}/grastate.dat").exists
    assert host.file(f"{DATADIR}/mysql").is_directory
    fmt = "{{range .Mounts}}{{.Source}}={{.Destination}} {{end}}"
    mounts = host.check_output(f"podman container inspect --format '{fmt}' mariadb")
    assert f"{DATADIR}=/var/lib/mysql" in mounts.replace("/=", "=")
    # the server listens on the node's address only (HAProxy binds 3306 on the VIP)
    assert f"{ADDRESS[name]}:3306" in host.check_output("ss -Hltn sport = :3306")


def test_rows_written_on_one_node_are_read_on_the_others():
    write_rows("node1", "replicated", 5, "replication", fresh=True)
    assert {name: table_state(name, "replicated") for name in HOSTS} == {
        name: table_state("node1", "replicated") for name in HOSTS
    }
    assert table_state("node3", "replicated")[0] == 5


def test_clustercheck_answers_200_on_a_synced_node_and_503_on_a_desynced_one():
    assert clustercheck("node1", "node2") == "200"
    try:
        sql("node2", "SET GLOBAL wsrep_desync = ON")
        assert wsrep("node2")["wsrep_local_state_comment"] != "Synced"
        assert clustercheck("node1", "node2") == "503"
        assert clustercheck("node1", "node3") == "200"
    finally:
        sql("node2", "SET GLOBAL wsrep_desync = OFF")
    deadline = time.monotonic() + 30
    while clustercheck("node1", "node2") != "200" and time.monotonic() < deadline:
        time.sleep(1)
    assert clustercheck("node1", "node2") == "200"


def test_recover_brings_back_a_cluster_killed_hard_from_the_most_advanced_node():
    write_rows("node1", "killed", 20, "before-kill", fresh=True)
    before = table_state("node1", "killed")
    kill_hard(sorted(HOSTS))
    assert_stays_down()
    result = deploy(PLAYBOOK, "-e", "allmende_action=recover")
    plan = messages(result, "recover: bootstrapping from")
    assert len(plan) == 1, plan
    synced, states = all_synced()
    assert synced, states
    assert {name: table_state(name, "killed") for name in HOSTS} == {name: before for name in HOSTS}


def test_recover_never_bootstraps_from_a_stale_node():
    # node1 (first in group order, the one a naive recovery picks) stops cleanly and misses writes
    HOSTS["node1"].check_output(f"systemctl stop {UNIT}")
    write_rows("node2", "stale", 30, "after-node1-left", fresh=True)
    expected = table_state("node2", "stale")
    kill_hard(["node2", "node3"])
    assert_stays_down()
    result = deploy(PLAYBOOK, "-e", "allmende_action=recover")
    plan = messages(result, "recover: bootstrapping from")
    assert len(plan) == 1, plan
    assert plan[0].startswith("recover: bootstrapping from node2 "), plan
    assert "stale: node1" in plan[0], plan
    # the bootstrap node's own log says it started the new primary component
    assert "--wsrep-new-cluster" in HOSTS["node2"].check_output("podman logs mariadb 2>&1 | grep allmende: || true")
    synced, states = all_synced()
    assert synced, states
    assert {name: table_state(name, "stale") for name in HOSTS} == {name: expected for name in HOSTS}
    assert expected[0] == 30


def test_a_backup_is_brought_back_by_restore():
    write_rows("node1", "backed_up", 10, "in-backup", fresh=True)
    backed_up = table_state("node1", "backed_up")
    result = deploy(PLAYBOOK, "-e", "allmende_action=backup")
    reports = messages(result, "backup ")
    assert len(reports) == 1, reports
    name = reports[0].split()[1]
    assert HOSTS["node1"].file(f"/var/lib/allmende/mariadb-backup/{name}/xtrabackup_checkpoints").exists
    write_rows("node2", "backed_up", 7, "after-backup")
    sql("node3", "DROP TABLE allmende_test.backed_up")
    deploy(PLAYBOOK, "-e", "allmende_action=restore", "-e", f"mariadb_restore_name={name}")
    synced, states = all_synced()
    assert synced, states
    assert {n: table_state(n, "backed_up") for n in HOSTS} == {n: backed_up for n in HOSTS}
    assert sql("node2", "SELECT COUNT(*) FROM allmende_test.backed_up WHERE tag = 'after-backup'") == "0"
