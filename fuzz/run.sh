#!/usr/bin/env bash
# Run every libFuzzer target of a -Dfuzz=true build for a bounded time.
#
#   fuzz/run.sh BUILD [SECONDS]          e.g. fuzz/run.sh build-fuzz 60
#   FUZZ_TARGETS="sf_dict verify" fuzz/run.sh build-fuzz 20    only these targets
#
# Each target runs SECONDS (default 60) on a writable corpus BUILD/corpus/NAME,
# seeded from fuzz/corpus/NAME (new inputs stay in the build directory; copy
# the interesting ones back by hand), with fuzz/dict/rfc9421.dict. Crashes,
# leaks, timeouts and OOMs are written to BUILD/fuzz-artifacts/NAME/ and the
# script exits 1 after printing their paths. Logs: BUILD/fuzz-logs/NAME.log.
set -uo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 BUILD [SECONDS]" >&2
    exit 2
fi
BUILD=$1
SECONDS_EACH=${2:-60}
HERE=$(cd "$(dirname "$0")" && pwd)
ALL="sf_dict sf_list sf_item verify content_digest keys url differential reqsignd"
TARGETS=${FUZZ_TARGETS:-$ALL}
DICT="$HERE/dict/rfc9421.dict"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=0
printf '%-15s %12s %9s %8s %8s  %s\n' target executions exec/s cov ft result
for t in $TARGETS; do
    bin="$BUILD/fuzz/fuzz_$t"
    if [ ! -x "$bin" ]; then
        echo "$t: $bin not built (meson setup with -Dfuzz=true, CC=clang)" >&2
        failed=1
        continue
    fi
    corpus="$BUILD/corpus/$t"
    art="$BUILD/fuzz-artifacts/$t"
    logs="$BUILD/fuzz-logs"
    mkdir -p "$corpus" "$art" "$logs"
    if [ -d "$HERE/corpus/$t" ]; then
        cp -n "$HERE/corpus/$t"/* "$corpus"/ 2>/dev/null || true
    fi
    log="$logs/$t.log"
    "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -dict="$DICT" -artifact_prefix="$art/" \
        "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    if [ $rc -eq 0 ]; then
        result=ok
    else
        result="FAILED (exit $rc)"
        failed=1
    fi
    printf '%-15s %12s %9s %8s %8s  %s\n' "$t" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "$result"
    if [ $rc -ne 0 ]; then
        grep -E 'ERROR: |FUZZ_CHECK|SUMMARY|Test unit written to|runtime error' "$log" | head -20 | sed 's/^/    /'
        echo "    log: $log"
    fi
done
exit $failed
