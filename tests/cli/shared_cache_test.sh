#!/usr/bin/env bash
# certgate_shared_cache from the CLI: two "hosts" (two cache directories) and
# one Redis; the demo PKI's CDP (127.0.0.1:18080, python's http.server with a
# request log) sees each CRL once; with Redis killed, a third host fetches directly.
# Usage: shared_cache_test.sh CERTGATE MKPKI SUPPORT_DIR
support=$3
source "$(dirname "$0")/demo_pki_env.sh"
source "$support/redis_server.sh"
fail() { echo "FAIL: $*"; exit 1; }

redis_port=16390
url=redis://127.0.0.1:$redis_port/0
python3 -u -m http.server 18080 --bind 127.0.0.1 --directory www >/dev/null 2>cdp.log &
cdp=$!
trap 'redis_stop "$dir/redis"; kill $cdp 2>/dev/null; wait $cdp 2>/dev/null; rm -rf "$dir"' EXIT
redis_start $redis_port "$dir/redis" || fail "redis-server did not start"
for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:18080/ && break; sleep 0.05; done
hits() { grep -c "GET /$1 " cdp.log; }

check() {  # check HOST CERT: the verdict line
  "$certgate" check --ca ca/trust.pem --cache "$dir/$1" --set revocation=hard_fail \
    --set revocation_wait=5s --set shared_cache="$url" "clients/$2.chain.pem"
}

out=$(check host-a revoked); [ $? = 2 ] || fail "host a: $out"
grep -q "reason=revoked" <<<"$out" || fail "host a not revoked: $out"
[ "$(hits intermediate.crl)" = 1 ] && [ "$(hits root.crl)" = 1 ] || fail "host a: $(cat cdp.log)"
redis_cli $redis_port --scan --pattern 'certgate:crl:*' | grep -c . | grep -qx 2 ||
  fail "not published: $(redis_cli $redis_port --scan)"

out=$(check host-b revoked); [ $? = 2 ] || fail "host b: $out"
grep -q "reason=revoked" <<<"$out" || fail "host b not revoked: $out"
out=$(check host-b good); [ $? = 0 ] || fail "host b good: $out"
[ "$(hits intermediate.crl)" = 1 ] && [ "$(hits root.crl)" = 1 ] || fail "host b asked the CDP: $(cat cdp.log)"
list=$("$certgate" cache list --cache "$dir/host-b")
grep -q "ok: from the shared cache $url (published by " <<<"$list" || fail "host b list: $list"
grep -q "^shared_cache $url hit=2$" <<<"$list" || fail "host b counters: $list"

redis_stop "$dir/redis"
out=$(check host-c revoked); [ $? = 2 ] || fail "host c (Redis down): $out"
grep -q "reason=revoked" <<<"$out" || fail "host c not revoked: $out"
[ "$(hits intermediate.crl)" = 2 ] || fail "host c did not fetch directly: $(cat cdp.log)"
grep -q "redis_error=1" <<<"$("$certgate" cache list --cache "$dir/host-c")" ||
  fail "host c counters: $("$certgate" cache list --cache "$dir/host-c")"
echo "ok: one CDP fetch per CRL for two hosts; Redis down: fetched directly"
