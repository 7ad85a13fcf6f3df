# Shell helpers the bench scripts source: installing a tool, waiting for a server.
# Needs `log` defined by the caller.

# Installs PACKAGE with apt-get if COMMAND is missing.
need() { # COMMAND PACKAGE
    if ! command -v "$1" >/dev/null 2>&1; then
        log "installing $2"
        local sudo=""
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq "$2" >/dev/null
    fi
}

# Sets BASE to the address a persona server logged, once /readyz answers 200 (30 s at
# most); exits with the log's tail if the server dies or never gets ready.
wait_ready() { # LOG PID
    BASE=""
    for _ in $(seq 1 300); do
        BASE=$(grep -oE 'http://127\.0\.0\.1:[0-9]+' "$1" | head -n1 || true)
        if [ -n "$BASE" ] && curl -fsS "$BASE/readyz" >/dev/null 2>&1; then return 0; fi
        if ! kill -0 "$2" 2>/dev/null; then break; fi
        BASE=""
        sleep 0.1
    done
    log "the server did not get ready:"
    tail -n 5 "$1" >&2
    exit 1
}

# Builds the release binary and sets BIN to it (or takes PERSONA_BIN's).
build_release() {
    # PERSONA_BIN: a binary built earlier (another commit's, to compare two in turn).
    if [ -n "${PERSONA_BIN:-}" ]; then
        BIN=$(realpath "$PERSONA_BIN")
        log "using $BIN"
        return
    fi
    log "cargo build --release"
    cargo build --release --quiet
    BIN=target/release/persona
}

# Makes TMP and a fresh admin key (KEY, and AUTH as a header). On exit, stops whichever
# of WRK_PID, PERF_PID, SERVER_PID, REDIS_PID and BARE_PID still runs, shows the server log's tail after a
# failure, and removes TMP.
setup_run() {
    TMP=$(mktemp -d)
    SERVER_PID=""
    REDIS_PID=""
    WRK_PID=""
    PERF_PID=""
    KEY="pk_$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    AUTH="Authorization: Bearer $KEY"
    trap cleanup_run EXIT
    trap 'exit 130' INT TERM
}

cleanup_run() {
    local rc=$?
    for pid in $WRK_PID ${PERF_PID:-} $SERVER_PID $REDIS_PID ${BARE_PID:-}; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if [ "$rc" -ne 0 ] && [ -f "$TMP/server.log" ]; then
        log "failed (exit $rc); last server log lines:"
        tail -n 20 "$TMP/server.log" >&2 || true
    fi
    rm -rf "$TMP"
    exit "$rc"
}

# Starts redis-server on a free loopback port without persistence; sets RPORT and
# REDIS_PID (stopped by cleanup_run) and returns once it answers PING.
start_redis() {
    RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    redis-server --bind 127.0.0.1 --port "$RPORT" --save "" --appendonly no --dir "$TMP" \
        --logfile "$TMP/redis.log" &
    REDIS_PID=$!
    until [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = "PONG" ]; do sleep 0.01; done
}

# CPU time a process has used, every thread's, user and system, in clock ticks.
cpu_ticks() { # PID
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# Seconds between two `date +%s%N` readings, to the millisecond.
seconds() { # START END
    awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b-a)/1e9}'
}

# COUNT per SECONDS, rounded.
per_second() { # COUNT SECONDS
    awk -v n="$1" -v t="$2" 'BEGIN {printf "%.0f", n/t}'
}

# Creates database DB with the import benches' two custom fields (benches/common's
# shape: loyalty_score and tier besides the default fields). Needs BASE and AUTH.
bench_db() { # DB
    curl -fsS -X POST -H "$AUTH" -H 'Content-Type: application/json' "$BASE/v1/databases" \
        --data "{\"name\":\"$1\",\"consent_confirmed\":true}" >/dev/null
    curl -fsS -X POST -H "$AUTH" -H 'Content-Type: application/json' "$BASE/v1/databases/$1/fields" \
        --data '{"name":"loyalty_score","type":"integer"}' >/dev/null
    curl -fsS -X POST -H "$AUTH" -H 'Content-Type: application/json' "$BASE/v1/databases/$1/fields" \
        --data '{"name":"tier","type":"string"}' >/dev/null
}

# Puts the machine's memory in the same state before every timed run, so that no
# contender gains from the run before it (SETTLE: warm, the default, or cold). This VM's
# balloon device has free page reporting: memory freed for a few seconds is handed back
# to the host, and touching it again faults on the host, where the kernel zeroed fresh
# pages at ~0.6 GB/s. A process started right after another's exit took the memory just
# freed instead and ran up to a quarter faster (1M-row CSV imports: 2.73-2.86 s warm
# against 3.40-3.62 s cold, alternating). warm: 3 GiB touched and freed just before;
# cold: 10 s of rest.
settle_memory() {
    case "${SETTLE:-warm}" in
        warm) python3 -c 'b = bytearray(3 << 30); b[::4096] = b"\x01" * len(b[::4096])' ;;
        cold) sleep 10 ;;
        *) log "SETTLE is warm or cold"; exit 2 ;;
    esac
}

# Imports FILE into DB with QUERY and wait=true, timed from the first byte sent until the
# job is done; the job goes to $TMP/job.json, the seconds to SECS and the server's CPU
# time a row (every thread's, from /proc: what the machine's noise moves least, where
# wall time moves with whatever else the shared cores run) to CPU_US, for ROWS rows.
# Needs BASE, AUTH, TMP and SERVER_PID.
timed_import() { # DB QUERY FILE
    local cpu0 cpu1 s e
    cpu0=$(cpu_ticks "$SERVER_PID")
    s=$(date +%s%N)
    curl -fsS -X POST -H "$AUTH" --data-binary "@$3" \
        "$BASE/v1/databases/$1/imports?$2&wait=true" >"$TMP/job.json"
    e=$(date +%s%N)
    cpu1=$(cpu_ticks "$SERVER_PID")
    SECS=$(seconds "$s" "$e")
    CPU_US=$(awk -v a="$cpu0" -v b="$cpu1" -v hz="$(getconf CLK_TCK)" -v n="$ROWS" \
        'BEGIN {printf "%.2f", (b - a) / hz * 1e6 / n}')
}
