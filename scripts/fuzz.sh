#!/usr/bin/env bash
# Long fuzzing (not part of the test run): builds the libFuzzer targets of
# tests/fuzz with clang into build-fuzz/ and runs each for N minutes.
#   scripts/fuzz.sh [minutes=30] [target...]      (targets: all by default)
# Environment: FUZZ_JOBS targets at a time (default 1; each is one process at
# nice 19), FUZZ_OUT the output directory (default fuzz-out/): corpus/<target>
# grows there (seeded from tests/fuzz/corpus/<target>), crashes/<target>/ gets
# every crashing input, <target>.log libFuzzer's output. Runs in fork mode and
# carries on after a crash, so one run collects every finding. Exit status 1
# when any target crashed. Replay a crash: build/tests/fuzz/<target>_replay FILE
# (or build-fuzz/tests/fuzz/<target>_fuzzer FILE); keep it as a regression in
# tests/fuzz/regressions/<target>/ once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(crl_ingest ocsp evaluate policy store forwarded_cert ldap_url issuer_response)
jobs=${FUZZ_JOBS:-1}
out=$(realpath -m "${FUZZ_OUT:-fuzz-out}")

need=()
for package in clang-14 libfuzzer-14-dev; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' ||
    need+=("$package")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "fuzz.sh: missing ${need[*]}; run as root (sudo)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang-14 \
  -DCMAKE_CXX_COMPILER=clang++-14 -DCERTGATE_FUZZ=ON -DCERTGATE_BUILD_NGINX_MODULE=OFF \
  -DCERTGATE_BUILD_APACHE_MODULE=OFF -DCERTGATE_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
cmake --build build-fuzz -j"${FUZZ_BUILD_JOBS:-2}" --target "${targets[@]/%/_fuzzer}" >/dev/null

run_target() {
  local target=$1
  mkdir -p "$out/corpus/$target" "$out/crashes/$target" "$out/tmp/$target"
  echo "fuzz.sh: $target for $minutes min (log: $out/$target.log)"
  # -rss_limit_mb: the CRL and store targets map LMDB files; -timeout: a
  # single input taking 10 s is a finding (ReDoS, quadratic parse).
  # TMPDIR: the scratch stores of inputs that crashed stay behind; removed below.
  TMPDIR="$out/tmp/$target" nice -n 19 "build-fuzz/tests/fuzz/${target}_fuzzer" \
    -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time=$((minutes * 60)) -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/$target/" \
    "$out/corpus/$target" "tests/fuzz/corpus/$target" >"$out/$target.log" 2>&1 || true
  rm -rf "${out:?}/tmp/$target"
  local crashes
  crashes=$(find "$out/crashes/$target" -type f | wc -l)
  echo "fuzz.sh: $target done: $(grep -E '^#[0-9]+' "$out/$target.log" | tail -1), crashes: $crashes"
}

running=0
for target in "${targets[@]}"; do
  run_target "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait
total=$(find "$out/crashes" -type f | wc -l)
echo "fuzz.sh: $total crashing inputs in $out/crashes"
[ "$total" -eq 0 ]
