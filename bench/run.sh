#!/usr/bin/env bash
# Run every benchmark and rewrite BENCHMARKS.md and bench/results.json.
#
#   bench/run.sh BUILD_DIR [--quick]
#
# BUILD_DIR is a release build with -Dbench=true (./dev.sh bench makes it).
# The Ed25519 micro-benchmarks run once per backend: BUILD_DIR's own, and
# OpenSSL from a second release directory BUILD_DIR-openssl, configured and
# built here (-Dcrypto_backend=openssl -Dtests=false) when BUILD_DIR's backend
# is libsodium. --quick: every measurement at reduced size (well under a minute).
set -euo pipefail
cd "$(dirname "$0")/.."

build=${1:?usage: bench/run.sh BUILD_DIR [--quick]}
shift
quick=()
cmd="./dev.sh bench"
for a in "$@"; do
    case "$a" in
    --quick) quick=(--quick); cmd="./dev.sh bench --quick" ;;
    *) echo "bench/run.sh: unknown argument $a" >&2; exit 2 ;;
    esac
done

for p in bench-crypto bench-nonce bench-e2e bench-load bench-report; do
    [ -x "$build/bench/$p" ] || { echo "bench/run.sh: $build/bench/$p missing (-Dbench=true?)" >&2; exit 1; }
done
[ -x "$build/examples/api-backend" ] || { echo "bench/run.sh: $build/examples/api-backend missing" >&2; exit 1; }

out=$(mktemp -d "${TMPDIR:-/tmp}/reqsign-bench-run.XXXXXX")
trap 'rm -rf "$out"' EXIT

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

log "verify pipeline, sign, key lookup ($build)"
"$build/bench/bench-crypto" "${quick[@]}" >"$out/crypto.jsonl"
backend=$(sed -n 's/.*"backend":"\([a-z]*\)".*/\1/p' "$out/crypto.jsonl" | head -n 1)

files=("$out/crypto.jsonl")
if [ "$backend" != openssl ]; then
    ob="$build-openssl"
    # same build options as BUILD_DIR, the other backend; only what the bench needs
    opts=(--buildtype=release -Db_ndebug=true -Dwerror=true -Dcrypto_backend=openssl
          -Dtests=false -Dbench=true -Dfuzz=false)
    fleet=$(meson introspect --buildoptions "$build" 2>/dev/null |
        sed -n 's/.*"name": "fleet", "value": "\([a-z]*\)".*/\1/p' | head -n 1)
    [ -n "$fleet" ] && opts+=("-Dfleet=$fleet")
    log "OpenSSL backend build ($ob)"
    if [ -f "$ob/build.ninja" ]; then
        meson configure "$ob" "${opts[@]}" >/dev/null
    else
        meson setup "$ob" "${opts[@]}" >/dev/null
    fi
    ninja -C "$ob" bench/bench-crypto >/dev/null
    log "verify pipeline, sign, key lookup ($ob)"
    "$ob/bench/bench-crypto" "${quick[@]}" >"$out/crypto-openssl.jsonl"
    files+=("$out/crypto-openssl.jsonl")
fi

log "nonce store"
"$build/bench/bench-nonce" "${quick[@]}" >"$out/nonce.jsonl"
log "nonce store: Redis vs memory (skips without redis-server)"
if [ -x "$build/bench/bench-redis" ]; then
    "$build/bench/bench-redis" "${quick[@]}" >"$out/redis.jsonl"
else # built without the Redis nonce store (meson option fleet): bench-redis's own skip record
    echo '{"name": "nonce_store_redis", "skipped": true, "reason": "built without the Redis nonce store (meson option fleet)"}' >"$out/redis.jsonl"
fi
log "end to end (api-backend)"
# bench-e2e starts the backend itself with --authority 127.0.0.1:PORT and
# --bench-unsigned-route (the unverified /unsigned/... baseline it measures against)
"$build/bench/bench-e2e" --server "$build/examples/api-backend" "${quick[@]}" >"$out/e2e.jsonl"
log "end to end on 1, 2, 4 and 16 connections (api-backend)"
"$build/bench/bench-load" --server "$build/examples/api-backend" "${quick[@]}" >"$out/load.jsonl"
log "end to end on 1, 2, 4 and 16 connections (reqsignd)"
"$build/bench/bench-load" --reqsignd "$build/server/reqsignd" "${quick[@]}" >>"$out/load.jsonl"
log "nginx + ngx_http_reqsign_module, 1 and 2 workers (skips without the module)"
# bench-load starts Debian's nginx itself (generated configuration, loopback
# ports it picks, the upstream a second server block answering return 200)
mod="$build/server/nginx/ngx_http_reqsign_module.so"
if [ -f "$mod" ]; then
    "$build/bench/bench-load" --nginx "$(realpath "$mod")" "${quick[@]}" >"$out/nginx.jsonl"
else # built without the module (nginx-dev missing, or -Dnginx=disabled): a skip record
    echo '{"name": "nginx_signed", "skipped": true, "reason": "the nginx module was not built (nginx-dev missing, or -Dnginx=disabled)"}' >"$out/nginx.jsonl"
fi
files+=("$out/nonce.jsonl" "$out/redis.jsonl" "$out/e2e.jsonl" "$out/load.jsonl" "$out/nginx.jsonl")

"$build/bench/bench-report" --json bench/results.json --md BENCHMARKS.md --command "$cmd" "${files[@]}"
log "wrote BENCHMARKS.md and bench/results.json"
