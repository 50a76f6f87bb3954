#!/usr/bin/env bash
# Issue 11 §2: `certgate check --fetch` against a real slapd (a throwaway one on
# 127.0.0.1:18392, loaded with the demo PKI's adcs/ldap/directory.ldif): the
# ldap:/// CDPs of the AD CS-shaped PKI (DNs with spaces, parentheses and %2C
# commas) fetched from certgate_ldap_server, base and delta; without the key
# the URL is named "no LDAP server configured"; a missing entry is a clear
# noSuchObject error. Usage: ldap_fetch_test.sh CERTGATE MKPKI
. "$(dirname "$0")/demo_pki_env.sh" "$@"
port=18392

passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
expect() {  # expect NAME TEXT NEEDLE: TEXT contains NEEDLE (fixed string)
  grep -qF -- "$3" <<<"$2" && ok || fail "$1: no \"$3\" in:"$'\n'"$2"
}

mkdir -p "$dir/slapd/db"
cat >"$dir/slapd/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
pidfile $dir/slapd/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
suffix "DC=corp,DC=example,DC=com"
rootdn "CN=admin,DC=corp,DC=example,DC=com"
directory $dir/slapd/db
access to * by * read
CONF
slapadd -f "$dir/slapd/slapd.conf" -l adcs/ldap/directory.ldif || exit 1
slapd -f "$dir/slapd/slapd.conf" -h "ldap://127.0.0.1:$port/" -d 0 >"$dir/slapd/log" 2>&1 &
slapd_pid=$!
trap 'kill $slapd_pid 2>/dev/null; wait $slapd_pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do
  ldapsearch -x -H "ldap://127.0.0.1:$port" -b "DC=corp,DC=example,DC=com" -s base >/dev/null 2>&1 &&
    break
  sleep 0.1
done

cdp='ldap:///CN=Corp%20Directory%20CA%203(1)%2CCN=CRL%2CCN=CDP%2CCN=Public%20Key%20Services%2CCN=Services%2CCN=Configuration%2CDC=corp%2CDC=example%2CDC=com'
check() {  # check CLIENT CACHE [--set ...]: certgate check --fetch, its output
  local client=$1 cache=$2
  shift 2
  "$certgate" check --ca adcs/root.pem --cache "$dir/$cache" --set certgate=require \
    --set revocation=hard_fail --set revocation_sources=crl "$@" --fetch \
    "adcs/ldap/clients/$client.chain.pem" 2>&1
}

out=$(check good ok --set ldap_server="127.0.0.1:$port")
# check --fetch lists each URL (certutil -urlfetch): the URL, then its result.
expect good "$out" "CDP            $cdp?certificateRevocationList?base?objectClass=cRLDistributionPoint"
expect good "$out" "Verified ("
expect good "$out" "): crl_number=8192 thisUpdate="
expect good "$out" "freshestCRL    $cdp?deltaRevocationList?base?objectClass=cRLDistributionPoint"
expect good "$out" "): crl_number=8193 base=8192 thisUpdate="
expect good "$out" "CDP            ldap:///CN=Corp%20Root%20CA%2C"
# The AIA caIssuers URL, an ldap:/// one too, serves the issuer (cACertificate).
expect good "$out" "): the issuer \"CN=Corp Directory CA 3,O=Corp\""
expect good "$out" "certgate: verdict=allow "
expect good "$out" "crl_number=8192 delta=8193"

out=$(check delta-revoked ok --set ldap_server="127.0.0.1:$port")
expect delta-revoked "$out" "certgate: verdict=deny reason=revoked"
expect delta-revoked "$out" "$cdp?deltaRevocationList?base?objectClass=cRLDistributionPoint crl_number=8192 delta=8193"

out=$(check base-revoked ok --set ldap_server="127.0.0.1:$port")
expect base-revoked "$out" "certgate: verdict=deny reason=revoked"

# A server that refuses connections first: the next one is asked.
out=$(check good order --set ldap_server="127.0.0.1:1 127.0.0.1:$port")
expect order "$out" "certgate: verdict=allow "

out=$(check good none)
expect noserver "$out" "Skipped: no LDAP server configured for an ldap:/// URL (certgate_ldap_server)"
expect noserver "$out" "certgate: verdict=deny reason=revocation_unavailable"

out=$(check missing missing --set ldap_server="127.0.0.1:$port")
expect missing "$out" "Unavailable: the LDAP search failed: \"No such object\" (LDAP server 127.0.0.1:$port)"
expect missing "$out" "certgate: verdict=deny reason=revocation_unavailable"

# fetch_allow applies to the server that fills in the empty host.
out=$(check good allow --set ldap_server="127.0.0.1:$port" --set fetch_allow=pki.corp.example)
expect allow "$out" "Not fetched: no certgate_ldap_server host is in certgate_fetch_allow"

echo "ldap_fetch_test: $passed passed, $failed failed"
[ "$failed" = 0 ]
