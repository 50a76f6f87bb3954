#!/usr/bin/env bash
# hang_latency_bench.sh: latency of unrelated requests while a CDP and an OCSP responder
# hang (issue 5 item 8, last bullet: p99 < 50 ms in both servers, and the waiting request
# is answered within certgate_revocation_wait).
#
# The demo PKI's clients/good names CDP http://127.0.0.1:18080/intermediate.crl and OCSP
# http://127.0.0.1:18081/. A blackhole (python3, from the machine) listens on both ports,
# accepts every connection and never reads from it or answers it.
#
# For nginx (1 worker) and Apache (mpm_event, 1 child, ThreadsPerChild 25) separately,
# one server with two locations, restarted for each of ROUNDS rounds with a fresh
# certgate_cache directory (no cached answer, no fetch backoff left from the last round):
#   /rev    certgate require; certgate_revocation hard_fail; certgate_revocation_wait 10s;
#           certgate_fetch_timeout 10s           (Apache: CertGate* in <Location /rev>)
#   /plain  certgate require; certgate_revocation off
# Measured, in this order, for each server:
#   1. baseline (first round only): /plain with nothing hanging: one keep-alive curl with
#      NKA requests, then N sequential curl processes (a new TLS handshake each,
#      Connection: close); each request's time_total;
#   2. hang (every round): K concurrent /rev requests with the good client cert (each
#      must wait for the hanging fetch). Once the blackhole has accepted the fetch and
#      all K clients are connected (ss), the same /plain runs as in 1; the sequential
#      run stops at the first /rev answer. Only /plain requests that started after that
#      point and finished before the first /rev answer count as "during the hang";
#   3. each /rev request's status, reason (access log) and answer time (curl
#      time_total); expected 403 revocation_unavailable at ≈ WAIT, within WAIT + 1 s.
# p50/p99/max are nearest-rank over each sample. Prints a markdown table on stdout.
#
# Usage: tests/bench/hang_latency_bench.sh [-k K] [-n N] [-m NKA] [-w WAIT_S]
#          [-r ROUNDS] [-s "nginx apache"] [-p BASEPORT] [-o DIR]
#   -k  concurrent /rev requests (default 20; Apache needs K < ThreadsPerChild 25)
#   -n  sequential new-handshake /plain requests per phase (default 200)
#   -m  keep-alive /plain requests per phase (default 1000)
#   -w  certgate_revocation_wait and certgate_fetch_timeout in seconds (default 10)
#   -r  hang rounds per server (default 2)
#   -p  base port: nginx BASE, Apache BASE+1 (default 18760; must stay in 18760-18769)
#   -o  work directory (default a new /tmp/certgate-hang.*)
# Needs Debian's nginx and apache2, curl, ss (iproute2), python3 (the blackhole) and
# the build tree.
# 127.0.0.1:18080 and :18081 must be free. Everything is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
# shellcheck source=scripts/lib/servers.sh
. scripts/lib/servers.sh

K=20 N=200 NKA=1000 WAIT=10 ROUNDS=2 SERVERS="nginx apache" BASE=18760 run=""
while getopts "k:n:m:w:r:s:p:o:h" opt; do
  case $opt in
    k) K=$OPTARG ;; n) N=$OPTARG ;; m) NKA=$OPTARG ;; w) WAIT=$OPTARG ;; r) ROUNDS=$OPTARG ;;
    s) SERVERS=$OPTARG ;; p) BASE=$OPTARG ;; o) run=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
done
if ((BASE < 18760 || BASE + 1 > 18769)); then
  echo "hang_latency_bench: ports must stay in 18760-18769" >&2
  exit 2
fi
((K < 25)) || { echo "hang_latency_bench: -k must be < 25 (Apache's ThreadsPerChild)" >&2; exit 2; }

nginx_mod=$top/build/nginx-module/ngx_http_certgate_module.so
apache_mod=$top/build/apache-module/mod_certgate.so
mkpki=$top/build/tests/pki/certgate-mkpki
require_built "$nginx_mod" "$apache_mod" "$mkpki"
require_tools /usr/sbin/nginx /usr/sbin/apache2 curl ss python3
for p in 18080 18081 "$BASE" $((BASE + 1)); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    echo "hang_latency_bench: 127.0.0.1:$p is already in use" >&2
    exit 2
  fi
done

[ -n "$run" ] || run=$(mktemp -d /tmp/certgate-hang.XXXXXX)
rm -rf "$run"
mkdir -p "$run/logs" "$run/out"
# A snapshot of the modules: a rebuild of the tree during the run must not change them.
cp "$nginx_mod" "$run/ngx_http_certgate_module.so"
cp "$apache_mod" "$run/mod_certgate.so"
"$mkpki" --out "$run/pki" >/dev/null
pki=$run/pki
cert=$pki/clients/good.chain.pem key=$pki/clients/good.key

pids=()
cleanup() { stop_pids "${pids[@]}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }

# --- the blackhole: accepts on 18080 (CDP) and 18081 (OCSP), never answers -----------
cat >"$run/blackhole.py" <<'PY'
import select, socket, sys, time
log = open(sys.argv[1], "a", buffering=1)
listeners = []
for port in (18080, 18081):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(256)
    listeners.append(s)
held = []  # accepted connections, kept open and never read or answered
while True:
    for s in select.select(listeners, [], [])[0]:
        c, _ = s.accept()
        held.append(c)
        log.write(f"{time.time():.3f} accepted on {s.getsockname()[1]}\n")
PY
python3 "$run/blackhole.py" "$run/logs/blackhole.log" &
pids+=($!)
wait_port 18080
wait_port 18081

# --- servers ----------------------------------------------------------------------------
# shellcheck disable=SC2016  # $status etc. are nginx variables
write_nginx() {
  local d=$run/nginx
  mkdir -p "$d/tmp"
  {
    echo "load_module $run/ngx_http_certgate_module.so;"
    nginx_conf_head "$d" 1 "$run/logs/nginx-error.log" 512
    cat <<EOF
    log_format bench '\$msec \$status "\$request" \$request_time reason=\$certgate_reason';
    access_log $run/logs/nginx-access.log bench;
    keepalive_requests 1000000;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    server {
        listen 127.0.0.1:$BASE ssl;
        server_name localhost;
        ssl_certificate $pki/server/server-chain.pem;
        ssl_certificate_key $pki/server/server.key;
        ssl_verify_client off;
        ssl_trusted_certificate $pki/ca/trust.pem;
        certgate require;
        certgate_cache $cache;
        location /rev {
            certgate_revocation hard_fail;
            certgate_revocation_wait ${WAIT}s;
            certgate_fetch_timeout ${WAIT}s;
            return 200 "rev\n";
        }
        location /plain {
            certgate_revocation off;
            return 200 "plain\n";
        }
    }
}
EOF
  } >"$d/nginx.conf"
}

write_apache() {
  local d=$run/apache
  mkdir -p "$d/run" "$d/htdocs/rev" "$d/htdocs/plain"
  printf 'rev\n' >"$d/htdocs/rev/x"
  printf 'plain\n' >"$d/htdocs/plain/x"
  cat >"$d/httpd.conf" <<EOF
ServerRoot "$d"
ServerName localhost
DefaultRuntimeDir "$d/run"
PidFile "$d/run/httpd.pid"
ErrorLog "$run/logs/apache-error.log"
LogLevel warn
Mutex file:$d/run default
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
LoadModule certgate_module $run/mod_certgate.so
User nobody
Group nogroup
StartServers 1
ServerLimit 1
ThreadsPerChild 25
MaxRequestWorkers 25
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
TypesConfig /etc/mime.types
DocumentRoot "$d/htdocs"
<Directory />
    Require all granted
</Directory>
LogFormat "%{%s}t.%{msec_frac}t %>s \"%r\" %D reason=%{CERTGATE_REASON}e" bench
CustomLog "$run/logs/apache-access.log" bench
SSLSessionCache none
SSLSessionTickets off
SSLProtocol -all +TLSv1.2 +TLSv1.3
Listen 127.0.0.1:$((BASE + 1))
<VirtualHost 127.0.0.1:$((BASE + 1))>
  SSLEngine on
  SSLCertificateFile $pki/server/server-chain.pem
  SSLCertificateKeyFile $pki/server/server.key
  SSLCACertificateFile $pki/ca/trust.pem
  SSLVerifyClient optional_no_ca
  CertGate require
  CertGateCache $cache
  <Location /rev>
    CertGateRevocation hard_fail
    CertGateRevocationWait ${WAIT}s
    CertGateFetchTimeout ${WAIT}s
  </Location>
  <Location /plain>
    CertGateRevocation off
  </Location>
</VirtualHost>
EOF
}

start_server() {  # SERVER
  if [ "$1" = nginx ]; then
    write_nginx
    chmod -R a+rX "$run"
    /usr/sbin/nginx -t -q -p "$run/nginx" -c "$run/nginx/nginx.conf"
    /usr/sbin/nginx -p "$run/nginx" -c "$run/nginx/nginx.conf" &
    pids+=($!)
    wait_port "$BASE"
  else
    write_apache
    chmod -R a+rX "$run"
    env -i PATH=/usr/sbin:/usr/bin:/bin /usr/sbin/apache2 -t -f "$run/apache/httpd.conf" 2>&1 |
      grep -v '^Syntax OK$' >&2 || true
    env -i PATH=/usr/sbin:/usr/bin:/bin /usr/sbin/apache2 -DFOREGROUND -f "$run/apache/httpd.conf" &
    pids+=($!)
    wait_port $((BASE + 1))
  fi
}
stop_last_server() {
  local pid=${pids[-1]}
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset 'pids[-1]'
}

port_of() { [ "$1" = nginx ] && echo "$BASE" || echo $((BASE + 1)); }
path_of() { [ "$1" = nginx ] && echo "/$2" || echo "/$2/x"; }  # SERVER rev|plain

# /plain, new TLS handshake per request: one line "END_EPOCH CODE SECONDS" per request.
# /plain, a new TLS handshake per request (one curl process each, Connection: close):
# one line "START END CODE SECONDS" per request (START = END - curl's time_total).
# Stops after N requests, or as soon as the file STOP exists (if given).
plain_new() {  # SERVER OUT [STOP]
  local url i t r
  url="https://127.0.0.1:$(port_of "$1")$(path_of "$1" plain)"
  for ((i = 0; i < N; i++)); do
    [ -n "${3:-}" ] && [ -e "$3" ] && break
    r=$(curl -sk --http1.1 -H 'Connection: close' --max-time 30 --cert "$cert" --key "$key" \
      -o /dev/null -w '%{http_code} %{time_total}' "$url" || echo "000 30")
    t=$(now)
    echo "$t $r" | awk '{ printf "%.6f %s %s %s\n", $1 - $3, $1, $2, $3 }'
  done >"$2"
}
# /plain, NKA requests over one keep-alive connection (one curl): the same lines, each
# request's END estimated as the run's start + the running sum of time_total. The first
# request (it opens the connection: a TLS handshake) is left out.
plain_ka() {  # SERVER OUT
  local url t0
  url="https://127.0.0.1:$(port_of "$1")$(path_of "$1" plain)?[1-$NKA]"
  t0=$(now)
  curl -sk --http1.1 --max-time 60 --cert "$cert" --key "$key" -o /dev/null \
    -w '%{http_code} %{time_total} %{num_connects}\n' "$url" >"$2.raw" || true
  awk -v t="$t0" '{ s = t + c; c += $2 } $3 == 0 { printf "%.6f %.6f %s %s\n", s, t + c, $1, $2 }' "$2.raw" >"$2"
}

# nearest-rank percentiles of curl's time_total over the lines of the FILEs with
# START >= FROM and END <= TO -> "n ok p50_ms p99_ms max_ms"
stats() {  # FROM TO FILE...
  local from=$1 to=$2
  shift 2
  cat "$@" | awk -v a="$from" -v b="$to" '$1 >= a && $2 <= b { print $4, $3 }' | sort -g | awk '
    { v[NR] = $1 * 1000; if ($2 == 200) ok++ }
    END {
      if (NR == 0) { print "0 0 - - -"; exit }
      i50 = int(0.50 * NR + 0.999999); i99 = int(0.99 * NR + 0.999999)
      printf "%d %d %.1f %.1f %.1f\n", NR, ok + 0, v[i50], v[i99], v[NR]
    }'
}

# --- run --------------------------------------------------------------------------------
echo "# certgate: unrelated requests while a CDP and an OCSP responder hang"
echo
# shellcheck disable=SC1091
echo "- machine: $(nproc) vCPU $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
echo "- $(/usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //'), $(/usr/sbin/apache2 -v | sed -n 's/^Server version: //p'), $(openssl version | cut -d' ' -f1-2), $(curl --version | head -1 | cut -d' ' -f1-2), blackhole: $(python3 --version)"
echo "- settings: K=$K concurrent /rev per round, $ROUNDS rounds per server; /plain per phase: up to N=$N new-handshake requests + NKA=$NKA keep-alive; wait = fetch timeout = ${WAIT} s"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- work directory: $run"
started=$(date +%s)
rows=$run/rows.md
revrows=$run/revrows.md
windows=$run/windows.tsv  # server round from to
: >"$rows"
: >"$revrows"
: >"$windows"
bad=0

for s in $SERVERS; do
  port=$(port_of "$s")
  name=$([ "$s" = apache ] && echo Apache || echo nginx)
  for ((round = 1; round <= ROUNDS; round++)); do
    # A fresh server and cache per round: no cached answer, no backoff from the last round.
    cache=$run/cache-$s-$round
    start_server "$s"
    # Sanity: /plain answers 200 to the good cert and 403 without one.
    code=$(curl -sk --http1.1 --cert "$cert" --key "$key" -o /dev/null -w '%{http_code}' \
      "https://127.0.0.1:$port$(path_of "$s" plain)" || true)
    [ "$code" = 200 ] || { echo "hang_latency_bench: $s /plain answered '$code', not 200" >&2; exit 1; }
    code=$(curl -sk --http1.1 -o /dev/null -w '%{http_code}' "https://127.0.0.1:$port$(path_of "$s" plain)" || true)
    [ "$code" = 403 ] || { echo "hang_latency_bench: $s /plain without a cert answered '$code', not 403" >&2; exit 1; }

    # 1. baseline, nothing hanging (first round only).
    if ((round == 1)); then
      plain_ka "$s" "$run/out/$s-base-ka.txt"
      plain_new "$s" "$run/out/$s-base-new.txt"
    fi

    # 2. K concurrent /rev requests, each waiting for the hanging fetch.
    bh_before=$(wc -l <"$run/logs/blackhole.log")
    t_rev=$(now)
    stop=$run/out/$s-$round-rev-answered
    revpids=()
    for ((i = 0; i < K; i++)); do
      (
        t0=$(now)
        r=$(curl -sk --http1.1 --max-time $((WAIT + 20)) --cert "$cert" --key "$key" -o /dev/null \
          -w '%{http_code} %{time_total}' "https://127.0.0.1:$port$(path_of "$s" rev)?i=$i" || echo "000 -")
        t1=$(now)
        touch "$stop"
        echo "$t0 $t1 $r" >"$run/out/$s-$round-rev-$i.txt"
      ) &
      revpids+=($!)
    done
    # The window opens once the fetch hangs (the blackhole accepted a connection) and all
    # K clients are connected (their TCP connections established to the server).
    for _ in $(seq 100); do
      bh=$(($(wc -l <"$run/logs/blackhole.log") - bh_before))
      est=$(ss -Htn state established "( dport = :$port )" | wc -l)
      ((bh >= 1 && est >= K)) && break
      sleep 0.1
    done
    sleep 0.3
    t_open=$(now)
    plain_ka "$s" "$run/out/$s-$round-hang-ka.txt"
    plain_new "$s" "$run/out/$s-$round-hang-new.txt" "$stop"
    for p in "${revpids[@]}"; do wait "$p" || true; done
    bh_conns=$(($(wc -l <"$run/logs/blackhole.log") - bh_before))
    cat "$run/out/$s-$round"-rev-*.txt >"$run/out/$s-$round-rev.txt"
    t_close=$(awk 'NR == 1 || $2 < m { m = $2 } END { printf "%.6f", m }' "$run/out/$s-$round-rev.txt")
    printf '%s\t%s\t%s\t%s\n' "$s" "$round" "$t_open" "$t_close" >>"$windows"
    echo "- $s round $round: fetch hanging and $est/$K clients connected at +$(awk -v a="$t_rev" -v b="$t_open" 'BEGIN { printf "%.2f", b - a }') s, first /rev answer at +$(awk -v a="$t_rev" -v b="$t_close" 'BEGIN { printf "%.2f", b - a }') s; blackhole accepted $bh_conns connections; done at +$(($(date +%s) - started)) s" >&2
    sleep 0.3
    stop_last_server
  done

  # 3. the /rev answers, all rounds.
  cat "$run"/out/"$s"-*-rev.txt >"$run/out/$s-rev.txt"
  reasons=$(grep '"GET /rev' "$run/logs/$s-access.log" | grep -o 'reason=[^ ]*' | sort | uniq -c |
    awk '{ printf "%s%s×%s", sep, $1, substr($2, 8); sep = ", " }')
  # sorted by curl's time_total; "-" (curl failed) sorts first and fails the check
  read -r nrev n403 tmin tmed tmax < <(sort -g -k4,4 "$run/out/$s-rev.txt" | awk '
      { if ($3 == 403) n++; a[NR] = $4 }
      END { printf "%d %d %.2f %.2f %.2f\n", NR, n, a[1], a[int((NR + 1) / 2)], a[NR] }')
  within=no
  awk -v m="$tmax" -v w="$WAIT" -v n="$n403" -v k="$nrev" 'BEGIN { exit !(n == k && m <= w + 1) }' && within=yes
  case "$reasons" in *revocation_unavailable*) ;; *) within=no ;; esac
  [ "$within" = yes ] || bad=$((bad + 1))
  printf '| %s | %d/%d × 403 | %s | %s / %s / %s s | ≤ %d s (wait + 1 s) %s |\n' \
    "$name" "$n403" "$nrev" "$reasons" "$tmin" "$tmed" "$tmax" $((WAIT + 1)) \
    "$([ "$within" = yes ] && echo ✔ || echo ✘)" >>"$revrows"

  # /plain: baseline vs during the hang (each round's window, pooled).
  for kind in new ka; do
    read -r bn bok b50 b99 bmax < <(stats 0 1e12 "$run/out/$s-base-$kind.txt")
    hn=0 hok=0 hall=0
    : >"$run/out/$s-hang-$kind-in.txt"
    while IFS=$'\t' read -r ws wr wa wb; do
      [ "$ws" = "$s" ] || continue
      awk -v a="$wa" -v b="$wb" '$1 >= a && $2 <= b' "$run/out/$s-$wr-hang-$kind.txt" >>"$run/out/$s-hang-$kind-in.txt"
      hall=$((hall + $(wc -l <"$run/out/$s-$wr-hang-$kind.txt")))
    done <"$windows"
    read -r hn hok h50 h99 hmax < <(stats 0 1e12 "$run/out/$s-hang-$kind-in.txt")
    ratio=$(awk -v a="$h99" -v b="$b99" 'BEGIN { if (b > 0 && a != "-") printf "%.2f", a / b; else print "-" }')
    mark=$(awk -v a="$h99" 'BEGIN { print (a != "-" && a < 50) ? "✔" : "✘" }')
    [ "$mark" = ✔ ] || bad=$((bad + 1))
    if [ "$bok" != "$bn" ] || [ "$hok" != "$hn" ]; then bad=$((bad + 1)); mark="$mark (non-200!)"; fi
    if [ "$kind" = ka ]; then
      conns=$(cat "$run"/out/"$s"-*-ka.txt.raw | awk '{ c += $3 } END { print c + 0 }')
      label="keep-alive, 1 connection per run ($conns connects in $((ROUNDS + 1)) runs; first request left out)"
    else
      label="new TLS handshake each"
    fi
    printf '| %s | %s | %d | %s / %s / %s | %d of %d | %s / **%s** / %s | %s | < 50 ms %s |\n' \
      "$name" "$label" "$bn" "$b50" "$b99" "$bmax" "$hn" "$hall" "$h50" "$h99" "$hmax" "$ratio" "$mark" >>"$rows"
  done
done

echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg); wall time: $(($(date +%s) - started)) s"
echo
echo "/plain latency in ms, curl time_total; \"during\" = started after the fetch hung and all $K /rev clients"
echo "were connected, finished before the first /rev answer ($ROUNDS rounds pooled):"
echo
echo "| server | /plain requests | n baseline | baseline p50 / p99 / max | n during hang (of run) | during hang p50 / **p99** / max | p99 ratio hang/base | target |"
echo "|---|---|---|---|---|---|---|---|"
cat "$rows"
echo
echo "/rev (hard_fail, wait = fetch timeout = $WAIT s), $K concurrent requests × $ROUNDS rounds, curl time_total:"
echo
echo "| server | status | reason (access log) | answer time min / median / max | target |"
echo "|---|---|---|---|---|"
cat "$revrows"
if ((bad > 0)); then
  echo "hang_latency_bench: $bad check(s) failed (see the tables and $run)" >&2
  exit 1
fi
