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

# Scenarios run in MOLECULE_LANES parallel lanes (default 2): each lane has its own testbed name,
# state directory (testbeds, local registry) and registry port, and runs its scenarios one after
# another; a scenario's output goes to .build/molecule/<scenario>.log and is printed when it fails.
# Lanes are filled longest scenario first (minutes measured on a 2-core machine; unknown: 8).
declare -A MOLECULE_MINUTES=([ceph]=23 [mariadb]=15 [ovn_libvirt]=15 [control_plane]=17 [loadbalancer]=13 [memcached]=10
  [rabbitmq]=10 [network]=5 [bootstrap]=2)

molecule_lane() {
  local lane=$1; shift
  local scenario rc=0
  for scenario in "$@"; do
    printf '=== molecule %s (lane %s, %s)\n' "$scenario" "$lane" "$(date +%T)"
    local begin=$SECONDS
    if molecule test -s "$scenario" >"$ROOT/.build/molecule/$scenario.log" 2>&1; then
      printf '=== molecule %s passed in %ss\n' "$scenario" "$((SECONDS - begin))"
    else
      printf '=== molecule %s FAILED in %ss (log below)\n' "$scenario" "$((SECONDS - begin))"
      echo "$scenario" >>"$ROOT/.build/molecule/failed"
      rc=1
    fi
  done
  return $rc
}

molecule_stage() {
  local lanes=${MOLECULE_LANES:-2} i best scenario
  mkdir -p .build/molecule
  rm -f .build/molecule/failed
  local -a order load assigned
  mapfile -t order < <(for scenario in $MOLECULE_SCENARIOS; do
    echo "${MOLECULE_MINUTES[$scenario]:-8} $scenario"; done | sort -k1,1nr -k2 | cut -d' ' -f2)
  for ((i = 0; i < lanes; i++)); do load[i]=0; assigned[i]=""; done
  for scenario in "${order[@]}"; do
    best=0
    for ((i = 1; i < lanes; i++)); do ((load[i] < load[best])) && best=$i; done
    load[best]=$((load[best] + ${MOLECULE_MINUTES[$scenario]:-8}))
    assigned[best]+=" $scenario"
  done
  local -a pids
  for ((i = 0; i < lanes; i++)); do
    [ -n "${assigned[i]}" ] || continue
    local -a list
    read -ra list <<<"${assigned[i]}"
    stage "molecule lane $((i + 1)):${assigned[i]}"
    # lane 1 keeps the defaults (testbed "molecule", the user's state directory, registry port 5043)
    if ((i == 0)); then
      molecule_lane 1 "${list[@]}" &
    else
      ALLMENDE_TESTBED_NAME="molecule-lane$((i + 1))" ALLMENDE_STATE_DIR="$ROOT/.build/state-lane$((i + 1))" \
        ALLMENDE_REGISTRY_PORT=$((5043 + i)) molecule_lane $((i + 1)) "${list[@]}" &
    fi
    pids+=($!)
  done
  local failed=0
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  if ((failed)); then
    while read -r scenario; do
      printf '\n=== log of the failed scenario %s\n' "$scenario"
      cat ".build/molecule/$scenario.log"
    done <.build/molecule/failed
    return 1
  fi
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
