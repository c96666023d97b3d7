"""Keystone key repositories: created once, only when every host is seen, distributed from the most advanced."""

from conftest import load_plugin_module

fernet = load_plugin_module("plugins/module_utils/fernet.py")

GROUP = ["ks1", "ks2", "ks3"]


def repo(*pairs):
    return {"keys": dict(pairs)}


def test_a_new_repository_is_created_on_the_first_host_and_copied_to_the_others():
    assert fernet.plan(GROUP, GROUP, {h: repo() for h in GROUP}) == {
        "create_on": "ks1",
        "source": "ks1",
        "sync": ["ks2", "ks3"],
        "errors": [],
    }


def test_a_limited_run_that_sees_no_keys_creates_none():
    result = fernet.plan(GROUP, ["ks2", "ks3"], {"ks2": repo(), "ks3": repo()})
    assert result["create_on"] is None and result["source"] is None
    assert "ks1 is not in the run" in result["errors"][0]


def test_keys_come_from_the_host_that_has_them_never_from_an_empty_one():
    keys = (("0", "a"), ("1", "b"), ("2", "c"))
    result = fernet.plan(GROUP, GROUP, {"ks1": repo(), "ks2": repo(*keys), "ks3": repo()})
    assert result == {"create_on": None, "source": "ks2", "sync": ["ks1", "ks3"], "errors": []}


def test_the_most_advanced_repository_wins_after_a_rotation_on_one_host():
    old = (("0", "a"), ("1", "b"), ("2", "c"))
    rotated = (("0", "d"), ("1", "b"), ("2", "c"), ("3", "a"))
    result = fernet.plan(GROUP, GROUP, {"ks1": repo(*old), "ks2": repo(*rotated), "ks3": repo(*old)})
    assert result["source"] == "ks2" and result["sync"] == ["ks1", "ks3"] and result["errors"] == []
    same = fernet.plan(GROUP, GROUP, {h: repo(*rotated) for h in GROUP})
    assert same == {"create_on": None, "source": "ks1", "sync": [], "errors": []}


def test_repositories_that_went_apart_are_an_error_unless_the_operator_names_one():
    one = (("0", "a"), ("1", "b"))
    other = (("0", "x"), ("1", "y"))
    repos = {"ks1": repo(*one), "ks2": repo(*other), "ks3": repo()}
    result = fernet.plan(GROUP, GROUP, repos)
    assert result["source"] is None and "different keys" in result["errors"][0]
    chosen = fernet.plan(GROUP, GROUP, repos, chosen="ks2")
    assert chosen == {"create_on": None, "source": "ks2", "sync": ["ks1", "ks3"], "errors": []}
    assert "holds no keys" in fernet.plan(GROUP, GROUP, repos, chosen="ks3")["errors"][0]


def test_damaged_repositories_are_reported():
    result = fernet.plan(
        GROUP, GROUP, {"ks1": repo(("0", "a")), "ks2": repo(("1", "b"), ("x.bak", "c")), "ks3": repo()}
    )
    assert len(result["errors"]) == 2
    assert result["errors"][0].startswith("ks1: incomplete key repository")
    assert result["errors"][1] == "ks2: unexpected files in the key repository: x.bak"
