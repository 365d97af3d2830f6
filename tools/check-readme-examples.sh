#!/usr/bin/env bash
# CI (.ci/run) after a build: what `meson install` puts on a machine works for
# a user who starts from the README.
#  1. `meson install --destdir TMP` from BUILD_DIR, and the installed tree has
#     the programs, the libraries' pkg-config files, the man pages, the systemd
#     units and the bash completion;
#     a store library the build did not make (PostgreSQL, Redis: option fleet)
#     is absent: no library, no header, no pkg-config file;
#  2. every ```c block of README.md is a complete program that compiles with
#     -std=c11 -Wall -Wextra -Werror and links out of tree, with nothing but
#     `pkg-config --cflags --libs reqsign-client reqsign-verifier
#     reqsign-keystore-sqlite` pointed at the installed tree
#     (PKG_CONFIG_SYSROOT_DIR), as a user's build would;
#  3. the verifier core stands alone: the installed libreqsign-verifier.so
#     needs (readelf -d) and its pkg-config file requires none of sqlite3,
#     libpq, hiredis, libcurl, jansson nor a store library, and a program
#     built with `pkg-config --cflags --libs reqsign-verifier` alone links
#     and runs a verify;
#  4. examples/api-backend builds out of tree with its Makefile against the
#     installed tree, as a provider copying it would;
#  5. the installed units pass `systemd-analyze verify` when it is available.
# Usage: tools/check-readme-examples.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:?usage: tools/check-readme-examples.sh BUILD_DIR}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
fail=0
err() { echo "check-readme-examples: $*" >&2; fail=1; }

# 1. install, then look for what must be there
meson install -C "$build" --destdir "$root" --quiet >"$tmp/install.log" 2>&1 ||
    { cat "$tmp/install.log" >&2; err "meson install --destdir failed"; exit 1; }
need=(bin/reqsign bin/reqsignd bin/api-backend
      pkgconfig/reqsign-common.pc pkgconfig/reqsign-client.pc pkgconfig/reqsign-verifier.pc
      pkgconfig/reqsign-keystore-sqlite.pc pkgconfig/reqsign-keydir.pc
      reqsign/verifier.h reqsign/keylookup.h reqsign/keystore_sqlite.h reqsign/keydir.h
      man1/reqsign.1 man3/reqsign.3 man8/reqsignd.8 man8/api-backend.8
      system/reqsignd.service system/api-backend.service sysusers.d/reqsign.conf
      completions/reqsign)
for f in "${need[@]}"; do
    hit=$(cd "$root" && find . -path "*/$f" \( -type f -o -type l \) | head -n 1)
    if [ -z "$hit" ]; then
        err "meson install put no */$f in the tree"
    else
        echo "  installed: ${hit#.}"
    fi
done
# the fleet stores: installed exactly when built (the build tree's pkg-config
# files say which were)
for pair in keystore-pg:keystore_pg nonce-redis:nonce_redis; do
    pc=reqsign-${pair%%:*} hdr=${pair##*:}.h
    if [ -e "$build/meson-private/$pc.pc" ]; then
        for f in "pkgconfig/$pc.pc" "reqsign/$hdr" "lib$pc.so"; do
            [ -n "$(cd "$root" && find . -path "*/$f" | head -n 1)" ] ||
                err "$pc is built but meson install put no */$f in the tree"
        done
    else
        hit=$(cd "$root" && find . -name "$pc.pc" -o -name "$hdr" -o -name "lib$pc.so*" | head -n 1)
        [ -z "$hit" ] || err "$pc is not built, yet ${hit#.} is installed"
        echo "  absent (not built): $pc"
    fi
done
[ $fail -eq 0 ] || exit 1

# 2. the README's C examples, out of tree through pkg-config
pcdir=$(dirname "$(find "$root" -name reqsign-client.pc | head -n 1)")
flags=$(PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_PATH=$pcdir \
        pkg-config --cflags --libs reqsign-client reqsign-verifier reqsign-keystore-sqlite)
mkdir -p "$tmp/ex"
awk -v dir="$tmp/ex" '
    /^```c[[:space:]]*$/ { n++; file = sprintf("%s/readme-%d.c", dir, n); inblock = 1; next }
    /^```/ && inblock    { inblock = 0; close(file); next }
    inblock              { print > file }
' README.md
examples=$(find "$tmp/ex" -name 'readme-*.c' | sort -V)
if [ -z "$examples" ]; then
    err "no \`\`\`c block in README.md"
    exit 1
fi
for src in $examples; do
    # shellcheck disable=SC2086 # $flags is a list of compiler arguments
    if ! ${CC:-cc} -std=c11 -Wall -Wextra -Werror -o "${src%.c}" "$src" $flags 2>"$tmp/cc.log"; then
        err "README.md example $(basename "$src") does not compile and link:"
        sed -n '1,/^$/p' "$src" | head -n 8 >&2
        cat "$tmp/cc.log" >&2
    fi
done

# 3. the verifier core needs no store: what it links, what its .pc requires,
# and a program built against it alone
export PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_PATH=$pcdir
banned='sqlite3|libpq|hiredis|libcurl|jansson|reqsign-keystore|reqsign-nonce-redis|reqsign-keydir'
core=$(find "$root" -name 'libreqsign-verifier.so.*' -type f | head -n 1)
libdir=$(dirname "$core")
needed=$(readelf -d "$core" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
echo "  libreqsign-verifier NEEDED: $needed"
for lib in $needed; do
    case $lib in
    libreqsign-common.so.*|libc.so.*|libpthread.so.*|ld-linux*) ;;
    *) err "libreqsign-verifier.so links $lib (the core links reqsign-common and pthreads only)" ;;
    esac
done
reqs="$(pkg-config --print-requires reqsign-verifier) $(pkg-config --print-requires-private reqsign-verifier)"
if grep -qE "$banned" <<<"$reqs"; then
    err "reqsign-verifier.pc requires a store's dependency: $(echo $reqs)"
fi
cat >"$tmp/core.c" <<'CORE'
#include <stdio.h>
#include <string.h>

#include <reqsign/verifier.h>

/* An unsigned request through a verifier built from the core alone: a fixed
 * key and the in-memory nonce store. */
int main(void)
{
    struct reqsign_error err;
    struct reqsign_static_key key = {0};
    struct reqsign_nonce_store *nonces = reqsign_nonce_store_memory_new(NULL, &err);
    struct reqsign_verifier_opts vo = {.lookup = reqsign_static_key_lookup, .lookup_ctx = &key,
                                       .nonces = nonces, .public_authority = "api.example"};
    struct reqsign_verifier *v = nonces != NULL ? reqsign_verifier_new(&vo, &err) : NULL;
    if (v == NULL)
        return 1;
    struct reqsign_request req;
    memset(&req, 0, sizeof(req));
    req.method = (struct reqsign_span){"GET", 3};
    req.target = (struct reqsign_span){"/", 1};
    req.authority = (struct reqsign_span){"api.example", 11};
    struct reqsign_verification vs;
    reqsign_verification_init(&vs);
    enum reqsign_status st = reqsign_verifier_verify(v, &req, NULL, 0, &vs, &err);
    reqsign_verification_cleanup(&vs);
    reqsign_verifier_free(v);
    reqsign_nonce_store_free(nonces);
    printf("%s\n", reqsign_errname(st));
    return st == REQSIGN_E_SIG_MISSING ? 0 : 1; /* what an unsigned request gets */
}
CORE
# shellcheck disable=SC2046 # a list of compiler arguments
if ! ${CC:-cc} -std=c11 -Wall -Wextra -Werror -o "$tmp/core" "$tmp/core.c" \
        $(pkg-config --cflags --libs reqsign-verifier) 2>"$tmp/cc.log"; then
    err "a program linking only reqsign-verifier does not build:"
    cat "$tmp/cc.log" >&2
else
    if out=$(LD_LIBRARY_PATH=$libdir "$tmp/core" 2>&1); then
        echo "  core-only program: verify -> $out"
    else
        err "the core-only program failed: $out"
    fi
fi

# 4. examples/api-backend out of tree: its Makefile, the installed tree
# through pkg-config, the HTTP glue compiled from server/httpd
mkdir -p "$tmp/api-backend"
if make -s -C examples/api-backend O="$tmp/api-backend" CFLAGS='-O2 -Werror' \
        >"$tmp/make.log" 2>&1; then
    echo "  examples/api-backend built out of tree: $(LD_LIBRARY_PATH=$libdir \
        "$tmp/api-backend/api-backend" --version 2>&1 | head -n 1)"
else
    err "examples/api-backend does not build out of tree against the installed tree:"
    cat "$tmp/make.log" >&2
fi
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_PATH

# 5. the units, if systemd-analyze is there (it only reads them; nothing is
# started). verify wants ExecStart's program to exist: point it into the tree.
if command -v systemd-analyze >/dev/null 2>&1; then
    mkdir -p "$tmp/units"
    for unit in $(find "$root" -path '*/system/*.service' | sort); do
        copy=$tmp/units/$(basename "$unit")
        sed "s#^ExecStart=/#ExecStart=$root/#" "$unit" >"$copy"
        if ! systemd-analyze verify --man=no "$copy" >"$tmp/verify.log" 2>&1 || [ -s "$tmp/verify.log" ]; then
            err "systemd-analyze verify $(basename "$unit"):"
            cat "$tmp/verify.log" >&2
        else
            echo "  systemd-analyze verify: $(basename "$unit") ok"
        fi
    done
else
    echo "  (systemd-analyze not installed: units not verified)"
fi

[ $fail -eq 0 ] && echo "check-readme-examples: ok ($(echo "$examples" | wc -l) README examples built against the installed tree)"
exit $fail
