#!/usr/bin/env bash
# Event ingest over HTTP, end to end, beside a hand-rolled Redis activity store.
#
# Generates EVENTS receipts of 3 items for CUSTOMERS customers as NDJSON (about 430 bytes
# a line), in request bodies of BATCH events (under the 1 MiB body cap). Starts the
# release persona on 127.0.0.1 (fsync every_second, the default) and times:
#   - `POST /v1/databases/{db}/events` of every body, PARALLEL requests at a time (curl);
#   - `POST .../imports?format=ndjson&kind=events&wait=true` of the whole file, one
#     stream, into a fresh database;
# from the first byte sent until the last answer, then reads the server's RSS to give
# the memory a kept event costs (timeline and aggregates). Then starts redis-server
# (Debian's, no persistence) and times `redis-cli --pipe` of what a user's own Redis
# activity store would do per event: RPUSH the event's JSON on the customer's list,
# HINCRBYFLOAT its total and HINCRBY its count (three commands, no derived values).
#
# Usage: bash scripts/bench-events.sh
# Env: EVENTS (1000000), CUSTOMERS (100000), BATCH (2000), PARALLEL (4), PERF (a path:
# record a CPU profile of the server while events are posted). Installs curl
# and redis-server with apt-get if missing. Every process it starts is stopped by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS=${EVENTS:-1000000}
CUSTOMERS=${CUSTOMERS:-100000}
BATCH=${BATCH:-2000}
PARALLEL=${PARALLEL:-4}
log() { echo "[bench-events] $*" >&2; }
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
need curl curl
need redis-server redis-server

build_release
setup_run

log "generating $EVENTS receipts for $CUSTOMERS customers"
python3 - "$EVENTS" "$CUSTOMERS" "$BATCH" "$TMP" <<'PY'
import json, os, sys
n, customers, batch, d = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.mkdir(d + "/bodies")
ITEMS = [("A1", "Monitor 24", "monitors", 139.9), ("C7", "HDMI cable", "cables", 5.0),
         ("K2", "Keyboard", "keyboards", 29.5), ("M3", "Mouse", "mice", 12.0),
         ("L1", "Desk lamp", "lamps", 24.0), ("S9", "Speakers", "audio", 49.0)]
def resp(args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode(); parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)
body = None
with open(d + "/events.ndjson", "w") as nd, open(d + "/events.resp", "wb") as r:
    for i in range(n):
        h = (i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        cid = "c%07d" % (h % customers)
        items = []
        total = 0.0
        for k in range(3):
            sku, name, cat, price = ITEMS[(h >> (8 * k)) % len(ITEMS)]
            q = 1 + (h >> (20 + k)) % 2
            items.append({"sku": sku, "name": name, "category": cat, "price": price, "quantity": q})
            total += price * q
        ev = {"customer_id": cid, "type": "receipt",
              "time": "2026-%02d-%02dT%02d:%02d:00Z" % (1 + (h >> 30) % 10, 1 + (h >> 34) % 28, (h >> 40) % 24, (h >> 46) % 60),
              "data": {"receipt_id": "r%d" % i, "total": round(total, 2), "currency": "EUR",
                       "store": {"id": "s%d" % ((h >> 50) % 40), "name": "Store %d" % ((h >> 50) % 40)},
                       "items": items}}
        line = json.dumps(ev, separators=(",", ":"))
        nd.write(line + "\n")
        if i % batch == 0:
            if body: body.close()
            body = open(d + "/bodies/%08d.ndjson" % (i // batch), "w")
        body.write(line + "\n")
        r.write(resp(["RPUSH", "events:" + cid, line]))
        r.write(resp(["HINCRBYFLOAT", "stats:" + cid, "total", "%.2f" % total]))
        r.write(resp(["HINCRBY", "stats:" + cid, "count", "1"]))
if body: body.close()
PY
# The generated files go to the disk now, not while an import is timed: a gigabyte of
# writeback would compete with the server for the same two cores.
sync

PERSONA_ADMIN_KEY="$KEY" "$BIN" --listen 127.0.0.1:0 --data-dir "$TMP/data" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
wait_ready "$TMP/server.log" "$SERVER_PID"
rss() { awk '/VmRSS/ {print $2 * 1024}' "/proc/$SERVER_PID/status"; }

for db in posted imported; do
    curl -fsS -X POST -H "$AUTH" -H 'Content-Type: application/json' "$BASE/v1/databases" \
        --data "{\"name\":\"$db\",\"consent_confirmed\":true}" >/dev/null
done
RSS0=$(rss)

log "POST /events: $(ls "$TMP/bodies" | wc -l) bodies of $BATCH, $PARALLEL at a time"
export AUTH BASE TMP
if [ -n "${PERF:-}" ]; then
    # A CPU profile of the server while events are posted (PERF=path of perf.data).
    perf record -g -p "$SERVER_PID" -o "$PERF" >/dev/null 2>&1 &
    PERF_PID=$!
fi
s=$(date +%s%N)
ls "$TMP/bodies" | xargs -P "$PARALLEL" -I{} sh -c \
    'curl -fsS -X POST -H "$AUTH" -H "Content-Type: application/x-ndjson" --data-binary "@$TMP/bodies/{}" "$BASE/v1/databases/posted/events" >"$TMP/bodies/{}.out"'
e=$(date +%s%N)
if [ -n "${PERF:-}" ]; then kill -INT "$PERF_PID"; wait "$PERF_PID" || true; fi
accepted=$(python3 -c 'import glob,json,sys; print(sum(json.load(open(f))["accepted"] for f in glob.glob(sys.argv[1] + "/bodies/*.out")))' "$TMP")
if [ "$accepted" != "$EVENTS" ]; then
    log "only $accepted of $EVENTS events were accepted"; head -c 600 "$(ls "$TMP"/bodies/*.out | head -n1)" >&2; exit 1
fi
psecs=$(seconds "$s" "$e")
prate=$(per_second "$EVENTS" "$psecs")
RSS1=$(rss)
per_event=$(awk -v a="$RSS0" -v b="$RSS1" -v n="$EVENTS" 'BEGIN {printf "%.0f", (b-a)/n}')
log "posted: $psecs s, $prate events/s; RSS grew $(( (RSS1 - RSS0) >> 20 )) MiB"

log "import kind=events of events.ndjson ($(du -h "$TMP/events.ndjson" | cut -f1))"
s=$(date +%s%N)
curl -fsS -X POST -H "$AUTH" --data-binary "@$TMP/events.ndjson" \
    "$BASE/v1/databases/imported/imports?format=ndjson&kind=events&wait=true" >"$TMP/job.json"
e=$(date +%s%N)
status=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["rows_accepted"], j["status"])' "$TMP/job.json")
if [ "$status" != "$EVENTS done" ]; then log "the import did not finish: $status"; exit 1; fi
isecs=$(seconds "$s" "$e")
irate=$(per_second "$EVENTS" "$isecs")
log "imported: $isecs s, $irate events/s"
kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""

start_redis
log "redis-cli --pipe events.resp"
s=$(date +%s%N)
redis-cli -p "$RPORT" --pipe <"$TMP/events.resp" >/dev/null
e=$(date +%s%N)
RMEM=$(redis-cli -p "$RPORT" info memory | awk -F: '/^used_memory:/ {print $2}' | tr -d '\r')
kill "$REDIS_PID"; wait "$REDIS_PID" || true; REDIS_PID=""
rsecs=$(seconds "$s" "$e")
rrate=$(per_second "$EVENTS" "$rsecs")

echo
echo "### ingest of $EVENTS receipts (3 items) for $CUSTOMERS customers over HTTP (fsync every_second), 2 cores"
echo
echo "| path | seconds | events/s | / Redis --pipe |"
echo "|---|---:|---:|---:|"
echo "| Persona POST /events, $BATCH a body, $PARALLEL in parallel | $psecs | $prate | $(awk -v a="$prate" -v b="$rrate" 'BEGIN {printf "%.2f", a/b}') |"
echo "| Persona import kind=events, one stream | $isecs | $irate | $(awk -v a="$irate" -v b="$rrate" 'BEGIN {printf "%.2f", a/b}') |"
echo "| Redis RPUSH + HINCRBYFLOAT + HINCRBY via redis-cli --pipe | $rsecs | $rrate | 1.00 |"
echo
echo "- Persona memory per kept event (RSS growth over the posted events): $per_event bytes;"
echo "  Redis used_memory per event for its list and counters: $(( RMEM / EVENTS )) bytes"
