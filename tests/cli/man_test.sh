#!/usr/bin/env bash
# Renders certgate(1) and certgate(5) with man -l and checks that groff has no
# complaint, that every directive appears in certgate(5) in both spellings (and
# as its policy key) and every reason code in certgate(1).
# Usage: man_test.sh CERTGATE MAN_DIR
set -u
certgate=$1
man_dir=$2
failed=0
fail() {
  echo "FAIL: $*"
  failed=1
}

render() {  # render PAGE OUT: plain text, no hyphenation at line ends, warnings kept
  local warnings
  warnings=$(MANWIDTH=200 man --warnings=all -l "$1" 2>&1 >"$2") || fail "man -l $1 exited $?"
  [ -z "$warnings" ] || fail "man -l $1 warns: $warnings"
  [ -s "$2" ] || fail "man -l $1 rendered nothing"
}

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
render "$man_dir/certgate.1" "$out/certgate.1.txt"
render "$man_dir/certgate.5" "$out/certgate.5.txt"

keys=0
while IFS= read -r line; do  # "certgate_x / CertGateX: help"
  nginx=${line%% / *}
  rest=${line#* / }
  httpd=${rest%%: *}
  for name in "$nginx" "$httpd"; do
    grep -qw -- "$name" "$out/certgate.5.txt" || fail "certgate(5) lacks $name"
  done
  keys=$((keys + 1))
done < <("$certgate" directives)
[ "$keys" -gt 20 ] || fail "only $keys directives listed by certgate directives"

reasons=0
while IFS= read -r code; do
  grep -qx " *$code" "$out/certgate.1.txt" || fail "certgate(1) has no entry for reason $code"
  reasons=$((reasons + 1))
done < <("$certgate" reasons | sed -n 's/^\([a-z_]*\) (.*/\1/p')
[ "$reasons" -gt 15 ] || fail "only $reasons reasons listed by certgate reasons"

for section in check probe cache selfcheck reasons directives; do
  grep -qx " *$section" "$out/certgate.1.txt" || fail "certgate(1) has no section for $section"
done
for heading in NAME SYNOPSIS DESCRIPTION COMMANDS "EXIT STATUS" "REASON CODES" "SEE ALSO"; do
  grep -qx "$heading" "$out/certgate.1.txt" || fail "certgate(1) lacks $heading"
done

echo "man pages: $keys directives, $reasons reasons checked"
exit "$failed"
