# Sourced by the CLI tests run as `TEST.sh CERTGATE MKPKI`: $certgate and
# $mkpki, a fresh demo PKI in $dir (removed on exit) as the working directory.
set -u
certgate=$1
mkpki=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$mkpki" --out "$dir" >/dev/null || { echo "mkpki failed"; exit 1; }
cd "$dir"
