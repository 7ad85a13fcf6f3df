#!/usr/bin/env bash
# Do lookups suffer while a plugin loops? Against the release binary on 127.0.0.1.
#
# Starts persona in a temporary data directory, imports PROFILES profiles into `bench`
# (CSV, the built-in importer), uploads the hostile test plugin, then measures lookups
# of random ids with wrk (50 connections, 2 threads, DURATION seconds) twice: alone,
# and while SENDERS clients post `loop` to the plugin one after another (each call runs
# for its 100 ms budget and ends in plugin_timeout). Prints requests/s and latency
# percentiles of both runs, and how many plugin calls ran.
#
# Usage: PROFILES=100000 DURATION=10 SENDERS=1 bash scripts/bench-plugin-isolation.sh
# Installs wrk with apt-get if it is missing. Every request goes to 127.0.0.1.

set -euo pipefail
cd "$(dirname "$0")/.."

PROFILES=${PROFILES:-100000}
DURATION=${DURATION:-10}
SENDERS=${SENDERS:-1}

log() { echo "[bench-plugin-isolation] $*" >&2; }
. scripts/lib.sh

need wrk wrk
build_release
cargo build --locked --quiet --profile plugin --target wasm32-wasip2 -p persona-plugin-hostile
setup_run

PERSONA_ADMIN_KEY="$KEY" "$BIN" --listen 127.0.0.1:0 --data-dir "$TMP/data" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
wait_ready "$TMP/server.log" "$SERVER_PID"

curl -fsS -X POST -H "$AUTH" -H 'Content-Type: application/json' "$BASE/v1/databases" \
    --data '{"name":"bench","consent_confirmed":true}' >/dev/null
python3 - "$PROFILES" >"$TMP/rows.csv" <<'PY'
import sys
print("customer_id,first_name,last_name,city")
for i in range(int(sys.argv[1])):
    print("c%d,Ana%d,Silva,Lisboa" % (i, i))
PY
curl -fsS -X POST -H "$AUTH" --data-binary "@$TMP/rows.csv" \
    "$BASE/v1/databases/bench/imports?format=csv&wait=true" >/dev/null
curl -fsS -X PUT -H "$AUTH" --data-binary @target/wasm32-wasip2/plugin/persona_plugin_hostile.wasm \
    "$BASE/v1/plugins/hostile" >/dev/null

cat >"$TMP/lookup.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $KEY"
math.randomseed(os.time())
request = function()
    return wrk.format("GET", "/v1/databases/bench/profiles/c" .. math.random(0, $PROFILES - 1))
end
LUA

measure() { # LABEL
    wrk -t2 -c50 -d"${DURATION}s" --latency -s "$TMP/lookup.lua" "$BASE" >"$TMP/wrk-$1.txt"
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk-$1.txt")
    p50=$(awk '$1 == "50%" {print $2}' "$TMP/wrk-$1.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$TMP/wrk-$1.txt")
    echo "| $1 | $rps | $p50 | $p99 |"
}

rows=()
log "lookups alone"
rows+=("$(measure alone)")
log "lookups while $SENDERS client(s) post \`loop\` to the plugin"
: >"$TMP/calls"
senders=()
for _ in $(seq 1 "$SENDERS"); do
    (
        end=$((SECONDS + DURATION + 1))
        while [ "$SECONDS" -lt "$end" ]; do
            curl -s -o /dev/null -w '%{http_code}\n' -X POST -H "$AUTH" -d loop \
                "$BASE/v1/databases/bench/webhooks/hostile" >>"$TMP/calls"
        done
    ) &
    senders+=($!)
done
rows+=("$(measure "with a looping plugin")")
wait "${senders[@]}"

echo
echo "### lookups of $PROFILES profiles, wrk -t2 -c50 -d${DURATION}s, 2 cores"
echo
echo "| run | requests/s | p50 | p99 |"
echo "|---|---:|---:|---:|"
for r in "${rows[@]}"; do echo "$r"; done
echo
echo "- plugin calls during the second run: $(wc -l <"$TMP/calls") (answers: $(sort "$TMP/calls" | uniq -c | tr -s ' ' | tr '\n' ';'))"
