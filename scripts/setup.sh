#!/usr/bin/env bash
# Installs what certgate needs from Debian 12's packages (only what is missing),
# then configures and builds into build/. Run as root (or with sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake make pkg-config libssl-dev openssl curl
  libgtest-dev libgmock-dev libbenchmark-dev
  nginx-core nginx-dev
  apache2 apache2-dev libapr1-dev libaprutil1-dev
  liblmdb-dev libcurl4-openssl-dev libre2-dev libhiredis-dev
  redis-server  # the shared-cache tests start their own on 127.0.0.1
  python3 man-db
  python3-prometheus-client python3-yaml prometheus  # status page parser; promtool
)
# More for one caller (scripts/package.sh: debhelper dpkg-dev lintian).
read -r -a extra <<<"${CERTGATE_SETUP_EXTRA_PACKAGES:-}"
packages+=("${extra[@]}")
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "certgate: missing Debian packages: ${missing[*]}; run this as root (sudo)" >&2
    exit 1
  fi
  echo "certgate: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts nothing on install here, but make sure no packaged server holds our ports.
  systemctl disable --now nginx apache2 redis-server >/dev/null 2>&1 || true
fi

# CERTGATE_SETUP_PACKAGES_ONLY=1: packages only (scripts/sanitize.sh builds elsewhere).
[ -z "${CERTGATE_SETUP_PACKAGES_ONLY:-}" ] || exit 0
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
