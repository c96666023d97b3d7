#!/usr/bin/env bash
# Packages this machine needs to run the testbed and the tests (Debian 12, as root).
# Idempotent: installs only what is missing.
set -euo pipefail
# podman & co: testbed hosts; postgresql-15 + redis-server: the local NetBox; shellcheck: sanity tests.
packages=(podman runc crun debootstrap netavark aardvark-dns openssh-client make util-linux python3-venv shellcheck
          postgresql-15 redis-server)
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
