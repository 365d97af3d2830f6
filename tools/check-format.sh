#!/usr/bin/env bash
# The tree follows .clang-format: every tracked C source and header, checked by
# CI (.ci/run). Fix with: tools/check-format.sh --fix
# Generated files are not tracked, so not checked.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "check-format: clang-format not installed (./dev.sh deps)" >&2; exit 1; }
mapfile -t files < <(git ls-files -- '*.c' '*.h')
if [ "${1:-}" = --fix ]; then
    clang-format -i "${files[@]}"
    exit 0
fi
bad=()
for f in "${files[@]}"; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
    echo "check-format: ${#bad[@]} file(s) differ from .clang-format (tools/check-format.sh --fix):" >&2
    printf '  %s\n' "${bad[@]}" >&2
    exit 1
fi
echo "check-format: ok (${#files[@]} files)"
