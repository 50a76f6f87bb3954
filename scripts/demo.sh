#!/usr/bin/env bash
# The demo: installs what is missing, builds, writes a demo PKI, starts Debian's
# nginx (and Apache, once its module is built) with certgate on 127.0.0.1 from
# demo-run/ (no system configuration touched), sends one request per kind of
# client certificate, and prints the HTTP status and the error-log line for each.
# Stops the servers at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >/dev/null

top=$(pwd)
run=$top/demo-run
rm -rf "$run"
mkdir -p "$run/logs" "$run/tmp"
build/tests/pki/certgate-mkpki --out "$run/pki" >/dev/null
pki=$run/pki
cat "$pki/ca/intermediate.pem" "$pki/ca/rsa-intermediate.pem" >"$run/issuers.pem"
# Demo clients include deliberately weak certificates; let the client send them.
printf '%s\n' 'openssl_conf = openssl_init' '[openssl_init]' 'ssl_conf = ssl_sect' \
  '[ssl_sect]' 'system_default = system_default_sect' '[system_default_sect]' \
  'CipherString = DEFAULT@SECLEVEL=0' >"$run/openssl-client.cnf"
chmod -R a+rX "$run"

nginx_port=18443
apache_port=18543
# shellcheck source=scripts/lib/servers.sh
. "$top/scripts/lib/servers.sh"
pids=()
cleanup() { stop_pids "${pids[@]}"; }
trap cleanup EXIT

# --- nginx -------------------------------------------------------------------
{
  echo "load_module $top/build/nginx-module/ngx_http_certgate_module.so;"
  nginx_conf_head "$run" 1 "$run/logs/nginx-error.log" 64
  cat <<EOF
    access_log off;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:1m;
    server {
        listen 127.0.0.1:$nginx_port ssl;
        server_name localhost;
        ssl_certificate $pki/server/server-chain.pem;
        ssl_certificate_key $pki/server/server.key;
        ssl_trusted_certificate $pki/ca/trust.pem;

        certgate require;
        certgate_subject OU=People;
        certgate_trusted_issuers $run/issuers.pem;
        # Revocation from preloaded CRLs, never fetched (IIS's cache-only mode).
        certgate_revocation cache_only;
        certgate_crl $pki/crl;
        certgate_cache $run/cache-nginx;

        location / { return 200 "hello \$certgate_subject\n"; }
    }
}
EOF
} >"$run/nginx.conf"
/usr/sbin/nginx -t -q -p "$run" -c "$run/nginx.conf"
/usr/sbin/nginx -p "$run" -c "$run/nginx.conf" &
pids+=($!)
wait_port $nginx_port
servers=("nginx:$nginx_port:$run/logs/nginx-error.log")

# --- Apache (when mod_certgate is built) ------------------------------------
if [ -f build/apache-module/mod_certgate.so ]; then
  mkdir -p "$run/apache/run" "$run/apache/htdocs"
  echo "hello" >"$run/apache/htdocs/index.html"
  cat >"$run/apache/httpd.conf" <<EOF
ServerRoot "$run/apache"
ServerName localhost
DefaultRuntimeDir "$run/apache/run"
PidFile "$run/apache/run/httpd.pid"
ErrorLog "$run/logs/apache-error.log"
LogLevel warn
Mutex file:$run/apache/run default
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
LoadModule certgate_module $top/build/apache-module/mod_certgate.so
User nobody
Group nogroup
StartServers 1
ServerLimit 1
ThreadsPerChild 8
MaxRequestWorkers 8
TypesConfig /etc/mime.types
DocumentRoot "$run/apache/htdocs"
DirectoryIndex index.html
<Directory />
    Require all granted
</Directory>
SSLSessionCache "shmcb:$run/apache/run/ssl_scache(512000)"
SSLProtocol -all +TLSv1.2 +TLSv1.3
Listen 127.0.0.1:$apache_port
<VirtualHost 127.0.0.1:$apache_port>
  SSLEngine on
  SSLCertificateFile $pki/server/server-chain.pem
  SSLCertificateKeyFile $pki/server/server.key
  SSLCACertificateFile $pki/ca/trust.pem
  SSLVerifyClient optional_no_ca
  CertGate require
  CertGateSubject OU=People
  CertGateTrustedIssuers $run/issuers.pem
  CertGateRevocation cache_only
  CertGateCrl $pki/crl
  CertGateCache $run/cache-apache
</VirtualHost>
EOF
  chmod -R a+rX "$run"
  env -i PATH=/usr/sbin:/usr/bin:/bin /usr/sbin/apache2 -DFOREGROUND -f "$run/apache/httpd.conf" &
  pids+=($!)
  wait_port $apache_port
  servers+=("apache:$apache_port:$run/logs/apache-error.log")
fi

# --- one request per kind of certificate --------------------------------------
request() {  # PORT KIND -> "STATUS BODY"
  local port=$1 kind=$2
  if [ "$kind" = none ]; then
    curl -sk -o "$run/body" -w '%{http_code}' "https://127.0.0.1:$port/" || true
  elif [ "$kind" = malformed ]; then
    # curl refuses to even load a certificate whose extensions do not decode.
    printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
      OPENSSL_CONF=$run/openssl-client.cnf openssl s_client -quiet -connect "127.0.0.1:$port" \
        -servername localhost -cert "$pki/clients/$kind.chain.pem" \
        -key "$pki/clients/$kind.key" 2>/dev/null |
      tr -d '\r' >"$run/raw" || true
    sed '1,/^$/d' "$run/raw" >"$run/body"
    head -1 "$run/raw" | cut -d' ' -f2
  else
    OPENSSL_CONF=$run/openssl-client.cnf curl -sk -o "$run/body" -w '%{http_code}' \
      --cert "$pki/clients/$kind.chain.pem" --key "$pki/clients/$kind.key" \
      "https://127.0.0.1:$port/" || true
  fi
}

kinds=(good expiring_soon none expired not_yet_valid wrong_eku no_eku key_usage self_signed
       untrusted chain_incomplete other_issuer bad_signature invalid_ca malformed chain_too_long
       weak_key weak_signature ou_missing revoked)

echo "certgate demo: certgate require; certgate_subject OU=People; certgate_trusted_issuers <Example CAs>;"
echo "               certgate_revocation cache_only with the demo CRLs preloaded"
for server in "${servers[@]}"; do
  IFS=: read -r name port log <<<"$server"
  echo
  echo "== $name on https://127.0.0.1:$port/ =="
  for kind in "${kinds[@]}"; do
    before=$(wc -l <"$log")
    status=$(request "$port" "$kind")
    body=$(head -c 200 "$run/body" 2>/dev/null | tr -d '\n')
    sleep 0.05
    line=$(tail -n +"$((before + 1))" "$log" | grep -o 'certgate: verdict=deny.*' | head -1 || true)
    printf '%-17s %s  %s\n' "$kind" "${status:----}" "$body"
    [ -n "$line" ] && printf '%-17s      log: %s\n' "" "$(cut -c1-400 <<<"$line")"
  done
done

echo
echo "== certgate check: the same verdict offline, with the chain and the hint =="
build/cli/certgate check --ca "$pki/ca/trust.pem" "$pki/clients/chain_incomplete.chain.pem" || true
echo
echo "Configs and logs: $run (servers stopped)."
