#!/bin/sh
# Runs Debian's stripped nginx `configure` (from nginx-dev) with the flags the
# packaged nginx was built with (conf_flags + --with-compat), so the module is
# binary compatible with /usr/sbin/nginx.
#   ngx-configure.sh <nginx-src> <module-dir> <build-dir>
# CERTGATE_CORE_LIB and CERTGATE_INCLUDE must be set (read by ./config);
# CERTGATE_SANITIZE_FLAGS (CMake's CERTGATE_SANITIZE) are added to both the
# compile and the link flags.
set -e
src=$1
module=$2
builddir=$3

cflags="-g -O2 -fstack-protector-strong -Wformat -Werror=format-security -D_FORTIFY_SOURCE=2"
ldflags="-Wl,-z,relro -Wl,-z,now"
if command -v dpkg-buildflags >/dev/null 2>&1; then
    cflags="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
    ldflags="$(dpkg-buildflags --get LDFLAGS)"
fi

cflags="$cflags ${CERTGATE_SANITIZE_FLAGS:-}"
ldflags="$ldflags ${CERTGATE_SANITIZE_FLAGS:-}"

mkdir -p "$builddir"
cd "$src"
exec bash -c '. ./conf_flags; ./configure \
    --with-cc-opt="$1 -fPIC" --with-ld-opt="$2 -fPIC" "${NGX_CONF_FLAGS[@]}" \
    --add-dynamic-module="$3" --builddir="$4"' \
    ngx-configure "$cflags" "$ldflags" "$module" "$builddir"
