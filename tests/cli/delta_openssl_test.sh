#!/usr/bin/env bash
# Issue 11 §1: on every client certificate of the AD CS-shaped demo PKI
# (pki/adcs: a base CRL naming its delta "...(4)+.crl" in freshestCRL),
# `certgate check` with the base and delta preloaded as a directory agrees with
# `openssl verify -crl_check_all -extended_crl -use_deltas`: allowed where
# OpenSSL says OK, refused as revoked where it says "certificate revoked".
# Usage: delta_openssl_test.sh CERTGATE MKPKI
. "$(dirname "$0")/demo_pki_env.sh" "$@"
cd adcs

passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# OpenSSL takes PEM CRLs.
pem=()
for crl in crl/*.crl; do
  openssl crl -inform DER -in "$crl" -out "$dir/$(basename "$crl" .crl).pem" || exit 1
  pem+=(-CRLfile "$dir/$(basename "$crl" .crl).pem")
done
[ ${#pem[@]} = 6 ] || { echo "expected 3 CRLs (root, base, delta): ${pem[*]}"; exit 1; }

count=0
for cert in clients/*.crt; do
  name=$(basename "$cert" .crt)
  count=$((count + 1))
  ossl=$(openssl verify -CAfile root.pem -untrusted issuing.pem "${pem[@]}" \
           -crl_check_all -extended_crl -use_deltas "$cert" 2>&1)
  out=$("$certgate" check --ca root.pem --cache "$dir/cache" --set revocation=cache_only \
          --set revocation_sources=crl --set crl=crl "clients/$name.chain.pem" 2>&1)
  line=$(grep '^certgate: ' <<<"$out")
  if grep -q ": OK$" <<<"$ossl"; then
    grep -q '^certgate: verdict=allow .*crl_number=4096 delta=4097' <<<"$line" &&
      ok || fail "$name: openssl says OK, certgate: $line"
  elif grep -q "certificate revoked" <<<"$ossl"; then
    grep -q '^certgate: verdict=deny reason=revoked .*crl_number=4096 delta=4097' <<<"$line" &&
      ok || fail "$name: openssl says revoked, certgate: $line"
  else
    fail "$name: unexpected openssl answer: $ossl"
  fi
done
[ "$count" = 5 ] || fail "expected 5 client certificates, found $count"

# The cache lists the base with its freshestCRL, and the delta beside it.
out=$("$certgate" cache list --cache "$dir/cache" 2>&1)
grep -q '^crl issuer="CN=Corp Enterprise CA 2,O=Corp" .*crl_number=4096 freshest=http://127.0.0.1:18080/adcs/Corp%20Enterprise%20CA%202(4)+.crl' <<<"$out" &&
  ok || fail "cache list lacks the base naming its delta: $out"
grep -q '^delta issuer="CN=Corp Enterprise CA 2,O=Corp" .*crl_number=4097 base=4096' <<<"$out" &&
  ok || fail "cache list lacks the delta: $out"

# Stricter than OpenSSL, as AD CS requires: without the delta the base it
# names is no proof of "good" (revocation_unavailable, naming the delta URL).
mkdir "$dir/base-only" && cp "crl/Corp Enterprise CA 2(4).crl" crl/root.crl "$dir/base-only/"
for name in good delta-revoked; do
  out=$("$certgate" check --ca root.pem --cache "$dir/cache-base-only" \
          --set revocation=cache_only --set revocation_sources=crl \
          --set "crl=$dir/base-only" "clients/$name.chain.pem" 2>&1)
  grep -q '^certgate: verdict=deny reason=revocation_unavailable .*names a delta CRL.*delta crl http://127.0.0.1:18080/adcs/Corp%20Enterprise%20CA%202(4)+.crl' <<<"$out" &&
    ok || fail "$name without the delta: $out"
done

echo "passed $passed, failed $failed"
[ "$failed" = 0 ]
