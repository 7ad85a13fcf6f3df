#!/usr/bin/env bash
# Two (or more) persona binaries taking turns at the same import, for telling a change's
# effect from this machine's noise: wall time here moves by up to 40 % between
# back-to-back runs of one binary, so only runs in turn, compared at the median, say
# anything.
#
# Generates ROWS profiles once (scripts/gen-rows.py), then for each round runs every
# binary in turn (in reverse order every other round, so use an even ROUNDS): a fresh
# server on 127.0.0.1 and a fresh data directory, the import of one file with `curl
# --data-binary` and `wait=true` into a new database (as bench-import.sh does), timed
# from the first byte to the finished job, with the server's CPU time (every thread's,
# from /proc); then the server is stopped by its PID. Prints each run and, per binary,
# the median rows/s and CPU µs a row.
#
# Usage: bash scripts/ab-import.sh BIN_A BIN_B [BIN...]
#   (binaries built from the commits to compare, e.g. `git worktree add /tmp/old REV`
#   and `cargo build --release` there, then copy target/release/persona aside)
# Env: ROWS (1000000), ROUNDS (4), FORMAT (csv: csv, csv-long, json or ndjson), SETTLE
# (warm: the memory state every run starts from, see lib.sh's settle_memory).
set -euo pipefail
cd "$(dirname "$0")/.."

ROWS=${ROWS:-1000000}
ROUNDS=${ROUNDS:-4}
FORMAT=${FORMAT:-csv}
log() { echo "[ab-import] $*" >&2; }
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
need curl curl
if [ "$#" -lt 2 ]; then
    log "usage: bash scripts/ab-import.sh BIN_A BIN_B [BIN...]"
    exit 2
fi
BINS=()
for b in "$@"; do BINS+=("$(realpath "$b")"); done
case $FORMAT in
    csv) file=rows.csv ;;
    csv-long) file=rows-long.csv ;;
    json) file=rows.json ;;
    ndjson) file=rows.ndjson ;;
    *) log "FORMAT is csv, csv-long, json or ndjson"; exit 2 ;;
esac
setup_run

log "generating $ROWS rows"
python3 scripts/gen-rows.py "$ROWS" "$TMP"
rm -f "$TMP/rows.resp"
# On the disk before anything is timed (see bench-import.sh).
sync

# One import by binary $1 into a fresh server; sets SECS and CPU_US (µs a row). Not run in
# a subshell, so that the exit trap knows the server's PID.
run_one() {
    rm -rf "$TMP/data"
    settle_memory
    PERSONA_ADMIN_KEY="$KEY" "$1" --listen 127.0.0.1:0 --data-dir "$TMP/data" \
        >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "$TMP/server.log" "$SERVER_PID"
    bench_db ab
    timed_import ab "format=$FORMAT" "$TMP/$file"
    local status
    status=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["status"])' "$TMP/job.json")
    kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""
    if [ "$status" != done ]; then
        log "the import did not finish: $(cat "$TMP/job.json")"
        exit 1
    fi
}

declare -A RATES CPUS
# Every other round runs the binaries in reverse order: here a server started right
# after another ran faster than the one before it (the host hands back memory the last
# process freed more cheaply than memory left idle), which favoured whichever binary
# ran later in every round.
ORDER=("${!BINS[@]}")
REVERSED=()
for ((j = ${#BINS[@]} - 1; j >= 0; j--)); do REVERSED+=("$j"); done
for round in $(seq "$ROUNDS"); do
    if ((round % 2)); then turn=("${ORDER[@]}"); else turn=("${REVERSED[@]}"); fi
    for i in "${turn[@]}"; do
        run_one "${BINS[$i]}"
        rate=$(per_second "$ROWS" "$SECS")
        log "round $round, ${BINS[$i]}: $SECS s, $rate rows/s, $CPU_US µs/row"
        RATES[$i]="${RATES[$i]:-} $rate"
        CPUS[$i]="${CPUS[$i]:-} $CPU_US"
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo
echo "### $FORMAT import of $ROWS rows, binaries in turn, $ROUNDS rounds"
echo
echo "| binary | rows/s, each run | median rows/s | median CPU µs/row |"
echo "|---|---|---:|---:|"
for i in "${!BINS[@]}"; do
    echo "| ${BINS[$i]} |${RATES[$i]} | $(median <<<"${RATES[$i]}") | $(median <<<"${CPUS[$i]}") |"
done
