#!/usr/bin/env bash
# Tree hygiene checks run by CI (.ci/run) after a build:
#  1. no banned C calls (unbounded copies and formatting) anywhere in the tree;
#  2. every symbol a reqsign shared library exports starts with reqsign_.
# Usage: tools/check-hygiene.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: tools/check-hygiene.sh BUILD_DIR}
fail=0

# 1. banned calls: use memcpy with explicit lengths, snprintf, fgets.
banned='strcpy|strcat|sprintf|vsprintf|gets|stpcpy|strtok|strncpy|strncat'
if hits=$(git ls-files -- '*.c' '*.h' | xargs grep -nE "(^|[^A-Za-z0-9_.>])($banned)[[:space:]]*\(" \
        | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/?\*|//)'); then
    echo "check-hygiene: banned calls ($banned):" >&2
    echo "$hits" >&2
    fail=1
fi

# 2. exported symbols of every shared library we build
libs=$(find "$build" -name 'libreqsign-*.so' -type f -o -name 'libreqsign-*.so' -type l | sort)
if [ -z "$libs" ]; then
    echo "check-hygiene: no libreqsign-*.so under $build (build first)" >&2
    exit 1
fi
for lib in $libs; do
    bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | grep -v '^reqsign_' || true)
    if [ -n "$bad" ]; then
        echo "check-hygiene: $lib exports symbols without the reqsign_ prefix:" >&2
        echo "$bad" >&2
        fail=1
    fi
done
[ $fail -eq 0 ] && echo "check-hygiene: ok ($(echo "$libs" | wc -l) libraries, no banned calls)"
exit $fail
