#!/usr/bin/env bash
# The test suite under sanitizers (issue 9 §6). As root, like scripts/test.sh:
#   scripts/sanitize.sh [asan|tsan|all]  [extra ctest arguments for asan]
# asan: builds into build-asan/ with -DCERTGATE_SANITIZE=address,undefined and
#   runs every ctest (unit, CLI, corpus replays, real nginx and Apache) under
#   ASan+UBSan. The servers are Debian's (not instrumented): the harness
#   preloads the ASan/UBSan runtime into them (CERTGATE_TEST_SERVER_PRELOAD);
#   their reports go to a log directory and fail the test program. Leak
#   checking is on for everything but the servers (which free by exit()).
# tsan: builds the unit tests into build-tsan/ with -DCERTGATE_SANITIZE=thread
#   and runs the threaded ones: the fetcher and checker (RevocationFetch*,
#   RevocationStore*, RevocationCrash*, RevocationLookup*), the process's
#   checkers (RevocationRegistry*, but not its fork test: TSan does not follow
#   threads started after a multi-threaded fork), TLS connections (SslHook*) and
#   concurrent decisions on one connection (Threads*); every report is shown,
#   and any fails the run.
# Any report fails the run (exit status 1).
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
shift || true
CERTGATE_SETUP_PACKAGES_ONLY=1 ./scripts/setup.sh
jobs=${CERTGATE_BUILD_JOBS:-$(nproc)}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
status=0

run_asan() {
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCERTGATE_SANITIZE=address,undefined \
    -DCERTGATE_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
  cmake --build build-asan -j"$jobs"
  local logs
  logs=$(mktemp -d /tmp/certgate-sanitize.XXXXXX)
  chmod 1777 "$logs"  # nginx workers and httpd children write here as nobody
  local asan_rt ubsan_rt
  asan_rt=$(gcc -print-file-name=libasan.so)
  ubsan_rt=$(gcc -print-file-name=libubsan.so)
  echo "sanitize.sh: ASan+UBSan run; server reports in $logs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  LSAN_OPTIONS=suppressions=$PWD/tests/sanitize/lsan.supp:print_suppressions=0 \
  CERTGATE_TEST_SERVER_PRELOAD="$asan_rt $ubsan_rt" \
  CERTGATE_TEST_SANITIZER_LOG_DIR="$logs" \
    ctest --test-dir build-asan --output-on-failure --timeout 900 "$@" || status=1
  if compgen -G "$logs/*" >/dev/null; then
    echo "sanitize.sh: sanitizer reports:" >&2
    for report in "$logs"/*; do
      echo "== $report" >&2
      cat "$report" >&2
    done
    status=1
  else
    rm -rf "$logs"
  fi
}

run_tsan() {
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCERTGATE_SANITIZE=thread \
    -DCERTGATE_BUILD_BENCH=OFF -DCERTGATE_BUILD_NGINX_MODULE=OFF -DCERTGATE_BUILD_APACHE_MODULE=OFF \
    "${launcher[@]}" >/dev/null
  # The unit-test binaries (one per tests/unit/*_test.cc) holding those suites.
  local threaded=(threads_test ssl_hook_test revocation_fetch_test revocation_store_test
                  revocation_crash_test revocation_registry_test revocation_lookup_test)
  cmake --build build-tsan -j"$jobs" --target "${threaded[@]/#/certgate_unit_}"
  echo "sanitize.sh: TSan run of the threaded unit tests"
  local binary
  for binary in "${threaded[@]}"; do
    # setarch -R: TSan of gcc 12 cannot map its shadow with the kernel's full
    # mmap randomization ("unexpected memory mapping").
    TSAN_OPTIONS="second_deadlock_stack=1:suppressions=$PWD/tests/sanitize/tsan.supp" \
      setarch "$(uname -m)" -R "build-tsan/tests/unit/$binary" \
      --gtest_filter='Threads*:SslHook*:RevocationFetch*:RevocationStore*:RevocationCrash*:RevocationRegistry*:RevocationLookup*:-*AForkedChild*' ||
      status=1
  done
}

case $what in
  asan) run_asan "$@" ;;
  tsan) run_tsan ;;
  all)
    run_asan "$@"
    run_tsan
    ;;
  *)
    echo "usage: scripts/sanitize.sh [asan|tsan|all] [ctest args]" >&2
    exit 2
    ;;
esac
[ "$status" -eq 0 ] && echo "sanitize.sh: clean"
exit "$status"
