#!/usr/bin/env bash
# Regenerates the committed seed corpus (tests/fuzz/corpus/<target>/) with
# certgate-fuzz-seeds from a build directory (default build/):
#   tests/fuzz/make_corpus.sh [build-dir]
# Seeds are signed by the fixed test CA of fuzz_support.cc, so they stay valid;
# ECDSA signatures are randomized, so a rerun changes bytes, not meaning.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
cmake --build "$build" --target certgate-fuzz-seeds >/dev/null
rm -rf tests/fuzz/corpus.new
"$build/tests/fuzz/certgate-fuzz-seeds" tests/fuzz/corpus.new
for dir in tests/fuzz/corpus.new/*/; do
  target=$(basename "$dir")
  rm -rf "tests/fuzz/corpus/$target"
  mkdir -p tests/fuzz/corpus
  mv "$dir" "tests/fuzz/corpus/$target"
done
rmdir tests/fuzz/corpus.new
ls tests/fuzz/corpus/*
