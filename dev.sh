#!/usr/bin/env bash
# reqsign developer entry point. Every command installs the Debian packages it
# needs (only the missing ones, checked with dpkg-query first; with sudo when
# not root), then builds. `./dev.sh help` prints the command table below.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(meson ninja-build pkg-config gcc libc6-dev openssl libssl-dev libcurl4-openssl-dev
          libjansson-dev libcriterion-dev libmicrohttpd-dev libsqlite3-dev curl libsodium-dev
          libhiredis-dev redis-server libpq-dev postgresql python3 python3-cryptography
          go-md2man systemd nginx nginx-dev make chromium clang-format) # make: the nginx module, api-backend out of tree
FUZZ_PACKAGES=(clang libfuzzer-14-dev libclang-rt-14-dev)

# The one command table: `./dev.sh help` prints it.
HELP=(
    "demo" "build and run the demo: key service + API backend on loopback, a key issued over signed HTTP, a signed POST, replay, tamper, revoke, then a customer account: enroll, send, rotate, revoke"
    "test" "build (warnings are errors) and run every test suite"
    "test-asan" "the same, built with -Db_sanitize=address,undefined"
    "test-openssl" "the same with the OpenSSL Ed25519 backend (default: libsodium)"
    "bench [--quick]" "release build, run bench/, rewrite BENCHMARKS.md and bench/results.json"
    "fuzz [SECONDS]" "build fuzz/ with clang + libFuzzer, run every target SECONDS (default 60)"
    "build" "build only (into ./build)"
    "deps" "install the Debian packages only"
    "help" "this table"
)

usage() {
    local i
    echo "usage: ./dev.sh COMMAND"
    for ((i = 0; i < ${#HELP[@]}; i += 2)); do
        printf '  %-18s %s\n' "${HELP[i]}" "${HELP[i + 1]}"
    done
}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

deps() {
    local missing=() p
    for p in "${PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    # e2e-console: Node.js and npm run playwright-core (tests/browser/); Debian's
    # packages unless a node (e.g. NodeSource's, which has npm inside) is there
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    if [ ${#missing[@]} -eq 0 ]; then
        browser_deps
        return 0
    fi
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    log "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    browser_deps
}

# playwright-core for e2e-console, exactly as tests/browser/package-lock.json
# says (npm ci; it downloads no browser: the test drives Debian's chromium).
# Again only when the lock changed since the last install.
browser_deps() {
    local b=tests/browser
    if [ ! -f "$b/node_modules/.package-lock.json" ] ||
        [ "$b/package-lock.json" -nt "$b/node_modules/.package-lock.json" ]; then
        log "npm ci in $b (playwright-core)"
        PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$b" --no-audit --no-fund --loglevel=error
    fi
}

# setup DIR [meson options...]: configure once, reconfigure if options changed
setup() {
    local dir=$1; shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" -Dwerror=true "$@" >/dev/null
    else
        meson configure "$dir" -Dwerror=true "$@" >/dev/null
    fi
}

build() {
    deps
    setup build
    ninja -C build
}

run_tests() {
    local dir=$1; shift
    # Criterion runs the tests of a suite in parallel; meson runs suites in parallel.
    meson test -C "$dir" --print-errorlogs --num-processes "$(nproc)" "$@"
}

cmd=${1:-help}
shift || true
case "$cmd" in
deps) deps ;;
build) build ;;
test)
    build
    run_tests build "$@"
    ;;
test-asan)
    deps
    setup build-asan -Db_sanitize=address,undefined -Db_lundef=false
    ninja -C build-asan
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_tests build-asan "$@"
    ;;
test-openssl)
    # the whole suite again with the other Ed25519 backend
    deps
    setup build-openssl -Dcrypto_backend=openssl
    ninja -C build-openssl
    run_tests build-openssl "$@"
    ;;
bench)
    deps
    setup build-release --buildtype=release -Db_ndebug=true
    ninja -C build-release
    ./bench/run.sh build-release "$@"
    ;;
fuzz)
    deps "${FUZZ_PACKAGES[@]}"
    # the fuzzers hash through EVP (-Ddigest_api=evp): the other SHA-2 path gets exercised too
    CC=clang setup build-fuzz -Dfuzz=true -Dtests=false -Dbench=false -Db_lundef=false -Ddigest_api=evp
    ninja -C build-fuzz
    ./fuzz/run.sh build-fuzz "${1:-60}"
    ;;
demo)
    build >/dev/null
    ./examples/demo/demo.sh build
    ;;
help | -h | --help)
    usage
    ;;
*)
    echo "unknown command: $cmd (try ./dev.sh help)" >&2
    exit 2
    ;;
esac
