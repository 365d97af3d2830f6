#!/bin/sh
# Build ngx_http_reqsign_module.so against nginx's sources (Debian: nginx-dev,
# /usr/share/nginx/src) with --with-compat, so that the distribution's own
# nginx binary loads it with load_module. Called by meson (server/nginx/meson.build):
#
#   build-module.sh NGINX_SRC MODULE_DIR WORK_DIR OUTPUT INCS LIBS [DEFS]
#
# DEFS: -DREQSIGN_NGX_PG=1 / -DREQSIGN_NGX_REDIS=1 for the fleet stores built
# (and linked in LIBS); config appends them to CFLAGS.
#
# WORK_DIR holds a copy of the nginx sources, configured once (again only when
# the module's config, INCS or LIBS change); each build then runs
# `make -f objs/Makefile modules` there and copies the module to OUTPUT.
set -eu
src=$1 mod=$2 work=$3 out=$4
REQSIGN_NGX_INCS=$5
REQSIGN_NGX_LIBS=$6
REQSIGN_NGX_DEFS=${7:-}
export REQSIGN_NGX_INCS REQSIGN_NGX_LIBS REQSIGN_NGX_DEFS
# Debian's nginx is built with threads: the module's phase one for Redis runs
# in its thread pool
flags="--with-compat --with-threads"
want="$flags|$mod|$REQSIGN_NGX_INCS|$REQSIGN_NGX_LIBS|$REQSIGN_NGX_DEFS|$(cksum < "$mod/config")"
if [ ! -f "$work/objs/Makefile" ] || [ "$(cat "$work/.reqsign-configured" 2>/dev/null)" != "$want" ]; then
    rm -rf "$work"
    mkdir -p "$work"
    cp -R "$src/." "$work/"
    if ! (cd "$work" && ./configure $flags --add-dynamic-module="$mod" > configure.log 2>&1); then
        cat "$work/configure.log" >&2
        exit 1
    fi
    printf '%s' "$want" > "$work/.reqsign-configured"
fi
rm -f "$work/objs/ngx_http_reqsign_module.so"
if ! make -s -C "$work" -f objs/Makefile modules > "$work/make.log" 2>&1; then
    cat "$work/make.log" >&2
    exit 1
fi
cp "$work/objs/ngx_http_reqsign_module.so" "$out"
