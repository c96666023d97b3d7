"""The allmende.cloud.secret and allmende.cloud.image lookups: variables reach a lookup
untemplated, and the testbed's group_vars set them as templates. Run through ansible-playbook,
as the roles use them (a play's vars are templates until something renders them)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    allmende_site_root: "{site}"
    allmende_config_dir: "{{{{ allmende_site_root }}}}/inventory"
    allmende_testbed_tags: {{memcached: 2026.1-abc}}
    allmende_image_tags: "{{{{ allmende_testbed_tags }}}}"
    allmende_image_registry: "{{{{ '10.9.8.1' }}}}:5043"
  tasks:
    - name: Read a secret twice and name two images
      ansible.builtin.debug:
        msg: >-
          {{{{ [lookup('allmende.cloud.secret', 'probe'), lookup('allmende.cloud.secret', 'probe'),
               lookup('allmende.cloud.image', 'memcached'), lookup('allmende.cloud.image', 'keystone')] | to_json }}}}
"""


def run_play(tmp_path):
    site = tmp_path / "site"
    play = tmp_path / "play.yml"
    play.write_text(PLAYBOOK.format(site=site))
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "collections"),
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_LOCALHOST_WARNING="false",
    )
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(play)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return site, proc.stdout


def test_templated_variables_are_rendered_before_the_lookups_use_them(tmp_path):
    site, out = run_play(tmp_path)
    result = json.loads(out)["plays"][0]["tasks"][0]["hosts"]["localhost"]["msg"]
    first, second, memcached, keystone = json.loads(result) if isinstance(result, str) else result
    # the store is where the template points, and nothing under a directory named after the template
    assert (site / "inventory" / "secrets.yml").is_file() and (site / "inventory" / "vault.key").is_file()
    assert not any("{{" in p.name for p in tmp_path.rglob("*"))
    assert first == second and len(first) >= 16
    assert memcached == "10.9.8.1:5043/allmende/memcached:2026.1-abc"
    assert keystone.startswith("10.9.8.1:5043/allmende/keystone:20")
