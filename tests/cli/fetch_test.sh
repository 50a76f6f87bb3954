#!/usr/bin/env bash
# Issue 11 §4: `certgate check --fetch` lists, per certificate of the chain,
# every CDP / freshestCRL / AIA caIssuers / OCSP URL with its result and time
# (certutil -verify -urlfetch), in text and in --json, against a real CDP: the
# suite's CDP server, Debian's nginx serving the demo PKI's www/ on
# 127.0.0.1:18080 (as tests/integration/harness CrlServer does). Nothing listens
# on the OCSP port 18081 nor on 18089 (dead URLs). Run in a private network
# namespace (fixed ports).
# Usage: fetch_test.sh CERTGATE MKPKI
. "$(dirname "$0")/demo_pki_env.sh" "$@"

passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
# expect TEXT WANT...: every WANT (a grep -E pattern) is a line of TEXT.
expect() {
  local text=$1 what=$2
  shift 2
  for want in "$@"; do
    grep -qE -- "$want" <<<"$text" && ok || fail "$what: no line matching '$want' in:
$text"
  done
}

# The CDP: nginx as the integration tests' CrlServer runs it.
nginx=/usr/sbin/nginx
[ -x "$nginx" ] || { echo "$nginx is missing (apt-get install nginx-core)"; exit 1; }
mkdir -p cdp/tmp
chmod 755 "$dir" && chmod -R a+rX www
cat >cdp/nginx.conf <<CONF
daemon off;
master_process on;
worker_processes 1;
pid $dir/cdp/nginx.pid;
error_log $dir/cdp/error.log info;
events { worker_connections 64; }
http {
  client_body_temp_path $dir/cdp/tmp/body;
  proxy_temp_path $dir/cdp/tmp/proxy;
  fastcgi_temp_path $dir/cdp/tmp/fastcgi;
  uwsgi_temp_path $dir/cdp/tmp/uwsgi;
  scgi_temp_path $dir/cdp/tmp/scgi;
  access_log $dir/cdp/access.log;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:18080;
    root $dir/www;
  }
}
CONF
"$nginx" -p "$dir/cdp" -c "$dir/cdp/nginx.conf" >"$dir/cdp/stderr.log" 2>&1 &
cdp_pid=$!
trap 'kill $cdp_pid 2>/dev/null; wait $cdp_pid 2>/dev/null; rm -rf "$dir"' EXIT
# Ready when it answers (404 for a path the counts below do not look at).
ready() { [ "$(curl -so /dev/null -w '%{http_code}' http://127.0.0.1:18080/ready)" = 404 ]; }
for _ in $(seq 100); do ready && break; sleep 0.1; done
ready || { echo "the CDP does not answer"; cat cdp/*.log; exit 1; }

# 1. The demo client: its CDP and caIssuers verify, its OCSP responder is
#    down; the issuing CA's CDP verifies; the anchor is listed, not fetched.
out=$("$certgate" check --ca ca/trust.pem --cache "$dir/cache1" --fetch \
        --set fetch_timeout=2s --set revocation_sources=crl clients/good.chain.pem)
rc=$?
[ $rc = 0 ] && ok || fail "demo client: exit $rc: $out"
expect "$out" "demo client" \
  '^URL fetch \(every CDP, freshestCRL, AIA caIssuers and OCSP URL of the chain\):$' \
  '^  \[0\] CN=alice,OU=People,O=Example$' \
  '^      CDP            http://127\.0\.0\.1:18080/intermediate\.crl$' \
  '^                     Verified \([0-9]+ ms\): crl_number=[0-9]+ thisUpdate=[0-9-]+T[0-9:]+Z nextUpdate=[0-9-]+T[0-9:]+Z$' \
  '^      AIA caIssuers  http://127\.0\.0\.1:18080/intermediate\.crt$' \
  '^                     Verified \([0-9]+ ms\): the issuer "CN=Example Issuing CA,O=Example"$' \
  '^      OCSP           http://127\.0\.0\.1:18081/$' \
  '^                     Unavailable: .*\([0-9]+ ms\)$' \
  '^  \[1\] CN=Example Issuing CA,O=Example$' \
  '^      CDP            http://127\.0\.0\.1:18080/root\.crl$' \
  '^  \[2\] CN=Example Root CA,O=Example$' \
  '^Verdict: ALLOW$'
# Each fetched URL reached the CDP once.
for path in /intermediate.crl /intermediate.crt /root.crl; do
  n=$(grep -c "\"GET $path " cdp/access.log)
  [ "$n" = 1 ] && ok || fail "$path fetched $n times"
done

# 2. An AD CS-shaped client with a dead CDP, one on a host fetch_allow does
#    not name, the ldap:/// one, then the live base; its delta comes from the
#    base's freshestCRL. Issued here by the adcs issuing CA.
cat >ext.cnf <<'CNF'
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
crlDistributionPoints = URI:http://127.0.0.1:18089/dead.crl,URI:http://pki.elsewhere.example/corp.crl,URI:ldap:///CN=Corp%20Enterprise%20CA%202(4)?certificateRevocationList?base?objectClass=cRLDistributionPoint,URI:http://127.0.0.1:18080/adcs/Corp%20Enterprise%20CA%202(4).crl
authorityInfoAccess = caIssuers;URI:http://127.0.0.1:18089/issuing.crt
CNF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout mixed.key \
  -subj "/O=Corp/CN=mixed-urls" -out mixed.csr 2>/dev/null &&
  openssl x509 -req -in mixed.csr -CA adcs/issuing.pem -CAkey adcs/issuing.key -set_serial 0x7001 \
    -days 30 -extfile ext.cnf -extensions leaf -out mixed.crt 2>/dev/null &&
  cat mixed.crt adcs/issuing.pem >mixed.chain.pem || fail "cannot issue the mixed-URL client"
out=$("$certgate" check --ca adcs/root.pem --cache "$dir/cache2" --fetch --set fetch_timeout=2s \
        --set revocation_sources=crl --set fetch_allow=127.0.0.1 mixed.chain.pem)
rc=$?
[ $rc = 0 ] && ok || fail "mixed client: exit $rc: $out"
expect "$out" "mixed client" \
  '^  \[0\] CN=mixed-urls,O=Corp$' \
  '^      CDP            http://127\.0\.0\.1:18089/dead\.crl$' \
  '^                     Unavailable: .*\([0-9]+ ms\)$' \
  '^      CDP            http://pki\.elsewhere\.example/corp\.crl$' \
  '^                     Not fetched: host pki\.elsewhere\.example is not in certgate_fetch_allow$' \
  '^      CDP            ldap:///CN=Corp%20Enterprise%20CA%202\(4\)\?certificateRevocationList.*$' \
  '^                     Skipped: ' \
  '^      CDP            http://127\.0\.0\.1:18080/adcs/Corp%20Enterprise%20CA%202\(4\)\.crl$' \
  '^                     Verified \([0-9]+ ms\): crl_number=4096 thisUpdate=.* nextUpdate=' \
  '^      freshestCRL    http://127\.0\.0\.1:18080/adcs/Corp%20Enterprise%20CA%202\(4\)\+\.crl$' \
  '^                     Verified \([0-9]+ ms\): crl_number=4097 base=4096 thisUpdate=' \
  '^      AIA caIssuers  http://127\.0\.0\.1:18089/issuing\.crt$' \
  '^      OCSP           \(none\)$' \
  '^  \[1\] CN=Corp Enterprise CA 2,O=Corp$' \
  '^      CDP            http://127\.0\.0\.1:18080/adcs/root\.crl$' \
  '^Verdict: ALLOW$' \
  '^certgate: verdict=allow .*crl_number=4096 delta=4097'
grep -q 'elsewhere' cdp/access.log && fail "a host outside fetch_allow was asked" || ok

# 3. The same in --json: one object, the fetches with their results and times.
out=$("$certgate" check --ca adcs/root.pem --cache "$dir/cache3" --fetch --json \
        --set fetch_timeout=2s --set revocation_sources=crl --set fetch_allow=127.0.0.1 \
        mixed.chain.pem)
rc=$?
[ $rc = 0 ] && ok || fail "--json: exit $rc: $out"
python3 - "$out" <<'PY' && ok || fail "--json: $out"
import json, sys
doc = json.loads(sys.argv[1])
assert doc["verdict"] == "allow", doc["verdict"]
assert [c["subject"] for c in doc["chain"]] == ["CN=mixed-urls,O=Corp", "CN=Corp Enterprise CA 2,O=Corp", "CN=Corp Root CA,O=Corp"]
by_url = {(f["depth"], f["url"]): f for f in doc["fetch"]}
dead = by_url[(0, "http://127.0.0.1:18089/dead.crl")]
assert dead["kind"] == "CDP" and dead["result"] == "Unavailable" and dead["elapsed_ms"] >= 0, dead
assert "http_status" not in dead
other = by_url[(0, "http://pki.elsewhere.example/corp.crl")]
assert other["result"] == "Not fetched" and "elapsed_ms" not in other, other
base = by_url[(0, "http://127.0.0.1:18080/adcs/Corp%20Enterprise%20CA%202(4).crl")]
assert base["result"] == "Verified" and base["crl_number"] == "4096" and base["http_status"] == 200, base
assert base["this_update"] and base["next_update"], base
delta = by_url[(0, "http://127.0.0.1:18080/adcs/Corp%20Enterprise%20CA%202(4)+.crl")]
assert delta["kind"] == "freshestCRL" and delta["crl_number"] == "4097" and delta["delta_base"] == "4096", delta
root_cdp = by_url[(1, "http://127.0.0.1:18080/adcs/root.crl")]
assert root_cdp["result"] == "Verified" and root_cdp["subject"] == "CN=Corp Enterprise CA 2,O=Corp", root_cdp
assert doc["log_line"].startswith("certgate: verdict=allow")
PY

echo "passed $passed, failed $failed"
[ "$failed" = 0 ]
