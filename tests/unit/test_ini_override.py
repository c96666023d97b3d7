import pytest
from ansible.errors import AnsibleFilterError
from conftest import load_plugin_module

ini = load_plugin_module("plugins/filter/ini_override.py")

TEMPLATE = """# rendered by the role
[DEFAULT]
debug = False
# the log directory
log_dir = /var/log/kolla

[database]
connection = mysql+pymysql://db/nova
max_retries = -1
"""


def test_no_layers_returns_the_template_unchanged():
    assert ini.ini_merge(TEMPLATE, []) == TEMPLATE
    assert ini.ini_merge(TEMPLATE, ["", None]) == TEMPLATE


def test_layers_apply_in_order_template_global_service_host():
    merged = ini.ini_merge(
        TEMPLATE,
        [
            {"name": "global", "content": "[DEFAULT]\ndebug = True\n"},
            {"name": "service", "content": "[database]\nmax_retries = 10\n"},
            {"name": "host", "content": "[DEFAULT]\ndebug = False\n[database]\nmax_retries = 3\n"},
        ],
    )
    assert merged == (
        "# rendered by the role\n[DEFAULT]\ndebug = False\n# the log directory\nlog_dir = /var/log/kolla\n\n"
        "[database]\nconnection = mysql+pymysql://db/nova\nmax_retries = 3\n"
    )


def test_new_options_go_to_their_section_and_new_sections_to_the_end():
    merged = ini.ini_merge(TEMPLATE, ["[DEFAULT]\ntransport_url = rabbit://x\n[oslo_concurrency]\nlock_path = /l\n"])
    assert merged.splitlines() == [
        "# rendered by the role",
        "[DEFAULT]",
        "debug = False",
        "# the log directory",
        "log_dir = /var/log/kolla",
        "transport_url = rabbit://x",
        "",
        "[database]",
        "connection = mysql+pymysql://db/nova",
        "max_retries = -1",
        "",
        "[oslo_concurrency]",
        "lock_path = /l",
    ]


def test_a_layer_replaces_every_value_of_a_multi_valued_option():
    template = "[filter]\nenabled = a\nenabled = b\nother = 1\n"
    merged = ini.ini_merge(template, ["[filter]\nenabled = c\nenabled = d\n"])
    assert merged == "[filter]\nenabled = c\nenabled = d\nother = 1\n"


def test_default_options_without_a_default_header_in_the_template_get_one():
    merged = ini.ini_merge("[database]\nconnection = x\n", ["[DEFAULT]\ndebug = True\n"])
    assert merged == "[DEFAULT]\ndebug = True\n\n[database]\nconnection = x\n"


def test_empty_values_and_colon_separators():
    merged = ini.ini_merge("[a]\nkey: 1\n", ["[a]\nkey =\n"])
    assert merged == "[a]\nkey =\n"


def test_not_ini_is_an_error_naming_the_layer_and_line():
    with pytest.raises(AnsibleFilterError, match=r"host/nova\.conf line 2"):
        ini.ini_merge(TEMPLATE, [{"name": "host/nova.conf", "content": "[DEFAULT]\nthis is not ini\n"}])
    with pytest.raises(AnsibleFilterError, match="the template"):
        ini.ini_merge("garbage\n", ["[a]\nb = c\n"])


SCHEMA = {"DEFAULT": ["debug", "log_dir"], "database": {"connection": {}, "max_retries": {}}, "backend_*": ["*"]}


def test_unknown_sections_and_options_are_reported_with_their_layer():
    problems = ini.ini_unknown(
        [
            {"name": "overrides/nova.conf", "content": "[DEFAULT]\ndebug = True\ndebgu = True\n"},
            {
                "name": "overrides/nova/node1/nova.conf",
                "content": "[databse]\nconnection = x\n[database]\nmax_retry = 1\n",
            },
        ],
        SCHEMA,
        "nova",
    )
    assert problems == [
        "nova: overrides/nova.conf: unknown option debgu in [DEFAULT]",
        "nova: overrides/nova/node1/nova.conf: unknown section [databse]",
        "nova: overrides/nova/node1/nova.conf: unknown option max_retry in [database]",
    ]


def test_known_options_and_wildcard_sections_pass():
    assert ini.ini_unknown(["[DEFAULT]\ndebug = 1\n[database]\nmax_retries = 2\n", "", None], SCHEMA) == []
    assert ini.ini_unknown(["[backend_*]\nanything = 1\n"], SCHEMA) == []
    assert ini.ini_unknown(["[backend_ceph]\nanything = 1\n"], SCHEMA) == []
    assert ini.ini_unknown(["[backends]\nanything = 1\n"], SCHEMA) == ["layer 1: unknown section [backends]"]


def test_schema_must_be_a_dict():
    with pytest.raises(AnsibleFilterError):
        ini.ini_unknown(["[a]\nb = 1\n"], ["a"])
