#!/usr/bin/env bash
# server_bench.sh: nginx and Apache with certgate (every rule that applies to an
# accepted certificate) against the same server with its native client-cert check only.
#
# For nginx (1 worker) and Apache (mpm_event, 1 child), in one run:
#   (a) full mTLS handshakes/s, one GET each: 2 parallel
#       `openssl s_time -new -cert C -key K -time T -www /x`, plus the server's CPU
#       per connection: utime+stime of the master/parent and its children from
#       /proc/PID/stat, before and after, divided by the connection count;
#   (b) keep-alive requests/s: one curl connection with N requests
#       (`https://127.0.0.1:PORT/x?[1-N]`), plus the server's CPU per request.
# Configs:
#   ANCHOR   nginx: ssl_verify_client on; ssl_client_certificate trust.pem; ssl_verify_depth 3
#            Apache: SSLVerifyClient require; SSLCACertificateFile trust.pem; SSLVerifyDepth 3
#   CERTGATE the module loaded, native checking off (nginx: ssl_verify_client off +
#            ssl_trusted_certificate; Apache: SSLVerifyClient optional_no_ca), and
#            certgate require + subject OU=People + san uri:spiffe://prod/* +
#            trusted_issuers (both issuing CAs) + require_eku + require_key_usage +
#            min_key + deny_signature md5 sha1 + max_depth 5 + deny <another cert> +
#            an access log with $certgate_verdict/$certgate_reason.
# Both configs: TLS 1.2/1.3, session cache and tickets off, an access log file with
# one line per request (so every request's status is checked at the end), nginx
# `return 200`, Apache a 6-byte static file. EC client = clients/good, RSA client =
# clients/rsa_good. The order ANCHOR/CERTGATE alternates from rep to rep; the
# ratios are paired (each rep's CERTGATE over the same rep's ANCHOR).
#
# Usage: tests/bench/server_bench.sh [-t SECONDS] [-n REQUESTS] [-r REPS]
#          [-c CLIENTS] [-s "nginx apache"] [-a "ec rsa"] [-p BASEPORT] [-o DIR]
#   -t  s_time duration per measurement (default 5)
#   -n  keep-alive requests per measurement (default 20000)
#   -r  repetitions of each A/B pair (default 3)
#   -c  parallel s_time clients (default 2)
#   -p  base port, ports used: BASE+10..11 (nginx), BASE+20..21 (Apache); default 18700
#   -o  work directory (configs, logs, raw results); default a new /tmp/certgate-bench.*
#   -m  directory holding the two modules to measure (ngx_http_certgate_module.so,
#       mod_certgate.so), e.g. a snapshot of an older build; default build/
# Prints the machine, the raw per-rep numbers and a markdown table on stdout.
# Needs Debian's nginx and apache2, openssl, curl, python3 and the build tree
# (cmake -S . -B build && cmake --build build). Run as root or as a user that may
# start both servers; the servers listen on 127.0.0.1 only and are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
# shellcheck source=scripts/lib/servers.sh
. scripts/lib/servers.sh

T=5 N=20000 REPS=3 CLIENTS=2 SERVERS="nginx apache" ALGS="ec rsa" BASE=18700 run="" modules=""
while getopts "t:n:r:c:s:a:p:o:m:h" opt; do
  case $opt in
    t) T=$OPTARG ;; n) N=$OPTARG ;; r) REPS=$OPTARG ;; c) CLIENTS=$OPTARG ;;
    s) SERVERS=$OPTARG ;; a) ALGS=$OPTARG ;; p) BASE=$OPTARG ;; o) run=$OPTARG ;; m) modules=$OPTARG ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
  esac
done
if ((BASE < 18700 || BASE + 21 > 18799)); then
  echo "server_bench: ports must stay in 18700-18799" >&2
  exit 2
fi

nginx_mod=$top/build/nginx-module/ngx_http_certgate_module.so
apache_mod=$top/build/apache-module/mod_certgate.so
if [ -n "$modules" ]; then
  nginx_mod=$modules/ngx_http_certgate_module.so
  apache_mod=$modules/mod_certgate.so
fi
mkpki=$top/build/tests/pki/certgate-mkpki
require_built "$nginx_mod" "$apache_mod" "$mkpki"
require_tools /usr/sbin/nginx /usr/sbin/apache2 openssl curl python3

[ -n "$run" ] || run=$(mktemp -d /tmp/certgate-bench.XXXXXX)
rm -rf "$run"
mkdir -p "$run/logs" "$run/out"
# A snapshot of the modules: a rebuild of the tree during the run must not change them.
cp "$nginx_mod" "$run/ngx_http_certgate_module.so"
cp "$apache_mod" "$run/mod_certgate.so"
"$mkpki" --out "$run/pki" >/dev/null
pki=$run/pki
cat "$pki/ca/intermediate.pem" "$pki/ca/rsa-intermediate.pem" >"$run/issuers.pem"
# Deny some other certificate (the `expired` client) so the deny list is consulted.
deny_fp=$(awk '$1 == "expired" { for (i = 2; i <= NF; i++) if ($i ~ /^sha256:/) print $i }' \
  "$pki/clients/fingerprints.txt")
[ -n "$deny_fp" ] || { echo "server_bench: no fingerprint for 'expired'" >&2; exit 2; }

port_of() {  # SERVER CFG
  local p=$BASE
  [ "$1" = nginx ] && p=$((p + 10)) || p=$((p + 20))
  [ "$2" = certgate ] && p=$((p + 1))
  echo "$p"
}
for s in nginx apache; do
  for c in anchor certgate; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$(port_of $s $c)") 2>/dev/null; then
      echo "server_bench: 127.0.0.1:$(port_of $s $c) is already in use" >&2
      exit 2
    fi
  done
done

declare -A pid_of=()
cleanup() { stop_pids "${pid_of[@]}"; }
trap cleanup EXIT
trap 'exit 130' INT TERM


# --- nginx ---------------------------------------------------------------------
# shellcheck disable=SC2016  # $status etc. are nginx variables, expanded by nginx
write_nginx() {  # CFG
  local cfg=$1 d=$run/nginx-$1 load="" tls log_format
  mkdir -p "$d/tmp"
  if [ "$cfg" = anchor ]; then
    log_format='$status "$request" $connection $connection_requests verify=$ssl_client_verify'
    tls="ssl_verify_client on;
        ssl_client_certificate $pki/ca/trust.pem;
        ssl_verify_depth 3;"
  else
    load="load_module $run/ngx_http_certgate_module.so;"
    log_format='$status "$request" $connection $connection_requests certgate=$certgate_verdict reason=$certgate_reason'
    tls="ssl_verify_client off;
        ssl_trusted_certificate $pki/ca/trust.pem;
        certgate require;
        certgate_subject OU=People;
        certgate_san uri:spiffe://prod/*;
        certgate_trusted_issuers $run/issuers.pem;
        certgate_require_eku clientAuth;
        certgate_require_key_usage digitalSignature;
        certgate_min_key rsa=2048 ec=256;
        certgate_deny_signature md5 sha1;
        certgate_max_depth 5;
        certgate_deny $deny_fp;"
  fi
  {
    echo "$load"
    nginx_conf_head "$d" 1 "$run/logs/nginx-$cfg-error.log" 256
    cat <<EOF
    log_format bench '$log_format';
    access_log $run/logs/nginx-$cfg-access.log bench;
    keepalive_requests 1000000;
    keepalive_timeout 30s;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache off;
    ssl_session_tickets off;
    server {
        listen 127.0.0.1:$(port_of nginx "$cfg") ssl;
        server_name localhost;
        ssl_certificate $pki/server/server-chain.pem;
        ssl_certificate_key $pki/server/server.key;
        $tls
        location / { return 200 "hello\n"; }
    }
}
EOF
  } >"$d/nginx.conf"
}

# --- Apache --------------------------------------------------------------------
write_apache() {  # CFG
  local cfg=$1 d=$run/apache-$1 load="" tls log_format
  mkdir -p "$d/run" "$d/htdocs"
  printf 'hello\n' >"$d/htdocs/x"
  if [ "$cfg" = anchor ]; then
    log_format='%>s \"%r\" %{remote}p %k verify=%{SSL_CLIENT_VERIFY}x'
    tls="SSLVerifyClient require
  SSLVerifyDepth 3"
  else
    load="LoadModule certgate_module $run/mod_certgate.so"
    log_format='%>s \"%r\" %{remote}p %k certgate=%{CERTGATE_VERDICT}e reason=%{CERTGATE_REASON}e'
    tls="SSLVerifyClient optional_no_ca
  CertGate require
  CertGateSubject OU=People
  CertGateSan uri:spiffe://prod/*
  CertGateTrustedIssuers $run/issuers.pem
  CertGateRequireEku clientAuth
  CertGateRequireKeyUsage digitalSignature
  CertGateMinKey rsa=2048 ec=256
  CertGateDenySignature md5 sha1
  CertGateMaxDepth 5
  CertGateDeny $deny_fp"
  fi
  cat >"$d/httpd.conf" <<EOF
ServerRoot "$d"
ServerName localhost
DefaultRuntimeDir "$d/run"
PidFile "$d/run/httpd.pid"
ErrorLog "$run/logs/apache-$cfg-error.log"
LogLevel warn
Mutex file:$d/run default
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
$load
User nobody
Group nogroup
StartServers 1
ServerLimit 1
ThreadsPerChild 8
MaxRequestWorkers 8
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 30
TypesConfig /etc/mime.types
DocumentRoot "$d/htdocs"
<Directory />
    Require all granted
</Directory>
LogFormat "$log_format" bench
CustomLog "$run/logs/apache-$cfg-access.log" bench
SSLSessionCache none
SSLSessionTickets off
SSLProtocol -all +TLSv1.2 +TLSv1.3
Listen 127.0.0.1:$(port_of apache "$cfg")
<VirtualHost 127.0.0.1:$(port_of apache "$cfg")>
  SSLEngine on
  SSLCertificateFile $pki/server/server-chain.pem
  SSLCertificateKeyFile $pki/server/server.key
  SSLCACertificateFile $pki/ca/trust.pem
  $tls
</VirtualHost>
EOF
}

start_server() {  # SERVER CFG
  local s=$1 c=$2
  if [ "$s" = nginx ]; then
    write_nginx "$c"
    chmod -R a+rX "$run"
    /usr/sbin/nginx -t -q -p "$run/nginx-$c" -c "$run/nginx-$c/nginx.conf"
    /usr/sbin/nginx -p "$run/nginx-$c" -c "$run/nginx-$c/nginx.conf" &
  else
    write_apache "$c"
    chmod -R a+rX "$run"
    env -i PATH=/usr/sbin:/usr/bin:/bin /usr/sbin/apache2 -t -f "$run/apache-$c/httpd.conf" 2>&1 |
      grep -v '^Syntax OK$' >&2 || true
    env -i PATH=/usr/sbin:/usr/bin:/bin /usr/sbin/apache2 -DFOREGROUND -f "$run/apache-$c/httpd.conf" &
  fi
  pid_of[$s-$c]=$!
  wait_port "$(port_of "$s" "$c")"
}

hz=$(getconf CLK_TCK)
now() { date +%s.%N; }

cert_of() { [ "$1" = ec ] && echo "$pki/clients/good.chain.pem" || echo "$pki/clients/rsa_good.chain.pem"; }
key_of() { [ "$1" = ec ] && echo "$pki/clients/good.key" || echo "$pki/clients/rsa_good.key"; }
# s_time loads only the first certificate of -cert; given the issuing CA as -CAfile,
# OpenSSL's client builds the chain itself and sends leaf + intermediate (as curl
# does from the .chain.pem). Without it both servers refuse (400 / 403 chain_incomplete).
ca_of() { [ "$1" = ec ] && echo "$pki/ca/intermediate.pem" || echo "$pki/ca/rsa-intermediate.pem"; }

results=$run/results.tsv
: >"$results"
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"; }  # server alg cfg rep metric value

measure_hs() {  # SERVER CFG ALG REP
  local s=$1 c=$2 a=$3 r=$4 port pid t0 t1 c0 c1 i conns=0 n clients=() failed=0
  port=$(port_of "$s" "$c") pid=${pid_of[$s-$c]}
  c0=$(server_ticks "$pid") t0=$(now)
  for ((i = 0; i < CLIENTS; i++)); do
    timeout $((T + 30)) openssl s_time -connect "127.0.0.1:$port" -new -cert "$(cert_of "$a")" \
      -key "$(key_of "$a")" -CAfile "$(ca_of "$a")" -time "$T" -www /x >"$run/out/hs-$s-$c-$a-$r-$i.txt" 2>&1 &
    clients+=($!)
  done
  for i in "${clients[@]}"; do wait "$i" || failed=1; done
  if ((failed)); then
    echo "server_bench: s_time failed ($s $c $a rep $r), see $run/out" >&2
    exit 1
  fi
  t1=$(now) c1=$(server_ticks "$pid")
  for ((i = 0; i < CLIENTS; i++)); do
    n=$(awk '/connections in [0-9]+ real seconds/ { print $1 }' "$run/out/hs-$s-$c-$a-$r-$i.txt")
    [ -n "$n" ] || { echo "server_bench: no s_time result ($s $c $a rep $r)" >&2; exit 1; }
    conns=$((conns + n))
  done
  record "$s" "$a" "$c" "$r" hs_per_s "$(awk -v n=$conns -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')"
  record "$s" "$a" "$c" "$r" us_per_conn "$(awk -v n=$conns -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')"
  record "$s" "$a" "$c" "$r" conns "$conns"
}

measure_ka() {  # SERVER CFG ALG REP
  local s=$1 c=$2 a=$3 r=$4 port pid t0 t1 c0 c1 ok connects out
  port=$(port_of "$s" "$c") pid=${pid_of[$s-$c]}
  out=$run/out/ka-$s-$c-$a-$r.txt
  c0=$(server_ticks "$pid") t0=$(now)
  timeout 300 curl -sk --http1.1 --cert "$(cert_of "$a")" --key "$(key_of "$a")" \
    -o /dev/null -w '%{http_code} %{num_connects}\n' "https://127.0.0.1:$port/x?[1-$N]" >"$out" || {
    echo "server_bench: curl failed ($s $c $a rep $r)" >&2
    exit 1
  }
  t1=$(now) c1=$(server_ticks "$pid")
  read -r ok connects < <(awk '$1 == 200 { ok++ } { c += $2 } END { print ok + 0, c + 0 }' "$out")
  if [ "$ok" != "$N" ] || [ "$connects" != 1 ]; then
    echo "server_bench: keep-alive run gave $ok x 200 over $connects connections ($s $c $a rep $r)" >&2
    exit 1
  fi
  record "$s" "$a" "$c" "$r" ka_req_per_s "$(awk -v n="$N" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')"
  record "$s" "$a" "$c" "$r" us_per_req "$(awk -v n="$N" -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')"
}

# --- run -------------------------------------------------------------------------
echo "# certgate server benchmark"
echo
# shellcheck disable=SC1091
echo "- machine: $(nproc) vCPU $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
echo "- $(/usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //'), $(/usr/sbin/apache2 -v | sed -n 's/^Server version: //p'), $(openssl version | cut -d' ' -f1-2), $(curl --version | head -1 | cut -d' ' -f1-2)"
echo "- settings: -t $T s per s_time measurement, $CLIENTS clients, $N keep-alive requests, $REPS reps, servers: $SERVERS, clients: $ALGS"
echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- work directory: $run"
started=$(date +%s)

for s in $SERVERS; do
  for c in anchor certgate; do start_server "$s" "$c"; done
done

# Sanity: every config answers 200 to both clients; CERTGATE refuses what it should.
for s in $SERVERS; do
  for c in anchor certgate; do
    for a in $ALGS; do
      code=$(curl -sk --http1.1 --cert "$(cert_of "$a")" --key "$(key_of "$a")" -o /dev/null \
        -w '%{http_code}' "https://127.0.0.1:$(port_of "$s" "$c")/x" || true)
      [ "$code" = 200 ] || { echo "server_bench: $s $c $a answered '$code', not 200" >&2; exit 1; }
    done
  done
  code=$(curl -sk --http1.1 --cert "$pki/clients/ou_missing.chain.pem" --key "$pki/clients/ou_missing.key" \
    -o /dev/null -w '%{http_code}' "https://127.0.0.1:$(port_of "$s" certgate)/x" || true)
  [ "$code" = 403 ] || { echo "server_bench: $s certgate let ou_missing through ($code)" >&2; exit 1; }
  code=$(curl -sk --http1.1 --cert "$pki/clients/expired.chain.pem" --key "$pki/clients/expired.key" \
    -o /dev/null -w '%{http_code}' "https://127.0.0.1:$(port_of "$s" certgate)/x" || true)
  [ "$code" = 403 ] || { echo "server_bench: $s certgate let expired through ($code)" >&2; exit 1; }
done
for f in "$run"/logs/*-access.log; do : >"$f"; done
# Warm-up, not measured, with s_time as measured: every request must get a 200.
for s in $SERVERS; do
  for c in anchor certgate; do
    for a in $ALGS; do
      timeout 30 openssl s_time -connect "127.0.0.1:$(port_of "$s" "$c")" -new -cert "$(cert_of "$a")" \
        -key "$(key_of "$a")" -CAfile "$(ca_of "$a")" -time 1 -www /x >/dev/null 2>&1 || true
    done
    sleep 0.2
    if awk '$1 != 200 { bad = 1 } END { exit !bad }' "$run/logs/$s-$c-access.log"; then
      echo "server_bench: $s $c did not answer 200 to s_time:" >&2
      awk '$1 != 200' "$run/logs/$s-$c-access.log" | sort | uniq -c | head -5 >&2
      exit 1
    fi
  done
done
# Start the access logs afresh: from here on every line must be a 200.
for f in "$run"/logs/*-access.log; do : >"$f"; done

pair=0
for s in $SERVERS; do
  for a in $ALGS; do
    for ((r = 1; r <= REPS; r++)); do
      if ((pair % 2 == 0)); then order="anchor certgate"; else order="certgate anchor"; fi
      pair=$((pair + 1))
      for c in $order; do measure_hs "$s" "$c" "$a" "$r"; done
      for c in $order; do measure_ka "$s" "$c" "$a" "$r"; done
      echo "- $s $a rep $r ($order) done at +$(($(date +%s) - started)) s, load $(cut -d' ' -f1 /proc/loadavg)" >&2
    done
  done
done

echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg); wall time of the measurements: $(($(date +%s) - started)) s"
echo
bad=0
for s in $SERVERS; do
  for c in anchor certgate; do
    f=$run/logs/$s-$c-access.log
    total=$(wc -l <"$f")
    non200=$(awk '$1 != 200' "$f" | wc -l)
    allow=$(grep -c 'certgate=allow\|verify=SUCCESS' "$f" || true)
    echo "- $s $c: $total requests logged, $non200 not 200, $allow with certgate=allow / verify=SUCCESS"
    bad=$((bad + non200))
  done
done
echo

python3 - "$results" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(dict)  # (server, alg, metric) -> {cfg: {rep: value}}
for line in open(sys.argv[1]):
    s, a, c, r, m, v = line.rstrip("\n").split("\t")
    rows[(s, a, m)].setdefault(c, {})[int(r)] = float(v)

def fmt(x, metric):
    return f"{x:.2f}" if metric == "us_per_req" else f"{x:.0f}"

def cell(values, metric):
    vs = sorted(values)
    return f"{fmt(statistics.median(vs), metric)} ({fmt(vs[0], metric)}–{fmt(vs[-1], metric)})"

names = {"hs_per_s": "handshakes/s (+GET)", "us_per_conn": "server µs/conn",
         "ka_req_per_s": "keep-alive req/s", "us_per_req": "server µs/req"}
targets = {"hs_per_s": "≥ 0.97", "ka_req_per_s": "≥ 0.98"}
print("Raw per-rep values (ANCHOR / CERTGATE):")
print()
for (s, a, m), by in rows.items():
    if m not in names:
        continue
    reps = sorted(by["anchor"])
    print(f"    {s} {a} {m}: " + ", ".join(
        f"{fmt(by['anchor'][r], m)}/{fmt(by['certgate'][r], m)}" for r in reps))
print()
print("| server | client | metric | ANCHOR median (min–max) | CERTGATE median (min–max) | CERTGATE/ANCHOR paired, median (min–max) | target |")
print("|---|---|---|---|---|---|---|")
for s in ("nginx", "apache"):
    for a in ("ec", "rsa"):
        for m in ("hs_per_s", "us_per_conn", "ka_req_per_s", "us_per_req"):
            by = rows.get((s, a, m))
            if not by:
                continue
            reps = sorted(set(by["anchor"]) & set(by["certgate"]))
            ratios = sorted(by["certgate"][r] / by["anchor"][r] for r in reps)
            ratio = f"{statistics.median(ratios):.3f} ({ratios[0]:.3f}–{ratios[-1]:.3f})"
            if m.startswith("us_"):
                delta = statistics.median(by["certgate"][r] - by["anchor"][r] for r in reps)
                ratio += f", Δ {delta:+.{2 if m == 'us_per_req' else 0}f} µs"
            mark = ""
            if m in targets:
                mark = targets[m] + (" ✔" if statistics.median(ratios) >= float(targets[m][2:]) else " ✘")
            print(f"| {'Apache' if s == 'apache' else s} | {'EC P-256 (good)' if a == 'ec' else 'RSA 2048 (rsa_good)'} "
                  f"| {names[m]} | {cell(by['anchor'].values(), m)} | {cell(by['certgate'].values(), m)} "
                  f"| {ratio} | {mark} |")
PY
if ((bad > 0)); then
  echo "server_bench: $bad requests were not answered 200" >&2
  exit 1
fi
