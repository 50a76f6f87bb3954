#!/usr/bin/env bash
# Everything: installs missing Debian packages, builds, runs every test (unit,
# CLI, and the real nginx and Apache integration tests) through ctest, then the
# package test. Arguments go to ctest (and skip the package test).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
ctest --test-dir build --output-on-failure --timeout 600 "$@"
# The whole suite (no ctest arguments, as CI runs it) ends with the Debian
# packages: built, installed into this machine's nginx and apache2, tested
# there, purged; the system is restored after (tests/package/package_test.sh).
if [ $# -eq 0 ]; then
  tests/package/package_test.sh build
fi
