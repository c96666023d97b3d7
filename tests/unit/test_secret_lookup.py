"""The allmende.cloud.secret lookup: its directory and key file may be templates (the testbed's
group_vars), and variables reach a lookup untemplated."""

from pathlib import Path

from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, lookup_loader
from ansible.template import Templar, trust_as_template

ROOT = Path(__file__).resolve().parents[2]


def test_a_templated_configuration_directory_is_templated_before_it_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an untemplated relative path would land here
    site = tmp_path / "site"
    variables = {
        "allmende_site_root": str(site),
        "allmende_config_dir": trust_as_template("{{ allmende_site_root }}/inventory"),
    }
    loader = DataLoader()
    init_plugin_loader([str(ROOT / ".build" / "collections")])
    lookup = lookup_loader.get(
        "allmende.cloud.secret", loader=loader, templar=Templar(loader=loader, variables=variables)
    )
    first = lookup.run(["mariadb_probe"], variables=variables)[0]
    assert (site / "inventory" / "secrets.yml").is_file()
    assert (site / "inventory" / "vault.key").is_file()
    # nothing under a directory literally named after the template
    assert not any("{{" in p.name for p in tmp_path.rglob("*"))
    assert lookup.run(["mariadb_probe"], variables=variables)[0] == first
