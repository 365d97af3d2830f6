#!/usr/bin/env bash
# The whole reqsign story on loopback, as a provider and a customer see it:
# key service and API backend on free ports, an admin key, a customer key
# downloaded over signed HTTP, a signed POST, its replay, a tampered body, a
# revocation; then the customer's side: an account, a key enrolled from the
# customer's machine, a rotation, a key revoking itself, the audit log; and a
# clean shutdown. Run it with ./dev.sh demo.
set -euo pipefail
BUILD=${1:-build}
REQSIGN=$BUILD/client/reqsign
REQSIGND=$BUILD/server/reqsignd
BACKEND=$BUILD/examples/api-backend

work=$(mktemp -d /tmp/reqsign-demo.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
run() { # print the command, run it, print what came back (never fail the script here)
    printf '$'
    printf ' %q' "$@"
    printf '\n'
    set +e
    "$@" 2>&1 | awk '{ print "  " $0 }'
    local rc=${PIPESTATUS[0]}
    set -e
    printf '  [exit %d]\n' "$rc"
    return 0
}
start() { # start NAME VAR CMD...: "@PORT@" in CMD is a free loopback port (another is tried
          # if the server cannot bind it); wait for its "listening on" line, set VAR to its URL
    local name=$1 var=$2; shift 2
    local try port pid a args
    for try in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 40000))
        args=()
        for a in "$@"; do args+=("${a//@PORT@/$port}"); done
        "${args[@]}" >"$work/$name.out" 2>"$work/$name.log" &
        pid=$!
        for _ in $(seq 100); do
            if grep -q 'listening on' "$work/$name.out" 2>/dev/null; then
                pids+=("$pid")
                printf -v "$var" '%s' "$(sed -n 's/.*listening on //p' "$work/$name.out" | head -n1)"
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break # exited (port taken?): try another port
            sleep 0.1
        done
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    echo "$name did not start:" >&2
    cat "$work/$name.log" >&2
    exit 1
}
# send the captured header lines (from `reqsign sign`) with curl: what an attacker would do
curl_with() { # curl_with HEADERS_FILE BODY URL
    local args=() line
    while IFS= read -r line; do args+=(-H "$line"); done <"$1"
    curl -sS -X POST -H 'Content-Type: application/json' "${args[@]}" --data-binary "$2" \
        -w '\n[HTTP %{http_code}]\n' "$3"
}

bold "1. The provider creates the key service database and the first admin key"
# --service: the URL the key service is reached at (kept in admin.json); the
# demo's port is picked below, so its commands name the service again
run "$REQSIGND" init --db "$work/keys.db" -o "$work/admin.json" --service http://127.0.0.1
ls -l "$work/admin.json" | awk '{print "  " $1 " admin.json (the only private key the service ever writes: for the operator)"}'

bold "2. The provider starts the key service and the API backend on free loopback ports"
# --authority: the host:port clients sign for each service (its public name);
# a request signed for another service that trusts the same keys is refused
start reqsignd KS "$REQSIGND" --db "$work/keys.db" --listen 127.0.0.1:@PORT@ \
    --authority 127.0.0.1:@PORT@
start api-backend BE "$BACKEND" --db "$work/keys.db" --listen 127.0.0.1:@PORT@ \
    --authority 127.0.0.1:@PORT@
echo "  key service: $KS"
echo "  API backend: $BE (reads the same database, read-only)"

bold "3. A customer key is created over signed HTTP and its credential downloaded once"
run "$REQSIGN" keys create --service "$KS" --key "$work/admin.json" \
    --label "demo customer" --scope orders:write -o "$work/customer.json"
ls -l "$work/customer.json" | awk '{print "  " $1 " customer.json"}'

BODY='{"amount": 100, "currency": "EUR"}'
bold "4. The customer sends a signed POST: 200, and the backend echoes what it verified"
run "$REQSIGN" send --key "$work/customer.json" -X POST -H 'Content-Type: application/json' \
    --data "$BODY" "$BE/v1/orders?customer=42"

bold "5. A request is captured on the wire and sent again: the first copy passes, the replay is refused"
"$REQSIGN" sign --key "$work/customer.json" -X POST --data "$BODY" "$BE/v1/orders?customer=42" \
    >"$work/captured.txt"
sed 's/^/  captured: /' "$work/captured.txt"
run curl_with "$work/captured.txt" "$BODY" "$BE/v1/orders?customer=42"
run curl_with "$work/captured.txt" "$BODY" "$BE/v1/orders?customer=42"

bold "6. A fresh signed request has its body changed in transit: refused (digest)"
"$REQSIGN" sign --key "$work/customer.json" -X POST --data "$BODY" "$BE/v1/orders?customer=42" \
    >"$work/captured2.txt"
run curl_with "$work/captured2.txt" '{"amount": 99999, "currency": "EUR"}' "$BE/v1/orders?customer=42"

bold "7. The provider revokes the key; within the cache bound (5 s) the backend refuses it"
KEYID=$(sed -n 's/.*"keyid": *"\([^"]*\)".*/\1/p' "$work/customer.json" | head -n1)
run "$REQSIGN" keys revoke --service "$KS" --key "$work/admin.json" "$KEYID"
t0=$(date +%s.%N)
for _ in $(seq 70); do
    if ! "$REQSIGN" send --key "$work/customer.json" -X POST --data "$BODY" \
        "$BE/v1/orders?customer=42" >"$work/after.out" 2>&1; then
        break
    fi
    sleep 0.1
done
t1=$(date +%s.%N)
awk '{ print "  " $0 }' "$work/after.out"
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "  refused %.1f s after the revocation\n", b - a }'

bold "8. The customer's side: the provider opens an account (its keys may carry orders:write)"
out=$("$REQSIGN" accounts create --service "$KS" --key "$work/admin.json" --name "ACME" \
    --scope orders:write)
echo "$out" | sed 's/^token .*/token (shown once; handed to the customer)/; s/^/  /'
TOKEN=$(sed -n 's/^token //p' <<<"$out")

bold "9. The customer enrolls a key made on its own machine: only the public key travels"
# the token on stdin, never on a command line (every local user can read those)
run "$REQSIGN" enroll --service "$KS" --token - --label "acme laptop" -o "$work/acme.json" <<<"$TOKEN"
ACME=$(sed -n 's/.*"keyid": *"\([^"]*\)".*/\1/p' "$work/acme.json" | head -n1)
run "$REQSIGN" send --key "$work/acme.json" -X POST -H 'Content-Type: application/json' \
    --data "$BODY" "$BE/v1/orders?customer=acme"
echo "  the same token a second time:"
run "$REQSIGN" enroll --service "$KS" --token - -o "$work/acme-again.json" <<<"$TOKEN"

bold "10. The customer rotates its key (the old one works for the grace period) and lists its keys"
run "$REQSIGN" keys rotate "$ACME" --grace 60 --service "$KS" --key "$work/acme.json" \
    -o "$work/acme2.json"
run "$REQSIGN" send --key "$work/acme2.json" -X POST -H 'Content-Type: application/json' \
    --data "$BODY" "$BE/v1/orders?customer=acme"
run "$REQSIGN" keys list --service "$KS" --key "$work/acme2.json"

bold "11. The old key revokes itself (revoke by possession: anyone holding a leaked key can)"
run "$REQSIGN" keys revoke --service "$KS" --key "$work/acme.json" "$ACME"
run "$REQSIGN" keys get --service "$KS" --key "$work/acme.json" "$ACME"

bold "12. The provider reads the audit log"
run "$REQSIGN" audit --service "$KS" --key "$work/admin.json" --account \
    "$(sed -n 's/^account //p' <<<"$out")"

bold "13. Both servers stop cleanly on SIGTERM"
for p in "${pids[@]}"; do
    kill -TERM "$p"
    set +e
    wait "$p"
    rc=$?
    set -e
    echo "  pid $p exited with status $rc"
done
pids=()
echo
echo "demo: done. Logs show one line per request and never a key:"
sed 's/^/  /' "$work/reqsignd.log" | tail -n 4
