#!/usr/bin/env bash
# `certgate selfcheck` over the demo PKI: the check= lines and the exit status.
# Usage: selfcheck_test.sh CERTGATE MKPKI
. "$(dirname "$0")/demo_pki_env.sh" "$@"

failed=0
fail() { echo "FAIL: $*"; failed=$((failed + 1)); }

# A sound server: no finding, exit 0.
printf 'certgate require;\ntrusted_issuers ca/intermediate.pem;\n' >good.conf
out=$("$certgate" selfcheck --policy good.conf --ca ca/trust.pem 2>&1); rc=$?
[ "$rc" = 0 ] || fail "good: exit $rc: $out"
grep -q 'check=' <<<"$out" && fail "good: a finding: $out"
grep -q '^0 findings (2 trust anchors, 2 CA names)$' <<<"$out" || fail "good: summary: $out"

# A trusted issuer no anchor reaches: fatal, exit 2, the file named.
printf 'certgate require;\ntrusted_issuers ca/untrusted-root.pem;\n' >stranger.conf
out=$("$certgate" selfcheck --policy stranger.conf --ca ca/trust.pem 2>&1); rc=$?
[ "$rc" = 2 ] || fail "stranger: exit $rc (want 2): $out"
grep -q "^fatal: certgate: check=issuer_not_trusted the CA 'CN=Untrusted Root CA,O=Untrusted' in certgate_trusted_issuers \"ca/untrusted-root.pem\"" <<<"$out" ||
  fail "stranger: line: $out"

# Warnings only: exit 0. hard_fail with the roots' names, no CRL preloaded.
printf 'certgate require;\nrevocation hard_fail;\ncache %s/cache;\n' "$dir" >hard.conf
out=$("$certgate" selfcheck --policy hard.conf --ca ca/trust.pem 2>&1); rc=$?
[ "$rc" = 0 ] || fail "hard: exit $rc: $out"
grep -q "^warning: certgate: check=revocation_no_source .*'CN=Example Root CA,O=Example'" <<<"$out" ||
  fail "hard: line: $out"
# ... and the root's CRL preloaded covers it.
printf 'crl crl/root.crl;\n' >>hard.conf
out=$("$certgate" selfcheck --policy hard.conf --ca ca/trust.pem 2>&1)
grep -q "check=revocation_no_source .*Example Root CA" <<<"$out" && fail "hard+crl: $out"

# --ca-names: what is sent decides ca_names_size; fetch_allow against the CDP hosts.
printf 'certgate require;\nrevocation soft_fail;\nfetch_allow pki.example.com;\ncache %s/cache;\n' \
  "$dir" >allow.conf
out=$("$certgate" selfcheck --policy allow.conf --ca ca/trust-with-intermediate.pem 2>&1); rc=$?
[ "$rc" = 0 ] || fail "allow: exit $rc: $out"
grep -q "check=fetch_allow the CA 'CN=Example Issuing CA,O=Example' names http://127.0.0.1:18080/root.crl, but certgate_fetch_allow excludes its host 127.0.0.1" <<<"$out" ||
  fail "allow: line: $out"

# --verify-client-on and a usage error.
out=$("$certgate" selfcheck --policy good.conf --ca ca/trust.pem --verify-client-on 2>&1)
grep -q 'check=verify_client_on' <<<"$out" || fail "verify on: $out"
"$certgate" selfcheck --policy good.conf >/dev/null 2>&1; rc=$?
[ "$rc" = 1 ] || fail "no --ca: exit $rc (want 1)"

[ "$failed" = 0 ] && echo "selfcheck: all passed"
exit "$failed"
