#!/usr/bin/env bash
# The demo: builds certgate, writes a demo PKI, and shows the verdict certgate
# gives each kind of client certificate, with the log line and the hint.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null

run=demo-run
rm -rf "$run"
mkdir -p "$run"
build/tests/pki/certgate-mkpki --out "$run/pki" >/dev/null
pki=$run/pki

kinds=(good expiring_soon expired not_yet_valid wrong_eku no_eku key_usage self_signed untrusted
       chain_incomplete other_issuer bad_signature invalid_ca malformed chain_too_long weak_key
       weak_signature ou_missing)
policy=(--set subject=OU=People --set "trusted_issuers=$pki/ca/intermediate.pem
        $pki/ca/rsa-intermediate.pem")

echo "== certgate check (offline, the same verdict the servers give) =="
echo "policy: certgate require; certgate_subject OU=People; certgate_trusted_issuers <Example CAs>"
echo
for kind in "${kinds[@]}"; do
  line=$(build/cli/certgate check --ca "$pki/ca/trust.pem" "${policy[@]}" \
           "$pki/clients/$kind.chain.pem" 2>&1 | grep '^certgate: ' || true)
  verdict=$(grep -o 'verdict=[a-z]*' <<<"$line" | cut -d= -f2)
  reason=$(grep -o ' reason=[a-z_]*' <<<"$line" | cut -d= -f2)
  substatus=$(grep -o ' substatus=[0-9.]*' <<<"$line" | cut -d= -f2)
  printf '%-18s %-5s %-20s %s\n' "$kind" "$verdict" "${reason:--}" "${substatus:-}"
  hint=$(grep -o ' hint="[^"]*"' <<<"$line" | sed 's/^ hint=//' || true)
  [ -n "$hint" ] && printf '%-18s       hint: %s\n' "" "$hint"
done
echo
echo "The full view of one certificate (certgate check):"
build/cli/certgate check --ca "$pki/ca/trust.pem" "$pki/clients/chain_incomplete.chain.pem" || true
