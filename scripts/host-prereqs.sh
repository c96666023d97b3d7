#!/usr/bin/env bash
# Packages this machine needs to run the testbed, the local NetBox and the tests (Debian 12, as root).
# Idempotent: installs only what is missing. `scripts/host-prereqs.sh --verify` installs nothing and
# exits 1 naming every command that is still missing (scripts/check-fresh-machine.py runs both in a
# fresh Debian container).
set -euo pipefail
# podman & co: testbed hosts (netavark needs iptables); postgresql-15 + redis-server: the local NetBox;
# the sanity stage needs shellcheck and git (it copies the tracked files); procps: pkill in tests;
# docker-registry + openssl: the local image registry and its CA (`allmende registry`); iproute2: ss in tests.
packages=(podman runc crun debootstrap netavark aardvark-dns iptables openssh-client make util-linux
          python3-venv shellcheck postgresql-15 redis-server git procps ca-certificates tar coreutils
          docker-registry openssl iproute2)
# Every command the testbed, the local NetBox, the driver and the tests call.
commands=(podman runc crun debootstrap iptables ssh ssh-keygen make losetup truncate flock runuser tar
          python3 shellcheck psql pg_dump pg_restore /usr/lib/postgresql/15/bin/pg_ctl
          /usr/lib/postgresql/15/bin/initdb redis-server git pkill apt-config docker-registry openssl ss)

verify() {
  local missing=()
  for c in "${commands[@]}"; do
    if [[ $c == /* ]]; then [ -x "$c" ] || missing+=("$c"); else command -v "$c" >/dev/null || missing+=("$c"); fi
  done
  python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=("python3 venv/ensurepip (python3-venv)")
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "missing after scripts/host-prereqs.sh: ${missing[*]}" >&2
    return 1
  fi
  echo "all ${#commands[@]} commands present"
}

if [ "${1:-}" = "--verify" ]; then
  verify
  exit
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The package enables its own registry service on every address (port 5000); Allmende runs its own
# listeners on chosen addresses only (`allmende registry up`).
if [ -d /run/systemd/system ] && systemctl is-enabled --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry >/dev/null 2>&1
fi
