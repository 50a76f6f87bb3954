#!/usr/bin/env bash
# Runs `certgate check` on every kind of demo certificate and asserts the reason,
# the hint and the exit code. Usage: check_test.sh CERTGATE MKPKI
. "$(dirname "$0")/demo_pki_env.sh" "$@"

passed=0
failed=0
# expect NAME EXIT REASON [EXTRA_ARGS...]: the log line must carry reason=REASON
# (or verdict=allow when REASON is "allow") and a hint when denied.
expect() {
  local name=$1 want_exit=$2 want=$3
  shift 3
  local out rc
  out=$("$certgate" check --ca ca/trust.pem "$@" "clients/$name.chain.pem" 2>&1)
  rc=$?
  local line
  line=$(grep '^certgate: ' <<<"$out")
  local ok=1
  [ "$rc" = "$want_exit" ] || ok=0
  if [ "$want" = allow ]; then
    grep -q '^certgate: verdict=allow' <<<"$line" || ok=0
  else
    grep -q "^certgate: verdict=deny reason=$want " <<<"$line" || ok=0
    grep -q ' hint="' <<<"$line" || ok=0
    grep -q '^  hint: ' <<<"$out" || ok=0
  fi
  if [ $ok = 1 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name: want exit $want_exit reason $want, got exit $rc"
    echo "$out" | sed 's/^/    /'
  fi
}

expect good 0 allow
expect expiring_soon 0 allow
expect expired 2 expired
expect not_yet_valid 2 not_yet_valid
expect wrong_eku 2 wrong_purpose
expect no_eku 2 wrong_purpose
expect key_usage 2 key_usage
expect self_signed 2 untrusted_issuer
expect untrusted 2 untrusted_issuer
expect chain_incomplete 2 chain_incomplete
expect weak_key 2 weak_key
expect weak_signature 2 weak_signature
expect bad_signature 2 bad_signature
expect invalid_ca 2 invalid_ca
expect malformed 2 malformed
expect chain_too_long 2 chain_too_long
expect ou_missing 2 identity_mismatch --set subject=OU=People
expect good 0 allow --set subject=OU=People
expect other_issuer 2 issuer_not_allowed --set trusted_issuers=ca/intermediate.pem
# Issue 15. A trusted intermediate whose root is not configured ends the chain
# (the later --ca wins); with both trusted, the chain goes on to the root.
expect good 0 allow --ca ca/intermediate.pem
expect other_issuer 2 chain_incomplete --ca ca/intermediate.pem
out=$("$certgate" check --ca ca/intermediate.pem clients/good.crt)
if [ $? = 0 ] && grep -q 'Chain (2 certificates, ends at a trust anchor)' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: the trusted intermediate as the anchor: $out"
fi
out=$("$certgate" check --ca ca/trust-with-intermediate.pem clients/good.crt)
if [ $? = 0 ] && grep -q 'Chain (3 certificates, ends at a trust anchor)' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: with the root trusted too the chain must reach it: $out"
fi
# A forged CA with the intermediate's name and key identifier, sent first: the
# genuine intermediate after it is found.
expect same_name_issuer 0 allow
# A self-issued CA certificate (key rollover) does not count toward max_depth.
expect rollover 0 allow --set max_depth=2
expect rollover 2 chain_too_long --set max_depth=1
out=$("$certgate" check --ca ca/trust.pem --set max_depth=1 clients/rollover.chain.pem)
if grep -q 'the chain reaches depth 2 (not counting 1 self-issued CA certificate)' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: chain_too_long detail does not mention the self-issued CA: $out"
fi
expect good 2 pin_mismatch --set "pin=sha256:$(printf '0%.0s' {1..64})"
# spki: pins are SHA-256 of the DER SubjectPublicKeyInfo (RFC 7469, curl
# --pinnedpubkey), computed here exactly as operators do.
spki=$(openssl x509 -in clients/good.crt -pubkey -noout | openssl pkey -pubin -outform der |
         sha256sum | cut -d' ' -f1)
expect good 0 allow --set "pin=spki:$spki"
expect rsa_good 2 pin_mismatch --set "pin=spki:$spki"
out=$("$certgate" check --ca ca/trust.pem --set "pin=sha256:$(printf '0%.0s' {1..64})" \
        clients/good.chain.pem)
if grep -qi "spki:$spki) is not in certgate_pin" <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: pin_mismatch detail does not name spki:$spki: $out"
fi
# Keys and values in any case, and the same keys from a policy file.
expect ou_missing 2 identity_mismatch --set CertGateSubject=OU=People
printf '# api policy\ncertgate Require;\ncertgate_subject "OU=People";\n' >policy.conf
expect ou_missing 2 identity_mismatch --policy policy.conf
expect good 0 allow --policy policy.conf

# certgate_strict (on by default): the demo's v1 and CA-as-leaf clients, and
# every vector of the unit test (tests/pki/strict_vectors.cc), strict on and off.
expect v1 2 malformed --set require_eku=any --set require_key_usage=off
expect v1 0 allow --set require_eku=any --set require_key_usage=off --set strict=off
expect ca_as_leaf 2 wrong_purpose
expect ca_as_leaf 0 allow --set strict=off
for vector in strict/*/; do
  settings=()
  while read -r line; do settings+=(--set "$line"); done <"$vector/set.txt"
  check=$(basename "$vector" | sed 's/^[0-9]*_//')
  out=$("$certgate" check --ca "$vector/anchor.pem" "${settings[@]}" "$vector/chain.pem" 2>&1)
  rc_on=$?
  out_off=$("$certgate" check --ca "$vector/anchor.pem" "${settings[@]}" --set strict=off \
              "$vector/chain.pem" 2>&1)
  rc_off=$?
  if [ $rc_on = 2 ] && grep -q '^certgate: verdict=deny reason=' <<<"$out" &&
     [ $rc_off = 0 ] && grep -q "warning=\"\\?strict_off:[a-z0-9_,]*$check" <<<"$out_off"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: strict vector $vector (exit $rc_on / $rc_off): $out // $out_off"
  fi
done

# A 60,000-character CN under a subject regex (issue 9 §2; exit 139 before):
# the untrusted chain is refused for its chain, the trusted one is judged.
expect long_cn_untrusted 2 untrusted_issuer --set 'subject=~^CN=[^,]+,OU=People'
expect long_cn 0 allow --set 'subject=~^CN=[^,]+,OU=People'
expect long_cn 2 identity_mismatch --set 'subject=~^CN=[^,]+,OU=Staff'
# Patterns RE2 cannot take fail before any certificate is read, naming file:line.
out=$("$certgate" check --ca ca/trust.pem --set 'subject=~a{77777777777777777777}' \
        clients/good.pem 2>&1)
if [ $? = 1 ] && grep -q 'certgate_subject: "~a{77777777777777777777}" is not a valid regular expression: invalid repetition size' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: oversized repeat: $out"
fi
printf 'certgate require;\ncertgate_subject "~(a";\n' >bad-regex.conf
out=$("$certgate" check --ca ca/trust.pem --policy bad-regex.conf clients/good.pem 2>&1)
if [ $? = 1 ] && grep -q 'bad-regex.conf:2: certgate_subject: "~(a" is not a valid regular expression: missing ): (a' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: bad regex in a policy file: $out"
fi

# Name constraints (issue 15): malformed names under a constraint of their
# type are refused under certgate_strict (allowed with a warning when off); a
# wildcard standing for an excluded name is refused either way; a chain past
# the name-constraint bound is chain_too_complex (it was internal_error).
expect nc_good 0 allow
expect nc_invalid_email 2 malformed
expect nc_invalid_email 0 allow --set strict=off
expect nc_invalid_dns 2 malformed
expect nc_invalid_dns 0 allow --set strict=off
expect nc_wildcard_excluded 2 invalid_ca
expect nc_wildcard_excluded 2 invalid_ca --set strict=off
expect nc_permitted_violation 2 invalid_ca
expect nc_empty 2 malformed
expect nc_empty 0 allow --set strict=off
expect nc_too_complex 2 chain_too_complex
expect nc_too_complex 2 chain_too_complex --set strict=off
out=$("$certgate" check --ca ca/trust.pem --set strict=off clients/nc_invalid_email.chain.pem)
if grep -q 'warning=strict_off:nc_invalid_email_san' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: nc_invalid_email under strict off has no warning: $out"
fi
out=$("$certgate" check --ca ca/trust.pem clients/nc_permitted_violation.chain.pem)
if grep -q "detail=\"the client certificate 'CN=nc_permitted_violation,O=Example' has email:bob@evil.example, outside the permitted email subtree (example.com) of the CA 'CN=Example Constrained CA,O=Example' at depth 1\"" <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: nc_permitted_violation detail does not name the name, subtree and CA: $out"
fi

# The chain_incomplete line names the missing issuer and where to get it.
out=$("$certgate" check --ca ca/trust.pem clients/chain_incomplete.chain.pem)
if grep -q "issuer 'CN=Example Hidden CA,O=Example'.*http://127.0.0.1:18080/hidden.crt" <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: chain_incomplete line does not name the issuer and its URL"
fi
# Usage and input errors exit 1 with a message naming the problem.
out=$("$certgate" check --ca ca/trust.pem --set min_key=rsa=abc clients/good.crt 2>&1)
if [ $? = 1 ] && grep -q 'certgate_min_key: "rsa=abc" is not a number' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: bad --set value: $out"
fi
out=$("$certgate" check --ca ca/trust.pem --set revocation_wait=13d clients/good.crt 2>&1)
if [ $? = 1 ] && grep -q 'certgate_revocation_wait: "13d" is not between 0s and 60s' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: unbounded revocation_wait: $out"
fi
out=$("$certgate" check --ca ca/trust.pem clients/missing.pem 2>&1)
if [ $? = 1 ] && grep -q 'cannot read "clients/missing.pem"' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: missing file: $out"
fi
printf 'garbage' >junk.der
out=$("$certgate" check --ca ca/trust.pem junk.der 2>&1)
if [ $? = 2 ] && grep -q 'reason=malformed' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: undecodable certificate: $out"
fi

# Revocation from a preloaded CRL, no network (cache_only), in a private cache.
rev=(--cache "$dir/cache" --set revocation=cache_only --set revocation_scope=leaf
     --set crl=crl/intermediate.crl)
expect revoked 2 revoked "${rev[@]}"
expect good 0 allow "${rev[@]}"
out=$("$certgate" check --ca ca/trust.pem "${rev[@]}" clients/revoked.chain.pem)
if grep -q 'revocation="revoked .* keyCompromise crl crl/intermediate.crl crl_number=1"' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: revoked line lacks date, reason and source: $out"
fi
# certgate_strict (RFC 5280 §5.2.3): a CRL without a crlNumber, or with a critical
# one, is no proof of "good" (a revocation in it counts); under strict off it
# counts, with a warning naming the check.
for defect in no-crl-number:crl_without_crl_number critical-crl-number:crl_number_critical; do
  check=${defect#*:}
  strict=(--cache "$dir/strict-cache-$check" --set revocation=cache_only
          --set revocation_scope=leaf --set "crl=crl-strict/intermediate-${defect%%:*}.crl")
  expect good 2 revocation_unavailable "${strict[@]}"
  expect revoked 2 revoked "${strict[@]}"
  expect good 0 allow "${strict[@]}" --set strict=off
  out=$("$certgate" check --ca ca/trust.pem "${strict[@]}" clients/good.chain.pem)
  if grep -q 'detail="[^"]*the CRL from crl-strict/[^"]*RFC 5280 section 5.2.3' <<<"$out" &&
     grep -q 'hint="[^"]*certgate_strict off' <<<"$out"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: $check under strict on: detail or hint: $out"
  fi
  out=$("$certgate" check --ca ca/trust.pem "${strict[@]}" --set strict=off clients/good.chain.pem)
  if grep -q "^certgate: verdict=allow .* warning=strict_off:$check\$" <<<"$out"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: $check under strict off: no warning: $out"
  fi
  out=$("$certgate" cache list --cache "$dir/strict-cache-$check")
  if grep -q "^crl .* strict_defects=$check " <<<"$out"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: cache list does not name $check: $out"
  fi
done
# Without the CRL, cache_only cannot know: fail closed, saying what to do.
expect good 2 revocation_unavailable --cache "$dir/empty-cache" --set revocation=cache_only
out=$("$certgate" cache list --cache "$dir/cache")
if [ $? = 0 ] && grep -qi 'crl' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: cache list: $out"
fi
out=$("$certgate" cache show intermediate --cache "$dir/cache")
if [ $? = 0 ] && grep -q 'intermediate.crl' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: cache show: $out"
fi
out=$("$certgate" cache fetch --ca ca/trust.pem clients/good.chain.pem --cache "$dir/cache" 2>&1)
if [ $? = 0 ] && grep -q 'CDP http://127.0.0.1:18080/intermediate.crl' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: cache fetch: $out"
fi
out=$("$certgate" cache purge --cache "$dir/cache") && out=$("$certgate" cache list --cache "$dir/cache")
if ! grep -q 'intermediate.crl' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: cache purge then list: $out"
fi
# --fetch names every URL it tried (nothing listens on the demo CDP here).
out=$("$certgate" check --ca ca/trust.pem --cache "$dir/fetch-cache" --fetch \
        --set fetch_timeout=2s --set revocation_wait=2s clients/good.chain.pem)
rc=$?
if [ $rc = 2 ] && grep -q 'http://127.0.0.1:18080/intermediate.crl' <<<"$out" &&
   grep -q 'reason=revocation_unavailable' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: --fetch with an unreachable CDP (exit $rc): $out"
fi

# Issue 12 §2: check --key says whether the key is the certificate's (RSA, EC,
# Ed25519), exit 0 when it is, 4 when not; without --ca only the key is checked.
openssl genpkey -algorithm ed25519 -out ed.key 2>/dev/null &&
  openssl req -x509 -new -key ed.key -subj /CN=ed25519-client -days 2 -out ed.crt 2>/dev/null &&
  openssl genpkey -algorithm ed25519 -out ed-other.key 2>/dev/null ||
  { failed=$((failed + 1)); echo "FAIL: cannot make the Ed25519 pair"; }
# expect_key CERT KEY EXIT TEXT [ARGS...]
expect_key() {
  local cert=$1 key=$2 want_exit=$3 want=$4
  shift 4
  local out rc
  out=$("$certgate" check "$@" --key "$key" "$cert" 2>&1)
  rc=$?
  if [ "$rc" = "$want_exit" ] && grep -qF "$want" <<<"$out"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: check --key $key $cert: want exit $want_exit and '$want', got exit $rc: $out"
  fi
}
expect_key clients/good.crt clients/good.key 0 'Key: matches: the EC prime256v1 key matches the certificate "CN=alice,OU=People,O=Example"'
expect_key clients/good.crt clients/expired.key 4 'Key: MISMATCH: the EC prime256v1 key does not match the certificate "CN=alice,OU=People,O=Example" (same type, another key pair)'
expect_key clients/rsa_good.crt clients/rsa_good.key 0 'Key: matches: the RSA 2048 key matches'
expect_key clients/rsa_good.crt clients/weak_key.key 4 'Key: MISMATCH: the key is RSA 1024 but the certificate "CN=rsa_good,OU=People,O=Example" holds a key of type RSA 2048'
openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:2048 -out rsa-other.key 2>/dev/null
expect_key clients/rsa_good.crt rsa-other.key 4 'Key: MISMATCH: the RSA 2048 key does not match the certificate "CN=rsa_good,OU=People,O=Example" (same type, another key pair)'
expect_key clients/rsa_good.crt clients/good.key 4 'Key: MISMATCH: the key is EC prime256v1 but the certificate'
expect_key ed.crt ed.key 0 'Key: matches: the ED25519 key matches the certificate "CN=ed25519-client"'
expect_key ed.crt ed-other.key 4 'Key: MISMATCH: the ED25519 key does not match the certificate "CN=ed25519-client"'
expect_key ed.crt clients/rsa_good.key 4 'holds a key of type ED25519: this is the key of another certificate'
# With --ca, the verdict follows; a mismatch wins over an allow.
expect_key clients/good.chain.pem clients/good.key 0 'Verdict: ALLOW' --ca ca/trust.pem
expect_key clients/good.chain.pem clients/rsa_good.key 4 'Verdict: ALLOW' --ca ca/trust.pem
expect_key clients/good.crt clients/good.crt 1 'holds no private key'

# Issue 11 §3: a leaf sent alone; --fetch-issuers (certgate_fetch_issuers on)
# fetches its issuer from its AIA caIssuers URL (a local HTTP server on an
# ephemeral port), once, into the cache, as the servers do.
mkdir -p aia/www && cp www/hidden.crt aia/www/hidden.crt
python3 -u -m http.server 0 --bind 127.0.0.1 --directory aia/www >aia/http.log 2>&1 &
http_pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' aia/http.log | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout aia/leaf.key \
  -subj "/O=Example/OU=People/CN=aia-alone" -out aia/leaf.csr 2>/dev/null
printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
  'extendedKeyUsage=clientAuth' 'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid' \
  "authorityInfoAccess=caIssuers;URI:http://127.0.0.1:$port/hidden.crt" >aia/ext.cnf
openssl x509 -req -in aia/leaf.csr -CA ca/hidden.pem -CAkey ca/hidden.key -set_serial 4242 \
  -days 30 -sha256 -extfile aia/ext.cnf -out aia/leaf.pem 2>/dev/null ||
  { failed=$((failed + 1)); echo "FAIL: cannot make the AIA leaf"; }
out=$("$certgate" check --ca ca/trust.pem --cache "$dir/aia-cache" aia/leaf.pem 2>&1)
rc=$?
if [ $rc = 2 ] && grep -q 'reason=chain_incomplete' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: AIA leaf without --fetch-issuers (exit $rc): $out"
fi
out=$("$certgate" check --ca ca/trust.pem --fetch-issuers aia/leaf.pem 2>&1)
rc=$?
if [ $rc = 1 ] && grep -q 'certgate_fetch_issuers on needs certgate_fetch_allow' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: --fetch-issuers without fetch_allow (exit $rc): $out"
fi
for round in 1 2; do
  out=$("$certgate" check --ca ca/trust.pem --cache "$dir/aia-cache" --fetch-issuers \
          --set fetch_allow=127.0.0.1 aia/leaf.pem 2>&1)
  rc=$?
  if [ $rc = 0 ] && grep -q '^certgate: verdict=allow' <<<"$out" &&
     grep -q 'CN=Example Hidden CA,O=Example' <<<"$out"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); echo "FAIL: --fetch-issuers round $round (exit $rc): $out"
  fi
done
fetches=$(grep -c 'GET /hidden.crt' aia/http.log)
if [ "$fetches" = 1 ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: the issuer was fetched $fetches times: $(cat aia/http.log)"
fi
out=$("$certgate" cache list --cache "$dir/aia-cache")
if grep -q "^issuer http://127.0.0.1:$port/hidden.crt ca=\"CN=Example Hidden CA,O=Example\" fetched=" <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: cache list shows the fetched issuer: $out"
fi
# The policy key does the same; a non-CA at the URL is refused.
cp clients/good.crt aia/www/hidden.crt
out=$("$certgate" check --ca ca/trust.pem --cache "$dir/aia-cache-nonca" \
        --set fetch_issuers=on --set fetch_allow=127.0.0.1 aia/leaf.pem 2>&1)
rc=$?
if [ $rc = 2 ] && grep -q 'reason=chain_incomplete' <<<"$out" &&
   grep -q 'hidden.crt failed: the certificate .* is not a CA certificate' <<<"$out"; then
  passed=$((passed + 1))
else
  failed=$((failed + 1)); echo "FAIL: a non-CA at the AIA URL (exit $rc): $out"
fi
kill "$http_pid" 2>/dev/null
wait "$http_pid" 2>/dev/null

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
