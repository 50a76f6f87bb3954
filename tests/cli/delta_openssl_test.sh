#!/usr/bin/env bash
# Issue 11 §1: on every client certificate of the AD CS-shaped demo PKI
# (pki/adcs: a base CRL naming its delta "...(4)+.crl" in freshestCRL) and of
# the 4-level one (pki/deep), each judged with its whole chain, `certgate
# check` with the CRLs preloaded as a directory agrees with `openssl verify
# -crl_check_all -extended_crl -use_deltas`: allowed where OpenSSL says OK,
# refused as revoked, at the same depth, where it says "certificate revoked".
# Usage: delta_openssl_test.sh CERTGATE MKPKI
. "$(dirname "$0")/demo_pki_env.sh" "$@"

passed=0
failed=0
ok() { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# compare PKI ANCHOR CACHE NUMBERS CLIENTS CRLS: every client certificate of PKI/clients,
# judged with its whole chain (-crl_check_all: every CA too) from every CRL
# of PKI/crl, by OpenSSL and by certgate. They agree on the verdict, and a
# revocation is found at the same depth. NUMBERS: what certgate's line names
# of the CRLs ("" for nothing particular); CLIENTS and CRLS: how many there are.
compare() {
  local pki=$1 anchor=$2 cache=$3 numbers=$4 clients=$5 crls=$6 pem=() count=0
  for crl in "$pki"/crl/*.crl; do
    openssl crl -inform DER -in "$crl" -out "$dir/$(basename "$pki")-$(basename "$crl" .crl).pem" ||
      exit 1
    pem+=(-CRLfile "$dir/$(basename "$pki")-$(basename "$crl" .crl).pem")
  done
  [ ${#pem[@]} = $((2 * crls)) ] || fail "$pki: expected $crls CRLs: ${pem[*]}"
  for cert in "$pki"/clients/*.crt; do
    local name ossl out line depth
    name=$(basename "$cert" .crt)
    count=$((count + 1))
    ossl=$(openssl verify -CAfile "$pki/$anchor" -untrusted "$pki/clients/$name.chain.pem" \
             "${pem[@]}" -crl_check_all -extended_crl -use_deltas "$cert" 2>&1)
    out=$("$certgate" check --ca "$pki/$anchor" --cache "$cache" --set revocation=cache_only \
            --set revocation_sources=crl --set "crl=$pki/crl" "$pki/clients/$name.chain.pem" 2>&1)
    line=$(grep '^certgate: ' <<<"$out")
    if grep -q ": OK$" <<<"$ossl"; then
      grep -q "^certgate: verdict=allow .*$numbers" <<<"$line" &&
        ok || fail "$pki $name: openssl says OK, certgate: $line"
    elif depth=$(sed -n 's/^error 23 at \([0-9]*\) depth lookup: certificate revoked$/\1/p' <<<"$ossl") &&
         [ -n "$depth" ]; then
      grep -q "^certgate: verdict=deny reason=revoked substatus=[0-9.]* depth=$depth .*$numbers" \
        <<<"$line" && ok || fail "$pki $name: openssl says revoked at depth $depth, certgate: $line"
    else
      fail "$pki $name: unexpected openssl answer: $ossl"
    fi
  done
  [ "$count" = "$clients" ] || fail "expected $clients client certificates in $pki, found $count"
}

# The AD CS shape (pki/adcs): a base CRL naming its delta "...(4)+.crl".
compare adcs root.pem "$dir/cache" 'crl_number=4096 delta=4097' 5 3
# The 4-level hierarchy (pki/deep): Deep Root CA -> Sub CA1 -> Sub CA2 -> Sub
# CA3 -> client, a Sub CA3 revoked by Sub CA2.
compare deep root.pem "$dir/cache-deep" '' 4 6
out=$("$certgate" check --ca deep/root.pem --cache "$dir/cache-deep" --set revocation=cache_only \
        --set revocation_sources=crl --set crl=deep/crl deep/clients/ca-revoked.chain.pem 2>&1)
grep -q '^certgate: verdict=deny reason=revoked .*depth=1 ca_subject="CN=Sub CA3,OU=Revoked,O=Example"' <<<"$out" &&
  ok || fail "the revoked Sub CA3 is not named: $out"
cd adcs

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
