#!/usr/bin/env bash
# The test suite, stage by stage. `make test` runs all stages; `scripts/run-tests.sh STAGE...` runs some.
# Stages: lint unit sanity collection molecule integration
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${VENV:-$ROOT/.venv}/bin
export PATH="$BIN:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
# The scenarios to run (default: every molecule/*/molecule.yml but the long ones); each brings up
# and removes its own testbed. The long scenarios do not fit next to the rest into CI's time on two
# cores: `make test-long` (ALLMENDE_TEST_LONG=1) runs them too; run it before you change what they prove.
LONG_SCENARIOS="ceph mariadb ovn_libvirt loadbalancer rabbitmq"
all_scenarios=$(for f in molecule/*/molecule.yml; do basename "$(dirname "$f")"; done)
if [ -z "${MOLECULE_SCENARIOS:-}" ]; then
  if [ -n "${ALLMENDE_TEST_LONG:-}" ]; then
    MOLECULE_SCENARIOS=$all_scenarios
  else
    MOLECULE_SCENARIOS=$(for s in $all_scenarios; do [[ " $LONG_SCENARIOS " == *" $s "* ]] || echo "$s"; done)
  fi
fi

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

# The molecule scenarios and the integration tests' parts are jobs, run in MOLECULE_LANES parallel
# lanes (default 2). Every lane has its own testbed name, state directory (testbeds, local registry)
# and registry port, and runs its jobs one after another; all lanes share one NetBox
# (ALLMENDE_NETBOX_DIR). A job's output goes to .build/jobs/<job>.log and is printed when it fails.
# Lanes are filled longest job first (minutes measured on a 2-core machine with two lanes; unknown: 8).
declare -A JOB_MINUTES=([control_plane]=40 [ceph]=33 [it-netbox]=36 [loadbalancer]=28 [mariadb]=22 [ovn_libvirt]=22
  [rabbitmq]=15 [memcached]=14 [it-images]=8 [network]=6 [it-driver]=6 [it-host]=4 [bootstrap]=3)
INTEGRATION_JOBS="it-host it-driver it-images it-netbox"

it-host() {
  stage "fresh machine: scripts/host-prereqs.sh in a fresh Debian 12 container"
  python scripts/check-fresh-machine.py || return
  stage "driver exit codes, run records and the secrets store (on the controller)"
  pytest -q tests/integration/test_exit_codes.py tests/integration/test_secrets.py
}

it-driver() {
  stage "driver integration (testbed)"
  pytest -q tests/integration/test_driver.py
}

it-images() {
  stage "images: memcached built twice (the second builds nothing), kolla contract on 127.0.0.1, pushed to the local registry and pulled by a node over TLS"
  pytest -q tests/integration/test_images.py
}

it-netbox() {
  stage "NetBox integration (real NetBox on 127.0.0.1)"
  if [ -n "${netbox_log:-}" ]; then
    # started in the background at the beginning (its first database migration takes minutes);
    # its exit status lands in a file, so a lane can wait for it (bounded: 40 min)
    local waited=0
    while [ ! -s "$netbox_log.rc" ] && ((waited < 2400)); do sleep 5; waited=$((waited + 5)); done
    cat "$netbox_log"
    [ "$(cat "$netbox_log.rc" 2>/dev/null)" = 0 ] || { echo "allmende netbox up failed"; return 1; }
  else
    allmende netbox up || return
  fi
  pytest -q tests/integration/test_netbox.py || return
  stage "testbed registered in NetBox: allmende apply site twice, Ceph, OVN data plane over Geneve"
  pytest -q tests/integration/test_testbed_netbox.py
}

# (a job runs where `set -e` does not apply: every step of an it-* job returns on failure itself)
run_job() {
  case "$1" in
    it-*) "$1" ;;
    *) molecule test -s "$1" ;;
  esac
}

lane() {
  local lane=$1; shift
  local job rc=0
  for job in "$@"; do
    printf '=== %s (lane %s, %s)\n' "$job" "$lane" "$(date +%T)"
    local begin=$SECONDS
    if run_job "$job" >"$ROOT/.build/jobs/$job.log" 2>&1; then
      printf '=== %s passed in %ss\n' "$job" "$((SECONDS - begin))"
    else
      printf '=== %s FAILED in %ss (log below)\n' "$job" "$((SECONDS - begin))"
      echo "$job" >>"$ROOT/.build/jobs/failed"
      rc=1
    fi
  done
  return $rc
}

jobs_stage() {
  local lanes=${MOLECULE_LANES:-2} i best job
  mkdir -p .build/jobs
  rm -f .build/jobs/failed
  local -a order load assigned
  mapfile -t order < <(for job in "$@"; do
    echo "${JOB_MINUTES[$job]:-8} $job"; done | sort -k1,1nr -k2 | cut -d' ' -f2)
  for ((i = 0; i < lanes; i++)); do load[i]=0; assigned[i]=""; done
  for job in "${order[@]}"; do
    best=0
    for ((i = 1; i < lanes; i++)); do ((load[i] < load[best])) && best=$i; done
    load[best]=$((load[best] + ${JOB_MINUTES[$job]:-8}))
    assigned[best]+=" $job"
  done
  local -a pids
  export ALLMENDE_NETBOX_DIR=$netbox_dir
  for ((i = 0; i < lanes; i++)); do
    [ -n "${assigned[i]}" ] || continue
    local -a list
    read -ra list <<<"${assigned[i]}"
    # it-netbox last in its lane: by then NetBox, started at the beginning, has migrated its database
    if [[ " ${list[*]} " == *" it-netbox "* ]]; then
      read -ra list <<<"$(for job in "${list[@]}"; do [ "$job" = it-netbox ] || printf '%s ' "$job"; done) it-netbox"
      assigned[i]=" ${list[*]}"
    fi
    stage "lane $((i + 1)) (about ${load[i]} min):${assigned[i]}"
    # lane 1 keeps the defaults (testbed "molecule", the user's state directory, registry port 5043)
    if ((i == 0)); then
      lane 1 "${list[@]}" &
    else
      ALLMENDE_TESTBED_NAME="molecule-lane$((i + 1))" ALLMENDE_STATE_DIR="$ROOT/.build/state-lane$((i + 1))" \
        ALLMENDE_REGISTRY_PORT=$((5043 + i)) lane $((i + 1)) "${list[@]}" &
    fi
    pids+=($!)
  done
  local failed=0
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  if ((failed)); then
    while read -r job; do
      printf '\n=== log of the failed job %s\n' "$job"
      cat ".build/jobs/$job.log"
    done <.build/jobs/failed
    return 1
  fi
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(lint unit sanity collection molecule integration)
start=$(date +%s)
# one NetBox for every lane: the user's own
netbox_dir=${ALLMENDE_NETBOX_DIR:-$(python -c 'from allmende import netbox_server; print(netbox_server.netbox_dir())')}
if [[ " ${stages[*]} " == *" integration "* ]]; then
  # NetBox comes up (and on a fresh machine migrates its database) while the other jobs run.
  mkdir -p .build
  netbox_log=$ROOT/.build/netbox-up.log
  rm -f "$netbox_log.rc"
  (allmende netbox up >"$netbox_log" 2>&1 && echo 0 >"$netbox_log.rc" || echo 1 >"$netbox_log.rc") &
fi
# molecule and integration run together: their jobs share the lanes
jobs=()
for s in "${stages[@]}"; do
  case "$s" in
    lint|unit|sanity|collection) ;;
    molecule) read -r -d '' -a scenarios <<<"$MOLECULE_SCENARIOS" || true; jobs+=("${scenarios[@]}") ;;
    integration) read -r -d '' -a parts <<<"$INTEGRATION_JOBS" || true; jobs+=("${parts[@]}") ;;
    *) echo "unknown stage $s (lint unit sanity collection molecule integration)"; exit 2 ;;
  esac
done
ran_jobs=0
for s in "${stages[@]}"; do
  case "$s" in
    lint|unit|sanity|collection) "$s" ;;
    molecule|integration)
      ((ran_jobs)) && continue
      ran_jobs=1
      jobs_stage "${jobs[@]}"
      ;;
  esac
done
printf '\nall stages passed: %s in %ss\n' "${stages[*]}" "$(( $(date +%s) - start ))"
