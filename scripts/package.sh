#!/usr/bin/env bash
# Builds the Debian packages with Debian's own tooling (dpkg-buildpackage,
# debhelper; the project's CMake build underneath), then runs lintian on them:
#   build/packages/libnginx-mod-http-certgate_<version>_<arch>.deb
#   build/packages/libapache2-mod-certgate_<version>_<arch>.deb
#   build/packages/certgate_<version>_<arch>.deb
#   build/packages/lintian.txt
# The version is project(certgate VERSION ...) in CMakeLists.txt, the only place
# it is written: debian/changelog is generated from it. Run as root (or with sudo)
# the first time: it installs what is missing (scripts/setup.sh's packages plus
# debhelper, dpkg-dev, lintian and apache2-ssl-dev). Exit 1 when lintian reports an error.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

CERTGATE_SETUP_PACKAGES_ONLY=1 CERTGATE_SETUP_EXTRA_PACKAGES="debhelper dpkg-dev lintian apache2-ssl-dev" \
  ./scripts/setup.sh

version=$(sed -n 's/^project(certgate VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
[ -n "$version" ] || { echo "package.sh: no version in CMakeLists.txt's project()" >&2; exit 1; }
out=${CERTGATE_PACKAGE_OUT:-$root/build/packages}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# dpkg-buildpackage builds inside the source tree and writes the packages next
# to it, so it runs on a copy: build/packages/certgate-<version>/ with
# packaging/debian as its debian/.
stage=$out/certgate-$version
rm -rf "$stage" "$out"/*.deb "$out"/*.changes "$out"/*.buildinfo "$out/lintian.txt"
mkdir -p "$stage"
tar -C "$root" -cf - --exclude=./.git --exclude='./build*' --exclude=./demo-run \
  --exclude=./fuzz-out --exclude=./packaging . | tar -C "$stage" -xf -
cp -a packaging/debian "$stage/debian"

maintainer=$(sed -n 's/^Maintainer: //p' packaging/debian/control)
if when=$(git log -1 --format=%aD 2>/dev/null) && [ -n "$when" ]; then
  origin="commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD 2>/dev/null || echo ', with local changes')"
else
  when=$(date -R)
  origin="a source tree without git history"
fi
cat >"$stage/debian/changelog" <<CHANGELOG
certgate ($version) bookworm; urgency=medium

  * Built by scripts/package.sh from $origin.

 -- $maintainer  $when
CHANGELOG

echo "package.sh: building certgate $version in $stage"
(cd "$stage" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
  dpkg-buildpackage -b --no-sign >"$out/build.log" 2>&1) || {
  tail -40 "$out/build.log" >&2
  echo "package.sh: dpkg-buildpackage failed; the whole log is $out/build.log" >&2
  exit 1
}

changes=$(ls "$out"/certgate_"${version}"_*.changes)
# --fail-on error: warnings are listed (and justified in docs/packaging.md),
# errors fail the build.
lintian_rc=0
lintian --info --display-info --fail-on error "$changes" >"$out/lintian.txt" 2>&1 || lintian_rc=$?
ls -1 "$out"/*.deb
echo "package.sh: lintian: $(grep -c '^E: ' "$out/lintian.txt" || true) errors," \
  "$(grep -c '^W: ' "$out/lintian.txt" || true) warnings ($out/lintian.txt)"
if [ "$lintian_rc" != 0 ]; then
  grep -E '^(E|W): ' "$out/lintian.txt" >&2 || cat "$out/lintian.txt" >&2
  exit 1
fi
