#!/usr/bin/env bash
# CI (.ci/run) after a build: what `meson install` puts on a machine works for
# a user who starts from the README.
#  1. `meson install --destdir TMP` from BUILD_DIR, and the installed tree has
#     the programs, the libraries' pkg-config files, the man pages, the systemd
#     units and the bash completion;
#  2. every ```c block of README.md is a complete program that compiles with
#     -std=c11 -Wall -Wextra -Werror and links out of tree, with nothing but
#     `pkg-config --cflags --libs reqsign-client reqsign-server` pointed at the
#     installed tree (PKG_CONFIG_SYSROOT_DIR), as a user's build would;
#  3. the installed units pass `systemd-analyze verify` when it is available.
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
      pkgconfig/reqsign-common.pc pkgconfig/reqsign-client.pc pkgconfig/reqsign-server.pc
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
[ $fail -eq 0 ] || exit 1

# 2. the README's C examples, out of tree through pkg-config
pcdir=$(dirname "$(find "$root" -name reqsign-client.pc | head -n 1)")
flags=$(PKG_CONFIG_SYSROOT_DIR=$root PKG_CONFIG_PATH=$pcdir \
        pkg-config --cflags --libs reqsign-client reqsign-server)
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

# 3. the units, if systemd-analyze is there (it only reads them; nothing is
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
