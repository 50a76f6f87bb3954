#!/usr/bin/env bash
# fleet_bench.sh: what a fleet of N servers costs the CDP per CRL version, with and
# without the shared revocation tier (certgate_shared_cache, issue 14), in one run;
# then the tier's per-host figures: Redis round trips against the same bytes over
# HTTP (certgate_bench_shared_cache), and the ingest of a 1,000,000-entry CRL
# (certgate_bench_revocation BM_Ingest1MCrl).
#
# PKI (openssl CLI, EC P-256): a root CA that issues the server cert and the clients
# good, rev1, rev2, ... whose CRL distribution point is the CDP below. Version v of
# the CRL (crlNumber 1000+v) lists ENTRIES random serials plus rev1..rev(v-1); it is
# valid VALID seconds, so it falls due for refresh 0.9 * VALID after it was signed.
#
# Servers, all on 127.0.0.1:
#   CDP    Debian's nginx without certgate, serving the CRL; its access log records
#          every request ($uri $status $body_bytes_sent)           port BASE
#   Redis  redis-server, no persistence                             port BASE+1
#   hosts  N nginx with ngx_http_certgate_module, 1 worker each, each its own
#          certgate_cache: certgate require; hard_fail; CRLs; leaf; with the tier
#          also certgate_shared_cache redis://127.0.0.1:BASE+1/0   ports BASE+10..
#          (nginx, not the core's fetch path in N processes: 10 nginx with 1 worker
#          each fit on 2 cores, since they only fetch and ingest)
# Per mode (alone, shared) and N (1 3 10), fresh caches and an empty Redis:
#   v1: every host is asked as `good` until it answers 200 (a cold cache);
#   v2..vV: published half a validity after v(v-1); once v(v-1) is due, every host is
#   asked (round robin, as under traffic) as rev(v-1) until it refuses it.
# Recorded per version: CDP requests and bytes sent, Redis bytes sent (INFO
# total_net_output_bytes), and the time until every host had it. The anchor is
# `alone` at the same N, in the same run.
#
# Usage: tests/bench/fleet_bench.sh [-n "1 3 10"] [-t "alone shared"] [-v VERSIONS]
#          [-e ENTRIES] [-s VALID] [-p BASEPORT] [-o DIR] [-m MODULE.so]
#          [-x DIR_OF_BENCH_BINARIES | -x none]
#   -n  fleet sizes (default "1 3 10")      -t  modes (default "alone shared")
#   -v  CRL versions per run (default 3)    -e  CRL entries (default 30000, ~1 MB DER)
#   -s  CRL validity in s (default 10)      -p  base port (default 18800; 18800-18849)
#   -o  work directory (wiped first; default a new /tmp/certgate-fleetbench.*)
#   -m  the nginx module (default build/nginx-module/ngx_http_certgate_module.so)
#   -x  where certgate_bench_shared_cache and certgate_bench_revocation are
#       (default build/tests/bench; `none` skips both)
# Prints raw values and markdown tables on stdout, progress on stderr. Run as root
# (the workers run as nobody). Every server is stopped on exit; the whole run is
# killed after 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
# shellcheck source=scripts/lib/servers.sh
. scripts/lib/servers.sh

SIZES="1 3 10" MODES="alone shared" VERSIONS=3 ENTRIES=30000 VALID=10 BASE=18800 run=""
bench_dir=$top/build/tests/bench
nginx_mod=$top/build/nginx-module/ngx_http_certgate_module.so
while getopts "n:t:v:e:s:p:o:m:x:h" opt; do
  case $opt in
    n) SIZES=$OPTARG ;; t) MODES=$OPTARG ;; v) VERSIONS=$OPTARG ;; e) ENTRIES=$OPTARG ;;
    s) VALID=$OPTARG ;; p) BASE=$OPTARG ;; o) run=$OPTARG ;; m) nginx_mod=$(realpath "$OPTARG") ;;
    x) bench_dir=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
done
max_n=0
for n in $SIZES; do ((n > max_n)) && max_n=$n; done
if ((BASE < 18800 || BASE + 10 + max_n > 18849)); then
  echo "fleet_bench: ports must stay in 18800-18849" >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "fleet_bench: run as root (the workers run as nobody)" >&2
  exit 2
fi
require_built "$nginx_mod"
require_tools /usr/sbin/nginx redis-server redis-cli openssl curl python3

[ -n "$run" ] || run=$(mktemp -d /tmp/certgate-fleetbench.XXXXXX)
rm -rf "$run"
mkdir -p "$run/logs" "$run/out" "$run/pki" "$run/www" "$run/redis"
cp "$nginx_mod" "$run/ngx_http_certgate_module.so"
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
cdp_port=$BASE redis_port=$((BASE + 1))

pids=() host_pids=()
watchdog=""
cleanup() {
  if [ -n "$watchdog" ]; then kill "$watchdog" 2>/dev/null || true; fi
  stop_pids "${host_pids[@]}" "${pids[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start_watchdog fleet_bench 1200

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
log() { echo "- [$(date +%T), load $(cut -d' ' -f1 /proc/loadavg)] $*" >&2; }
results=$run/results.tsv
: >"$results"
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"; }  # mode n version metric value

# --- PKI -----------------------------------------------------------------------
pki=$run/pki
cat >"$pki/ext.cnf" <<EOF
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
crlDistributionPoints = URI:http://127.0.0.1:$cdp_port/ca.crl
EOF
cat >"$pki/ca.cnf" <<EOF
[ca]
default_ca = bench
[bench]
database = $pki/index.txt
crlnumber = $pki/crlnumber
default_md = sha256
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
EOF
serial_hex() { python3 -c 'import os; b = bytearray(os.urandom(16)); b[0] = (b[0] & 0x3f) | 0x10; print(b.hex().upper())'; }
declare -A serial_of=()
issue() {  # NAME EXT SUBJECT
  serial_of[$1]=$(serial_hex)
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/$1.key" \
    -subj "$3" -out "$pki/$1.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/root.pem" -CAkey "$pki/root.key" \
    -set_serial "0x${serial_of[$1]}" -days 365 -sha256 -extfile "$pki/ext.cnf" -extensions "$2" \
    -out "$pki/$1.pem" 2>/dev/null
}
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$pki/root.key" \
  -subj "/O=certgate bench/CN=Fleet Bench Root" -days 3650 -sha256 -config "$pki/ext.cnf" \
  -extensions root -out "$pki/root.pem" 2>/dev/null
issue server server "/O=certgate bench/CN=localhost"
issue good client "/O=certgate bench/CN=good"
for ((v = 1; v < VERSIONS; v++)); do issue "rev$v" client "/O=certgate bench/CN=rev$v"; done
# The bulk of every version: ENTRIES random serials (never a client's).
python3 - "$pki/bulk.txt" "$ENTRIES" <<'PY'
import os, sys
path, n = sys.argv[1], int(sys.argv[2])
seen = set()
with open(path, "w") as f:
    while len(seen) < n:
        b = bytearray(os.urandom(16)); b[0] = (b[0] & 0x3f) | 0x10
        s = b.hex().upper()
        if s not in seen:
            seen.add(s)
            f.write(f"R\t350101000000Z\t260101000000Z\t{s}\tunknown\t/CN=r\n")
PY
chmod -R a+rX "$run"
chmod 644 "$pki"/*.key

# publish_crl V: signs version V (rev1..rev(V-1) revoked) and puts it at the CDP.
publish_crl() {
  local v=$1 i d=$run/crl-$1
  mkdir -p "$d"
  cp "$pki/bulk.txt" "$pki/index.txt"
  for ((i = 1; i < v; i++)); do
    printf 'R\t350101000000Z\t%s\t%s\tunknown\t/CN=rev%s\n' "$(date -u +%y%m%d%H%M%SZ)" "${serial_of[rev$i]}" "$i" >>"$pki/index.txt"
  done
  printf '%X\n' $((4096 + v)) >"$pki/crlnumber"
  openssl ca -batch -gencrl -config "$pki/ca.cnf" -keyfile "$pki/root.key" -cert "$pki/root.pem" \
    -crlsec "$VALID" -out "$d/crl.pem" 2>"$d/err"
  openssl crl -in "$d/crl.pem" -outform DER -out "$d/crl.der"
  chmod 644 "$d/crl.der"
  cp "$d/crl.der" "$run/www/.ca.crl.tmp" && mv "$run/www/.ca.crl.tmp" "$run/www/ca.crl"
  crl_bytes=$(stat -c %s "$d/crl.der")
}

# --- CDP and Redis ---------------------------------------------------------------
mkdir -p "$run/cdp/tmp"
{
  nginx_conf_head "$run/cdp" 1 "$run/logs/cdp-error.log" 512
  # shellcheck disable=SC2016
  cat <<EOF
    log_format cdp '\$uri \$status \$body_bytes_sent';
    access_log $run/logs/cdp-access.log cdp;
    server {
        listen 127.0.0.1:$cdp_port;
        root $run/www;
    }
}
EOF
} >"$run/cdp/nginx.conf"
/usr/sbin/nginx -p "$run/cdp" -c "$run/cdp/nginx.conf" >"$run/logs/cdp-stderr.log" 2>&1 &
pids+=($!)
wait_port "$cdp_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$run/redis" --save "" --appendonly no \
  --daemonize no --logfile "$run/logs/redis.log" >/dev/null 2>&1 &
pids+=($!)
wait_port "$redis_port"
rcli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
redis_out() { rcli INFO stats | awk -F: '/^total_net_output_bytes:/ { gsub(/\r/, "", $2); print $2 }'; }
cdp_lines() { if [ -f "$run/logs/cdp-access.log" ]; then wc -l <"$run/logs/cdp-access.log"; else echo 0; fi; }
# cdp_since LINE: "requests bytes" for the CRL after line LINE of the access log.
cdp_since() { tail -n +$(($1 + 1)) "$run/logs/cdp-access.log" | awk '$1 == "/ca.crl" { n++; b += $3 } END { printf "%d %d", n, b }'; }

# --- the hosts ---------------------------------------------------------------------
start_hosts() {  # MODE N
  local mode=$1 n=$2 i d shared=""
  [ "$mode" = shared ] && shared="certgate_shared_cache redis://127.0.0.1:$redis_port/0;"
  host_pids=()
  for ((i = 0; i < n; i++)); do
    d=$run/host-$mode-$n-$i
    rm -rf "$d"
    mkdir -p "$d/tmp" "$d/cache"
    {
      echo "load_module $run/ngx_http_certgate_module.so;"
      nginx_conf_head "$d" 1 "$d/error.log" 256
      cat <<EOF
    access_log off;
    ssl_protocols TLSv1.2 TLSv1.3;
    server {
        listen 127.0.0.1:$((BASE + 10 + i)) ssl;
        ssl_certificate $pki/server.pem;
        ssl_certificate_key $pki/server.key;
        ssl_trusted_certificate $pki/root.pem;
        certgate require;
        certgate_revocation hard_fail;
        certgate_revocation_sources crl;
        certgate_revocation_scope leaf;
        certgate_fetch_timeout 5s;
        certgate_cache $d/cache;
        $shared
        location / { return 200 "ok\n"; }
    }
}
EOF
    } >"$d/nginx.conf"
    chmod -R a+rX "$d"
    /usr/sbin/nginx -t -q -p "$d" -c "$d/nginx.conf" 2>"$d/nginx-t.log"  # (its self-check warnings)
    /usr/sbin/nginx -p "$d" -c "$d/nginx.conf" 2>"$d/stderr.log" &
    host_pids+=($!)
  done
  for ((i = 0; i < n; i++)); do wait_port $((BASE + 10 + i)) 20; done
}
# (not stop_pids: its `wait` would wait for the CDP and Redis too)
stop_hosts() {
  local p
  for p in "${host_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${host_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  host_pids=()
}
get() {  # HOST_INDEX CERT: the status code
  curl -sk --max-time 10 --cert "$pki/$2.pem" --key "$pki/$2.key" -o /dev/null -w '%{http_code}' \
    "https://127.0.0.1:$((BASE + 10 + $1))/" || true
}
# until_all N CERT CODE: asks every host round robin until each answered CODE (120 s max).
until_all() {
  local n=$1 cert=$2 want=$3 left=$1 i t0
  local -a answered=()
  t0=$(now)
  while ((left > 0)); do
    for ((i = 0; i < n; i++)); do
      [ -n "${answered[$i]:-}" ] && continue
      if [ "$(get "$i" "$cert")" = "$want" ]; then answered[i]=1; left=$((left - 1)); fi
    done
    if awk -v a="$t0" -v b="$(now)" 'BEGIN { exit !(b - a > 120) }'; then
      echo "fleet_bench: $left hosts never answered $want for $cert" >&2
      exit 1
    fi
    if ((left > 0)); then sleep 0.2; fi
  done
}

declare -A signed_at=()
log "PKI, $ENTRIES-entry CRLs; CDP on $cdp_port, Redis on $redis_port (commit $commit)"
for mode in $MODES; do
  for n in $SIZES; do
    rcli FLUSHALL >/dev/null
    start_hosts "$mode" "$n"
    for ((v = 1; v <= VERSIONS; v++)); do
      if ((v > 1)); then
        # Until the version in force falls due (0.9 of its validity after signing).
        wait_s=$(awk -v s="${signed_at[$((v - 1))]}" -v now="$(now)" -v valid="$VALID" 'BEGIN { w = s + 0.9 * valid - now; printf "%.2f", (w > 0 ? w : 0) }')
        sleep "$wait_s"
      fi
      mark=$(cdp_lines) r0=$(redis_out) t0=$(now)
      if ((v == 1)); then
        publish_crl 1
        signed_at[1]=$t0
        until_all "$n" good 200
      else
        until_all "$n" "rev$((v - 1))" 403
      fi
      took=$(since "$t0")
      read -r reqs bytes <<<"$(cdp_since "$mark")"
      record "$mode" "$n" "$v" cdp_requests "$reqs"
      record "$mode" "$n" "$v" cdp_bytes "$bytes"
      record "$mode" "$n" "$v" redis_out_bytes "$(($(redis_out) - r0))"
      record "$mode" "$n" "$v" all_hosts_s "$took"
      record "$mode" "$n" "$v" crl_bytes "$crl_bytes"
      log "$mode N=$n v$v: CDP $reqs requests, $bytes bytes; all hosts after $took s"
      if ((v < VERSIONS)); then
        # Not sooner than half a validity after v: else v+1 would itself fall
        # due while the hosts roll over to it (a 304 each, counted here).
        wait_s=$(awk -v s="${signed_at[$v]}" -v now="$(now)" -v valid="$VALID" 'BEGIN { w = s + 0.5 * valid - now; printf "%.2f", (w > 0 ? w : 0) }')
        sleep "$wait_s"
        publish_crl $((v + 1))
        signed_at[$((v + 1))]=$(now)
      fi
    done
    # Every host judges the last version right.
    for ((i = 0; i < n; i++)); do
      [ "$(get "$i" good)" = 200 ] || { echo "fleet_bench: host $i refuses good" >&2; exit 1; }
    done
    stop_hosts
  done
done

# --- the tier's per-host figures -------------------------------------------------------
core_out=$run/out/core.txt
: >"$core_out"
if [ "$bench_dir" != none ]; then
  head -c 1048576 /dev/urandom >"$run/www/blob-1048576"
  head -c 35000000 /dev/urandom >"$run/www/blob-35000000"
  chmod 644 "$run/www"/blob-*
  if [ -x "$bench_dir/certgate_bench_shared_cache" ]; then
    log "Redis round trips against HTTP (certgate_bench_shared_cache)"
    "$bench_dir/certgate_bench_shared_cache" --redis-port "$redis_port" --http "http://127.0.0.1:$cdp_port" \
      --docroot "$run/www" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
      --benchmark_min_time=0.5 >>"$core_out" 2>&1
  fi
  used=$(rcli INFO memory | awk -F: '/^used_memory:/ { gsub(/\r/, "", $2); print $2 }')
  record redis - - used_memory_bytes "$used"
  if [ -x "$bench_dir/certgate_bench_revocation" ]; then
    log "ingest of a 1,000,000-entry CRL (certgate_bench_revocation)"
    "$bench_dir/certgate_bench_revocation" --benchmark_filter='BM_Ingest1MCrl' >>"$core_out" 2>&1
  fi
fi

# --- report ----------------------------------------------------------------------------
echo "fleet_bench: commit $commit, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%F)"
if [ -f "$run/crl-1/crl.der" ]; then
  echo "CRL: $ENTRIES entries, $(stat -c %s "$run/crl-1/crl.der") bytes DER; validity ${VALID}s; $VERSIONS versions"
fi
echo
echo '```'
cat "$results"
echo '```'
echo
python3 - "$results" <<'PY'
import collections, sys
rows = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    mode, n, v, metric, value = line.rstrip("\n").split("\t")
    if mode in ("alone", "shared"):
        rows[(mode, int(n))].setdefault(int(v), {})[metric] = float(value)
sizes = sorted({n for _, n in rows})
print("| N | mode | CDP requests per version (v1 / v2 / v3 ...) | CDP MB per version | Redis MB out per version | all hosts had it after, s | CDP requests vs alone |")
print("|---|---|---|---|---|---|---|")
for n in sizes:
    for mode in ("alone", "shared"):
        if (mode, n) not in rows:
            continue
        vs = rows[(mode, n)]
        order = sorted(vs)
        req = [vs[v]["cdp_requests"] for v in order]
        mb = [vs[v]["cdp_bytes"] / 1e6 for v in order]
        rmb = [vs[v]["redis_out_bytes"] / 1e6 for v in order]
        secs = [vs[v]["all_hosts_s"] for v in order]
        ratio = ""
        if mode == "shared" and ("alone", n) in rows:
            base = sum(rows[("alone", n)][v]["cdp_requests"] for v in order)
            ratio = f"{sum(req) / base:.2f}" if base else ""
        elif mode == "alone":
            ratio = "1.00 (anchor)"
        print(f"| {n} | {mode} | {' / '.join(f'{x:.0f}' for x in req)} | {' / '.join(f'{x:.2f}' for x in mb)} | "
              f"{' / '.join(f'{x:.2f}' for x in rmb)} | {' / '.join(f'{x:.1f}' for x in secs)} | {ratio} |")
PY
if [ -s "$core_out" ]; then
  echo
  echo '```'
  grep -v '^\*\*\*\|^$' "$core_out" || true
  echo '```'
fi
