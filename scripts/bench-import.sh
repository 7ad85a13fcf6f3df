#!/usr/bin/env bash
# Import throughput over HTTP, end to end, beside Redis mass insertion of the same rows.
#
# Generates ROWS profiles of ten fields (the shape of benches/common: eight default
# fields plus loyalty_score and tier) as CSV (wide), CSV long, JSON, NDJSON and Redis
# protocol (HSET per profile). Starts the release persona on 127.0.0.1 (fsync
# every_second, the default). Then, in each of ROUNDS rounds: starts redis-server
# (Debian's, no persistence) and times `redis-cli --pipe` of the same rows (Redis's
# documented mass insertion path); then for each format imports the file into a fresh
# database with `curl --data-binary` and `wait=true`, timing from the first byte sent
# until the job is done, and deletes the database. Prints each contender's median over
# the rounds (this machine is shared: one run of a fresh server moves by a fifth), the
# ratio of medians to Redis's, every round's rate, and the server's peak RSS.
#
# Usage: bash scripts/bench-import.sh
# Env: ROWS (1000000), ROUNDS (3), FORMATS (csv csv-long json ndjson csv-plugin: the imports to run;
# csv-atomic, the CSV file with atomic=true, and csv-update, the CSV file imported a
# second time into the same database, timed the second time, may be added),
# SETTLE (warm: the memory state every timed run starts from, see lib.sh's
# settle_memory), PERF_OUT (unset; else a system-wide perf profile over the imports into that file: the
# import threads start after the server, so `-p` would miss them).
# Prints, for each import, the server's CPU time a row (every thread's, from /proc): the
# machine is shared, and wall time moves with what else runs on it more than CPU does.
# (A snapshot that an import started may still run into the next one's window.)
# Installs redis-server with apt-get if missing. Every process it
# starts is stopped by PID.
set -euo pipefail
# Relative to where the script was started, before the cd below.
if [ -n "${PERF_OUT:-}" ]; then PERF_OUT=$(realpath -m "$PERF_OUT"); fi
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
ROUNDS_OF_EACH=${ROUNDS:-3}
log() { echo "[bench-import] $*" >&2; }
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
need curl curl
need redis-server redis-server

build_release
setup_run

log "generating $ROWS rows in five formats"
python3 scripts/gen-rows.py "$ROWS" "$TMP"
# The generated files go to the disk now, not while an import is timed: a gigabyte of
# writeback would compete with the server for the same two cores.
sync

PERSONA_ADMIN_KEY="$KEY" "$BIN" --listen 127.0.0.1:0 --data-dir "$TMP/data" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
wait_ready "$TMP/server.log" "$SERVER_PID"

# The CSV file through the example CRM plugin too (issue 5's goal: >= 0.5 x native CSV).
cargo build --locked --profile plugin --target wasm32-wasip2 -p persona-plugin-csv
curl -fsS -X PUT -H "$AUTH" --data-binary @target/wasm32-wasip2/plugin/persona_plugin_csv.wasm \
    "$BASE/v1/plugins/crm?timeout_ms=1000" >/dev/null

# Redis's mass insertion of the same rows into a fresh redis-server; appends its seconds
# to REDIS_SECS and its CPU µs a row to REDIS_CPU. Like every timed run, it starts from
# settled memory (see settle_memory): a process started right after another's exit
# otherwise gets memory the host hands back more cheaply.
REDIS_SECS=""
REDIS_CPU=""
redis_run() { # LABEL
    settle_memory
    start_redis
    log "redis-cli --pipe rows.resp ($1)"
    local s e rcpu0 rcpu1 rsecs
    s=$(date +%s%N)
    rcpu0=$(cpu_ticks "$REDIS_PID")
    redis-cli -p "$RPORT" --pipe <"$TMP/rows.resp" >/dev/null
    e=$(date +%s%N)
    rcpu1=$(cpu_ticks "$REDIS_PID")
    kill "$REDIS_PID"; wait "$REDIS_PID" || true; REDIS_PID=""
    rsecs=$(seconds "$s" "$e")
    log "redis: $rsecs s"
    REDIS_SECS="$REDIS_SECS $rsecs"
    REDIS_CPU="$REDIS_CPU $(awk -v a="$rcpu0" -v b="$rcpu1" \
        -v hz="$(getconf CLK_TCK)" -v n="$ROWS" 'BEGIN {printf "%.2f", (b - a) / hz * 1e6 / n}')"
}

FORMATS=${FORMATS:-csv csv-long json ndjson csv-plugin}
declare -A SECS_OF CPU_OF
if [ -n "${PERF_OUT:-}" ]; then
    need perf linux-perf
    perf record -F 499 --call-graph "${PERF_CALLGRAPH:-fp}" -a -o "$PERF_OUT" 2>"$TMP/perf.err" &
    PERF_PID=$!
fi
# Rounds interleave the contenders (Redis, then each format), so that a slow spell of this
# shared machine lands on all of them, and every figure is a median over the rounds.
for round in $(seq "$ROUNDS_OF_EACH"); do
    redis_run "round $round"
    for format in $FORMATS; do
        db="bench_${format//-/_}_$round"
        bench_db "$db"
        query="format=$format"
        case $format in
            csv-plugin) file=rows.csv; query="format=csv&plugin=crm" ;;
            csv) file=rows.csv ;;
            csv-atomic) file=rows.csv; query="format=csv&atomic=true" ;;
            csv-update) file=rows.csv; query="format=csv" ;;
            csv-long) file=rows-long.csv ;;
            json) file=rows.json ;;
            ndjson) file=rows.ndjson ;;
        esac
        if [ "$format" = csv-update ]; then
            # The same rows once more, timed: every row changes a profile that exists.
            log "importing $file first, untimed"
            curl -fsS -X POST -H "$AUTH" --data-binary "@$TMP/$file" \
                "$BASE/v1/databases/$db/imports?$query&wait=true" >/dev/null
        fi
        log "round $round: importing $file ($(du -h "$TMP/$file" | cut -f1)) as $format"
        settle_memory
        timed_import "$db" "$query" "$TMP/$file"
        accepted=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["rows_accepted"], j["rows_rejected"], j["status"])' "$TMP/job.json")
        log "$format: $SECS s, $CPU_US µs/row, accepted/rejected/status: $accepted"
        if [ "${accepted##* }" != "done" ]; then
            # A failed job's rate means nothing (a full disk fails writes, for one).
            log "the $format import did not finish: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"])' "$TMP/job.json")"
            exit 1
        fi
        SECS_OF[$format]="${SECS_OF[$format]:-} $SECS"
        CPU_OF[$format]="${CPU_OF[$format]:-} $CPU_US"
        # Each round's databases go once measured: the peak RSS stays that of one round.
        curl -fsS -X DELETE -H "$AUTH" "$BASE/v1/databases/$db" >/dev/null
    done
done
PEAK=$(awk '/VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
if [ -n "${PERF_PID:-}" ]; then
    kill -INT "$PERF_PID"; wait "$PERF_PID" || true; PERF_PID=""
    log "perf profile of the server over the imports: $PERF_OUT"
fi
kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# Each round's rate, in round order.
rates() { for x in $1; do per_second "$ROWS" "$x"; echo; done | paste -sd' ' | sed 's/ / · /g'; }
echo
echo "### import of $ROWS rows x 10 fields over HTTP (wait=true, fsync every_second), 2 cores, medians of $ROUNDS_OF_EACH rounds"
echo
rsecs=$(echo "$REDIS_SECS" | median)
rrate=$(per_second "$ROWS" "$rsecs")
echo "| input | median seconds | rows/s (median) | / Redis --pipe (median) | server CPU µs/row (median) | rows/s, each round |"
echo "|---|---:|---:|---:|---:|---|"
for format in $FORMATS; do
    secs=$(echo "${SECS_OF[$format]}" | median)
    rate=$(per_second "$ROWS" "$secs")
    echo "| Persona $format | $secs | $rate | $(awk -v a="$rate" -v b="$rrate" 'BEGIN {printf "%.2f", a/b}') | $(echo "${CPU_OF[$format]}" | median) | $(rates "${SECS_OF[$format]}") |"
done
echo "| Redis HSET via redis-cli --pipe | $rsecs | $rrate | 1.00 | $(echo "$REDIS_CPU" | median) | $(rates "$REDIS_SECS") |"
echo
echo "- Persona peak RSS over the imports (a round: $(echo $FORMATS | wc -w) databases of $ROWS profiles, each deleted once measured): $((PEAK / 1024)) MiB"
