#!/usr/bin/env bash
# Where a server's CPU goes under bench-load: perf samples of the server
# process (every thread) while bench-load drives it with signed requests.
#
#   bench/profile.sh BUILD_DIR [api-backend|reqsignd] [CONNECTIONS] [SECONDS]
#
# BUILD_DIR is a release build with -Dbench=true (./dev.sh bench makes
# build-release). Needs perf (Debian: linux-perf) and permission to sample
# another process (root, or kernel.perf_event_paranoid <= 1). Prints the share
# of samples by shared object and the top symbols; nothing is written to the
# repository. On a VM, time in the hypervisor's interrupt-enable path
# (pvm_irq_enable, or the like) is what system calls and wake-ups cost there.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: bench/profile.sh BUILD_DIR [api-backend|reqsignd] [CONNECTIONS] [SECONDS]}
server=${2:-api-backend}
conns=${3:-4}
secs=${4:-10}
command -v perf >/dev/null || { echo "bench/profile.sh: perf not found (apt-get install linux-perf)" >&2; exit 1; }
case "$server" in
api-backend) target=(--server "$build/examples/api-backend"); exe=api-backend ;;
reqsignd) target=(--reqsignd "$build/server/reqsignd"); exe=reqsignd ;;
*) echo "bench/profile.sh: server is api-backend or reqsignd" >&2; exit 2 ;;
esac
out=$(mktemp -d "${TMPDIR:-/tmp}/reqsign-profile.XXXXXX")
trap 'kill "$load" 2>/dev/null || true; rm -rf "$out"' EXIT
# enough requests that the load outlasts the sampling
"$build/bench/bench-load" "${target[@]}" --conns "$conns" --rounds 3 --requests 200000 \
    >/dev/null 2>"$out/load.log" &
load=$!
pid=""
for _ in $(seq 1 600); do
    pid=$(pgrep -P "$load" -x "$exe" || true)
    # wait until the requests are signed and the load has begun
    if [ -n "$pid" ] && grep -q "round 1" "$out/load.log" 2>/dev/null; then break; fi
    if [ -n "$pid" ] && [ "$(wc -l <"$out/load.log")" -ge 1 ] && sleep 0.2 &&
        [ "$(awk '{print $14+$15}' "/proc/$pid/stat")" -gt 50 ]; then break; fi
    sleep 0.2
done
[ -n "$pid" ] || { echo "bench/profile.sh: the server did not start" >&2; cat "$out/load.log" >&2; exit 1; }
perf record -q -F 1999 -g -p "$pid" -o "$out/perf.data" -- sleep "$secs" 2>/dev/null
echo "## $exe, $conns connections, ${secs} s of samples: share by shared object"
perf report -i "$out/perf.data" --no-children --sort dso -g none --stdio 2>/dev/null |
    grep '%' | head -n 12
echo
echo "## top symbols"
perf report -i "$out/perf.data" --no-children --sort dso,sym -g none --stdio 2>/dev/null |
    grep '%' | head -n 25
