#!/usr/bin/env bash
# revocation_bench.sh: nginx (4 workers) with a 1,000,000-entry CRL in force, nginx's own
# `ssl_crl` against certgate's shared LMDB revocation cache, side by side in one run
# (issue 5 item 8; the anchor is ../shared/notes/anchor-baselines.md §3).
#
# PKI (openssl CLI, RSA-2048): a root CA that issues the server cert, a client cert
# (EKU clientAuth, keyUsage digitalSignature) and a second client cert whose serial is
# revoked. The root's CRL lists ENTRIES random 16-byte serials (the revoked client's
# among them, the good client's not), made from an index.txt with `openssl ca -gencrl`.
# The leaf is issued by the root itself, so ssl_crl needs only that one CRL, and
# certgate ingests it synchronously (its issuer is a trust anchor).
#
# Four nginx servers (4 workers each, TLS 1.2/1.3, session cache and tickets off,
# `return 200`, an access log line per request with $pid and the verdict):
#   A  native: ssl_verify_client on; ssl_client_certificate root.pem          (no CRL)
#   B  native + ssl_crl big.crl.pem                                           (1M CRL)
#   C  certgate require; certgate_revocation cache_only; certgate_revocation_scope leaf;
#      certgate_crl big.crl.pem; certgate_cache DIR (ssl_verify_client off +
#      ssl_trusted_certificate root.pem)                                      (1M CRL)
#   D  as C with certgate_revocation off                                      (no CRL)
# Measured, in this order:
#   1. start: `nginx -t` time, start → listening → first mTLS 200 (for C the first
#      request ingests the CRL into the cache; warm-up repeats until 200 and
#      `certgate cache list` shows the CRL with all its entries), and checks that
#      the good cert gets 200 everywhere and the revoked one 400 (B) / 403
#      reason=revoked (C);
#   2. full mTLS handshakes/s with one GET: CLIENTS parallel
#      `openssl s_time -new -cert -key -CAfile -www /x` for T s (TB s for B: each of
#      its handshakes costs ~130 ms), REPS reps, the order A C D B / B D C A
#      alternating; server CPU per connection from /proc/PID/stat (master + workers);
#      ratios are paired within a rep;
#   3. memory: sum of Pss (and Rss, Pss_Anon, Pss_File) from /proc/PID/smaps_rollup of
#      the master and its 4 workers, after the start (C: after the ingest) and after
#      handshakes reached every worker; LMDB pages are a shared file mapping, so
#      their Pss is divided among the processes that map them;
#   4. reload (all four, RELOAD_REPS each, alternating; A and D are the no-CRL baselines
#      for B and C): duration
#      of the `nginx -s reload` command, time until 4 new workers exist and until the
#      old ones are gone, then the first request's time; memory again afterwards;
#   5. the core benchmark certgate_bench_revocation (ingest time and peak RSS of a
#      1M-entry CRL, lookup median), once, if the binary exists.
#
# Usage: tests/bench/revocation_bench.sh [-t SECONDS] [-b SECONDS_B] [-r REPS]
#          [-l RELOAD_REPS] [-c CLIENTS] [-n ENTRIES] [-p BASEPORT] [-o DIR]
#          [-x BENCH_BINARY | -x none] [-m MODULE.so]
#   -t  s_time duration for A, C, D (default 5)       -b  for B (default 3)
#   -r  handshake reps (default 5)                    -l  reload reps (default 3)
#   -c  parallel s_time clients (default 2)           -n  CRL entries (default 1000000)
#   -p  base port, uses BASE..BASE+3 (default 18750; must stay in 18750-18799)
#   -o  work directory (PKI, configs, logs, cache, raw results); default a new
#       /tmp/certgate-revbench.*; it is wiped first
#   -x  the core benchmark binary (default build/tests/bench/certgate_bench_revocation;
#       `none` skips it)
#   -m  the nginx module to measure (default build/nginx-module/ngx_http_certgate_module.so)
# Prints the machine, raw values and markdown tables on stdout, progress on stderr.
# Needs Debian's nginx, openssl, curl, python3 and the build tree (build/nginx-module,
# build/cli). Run as root (nginx workers run as nobody); 127.0.0.1 only; every server
# is stopped on exit, and the whole run is killed after 15 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
# shellcheck source=scripts/lib/servers.sh
. scripts/lib/servers.sh

T=5 TB=3 REPS=5 RELOADS=3 CLIENTS=2 ENTRIES=1000000 BASE=18750 run=""
core_bench=$top/build/tests/bench/certgate_bench_revocation
nginx_mod=$top/build/nginx-module/ngx_http_certgate_module.so
while getopts "t:b:r:l:c:n:p:o:x:m:h" opt; do
  case $opt in
    t) T=$OPTARG ;; b) TB=$OPTARG ;; r) REPS=$OPTARG ;; l) RELOADS=$OPTARG ;;
    c) CLIENTS=$OPTARG ;; n) ENTRIES=$OPTARG ;; p) BASE=$OPTARG ;; o) run=$OPTARG ;;
    x) core_bench=$OPTARG ;; m) nginx_mod=$(realpath "$OPTARG") ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
done
if ((BASE < 18750 || BASE + 3 > 18799)); then
  echo "revocation_bench: ports must stay in 18750-18799" >&2
  exit 2
fi
if [ "$(id -u)" != 0 ]; then
  echo "revocation_bench: run as root (the workers run as nobody and read the CRL)" >&2
  exit 2
fi

cli=$top/build/cli/certgate
require_built "$nginx_mod" "$cli"
require_tools /usr/sbin/nginx openssl curl python3

[ -n "$run" ] || run=$(mktemp -d /tmp/certgate-revbench.XXXXXX)
rm -rf "$run"
mkdir -p "$run/logs" "$run/out" "$run/pki"
# A snapshot of the module and the CLI: a rebuild of the tree during the run must not change them.
cp "$nginx_mod" "$run/ngx_http_certgate_module.so"
cp "$cli" "$run/certgate"
cli=$run/certgate
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$top" status --porcelain 2>/dev/null | grep -c . || true)

ports=(A B C D)
port_of() {  # CFG
  case $1 in A) echo "$BASE" ;; B) echo $((BASE + 1)) ;; C) echo $((BASE + 2)) ;; D) echo $((BASE + 3)) ;; esac
}
for c in "${ports[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$(port_of "$c")") 2>/dev/null; then
    echo "revocation_bench: 127.0.0.1:$(port_of "$c") is already in use" >&2
    exit 2
  fi
done

declare -A pid_of=()
watchdog=""
cleanup() {
  local pid
  if [ -n "$watchdog" ]; then kill "$watchdog" 2>/dev/null || true; fi
  stop_pids "${pid_of[@]}"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Bounded run time: the whole script is stopped after 15 minutes.
start_watchdog revocation_bench 900

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
log() { echo "- [$(date +%T), load $(cut -d' ' -f1 /proc/loadavg)] $*" >&2; }
results=$run/results.tsv
: >"$results"
record() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$results"; }  # cfg rep metric value

# --- PKI ---------------------------------------------------------------------------
pki=$run/pki
cat >"$pki/ext.cnf" <<'EOF'
[root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
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
EOF
cat >"$pki/ca.cnf" <<EOF
[ca]
default_ca = bench
[bench]
dir = $pki
database = $pki/index.txt
crlnumber = $pki/crlnumber
certificate = $pki/root.pem
private_key = $pki/root.key
default_md = sha256
default_crl_days = 30
unique_subject = no
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
EOF
serial_hex() { python3 -c 'import os; b = bytearray(os.urandom(16)); b[0] = (b[0] & 0x3f) | 0x10; print(b.hex().upper())'; }
issue() {  # NAME EXT SERIAL SUBJECT
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$1.key" -subj "$4" -out "$pki/$1.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/root.pem" -CAkey "$pki/root.key" -set_serial "0x$3" \
    -days 365 -sha256 -extfile "$pki/ext.cnf" -extensions "$2" -out "$pki/$1.pem" 2>/dev/null
}
t0=$(now)
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/root.key" -subj "/O=certgate bench/CN=Revocation Bench Root" \
  -days 3650 -sha256 -config "$pki/ext.cnf" -extensions root -out "$pki/root.pem" 2>/dev/null
good_serial=$(serial_hex)
revoked_serial=$(serial_hex)
issue server server "$(serial_hex)" "/O=certgate bench/CN=localhost"
issue good client "$good_serial" "/O=certgate bench/OU=People/CN=good client"
issue revoked client "$revoked_serial" "/O=certgate bench/OU=People/CN=revoked client"
record gen - pki_s "$(since "$t0")"

# index.txt: ENTRIES-1 random serials + the revoked client's, all `R`; never the good one's.
t0=$(now)
python3 - "$pki/index.txt" "$ENTRIES" "$revoked_serial" "$good_serial" <<'PY'
import os, sys
path, n, revoked, good = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
seen = {revoked, good}
lines = []
raw = os.urandom(16 * (n + 1000))
i = 0
while len(seen) < n + 1:
    b = bytearray(raw[16 * i:16 * i + 16]); i += 1
    b[0] = (b[0] & 0x3f) | 0x10
    s = b.hex().upper()
    if s in seen:
        continue
    seen.add(s)
    lines.append(f"R\t350101000000Z\t260101000000Z\t{s}\tunknown\t/CN=r\n")
lines.insert(len(lines) // 2, f"R\t350101000000Z\t260101000000Z\t{revoked}\tunknown\t/CN=revoked client\n")
with open(path, "w") as f:
    f.writelines(lines)
PY
echo 1000 >"$pki/crlnumber"
record gen - index_s "$(since "$t0")"
t0=$(now)
/usr/bin/time -f '%M' -o "$run/out/gencrl.rss" openssl ca -gencrl -config "$pki/ca.cnf" -out "$pki/big.crl.pem" 2>"$run/out/gencrl.err"
record gen - gencrl_s "$(since "$t0")"
record gen - gencrl_rss_mb "$(awk '{ printf "%.0f", $1 / 1024 }' "$run/out/gencrl.rss")"
record gen - crl_pem_mb "$(stat -c %s "$pki/big.crl.pem" | awk '{ printf "%.1f", $1 / 1e6 }')"
record gen - crl_der_mb "$(python3 -c 'import base64, sys
t = open(sys.argv[1]).read().split("-----")[2]
print(f"{len(base64.b64decode(t)) / 1e6:.1f}")' "$pki/big.crl.pem")"
crl_entries=$(awk -F'\t' '$1 == "R"' "$pki/index.txt" | wc -l)
[ "$crl_entries" = "$ENTRIES" ] || { echo "revocation_bench: index has $crl_entries entries, not $ENTRIES" >&2; exit 1; }
grep -q "$good_serial" "$pki/index.txt" && { echo "revocation_bench: good serial in the CRL" >&2; exit 1; }
log "PKI and a $ENTRIES-entry CRL ($(stat -c %s "$pki/big.crl.pem") bytes PEM) generated"
chmod -R a+rX "$run"
chmod 600 "$pki"/*.key
chmod 644 "$pki/good.key" "$pki/revoked.key"  # s_time/curl run as root anyway
cache=$run/cache
mkdir -p "$cache"
chown nobody:nogroup "$cache"  # the workers' user; certgate creates its LMDB files there

# --- nginx -------------------------------------------------------------------------
# shellcheck disable=SC2016  # $status etc. are nginx variables, expanded by nginx
write_nginx() {  # CFG
  local cfg=$1 d=$run/nginx-$1 load="" tls log_format
  mkdir -p "$d/tmp"
  case $cfg in
    A | B)
      log_format='$status "$request" $pid $connection verify=$ssl_client_verify'
      tls="ssl_verify_client on;
        ssl_client_certificate $pki/root.pem;"
      [ "$cfg" = B ] && tls="$tls
        ssl_crl $pki/big.crl.pem;"
      ;;
    C | D)
      load="load_module $run/ngx_http_certgate_module.so;"
      log_format='$status "$request" $pid $connection certgate=$certgate_verdict reason=$certgate_reason'
      tls="ssl_verify_client off;
        ssl_trusted_certificate $pki/root.pem;
        certgate require;"
      if [ "$cfg" = C ]; then
        tls="$tls
        certgate_revocation cache_only;
        certgate_revocation_scope leaf;
        certgate_crl $pki/big.crl.pem;
        certgate_cache $cache;"
      else
        tls="$tls
        certgate_revocation off;"
      fi
      ;;
  esac
  {
    echo "$load"
    nginx_conf_head "$d" 4 "$run/logs/nginx-$cfg-error.log" 256
    cat <<EOF
    log_format bench '$log_format';
    access_log $run/logs/nginx-$cfg-access.log bench;
    keepalive_timeout 30s;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    server {
        listen 127.0.0.1:$(port_of "$cfg") ssl;
        server_name localhost;
        ssl_certificate $pki/server.pem;
        ssl_certificate_key $pki/server.key;
        $tls
        location / { return 200 "hello\n"; }
    }
}
EOF
  } >"$d/nginx.conf"
}
nginx_args() { echo "-p $run/nginx-$1 -c $run/nginx-$1/nginx.conf"; }

get() {  # CFG CERT [extra curl args]: prints the status code (000 on failure)
  local cfg=$1 cert=$2
  shift 2
  curl -sk --http1.1 --cert "$pki/$cert.pem" --key "$pki/$cert.key" -o /dev/null -w '%{http_code}' \
    "$@" "https://127.0.0.1:$(port_of "$cfg")/x" || true
}
workers_of() { ps -o pid= --ppid "$1" | tr -d ' ' | sort -n; }

start_server() {  # CFG
  local c=$1 t0 t_listen code i
  write_nginx "$c"
  chmod -R a+rX "$run/nginx-$c"
  t0=$(now)
  # shellcheck disable=SC2046
  /usr/bin/time -f '%M' -o "$run/out/nginx-t-$c.rss" /usr/sbin/nginx -t -q $(nginx_args "$c")
  record "$c" - nginx_t_s "$(since "$t0")"
  record "$c" - nginx_t_rss_mb "$(awk '{ printf "%.0f", $1 / 1024 }' "$run/out/nginx-t-$c.rss")"
  t0=$(now)
  # shellcheck disable=SC2046
  /usr/sbin/nginx $(nginx_args "$c") &
  pid_of[$c]=$!
  wait_port "$(port_of "$c")" 60
  t_listen=$(since "$t0")
  record "$c" - start_listen_s "$t_listen"
  # Until the first 200 (for C the first request ingests the CRL into the cache).
  for ((i = 0; i < 600; i++)); do
    code=$(get "$c" good -m 120)
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "revocation_bench: $c never answered 200 (last: $code)" >&2; exit 1; }
  record "$c" - start_first200_s "$(since "$t0")"
  record "$c" - start_tries "$((i + 1))"
  log "$c started: listening after $t_listen s, first 200 after $(since "$t0") s ($((i + 1)) tries)"
}

hz=$(getconf CLK_TCK)

measure_hs() {  # CFG REP
  local c=$1 r=$2 port pid t0 t1 c0 c1 i conns=0 n clients=() failed=0 secs=$T
  [ "$c" = B ] && secs=$TB
  port=$(port_of "$c") pid=${pid_of[$c]}
  c0=$(server_ticks "$pid") t0=$(now)
  for ((i = 0; i < CLIENTS; i++)); do
    timeout $((secs + 60)) openssl s_time -connect "127.0.0.1:$port" -new -cert "$pki/good.pem" \
      -key "$pki/good.key" -CAfile "$pki/root.pem" -time "$secs" -www /x >"$run/out/hs-$c-$r-$i.txt" 2>&1 &
    clients+=($!)
  done
  for i in "${clients[@]}"; do wait "$i" || failed=1; done
  ((failed == 0)) || { echo "revocation_bench: s_time failed ($c rep $r), see $run/out" >&2; exit 1; }
  t1=$(now) c1=$(server_ticks "$pid")
  for ((i = 0; i < CLIENTS; i++)); do
    n=$(awk '/connections in [0-9.]+ real seconds/ { print $1 }' "$run/out/hs-$c-$r-$i.txt")
    [ -n "$n" ] || { echo "revocation_bench: no s_time result ($c rep $r)" >&2; exit 1; }
    conns=$((conns + n))
  done
  record "$c" "$r" hs_per_s "$(awk -v n=$conns -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", n / (b - a) }')"
  record "$c" "$r" us_per_conn "$(awk -v n=$conns -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%.0f", t * 1e6 / hz / n }')"
  record "$c" "$r" conns "$conns"
}

# Every current worker must have served a handshake (its pid in the access log)
# before memory is read; if some have not, bursts of parallel connections follow.
touch_workers() {  # CFG
  local c=$1 w missing tries
  for ((tries = 0; tries < 30; tries++)); do
    missing=0
    for w in $(workers_of "${pid_of[$c]}"); do
      awk -v p="$w" '$5 == p { found = 1; exit } END { exit !found }' "$run/logs/nginx-$c-access.log" ||
        missing=$((missing + 1))
    done
    ((missing == 0)) && return 0
    for _ in 1 2 3 4 5 6 7 8; do get "$c" good -m 30 >/dev/null & done
    wait_jobs
  done
  echo "revocation_bench: $missing workers of $c served nothing" >&2
  record "$c" - workers_untouched "$missing"
}
wait_jobs() {  # waits for background jobs other than the servers and the watchdog
  local j
  for j in $(jobs -p); do
    [ "$j" = "$watchdog" ] && continue
    case " ${pid_of[*]} " in *" $j "*) continue ;; esac
    wait "$j" || true
  done
}

memory() {  # CFG WHEN: sums of smaps_rollup over the master and its workers, in MB
  local c=$1 when=$2 pids
  pids="${pid_of[$c]} $(workers_of "${pid_of[$c]}" | tr '\n' ' ')"
  # shellcheck disable=SC2086
  python3 - "$c" "$when" $pids >>"$results" <<'PY'
import sys
cfg, when, pids = sys.argv[1], sys.argv[2], sys.argv[3:]
tot = {}
for p in pids:
    for line in open(f"/proc/{p}/smaps_rollup"):
        k, _, v = line.partition(":")
        if v.strip().endswith("kB"):
            tot[k] = tot.get(k, 0) + int(v.split()[0])
for k in ("Rss", "Pss", "Pss_Anon", "Pss_File"):
    print(f"{cfg}\t{when}\t{k.lower()}_mb\t{tot.get(k, 0) / 1024:.1f}")
print(f"{cfg}\t{when}\tprocs\t{len(pids)}")
PY
  # Per process (kB), to see which worker holds what.
  for p in $pids; do
    echo "$p $(awk '/^(Pss|Pss_Anon|Pss_File):/ { printf "%s%s ", $1, $2 }' "/proc/$p/smaps_rollup")"
  done >"$run/out/mem-$c-$when.txt"
  # And by mapping (kB of Pss, then kB anonymous), to see what each process holds:
  # heap, the LMDB map (data.mdb), the module, the libraries it pulls in.
  for p in $pids; do
    echo "== $p"
    awk '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "" ? "[anon]" : $6) }
      /^Pss:/ { pss[name] += $2 } /^Anonymous:/ { anon[name] += $2 }
      END { for (n in pss) if (pss[n] > 0) printf "%7d %7d %s\n", pss[n], anon[n], n }' \
      "/proc/$p/smaps" | sort -rn | head -15
  done >"$run/out/smaps-$c-$when.txt"
}

measure_reload() {  # CFG REP
  local c=$1 r=$2 master old t0 t_cmd t_new="" t_gone="" alive w n code t1 i
  master=${pid_of[$c]}
  old=$(workers_of "$master")
  t0=$(now)
  # shellcheck disable=SC2046
  /usr/sbin/nginx -s reload $(nginx_args "$c") 2>>"$run/out/reload-$c.log"
  t_cmd=$(since "$t0")
  for ((i = 0; i < 6000; i++)); do  # up to ~2 min
    if [ -z "$t_new" ]; then
      n=0
      for w in $(workers_of "$master"); do grep -qx "$w" <<<"$old" || n=$((n + 1)); done
      ((n >= 4)) && t_new=$(since "$t0")
    fi
    if [ -z "$t_gone" ]; then
      alive=0
      for w in $old; do [ -e "/proc/$w" ] && [ "$(awk '{ print $3 }' "/proc/$w/stat" 2>/dev/null)" != Z ] && alive=1; done
      ((alive == 0)) && t_gone=$(since "$t0")
    fi
    [ -n "$t_new" ] && [ -n "$t_gone" ] && break
    sleep 0.02
  done
  if [ -z "$t_new" ] || [ -z "$t_gone" ]; then
    echo "revocation_bench: reload of $c did not finish in 2 min" >&2
    exit 1
  fi
  t1=$(now)
  code=$(get "$c" good -m 60)
  [ "$code" = 200 ] || { echo "revocation_bench: $c answered $code after reload" >&2; exit 1; }
  record "$c" "$r" reload_cmd_s "$t_cmd"
  record "$c" "$r" reload_new_workers_s "$t_new"
  record "$c" "$r" reload_old_gone_s "$t_gone"
  record "$c" "$r" reload_first_req_s "$(since "$t1")"
  log "$c reload $r: command $t_cmd s, 4 new workers $t_new s, old gone $t_gone s"
}

# --- run ---------------------------------------------------------------------------
echo "# certgate revocation benchmark: a $ENTRIES-entry CRL in nginx"
echo
# shellcheck disable=SC1091
echo "- machine: $(nproc) vCPU $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r), $(free -g | awk '/^Mem:/ { print $2 }') GB RAM"
echo "- $(/usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //'), $(openssl version | cut -d' ' -f1-2), $(curl --version | head -1 | cut -d' ' -f1-2), certgate $commit ($dirty uncommitted paths in the tree), module md5 $(md5sum <"$run/ngx_http_certgate_module.so" | cut -c1-12)"
echo "- settings: $CLIENTS s_time clients, -time $T s (A, C, D) / $TB s (B), $REPS handshake reps, $RELOADS reload reps, 4 workers, RSA-2048 PKI"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- work directory: $run"
started=$(date +%s)

# 1. Start A, D, C, B one after the other (C: warm-up until 200 = CRL ingested).
for c in A D C B; do start_server "$c"; done
"$cli" cache list --cache "$cache" >"$run/out/cache-list.txt" 2>&1 || true
if ! grep -q "^crl .*entries=$ENTRIES " "$run/out/cache-list.txt"; then
  echo "revocation_bench: the cache does not hold the $ENTRIES-entry CRL:" >&2
  cat "$run/out/cache-list.txt" >&2
  exit 1
fi
record C - lmdb_data_mb "$(du -sm --apparent-size "$cache" | cut -f1)"
record C - lmdb_disk_mb "$(du -sm "$cache" | cut -f1)"
log "cache: $(grep '^crl ' "$run/out/cache-list.txt" | cut -c1-160)"
for c in A B C D; do memory "$c" after_start; done

# Correctness: good → 200 everywhere; revoked → 200 (A, D), 400 (B), 403 reason=revoked (C).
declare -A want=([A]=200 [B]=400 [C]=403 [D]=200)
for c in A B C D; do
  code=$(get "$c" good -m 60)
  [ "$code" = 200 ] || { echo "revocation_bench: $c: good cert got $code" >&2; exit 1; }
  code=$(get "$c" revoked -m 60)
  [ "$code" = "${want[$c]}" ] || { echo "revocation_bench: $c: revoked cert got $code, want ${want[$c]}" >&2; exit 1; }
  record "$c" - revoked_status "$code"
done
sleep 0.2
if ! tail -n 1 "$run/logs/nginx-C-access.log" | grep -q '^403 .*certgate=deny reason=revoked$'; then
  echo "revocation_bench: C's refusal of the revoked cert is not reason=revoked:" >&2
  tail -n 2 "$run/logs/nginx-C-access.log" >&2
  exit 1
fi
grep -m1 'revoked' "$run/logs/nginx-C-error.log" >"$run/out/revoked-line.txt" || true
log "revoked cert: A 200, B 400, C 403 reason=revoked, D 200"

# Warm-up with s_time as measured (not recorded); then every logged request must be 200.
for c in A C D B; do
  timeout 60 openssl s_time -connect "127.0.0.1:$(port_of "$c")" -new -cert "$pki/good.pem" \
    -key "$pki/good.key" -CAfile "$pki/root.pem" -time 1 -www /x >/dev/null 2>&1 || true
done
for c in A B C D; do : >"$run/logs/nginx-$c-access.log"; done

# 2. Handshakes, alternating order.
for ((r = 1; r <= REPS; r++)); do
  if ((r % 2 == 1)); then order="A C D B"; else order="B D C A"; fi
  for c in $order; do measure_hs "$c" "$r"; done
  log "handshake rep $r ($order) done at +$(($(date +%s) - started)) s"
done

# 3. Memory after handshakes on every worker.
for c in A B C D; do touch_workers "$c"; memory "$c" after_hs; done
log "memory read"

# 4. Reloads (B and C with the CRL in force; A and D without), alternating.
for ((r = 1; r <= RELOADS; r++)); do
  if ((r % 2 == 1)); then order="B C A D"; else order="D A C B"; fi
  for c in $order; do measure_reload "$c" "$r"; done
done
for c in A B C D; do
  code=$(get "$c" revoked -m 60)
  [ "$code" = "${want[$c]}" ] || { echo "revocation_bench: $c after reloads: revoked cert got $code" >&2; exit 1; }
  touch_workers "$c"
  memory "$c" after_reloads
done
"$cli" cache list --cache "$cache" >"$run/out/cache-list-after.txt" 2>&1 || true

bad=0
for c in A B C D; do
  f=$run/logs/nginx-$c-access.log
  total=$(wc -l <"$f")
  non200=$(awk '$1 != 200 && $0 !~ /revoked/' "$f" | wc -l)
  record "$c" - requests_logged "$total"
  record "$c" - requests_not_200 "$non200"
  bad=$((bad + non200))
done
measured_s=$(($(date +%s) - started))

# 5. The core benchmark, once, with the servers idle.
core_out=$run/out/core-bench.txt
if [ "$core_bench" != none ] && [ -x "$core_bench" ]; then
  log "core benchmark $core_bench"
  cp "$core_bench" "$run/certgate_bench_revocation"
  (cd "$run" && timeout 400 ./certgate_bench_revocation --benchmark_min_time=0.2 >"$core_out" 2>&1) ||
    echo "revocation_bench: the core benchmark failed, see $core_out" >&2
else
  echo "(core benchmark not run: -x $core_bench)" >"$core_out"
fi

echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg); measurements took $measured_s s, all $(($(date +%s) - started)) s"
echo
echo '```'
cat "$run/out/cache-list.txt"
[ -s "$run/out/revoked-line.txt" ] && cat "$run/out/revoked-line.txt"
echo '```'
echo
python3 - "$results" "$ENTRIES" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(dict)  # (cfg, metric) -> {rep: value}
for line in open(sys.argv[1]):
    c, r, m, v = line.rstrip("\n").split("\t")
    rows[(c, m)][r] = float(v)

def vals(c, m):
    return list(rows.get((c, m), {}).values())

def cell(vs, f="{:.0f}"):
    if not vs:
        return "—"
    vs = sorted(vs)
    if len(vs) == 1:
        return f.format(vs[0])
    return f"{f.format(statistics.median(vs))} ({f.format(vs[0])}–{f.format(vs[-1])})"

def one(c, m, f="{:.2f}"):
    return cell(vals(c, m), f)

def paired(num, den, m="hs_per_s"):
    a, b = rows.get((num, m), {}), rows.get((den, m), {})
    return sorted(a[r] / b[r] for r in a if r in b)

g = lambda m: rows.get(("gen", m), {}).get("-", float("nan"))
print(f"CRL: {int(sys.argv[2]):,} entries, DER {g('crl_der_mb'):.1f} MB, PEM {g('crl_pem_mb'):.1f} MB; "
      f"index.txt {g('index_s'):.1f} s, `openssl ca -gencrl` {g('gencrl_s'):.2f} s at {g('gencrl_rss_mb'):.0f} MB peak RSS; "
      f"LMDB directory after ingest: {rows[('C', 'lmdb_data_mb')]['-']:.0f} MB apparent, {rows[('C', 'lmdb_disk_mb')]['-']:.0f} MB on disk.")
print()
print("Raw handshakes/s per rep (A / B / C / D):")
print()
reps = sorted(rows.get(("A", "hs_per_s"), {}), key=int)
for r in reps:
    print(f"    rep {r}: " + " / ".join(f"{rows[(c, 'hs_per_s')].get(r, float('nan')):.1f}" for c in "ABCD")
          + "   µs/conn: " + " / ".join(f"{rows[(c, 'us_per_conn')].get(r, float('nan')):.0f}" for c in "ABCD"))
print()
print("| | A native, no CRL | B native `ssl_crl` 1M | C certgate, 1M CRL | D certgate, revocation off |")
print("|---|---|---|---|---|")
print("| `nginx -t` s (peak RSS MB) | " + " | ".join(f"{one(c, 'nginx_t_s')} ({one(c, 'nginx_t_rss_mb', '{:.0f}')})" for c in "ABCD") + " |")
print("| start → listening / first mTLS 200, s | " + " | ".join(f"{one(c, 'start_listen_s')} / {one(c, 'start_first200_s')}" for c in "ABCD") + " |")
print("| handshakes/s (+GET), median (min–max) | " + " | ".join(one(c, "hs_per_s", "{:.1f}") for c in "ABCD") + " |")
print("| server µs per connection | " + " | ".join(one(c, "us_per_conn", "{:.0f}") for c in "ABCD") + " |")
print("| connections measured | " + " | ".join(f"{sum(vals(c, 'conns')):.0f}" for c in "ABCD") + " |")
def m(c, k, when, f="{:.1f}"):
    v = rows.get((c, k), {}).get(when)
    return "—" if v is None else f.format(v)
for when, label in (("after_start", "after the start (C: the CRL ingested)"),
                    ("after_hs", "after handshakes on all 4 workers"),
                    ("after_reloads", "after the reloads + handshakes")):
    print(f"| PSS sum, master + 4, {label}, MB | " + " | ".join(m(c, "pss_mb", when) for c in "ABCD") + " |")
    print(f"| &nbsp; of which Pss_Anon / Pss_File; RSS sum, MB | " + " | ".join(
        f"{m(c, 'pss_anon_mb', when)} / {m(c, 'pss_file_mb', when)}; {m(c, 'rss_mb', when, '{:.0f}')}" for c in "ABCD") + " |")
print("| `nginx -s reload` command, s | " + " | ".join(one(c, "reload_cmd_s") for c in "ABCD") + " |")
print("| reload → 4 new workers / old workers gone, s | " + " | ".join(f"{one(c, 'reload_new_workers_s')} / {one(c, 'reload_old_gone_s')}" for c in "ABCD") + " |")
print("| first request after the reload (new connection), s | " + " | ".join(one(c, "reload_first_req_s", "{:.3f}") for c in "ABCD") + " |")
print("| revoked client cert | " + " | ".join(f"{rows[(c, 'revoked_status')]['-']:.0f}" for c in "ABCD") + " |")
print()
mem = lambda c, w: rows.get((c, "pss_mb"), {}).get(w, float("nan"))
def ratio(vs):
    return f"{statistics.median(vs):.3f} ({vs[0]:.3f}–{vs[-1]:.3f})" if vs else "—"
cd, ca, ba, da = paired("C", "D"), paired("C", "A"), paired("B", "A"), paired("D", "A")
ok = lambda x, t, ge=True: ("✔" if (x >= t if ge else x <= t) else "✘")
print("| ratio (paired per rep) | median (min–max) | anchor | target |")
print("|---|---|---|---|")
print(f"| handshakes/s C / A (certgate 1M CRL ÷ native no CRL) | **{ratio(ca)}** | B/A 0.021 | ≥ 0.95 {ok(statistics.median(ca), 0.95)} |")
print(f"| handshakes/s C / D (certgate 1M CRL ÷ certgate no revocation) | {ratio(cd)} | | ≥ 0.95 {ok(statistics.median(cd), 0.95)} |")
print(f"| handshakes/s B / A (native 1M CRL ÷ native no CRL) | {ratio(ba)} | 0.021 (0.021–0.022) | |")
print(f"| handshakes/s D / A (certgate, revocation off ÷ native) | {ratio(da)} | | |")
pr = mem("C", "after_hs") / mem("B", "after_hs")
print(f"| PSS C / B after handshakes | **{pr:.3f}** ({mem('C', 'after_hs'):.1f} / {mem('B', 'after_hs'):.1f} MB) | B: 317 (270–343) MB | ≤ 0.3 {ok(pr, 0.3, False)} |")
pr0 = mem("C", "after_start") / mem("B", "after_start")
print(f"| PSS C / B after the start (idle) | {pr0:.3f} ({mem('C', 'after_start'):.1f} / {mem('B', 'after_start'):.1f} MB) | B: 220 MB | |")
pr2 = mem("C", "after_reloads") / mem("B", "after_reloads")
print(f"| PSS C / B after the reloads | {pr2:.3f} ({mem('C', 'after_reloads'):.1f} / {mem('B', 'after_reloads'):.1f} MB) | B: 410–448 MB | |")
rc = sorted(vals("C", "reload_old_gone_s"))
print(f"| certgate reload → old workers gone, s | **{cell(rc, '{:.2f}')}** | B: 13.99 (13.43–15.15) | ≤ 0.2 {ok(statistics.median(rc), 0.2, False)} |")
rcc = sorted(vals("C", "reload_cmd_s"))
print(f"| certgate `nginx -s reload` command, s | {cell(rcc, '{:.3f}')} | B: 1.87 (1.75–2.07) | ≤ 0.2 {ok(statistics.median(rcc), 0.2, False)} |")
for c, base in (("B", "A"), ("C", "D")):
    d = sorted(rows[(c, "reload_old_gone_s")][r] - rows[(base, "reload_old_gone_s")][r]
               for r in rows.get((c, "reload_old_gone_s"), {}) if r in rows.get((base, "reload_old_gone_s"), {}))
    if d:
        print(f"| reload → old workers gone, {c} − {base} (the CRL's share), s | {cell(d, '{:+.2f}')} | "
              + ("B − none: ≈ 13.8" if c == "B" else "") + " | " + ("≤ 0.2 " + ok(statistics.median(d), 0.2, False) if c == "C" else "") + " |")
print()
n = {c: (vals(c, "requests_logged") or [0])[0] for c in "ABCD"}
bad = {c: (vals(c, "requests_not_200") or [0])[0] for c in "ABCD"}
print("Access logs after the warm-up: " + ", ".join(f"{c} {n[c]:.0f} requests ({bad[c]:.0f} not 200 apart from the revoked checks)" for c in "ABCD") + ".")
PY
echo
echo "Core benchmark (certgate_bench_revocation):"
echo
echo '```'
grep -v '^\*\*\*\|^$' "$core_out" || true
echo '```'
if ((bad > 0)); then
  echo "revocation_bench: $bad requests were not answered 200" >&2
  exit 1
fi
