from conftest import load_plugin_module

cluster = load_plugin_module("plugins/module_utils/ovsdb_cluster.py")

LEADER = """0b1a
Name: OVN_Northbound
Cluster ID: 5e10 (5e10bc48-fe36-4550-8e0f-eafabce74953)
Server ID: 0b1a (0b1a778d-e4f4-4b4a-8312-952c7e490c49)
Address: tcp:10.0.0.1:6643
Status: cluster member
Role: leader
Term: 3
Leader: self
Vote: self

Last Election started 5242 ms ago, reason: timeout
Election timer: 1000
Log: [2, 5]
Connections: <-bb79 ->bb79
Disconnections: 0
Servers:
    0b1a (0b1a at tcp:10.0.0.1:6643) (self) next_index=2 match_index=4
    bb79 (bb79 at tcp:10.0.0.2:6643) next_index=5 match_index=4 last msg 32 ms ago
    c3d4 (c3d4 at tcp:10.0.0.3:6643) next_index=5 match_index=4 last msg 30 ms ago
"""

FOLLOWER = """bb79
Name: OVN_Northbound
Cluster ID: 5e10 (5e10bc48-fe36-4550-8e0f-eafabce74953)
Server ID: bb79 (bb79d1d7-08a7-4ab5-a558-834dc0708119)
Address: tcp:10.0.0.2:6643
Status: cluster member
Role: follower
Term: 3
Leader: 0b1a
Vote: unknown

Election timer: 1000
Servers:
    0b1a (0b1a at tcp:10.0.0.1:6643) last msg 14 ms ago
    bb79 (bb79 at tcp:10.0.0.2:6643) (self)
"""

ADDR = {"n1": "tcp:10.0.0.1:6643", "n2": "tcp:10.0.0.2:6643", "n3": "tcp:10.0.0.3:6643"}
GROUP = ["n1", "n2", "n3"]
CID = "5e10bc48-fe36-4550-8e0f-eafabce74953"


def st(state, cid=None, addr=None):
    return {"state": state, "cid": cid, "local_address": addr}


def test_parse_leader_status():
    s = cluster.parse_cluster_status(LEADER)
    assert s["sid"] == "0b1a"
    assert s["cluster_id"] == CID
    assert s["server_id"].startswith("0b1a778d")
    assert s["role"] == "leader" and s["is_leader"] and s["term"] == 3
    assert s["status"] == "cluster member"
    assert s["leader_address"] == "tcp:10.0.0.1:6643"
    assert [x["sid"] for x in s["servers"]] == ["0b1a", "bb79", "c3d4"]
    assert [x["self"] for x in s["servers"]] == [True, False, False]
    assert s["servers"][2]["address"] == "tcp:10.0.0.3:6643"


def test_parse_follower_status_names_the_leader():
    s = cluster.parse_cluster_status(FOLLOWER)
    assert s["role"] == "follower" and not s["is_leader"]
    assert s["leader"] == "0b1a"
    assert s["leader_address"] == "tcp:10.0.0.1:6643"
    assert len(s["servers"]) == 2


def test_parse_garbage_is_empty_not_an_exception():
    s = cluster.parse_cluster_status("unknown cluster\n")
    assert s["servers"] == [] and s["role"] is None and not s["is_leader"]
    assert cluster.parse_cluster_status(None)["servers"] == []


def test_cluster_address_brackets_ipv6():
    assert cluster.cluster_address("tcp", "10.0.0.1", 6643) == "tcp:10.0.0.1:6643"
    assert cluster.cluster_address("ssl", "fd00::1", 6644) == "ssl:[fd00::1]:6644"


def test_first_deployment_bootstraps_the_first_host_and_joins_the_others():
    states = {h: st("absent") for h in GROUP}
    p = cluster.plan("NB", GROUP, GROUP, states, ADDR)
    assert p["errors"] == []
    assert p["bootstrap"] == "n1"
    assert p["join"] == ["n2", "n3"]
    assert p["remotes"] == [ADDR["n1"]]


def test_a_standalone_database_is_kept_by_bootstrapping_from_it():
    states = {"n1": st("absent"), "n2": st("standalone"), "n3": st("absent")}
    p = cluster.plan("NB", GROUP, GROUP, states, ADDR)
    assert p["bootstrap"] == "n2"
    assert p["join"] == ["n1", "n3"]


def test_existing_cluster_new_member_joins_through_the_members():
    states = {"n1": st("clustered", CID, ADDR["n1"]), "n2": st("clustered", CID, ADDR["n2"]), "n3": st("absent")}
    p = cluster.plan("NB", GROUP, GROUP, states, ADDR)
    assert p["errors"] == [] and p["bootstrap"] is None
    assert p["join"] == ["n3"]
    assert p["remotes"] == [ADDR["n1"], ADDR["n2"]]
    assert p["members"] == ["n1", "n2"]


def test_converged_cluster_needs_nothing():
    states = {h: st("clustered", CID, ADDR[h]) for h in GROUP}
    p = cluster.plan("NB", GROUP, GROUP, states, ADDR)
    assert p == {
        "bootstrap": None,
        "join": [],
        "remotes": [ADDR["n1"], ADDR["n2"], ADDR["n3"]],
        "members": GROUP,
        "kick": [],
        "errors": [],
    }


def test_limited_run_without_a_member_refuses_to_create_a_second_cluster():
    # --limit n3: n1 and n2 hold the cluster but are not in the run.
    p = cluster.plan("NB", GROUP, ["n3"], {"n3": st("absent")}, ADDR)
    assert p["bootstrap"] is None and p["join"] == []
    assert len(p["errors"]) == 1
    assert "n1, n2 are outside this run" in p["errors"][0]
    assert "second cluster" in p["errors"][0]


def test_limited_run_with_a_member_may_add_a_host():
    states = {"n1": st("clustered", CID, ADDR["n1"]), "n3": st("absent")}
    p = cluster.plan("NB", GROUP, ["n1", "n3"], states, ADDR)
    assert p["errors"] == []
    assert p["join"] == ["n3"] and p["remotes"] == [ADDR["n1"]]


def test_unreachable_host_counts_as_outside():
    states = {"n1": st("absent"), "n2": st("absent")}
    p = cluster.plan("NB", GROUP, ["n1", "n2"], states, ADDR)
    assert p["bootstrap"] is None
    assert "n3 is outside this run" in p["errors"][0]


def test_two_clusters_are_reported_and_nothing_is_planned():
    states = {
        "n1": st("clustered", "aaaa", ADDR["n1"]),
        "n2": st("clustered", "bbbb", ADDR["n2"]),
        "n3": st("absent"),
    }
    p = cluster.plan("NB", GROUP, GROUP, states, ADDR)
    assert p["join"] == [] and p["bootstrap"] is None
    assert "different clusters" in p["errors"][0] and "aaaa: n1" in p["errors"][0]


def test_all_problems_at_once():
    states = {
        "n1": st("clustered", CID, "tcp:10.9.9.9:6643"),
        "n2": st("unknown"),
        "n3": st("bogus"),
    }
    p = cluster.plan("NB", GROUP, GROUP, states, ADDR)
    text = "\n".join(p["errors"])
    assert "n1: its NB member is bound to tcp:10.9.9.9:6643" in text
    assert "n2: the NB database file exists but cannot be read" in text
    assert "n3: NB database state 'bogus'" in text
    assert len(p["errors"]) == 3


def test_joining_without_a_visible_member_is_an_error():
    states = {"n1": st("joining", None, ADDR["n1"]), "n2": st("absent"), "n3": st("absent")}
    p = cluster.plan("NB", GROUP, GROUP, states, ADDR)
    assert p["bootstrap"] is None
    assert "n1 joined a cluster" in p["errors"][0]


def test_a_host_that_lost_its_database_has_its_stale_entry_kicked_before_joining():
    states = {"n1": st("clustered", CID, ADDR["n1"]), "n2": st("clustered", CID, ADDR["n2"]), "n3": st("absent")}
    servers = cluster.parse_cluster_status(LEADER)["servers"]
    p = cluster.plan("NB", GROUP, GROUP, states, ADDR, servers)
    assert p["join"] == ["n3"]
    assert p["kick"] == [{"database": "NB", "host": "n3", "sid": "c3d4", "address": ADDR["n3"]}]


def test_missing_address_is_an_error():
    states = {h: st("absent") for h in GROUP}
    p = cluster.plan("NB", GROUP, GROUP, states, {"n1": ADDR["n1"], "n2": ADDR["n2"]})
    assert p["errors"] == ["n3: no cluster address for NB"]
