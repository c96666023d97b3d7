#!/usr/bin/env bash
# The test suite, stage by stage. `make test` runs all stages; `scripts/run-tests.sh STAGE...` runs some.
# Stages: lint unit sanity collection molecule integration
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${VENV:-$ROOT/.venv}/bin
export PATH="$BIN:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
# Scenarios run in order (default: every molecule/*/molecule.yml); each brings up and removes its own testbed.
MOLECULE_SCENARIOS=${MOLECULE_SCENARIOS:-$(for f in molecule/*/molecule.yml; do basename "$(dirname "$f")"; done)}

stage() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

lint() {
  stage "lint: ruff"
  ruff check src plugins tests scripts molecule images
  ruff format --check src tests scripts molecule images
  stage "lint: ansible-lint (production profile)"
  ansible-lint --offline
}

unit() {
  stage "unit tests"
  pytest -q tests/unit
}

sanity() {
  stage "ansible-test sanity"
  # ansible-test needs the collection under ansible_collections/<namespace>/<name>/, outside any
  # git checkout (inside one it only sees files that checkout tracks).
  local base work
  base=$(mktemp -d /tmp/allmende-sanity.XXXXXX)
  work="$base/ansible_collections/allmende/cloud"
  mkdir -p "$work"
  git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$work/"
  trap 'rm -rf "$base"' RETURN
  # ansible-test fetches a pip bootstrap script from a host outside the package registries;
  # provide an equivalent that uses ensurepip and PyPI.
  local pip_version
  pip_version=$(python - <<'PY'
import pathlib, re, ansible_test
text = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
print(re.search(r"pip='([0-9.]+)'", text).group(1).replace(".", "_"))
PY
)
  mkdir -p ~/.ansible/test/cache
  cp scripts/ansible-test-get-pip.py "$HOME/.ansible/test/cache/get_pip_${pip_version}.py"
  (cd "$work" && ansible-test sanity --python 3.11 --requirements --color no 2>&1 \
     | grep -v -e '^Installing requirements' -e 'is ignored: it is neither' -e '^Using cached pip'
   exit "${PIPESTATUS[0]}")
}

collection() {
  stage "collection build, install and ansible-doc"
  pytest -q tests/integration/test_collection.py
}

molecule_stage() {
  for scenario in $MOLECULE_SCENARIOS; do
    stage "molecule $scenario"
    molecule test -s "$scenario"
  done
}

integration() {
  stage "fresh machine: scripts/host-prereqs.sh in a fresh Debian 12 container"
  python scripts/check-fresh-machine.py
  stage "driver exit codes, run records and the secrets store (on the controller)"
  pytest -q tests/integration/test_exit_codes.py tests/integration/test_secrets.py
  stage "driver integration (testbed)"
  pytest -q tests/integration/test_driver.py
  stage "images: memcached built twice (the second builds nothing), kolla contract on 127.0.0.1, pushed to the local registry and pulled by a node over TLS"
  pytest -q tests/integration/test_images.py
  stage "NetBox integration (real NetBox on 127.0.0.1)"
  if [ -n "${netbox_pid:-}" ]; then
    # started in the background at the beginning (its first database migration takes minutes)
    wait "$netbox_pid" || { cat "$netbox_log"; echo "allmende netbox up failed"; exit 1; }
    cat "$netbox_log"
  else
    allmende netbox up
  fi
  pytest -q tests/integration/test_netbox.py
  stage "testbed registered in NetBox: allmende apply site twice, Ceph, OVN data plane over Geneve"
  pytest -q tests/integration/test_testbed_netbox.py
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(lint unit sanity collection molecule integration)
start=$(date +%s)
if [[ " ${stages[*]} " == *" integration "* ]] && [ "${stages[0]}" != integration ]; then
  # NetBox comes up (and on a fresh machine migrates its database) while the other stages run.
  mkdir -p .build
  netbox_log=.build/netbox-up.log
  allmende netbox up >"$netbox_log" 2>&1 &
  netbox_pid=$!
fi
for s in "${stages[@]}"; do
  case "$s" in
    lint|unit|sanity|collection|integration) "$s" ;;
    molecule) molecule_stage ;;
    *) echo "unknown stage $s (lint unit sanity collection molecule integration)"; exit 2 ;;
  esac
done
printf '\nall stages passed: %s in %ss\n' "${stages[*]}" "$(( $(date +%s) - start ))"
