#!/usr/bin/env bash
# The Debian packages on this machine's own nginx and apache2 (issue 13): build
# them (scripts/package.sh), install them with dpkg, enable them the Debian way,
# add a certgate site with the demo PKI on a test port, start both servers from
# /etc with their system configuration (no systemd), and check: the configuration
# tests pass, a good certificate gets 200, an expired one 403 with certgate's
# line in /var/log/nginx/error.log and /var/log/apache2/error.log. Then remove
# and purge, and check that nothing is left behind.
#
# Needs root. Everything it changes is undone on exit, also on failure: the
# servers it started are stopped, the packages purged, /etc/nginx, /etc/apache2
# and /var/lib/apache2 restored from a copy taken first, the logs cut back to
# their length before. The servers run in a private network namespace (both
# default sites want port 80), so nothing on the machine's network sees them.
#
# Usage: tests/package/package_test.sh [BUILD_DIR]   (default build/; needs
# BUILD_DIR/tests/pki/certgate-mkpki). CERTGATE_PACKAGE_DEBS=DIR uses the .debs
# already in DIR instead of building them.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
mkpki=$build/tests/pki/certgate-mkpki
packages=(libnginx-mod-http-certgate libapache2-mod-certgate certgate)
nginx_port=18943
apache_port=18944
started=$(date +%s)

say() { echo "package_test: $*"; }
fail() {
  echo "package_test: FAIL: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || fail "needs root (it installs packages into the system)"
[ -x "$mkpki" ] || fail "$mkpki missing: build first (scripts/setup.sh)"
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  case "$status" in
    "" | not-installed) ;;
    *) fail "$package is already on this machine ($status): not touching it" ;;
  esac
done
for pidfile in /run/nginx.pid /run/apache2/apache2.pid; do
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    fail "a server is running ($pidfile): this test starts the system's own nginx and apache2"
  fi
done

# --- what undoes everything -------------------------------------------------
work=$(mktemp -d /tmp/certgate-package-test.XXXXXX)
chmod 755 "$work"
snapshot=$work/system-before.tar
logs=(/var/log/nginx/error.log /var/log/nginx/access.log /var/log/apache2/error.log
      /var/log/apache2/access.log /var/log/apache2/other_vhosts_access.log)
declare -A log_size=()
# Made by apache2ctl start when missing.
runtime_dirs=(/run/apache2 /run/lock/apache2)
declare -A existed=()
for dir in "${runtime_dirs[@]}"; do
  if [ -e "$dir" ]; then existed[$dir]=yes; else existed[$dir]=no; fi
done
made_policy_rc=false

stop_servers() {
  local pidfile pid
  for pidfile in /run/nginx.pid /run/apache2/apache2.pid; do
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f /run/nginx.pid
}

cleanup() {
  local rc=$?
  set +e
  stop_servers
  for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null)
    case "$status" in "" | not-installed) ;; *) dpkg --purge "$package" >/dev/null 2>&1 ;; esac
  done
  if [ -s "$snapshot" ]; then
    rm -rf /etc/nginx /etc/apache2 /var/lib/apache2
    tar -C / -xpf "$snapshot"
  fi
  for log in "${logs[@]}"; do
    if [ "${log_size[$log]:-absent}" = absent ]; then
      rm -f "$log"
    else
      truncate -s "${log_size[$log]}" "$log"
    fi
  done
  rm -rf /var/cache/certgate
  [ ! -e "$work/cache-before" ] || mv "$work/cache-before" /var/cache/certgate
  for dir in "${runtime_dirs[@]}"; do
    [ "${existed[$dir]}" = yes ] || rm -rf "$dir"
  done
  [ "$made_policy_rc" = false ] || rm -f /usr/sbin/policy-rc.d
  rm -rf "$work"
  if [ "$rc" = 0 ]; then
    say "passed in $(($(date +%s) - started)) s"
  else
    say "failed (exit $rc); the system is restored"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for log in "${logs[@]}"; do
  [ -e "$log" ] && log_size[$log]=$(stat -c %s "$log")
done
tar -C / -cpf "$snapshot" etc/nginx etc/apache2 var/lib/apache2
# A cache directory from before (the servers of other tests make it when a
# policy has revocation on and no certgate_cache) waits aside: the packages
# must create it and take it away themselves.
[ ! -e /var/cache/certgate ] || mv /var/cache/certgate "$work/cache-before"

# --- the packages -----------------------------------------------------------
if [ -n "${CERTGATE_PACKAGE_DEBS:-}" ]; then
  debs=$(cd "$CERTGATE_PACKAGE_DEBS" && pwd)
else
  debs=$build/packages  # a fixed path: ccache finds the last build's objects
  say "building the packages (scripts/package.sh into $debs)"
  CERTGATE_PACKAGE_OUT=$debs "$root/scripts/package.sh" >"$work/package.log" 2>&1 ||
    { cat "$work/package.log" >&2; fail "scripts/package.sh failed"; }
  grep -E '^package.sh: lintian' "$work/package.log"
fi
deb_files=()
for package in "${packages[@]}"; do
  deb=$(ls "$debs/${package}"_*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || fail "no ${package}_*.deb in $debs"
  deb_files+=("$deb")
done

# Fields, as dh_nginx and dh_apache2 wrote them from nginx-dev and apache2-dev.
nginx_abi=$(dpkg-query -W -f='${Provides}' nginx | grep -o 'nginx-abi-[0-9.]*-[0-9]*')
nginx_depends=$(dpkg-deb -f "${deb_files[0]}" Depends)
grep -qw -- "$nginx_abi" <<<"$nginx_depends" ||
  fail "libnginx-mod-http-certgate does not depend on the installed nginx's $nginx_abi: $nginx_depends"
apache_depends=$(dpkg-deb -f "${deb_files[1]}" Depends)
for provided in $(dpkg-query -W -f='${Provides}' apache2-bin | tr -d ,); do
  case "$provided" in apache2-api-*)
    grep -qw -- "$provided" <<<"$apache_depends" ||
      fail "libapache2-mod-certgate does not depend on $provided: $apache_depends" ;;
  esac
done
say "Depends: $nginx_abi; $(grep -o 'apache2-api-[^,]*' <<<"$apache_depends" | tr '\n' ' ')"

# The test's own part of the system configuration, before the packages: mod_ssl
# (which certgate.load also names in its "# Depends:") and the two sites.
# Debian's tools enable them. The files and symbolic links under /etc,
# /var/lib/apache2 and the module directories are listed now, so that after the
# purge (and the sites gone) the list must be the same again.
mkdir -p "$work/www"
echo "certgate package test" >"$work/www/index.html"
"$mkpki" --out "$work/pki" >/dev/null
chmod -R a+rX "$work/www" "$work/pki"
a2enmod -q ssl >/dev/null

inventory() {
  find /etc/nginx /etc/apache2 /var/lib/apache2 /usr/lib/nginx/modules /usr/lib/apache2/modules \
    /usr/share/nginx /usr/share/man/man1 /usr/share/man/man5 /usr/bin \
    -printf '%p %y %l\n' 2>/dev/null |
    # a2enmod's own state directories (disabled_by_maint, ...): made empty on
    # the first remove of any module or site, and kept; the files in them count.
    grep -v '^/var/lib/apache2/.* d $' | sort
}
inventory >"$work/inventory-before"

# No server start from a maintainer script (apache2-maintscript-helper restarts
# a running apache2; a fresh container may have no policy-rc.d).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  made_policy_rc=true
fi

say "dpkg -i ${deb_files[*]##*/}"
# --path-include: the man pages also where dpkg is told to leave man pages out
# (Debian's -slim container images).
dpkg -i --path-include='/usr/share/man/man[15]/certgate.[15].gz' "${deb_files[@]}" \
  >"$work/dpkg-install.log" 2>&1 ||
  { cat "$work/dpkg-install.log" >&2; fail "dpkg -i failed"; }

# Enabled the Debian way by the maintainer scripts.
link=/etc/nginx/modules-enabled/50-mod-http-certgate.conf
[ "$(readlink "$link")" = /usr/share/nginx/modules-available/mod-http-certgate.conf ] ||
  fail "$link is not the modules-available link: $(ls -l "$link" 2>&1)"
grep -qx 'load_module modules/ngx_http_certgate_module.so;' \
  /usr/share/nginx/modules-available/mod-http-certgate.conf || fail "mod-http-certgate.conf has no load_module line"
[ -f /usr/lib/nginx/modules/ngx_http_certgate_module.so ] || fail "the nginx module is not installed"
for file in certgate.load certgate.conf; do
  [ "$(readlink /etc/apache2/mods-enabled/$file)" = ../mods-available/$file ] ||
    fail "a2enmod did not enable $file: $(ls -l /etc/apache2/mods-enabled/$file 2>&1)"
done
conffiles=$(dpkg-query -W -f='${Conffiles}' libapache2-mod-certgate)
for file in /etc/apache2/mods-available/certgate.load /etc/apache2/mods-available/certgate.conf; do
  grep -q "^ $file " <<<"$conffiles" || fail "$file is not a conffile"
done
for package in "${packages[@]}"; do
  package_conffiles=$(dpkg-query -W -f='${Conffiles}' "$package")
  while read -r file; do
    [ -f "$file" ] || continue
    grep -q "^ $file " <<<"$package_conffiles" || fail "$package's $file is not a conffile"
  done < <(dpkg -L "$package" | grep '^/etc/' || true)
done
[ "$(stat -c '%U:%G %a' /var/cache/certgate)" = "www-data:www-data 700" ] ||
  fail "/var/cache/certgate is $(stat -c '%U:%G %a' /var/cache/certgate), not www-data:www-data 700"
man -w certgate | grep -qx /usr/share/man/man1/certgate.1.gz || fail "man certgate finds $(man -w certgate)"
MANWIDTH=200 man 5 certgate 2>/dev/null | grep -qw CertGateTrustedIssuers || fail "man 5 certgate lacks the directives"
/usr/bin/certgate reasons | grep -q '^expired (403.17)' || fail "/usr/bin/certgate reasons does not work"

# --- a site on each server --------------------------------------------------
cat >/etc/nginx/sites-available/certgate-test <<EOF
# certgate package test (tests/package/package_test.sh); removed after the test.
server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate     $work/pki/server/server-chain.pem;
    ssl_certificate_key $work/pki/server/server.key;
    ssl_trusted_certificate $work/pki/ca/trust.pem;
    root $work/www;
    certgate require;
}
EOF
ln -s ../sites-available/certgate-test /etc/nginx/sites-enabled/certgate-test
cat >/etc/apache2/sites-available/certgate-test.conf <<EOF
# certgate package test (tests/package/package_test.sh); removed after the test.
Listen 127.0.0.1:$apache_port
<VirtualHost 127.0.0.1:$apache_port>
    DocumentRoot $work/www
    <Directory $work/www>
        Require all granted
    </Directory>
    SSLEngine on
    SSLCertificateFile    $work/pki/server/server-chain.pem
    SSLCertificateKeyFile $work/pki/server/server.key
    SSLCACertificateFile  $work/pki/ca/trust.pem
    CertGate require
</VirtualHost>
EOF
a2ensite -q certgate-test >/dev/null

# --- the servers, in a private network namespace -----------------------------
# Sequential: both default sites listen on port 80.
cat >"$work/servers.sh" <<'SERVERS'
set -euo pipefail
work=$1 nginx_port=$2 apache_port=$3 nginx_log_from=$4 apache_log_from=$5  # $6: the outer netns
[ "$(readlink /proc/self/ns/net)" = "$6" ] || ip link set lo up
fail() { echo "package_test: FAIL: $*" >&2; exit 1; }
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  fail "nothing listens on port $1"
}
# status PORT CLIENT: the HTTP status with the demo client certificate CLIENT.
status() {
  curl -sk --max-time 10 -o "$work/body" -w '%{http_code}' \
    --cert "$work/pki/clients/$2.chain.pem" --key "$work/pki/clients/$2.key" "https://127.0.0.1:$1/"
}
check_server() {  # check_server NAME PORT LOG LOG_FROM
  local code
  code=$(status "$2" good)
  [ "$code" = 200 ] || fail "$1: good certificate got $code: $(cat "$work/body")"
  grep -q 'certgate package test' "$work/body" || fail "$1: good certificate got another page"
  code=$(status "$2" expired)
  [ "$code" = 403 ] || fail "$1: expired certificate got $code"
  grep -q 'expired' "$work/body" || fail "$1: the refusal body does not name the reason: $(cat "$work/body")"
  for _ in $(seq 20); do
    tail -c +"$(($4 + 1))" "$3" | grep -q 'certgate: verdict=deny reason=expired substatus=403.17' && break
    sleep 0.1
  done
  tail -c +"$(($4 + 1))" "$3" | grep 'certgate: verdict=deny reason=expired substatus=403.17' ||
    fail "$1: no certgate line for the expired certificate in $3"
}

nginx -t -c /etc/nginx/nginx.conf 2>&1 | tee "$work/nginx-t.log" | grep -q 'test is successful' ||
  fail "nginx -t: $(cat "$work/nginx-t.log")"
nginx -c /etc/nginx/nginx.conf || fail "nginx did not start"
wait_port "$nginx_port"
check_server nginx "$nginx_port" /var/log/nginx/error.log "$nginx_log_from"
kill -QUIT "$(cat /run/nginx.pid)"
for _ in $(seq 50); do [ -e /run/nginx.pid ] || break; sleep 0.1; done

# apache2ctl reads /etc/apache2/envvars itself (APACHE_RUN_USER, the log and run
# directories), as the init script does.
apache2ctl configtest 2>&1 | tee "$work/apache-t.log" | grep -q 'Syntax OK' ||
  fail "apache2ctl configtest: $(cat "$work/apache-t.log")"
apache2ctl start || fail "apache2 did not start"
wait_port "$apache_port"
check_server apache2 "$apache_port" /var/log/apache2/error.log "$apache_log_from"
apache2ctl stop
for _ in $(seq 50); do [ -e /run/apache2/apache2.pid ] || break; sleep 0.1; done
SERVERS
# A private network namespace where the machine allows one (and has `ip` to
# bring its loopback up); else the machine's own network, as in a CI container.
netns=()
if command -v ip >/dev/null && unshare -n true 2>/dev/null; then
  netns=(unshare -n)
else
  say "no private network namespace here: the servers use this machine's network"
fi
"${netns[@]}" bash "$work/servers.sh" "$work" "$nginx_port" "$apache_port" \
  "${log_size[/var/log/nginx/error.log]:-0}" "${log_size[/var/log/apache2/error.log]:-0}" \
  "$(readlink /proc/self/ns/net)" ||
  fail "the servers' part failed"
say "nginx and apache2 (system configuration): configtest ok, good 200, expired 403 logged"

# --- remove, then purge -----------------------------------------------------
rm /etc/nginx/sites-enabled/certgate-test /etc/nginx/sites-available/certgate-test
a2dissite -q --purge certgate-test >/dev/null
rm /etc/apache2/sites-available/certgate-test.conf

# The cache is shared: purging one package leaves it to the others.
dpkg --purge certgate >"$work/dpkg-purge-cli.log" 2>&1 ||
  { cat "$work/dpkg-purge-cli.log" >&2; fail "dpkg --purge certgate failed"; }
[ "$(stat -c '%U %a' /var/cache/certgate 2>&1)" = "www-data 700" ] ||
  fail "purging certgate alone took /var/cache/certgate from the modules"
[ ! -e /usr/bin/certgate ] || fail "purge left /usr/bin/certgate"
dpkg --remove "${packages[@]}" >"$work/dpkg-remove.log" 2>&1 ||
  { cat "$work/dpkg-remove.log" >&2; fail "dpkg --remove failed"; }
[ ! -e /usr/lib/nginx/modules/ngx_http_certgate_module.so ] || fail "remove left the nginx module"
[ ! -e /usr/lib/apache2/modules/mod_certgate.so ] || fail "remove left the Apache module"
[ ! -e /etc/nginx/modules-enabled/50-mod-http-certgate.conf ] || fail "remove left the nginx module enabled"
[ ! -e /etc/apache2/mods-enabled/certgate.load ] || fail "remove left the Apache module enabled"
[ -f /etc/apache2/mods-available/certgate.conf ] || fail "remove (not purge) took the conffiles"

dpkg --purge "${packages[@]}" >"$work/dpkg-purge.log" 2>&1 ||
  { cat "$work/dpkg-purge.log" >&2; fail "dpkg --purge failed"; }
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [ -z "$status" ] || [ "$status" = not-installed ] || fail "$package is still $status after purge"
done
[ ! -e /var/cache/certgate ] || fail "purge left /var/cache/certgate"
inventory >"$work/inventory-after"
if ! diff -u "$work/inventory-before" "$work/inventory-after" >"$work/left-behind"; then
  cat "$work/left-behind" >&2
  fail "install, remove and purge left the system different (above: - before, + after)"
fi
say "remove and purge: nothing left behind"
