#!/usr/bin/env bash
# Write throughput over HTTP under each WAL fsync policy, against the release binary on
# 127.0.0.1, and Persona's snapshot write/load beside Redis SAVE and restart.
#
# Part 1, writes: for each policy (never, every_second, always) starts persona in a
# fresh data directory (no snapshots during the run), creates `bench`, and drives wrk
# for DURATION seconds at 1, 16 and 64 connections (one wrk thread; a connection is a
# concurrent writer), each request a PATCH of one field of a random profile among
# 100,000. Prints requests/s, p99 and, from /metrics, WAL records per write(2) and per
# fsync (the group-commit batch).
#
# Part 2, snapshots (SNAPSHOTS=1, the default): runs `cargo bench --bench snapshot`
# (PROFILES profiles) and starts redis-server (Debian's, no persistence configured) with
# the same profiles as hashes, times `SAVE` three times and a restart from its RDB file
# three times ("DB loaded from disk"), and prints medians side by side.
#
# Usage: DURATION=10 bash scripts/bench-durability.sh
# Env: DURATION (10 s a cell), PROFILES (1000000), SNAPSHOTS (1). Installs wrk and
# redis-server with apt-get if missing. Every process it starts is stopped by PID.

set -euo pipefail

DURATION=${DURATION:-10}
PROFILES=${PROFILES:-1000000}
SNAPSHOTS=${SNAPSHOTS:-1}
IDS=100000

cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { printf '[bench-durability] %s\n' "$*" >&2; }

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need wrk wrk

build_release
setup_run

start_server() { # POLICY
    rm -rf "$TMP/data"
    PERSONA_ADMIN_KEY="$KEY" "$BIN" --listen 127.0.0.1:0 --data-dir "$TMP/data" \
        --fsync "$1" --snapshot-after 0 --snapshot-interval 1h >"$TMP/server.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "$TMP/server.log" "$SERVER_PID"
    curl -fsS -X POST -H "$AUTH" -H 'Content-Type: application/json' "$BASE/v1/databases" \
        --data '{"name":"bench","consent_confirmed":true}' >/dev/null
}

stop_server() {
    kill "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=""
}

metric() { # NAME
    curl -fsS "$BASE/metrics" | awk -v m="$1" '$1 == m {print $2}' | head -n1
}

cat >"$TMP/patch.lua" <<LUA
local auth = "Bearer $KEY"
math.randomseed(os.time())
request = function()
    local id = math.random(0, $IDS - 1)
    local body = '{"fields":{"city":"City ' .. math.random(0, 999999) .. '"}}'
    return wrk.format("PATCH", "/v1/databases/bench/profiles/c" .. id,
        {["Authorization"] = auth, ["Content-Type"] = "application/json"}, body)
end
LUA

printf '\n%-13s %6s %12s %10s %16s %16s\n' policy writers "writes/s" "p99 ms" "records/write(2)" "records/fsync"
for policy in never every_second always; do
    start_server "$policy"
    # Warm: every id exists, so each measured PATCH updates one.
    wrk -t1 -c16 -d3s -s "$TMP/patch.lua" "$BASE" >/dev/null 2>&1 || true
    for c in 1 16 64; do
        r0=$(metric persona_wal_records_total); w0=$(metric persona_wal_writes_total)
        f0=$(metric persona_wal_fsyncs_total)
        out=$(wrk -t1 -c"$c" -d"${DURATION}s" --latency -s "$TMP/patch.lua" "$BASE")
        r1=$(metric persona_wal_records_total); w1=$(metric persona_wal_writes_total)
        f1=$(metric persona_wal_fsyncs_total)
        rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}' <<<"$out")
        non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
        [ -z "$non2xx" ] || log "$policy c=$c: $non2xx answers were not 2xx"
        per_write=$(awk -v a="${r0:-0}" -v b="${r1:-0}" -v x="${w0:-0}" -v y="${w1:-0}" 'BEGIN {d=y-x; if (d>0) printf "%.1f", (b-a)/d; else print "-"}')
        per_fsync=$(awk -v a="${r0:-0}" -v b="${r1:-0}" -v x="${f0:-0}" -v y="${f1:-0}" 'BEGIN {d=y-x; if (d>0) printf "%.1f", (b-a)/d; else print "-"}')
        printf '%-13s %6s %12s %10s %16s %16s\n' "$policy" "$c" "$rps" "$p99" "$per_write" "$per_fsync"
    done
    stop_server
done

[ "$SNAPSHOTS" = "1" ] || exit 0

# --- snapshots: Persona ------------------------------------------------------------------
log "cargo bench --bench snapshot (PROFILES=$PROFILES)"
PROFILES=$PROFILES cargo bench --bench snapshot 2>&1 | tee "$TMP/bench.log" \
    | grep -E 'snapshot/(write|load) +time:|snapshot/pause|bytes a profile' >&2 || true
median_s() { # criterion's "time: [low median high]" line for NAME, in seconds
    awk -v n="$1" '$1 == n && $2 == "time:" {v=$5; u=$6; if (u=="ms") v/=1000; if (u=="µs") v/=1e6; print v}' "$TMP/bench.log"
}
P_WRITE=$(median_s snapshot/write)
P_LOAD=$(median_s snapshot/load)

# --- snapshots: Redis --------------------------------------------------------------------
need redis-server redis-server
python3 - "$PROFILES" >"$TMP/data.resp" <<'PY'
import sys
# The ten fields of benches/common/mod.rs (same names, similar values) as a hash each.
F = ["Ana","Beatriz","Carla","Diana","Eva","Filipa","Joana","Lara","Marta","Sofia",
     "Andre","Bruno","Carlos","Daniel","Eduardo","Francisco","Joao","Luis","Miguel","Tiago"]
L = ["Silva","Santos","Ferreira","Pereira","Oliveira","Costa","Rodrigues","Martins","Jesus","Sousa"]
C = [("PT","Lisboa"),("PT","Porto"),("ES","Madrid"),("FR","Paris"),("PT","Braga")]
T = ["bronze","silver","gold","platinum"]
out = sys.stdout.buffer
def cmd(args):
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode(); parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)
for i in range(int(sys.argv[1])):
    h = (i * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    f, l, c = F[i % 20], L[(i // 20) % 10], C[(h >> 16) % 5]
    out.write(cmd(["HSET", "c%08d" % i, "first_name", f, "last_name", l,
        "email", "%s.%s.%d@example.com" % (f.lower(), l.lower(), i),
        "phone", "+3519%d%07d" % ([1, 2, 3, 6][(i // 10000000) % 4], i % 10000000),
        "birth_date", "%04d-%02d-%02d" % (1950 + (h >> 24) % 55, 1 + (h >> 32) % 12, 1 + (h >> 40) % 28),
        "country", c[0], "city", c[1], "registered_at", "2023-05-0%dT10:11:12Z" % (1 + h % 9),
        "loyalty_score", str((h >> 48) % 10000), "tier", T[(h >> 44) % 4]]))
PY
RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_redis() {
    redis-server --bind 127.0.0.1 --port "$RPORT" --save "" --appendonly no --dir "$TMP" \
        --dbfilename dump.rdb --logfile "$TMP/redis.log" &
    REDIS_PID=$!
    until [ "$(redis-cli -p "$RPORT" ping 2>/dev/null)" = "PONG" ]; do sleep 0.01; done
}
stop_redis() {
    kill "$REDIS_PID"; wait "$REDIS_PID" || true; REDIS_PID=""
}
: >"$TMP/redis.log"
start_redis
redis-cli -p "$RPORT" --pipe <"$TMP/data.resp" >/dev/null
saves=()
for _ in 1 2 3; do
    s=$(date +%s%N); redis-cli -p "$RPORT" SAVE >/dev/null; e=$(date +%s%N)
    saves+=("$(awk -v a="$s" -v b="$e" 'BEGIN {printf "%.3f", (b-a)/1e9}')")
done
stop_redis
loads=()
for _ in 1 2 3; do
    : >"$TMP/redis.log"
    start_redis
    loads+=("$(grep -oE 'DB loaded from disk: [0-9.]+' "$TMP/redis.log" | awk '{print $NF}')")
    stop_redis
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
R_SAVE=$(med "${saves[@]}")
R_LOAD=$(med "${loads[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
printf '\n%-28s %12s %12s %22s\n' "snapshot, $PROFILES profiles" "Persona s" "Redis s" "Redis / Persona"
printf '%-28s %12s %12s %22s\n' "write (SAVE)" "$P_WRITE" "$R_SAVE" "$(ratio "$R_SAVE" "$P_WRITE")"
printf '%-28s %12s %12s %22s\n' "load (restart)" "$P_LOAD" "$R_LOAD" "$(ratio "$R_LOAD" "$P_LOAD")"
