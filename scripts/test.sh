#!/usr/bin/env bash
# Everything: installs missing Debian packages, builds, runs every test (unit,
# CLI, and the real nginx and Apache integration tests) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
ctest --test-dir build --output-on-failure --timeout 600 "$@"
