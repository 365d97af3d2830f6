#!/usr/bin/env bash
# Compare reqsign's verifier with JavaScript RFC 9421 verifiers on this machine
# and write bench/compare/RESULTS.md.
#
#   bench/compare/run.sh [N]        (N requests, default 5000)
#
# Needs a release build with -Dbench=true in build-release/ (BUILD=dir to use
# another), node and npm (the pinned libraries are installed into
# bench/compare/node_modules from package-lock.json on first use). Builds
# nothing: run `ninja -C build-release` first. Run it on an otherwise idle
# machine; the figures are medians of 5 rounds.
set -euo pipefail
cd "$(dirname "$0")/../.."

n=${1:-5000}
build=${BUILD:-build-release}
rounds=5
here=bench/compare
bench="$build/bench/bench-crypto"

[ -x "$bench" ] || { echo "run.sh: $bench missing (meson setup $build --buildtype=release -Dbench=true; ninja -C $build)" >&2; exit 1; }
command -v node >/dev/null || { echo "run.sh: node not found" >&2; exit 1; }
if [ ! -d "$here/node_modules" ]; then
    (cd "$here" && npm ci --no-audit --no-fund)
fi

out=$(mktemp -d "${TMPDIR:-/tmp}/reqsign-compare.XXXXXX")
trap 'rm -rf "$out"' EXIT
log() { printf '==> %s\n' "$*" >&2; }

log "pre-signing $n requests ($bench --requests $n --dump)"
"$bench" --requests "$n" --dump "$out/requests.jsonl"

log "JavaScript verifiers vs node's raw crypto.verify ($rounds rounds)"
js_rc=0
node "$here/verify_js.mjs" "$out/requests.jsonl" --rounds "$rounds" --json "$out/js.json" || js_rc=$?
[ -s "$out/js.json" ] || { echo "run.sh: verify_js.mjs produced no results (status $js_rc)" >&2; exit 1; }

log "reqsign ($bench --requests $n --rounds $rounds)"
"$bench" --requests "$n" --rounds "$rounds" >"$out/reqsign.jsonl"

node "$here/report.mjs" --js "$out/js.json" --reqsign "$out/reqsign.jsonl" --out "$here/RESULTS.md" \
    --command "bench/compare/run.sh $n" --js-rc "$js_rc" \
    --libcrypto "$(pkg-config --modversion libcrypto 2>/dev/null || echo unknown)" \
    --libsodium "$(pkg-config --modversion libsodium 2>/dev/null || echo unknown)"
log "wrote $here/RESULTS.md"
exit "$js_rc"
