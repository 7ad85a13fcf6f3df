#!/usr/bin/env bash
# Load test of the lookup path over HTTP, against the release binary on 127.0.0.1.
#
# Starts persona with --bench-routes true in a temporary data directory, creates the
# database `bench` with the fields `loyalty_score` (integer) and `tier` (string), loads
# PROFILES profiles (ids c0..c{PROFILES-1}, ten fields each, the shape of
# benches/common/mod.rs) by driving wrk with a Lua script of PUTs, then measures for
# DURATION seconds each at 50 connections and 2 threads:
#   (a) GET /v1/databases/bench/profiles/{random id}   (a Lua request() per request)
#   (b) GET /v1/databases/bench/ceiling?bytes=<median document size>   (static request)
#   (c) the same ceiling, driven by a Lua request() doing what (a)'s does
# The ceiling answers a constant body through the same auth, database check and
# middleware, so lookups/ceiling is how close lookups come to the server's HTTP ceiling.
# On a small machine wrk shares the cores with the server and its Lua costs show: (c)
# gives the like-for-like ratio, (b) the ceiling with the cheapest client.
# Then the issue's reference point, in the same run: examples/bare_map.rs, a bare
# actix-web server with PROFILES pre-serialized bodies of the median size in a DashMap
# (no auth, no middleware), driven by the same Lua client:
#   (d) GET /p/{random id}   (e) GET /constant
# d/e is how close a lookup of ready bytes comes to a constant body on this machine.
#
# Usage: PROFILES=1000000 DURATION=10 ROUNDS=4 bash scripts/load-lookup.sh
# Env: PROFILES (1000000), DURATION (10 s a route a round), ROUNDS (4), LOAD_CAP (300 s, wrk's cap on loading),
#      LOAD_THREADS (2), LOAD_CONNECTIONS (128), PERF_OUT (unset: no profiles; see below).
# Installs wrk with apt-get if it is missing. Every request goes to 127.0.0.1.

set -euo pipefail

PROFILES=${PROFILES:-1000000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-4}
LOAD_CAP=${LOAD_CAP:-300}
LOAD_THREADS=${LOAD_THREADS:-2}
LOAD_CONNECTIONS=${LOAD_CONNECTIONS:-128}
CONNECTIONS=50
THREADS=2

# Relative to where the script was started, before the cd below.
if [ -n "${PERF_OUT:-}" ]; then PERF_OUT=$(realpath -m "$PERF_OUT"); fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[load-lookup] %s\n' "$*" >&2; }

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
need wrk wrk

build_release
cargo build --release --quiet --example bare_map
setup_run

# Port 0: the kernel picks a free port; the server logs the address it bound.
PERSONA_ADMIN_KEY="$KEY" "$BIN" --listen 127.0.0.1:0 --data-dir "$TMP/data" \
    --bench-routes true --log-level info >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

wait_ready "$TMP/server.log" "$SERVER_PID"
log "server pid $SERVER_PID on $BASE"

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
# The server's user + system CPU time in clock ticks: per request, it is the measure the
# shared cores disturb least (wrk's own CPU is not in it).
cpu_ticks() { awk '{print $14 + $15}' "/proc/${PID_OF_RUN:-$SERVER_PID}/stat"; }
TICK_US=$(awk -v t="$(getconf CLK_TCK)" 'BEGIN {print 1000000 / t}')
RSS_EMPTY=$(rss_kib)

api() { # METHOD PATH [BODY]
    local args=(-fsS -X "$1" -H "$AUTH" -H 'Content-Type: application/json')
    if [ $# -ge 3 ]; then args+=(--data "$3"); fi
    curl "${args[@]}" "$BASE$2"
}
api POST /v1/databases '{"name":"bench","consent_confirmed":true,"default_region":"PT"}' >/dev/null
api POST /v1/databases/bench/fields '{"name":"loyalty_score","type":"integer"}' >/dev/null
api POST /v1/databases/bench/fields '{"name":"tier","type":"string"}' >/dev/null

profile_count() {
    curl -fsS "$BASE/metrics" | awk '/^persona_profiles\{database="bench"\}/ {print $2}'
}

# --- load ------------------------------------------------------------------------------
cat >"$TMP/load.lua" <<'LUA'
-- PUTs profiles c{first}..c{last-1}; each thread its own range. Once a thread's ids are
-- all sent, its connections ask for /healthz until every PUT has answered, then the
-- thread stops. (wrk's main thread sleeps for -d regardless; the shell interrupts it.)
-- wrk calls thread 0's request() once after init() only to count the requests in the
-- string (script_verify_request); that call must not use up an id.
local FIRST = {"Ana","Beatriz","Carla","Diana","Eva","Filipa","Joana","Lara","Marta","Sofia",
  "Andre","Bruno","Carlos","Daniel","Eduardo","Francisco","Joao","Luis","Miguel","Tiago"}
local LAST = {"Silva","Santos","Ferreira","Pereira","Oliveira","Costa","Rodrigues","Martins",
  "Jesus","Sousa","Fernandes","Goncalves","Gomes","Lopes","Marques","Alves","Almeida",
  "Ribeiro","Pinto","Carvalho"}
local PLACES = {{"PT","Lisbon"},{"PT","Porto"},{"PT","Braga"},{"PT","Coimbra"},
  {"ES","Madrid"},{"ES","Barcelona"},{"FR","Paris"},{"DE","Berlin"},{"GB","London"},
  {"BR","Sao Paulo"}}
local TIERS = {"bronze","silver","gold","platinum"}
local PREFIX = {1, 2, 3, 6}
local floor = math.floor

local nthreads = 0
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end

function init(args)
  local total, threads = tonumber(args[1]), tonumber(args[2])
  local per = math.ceil(total / threads)
  first = tid * per
  last = math.min(total, first + per)
  nxt, answered, failed = first, 0, 0
  verify_call = (tid == 0)
  -- wrk.format uses either the given headers or wrk.headers (which hold -H): merge.
  put_headers = {["Content-Type"] = "application/json"}
  for k, v in pairs(wrk.headers) do put_headers[k] = v end
end

local function body(i)
  -- Knuth's multiplicative hash; exact in doubles for i < 2^21 * 2^11.
  local h = (i * 2654435761) % 4294967296
  local f, l = FIRST[h % 20 + 1], LAST[floor(h / 20) % 20 + 1]
  local place = PLACES[floor(h / 400) % 10 + 1]
  local phone = string.format("+3519%d%07d", PREFIX[floor(i / 10000000) % 4 + 1], i % 10000000)
  return string.format(
    '{"fields":{"first_name":"%s","last_name":"%s","email":"%s.%s.%d@example.com",' ..
    '"phone":"%s","birth_date":"%04d-%02d-%02d","country":"%s","city":"%s",' ..
    '"registered_at":"%s","loyalty_score":%d,"tier":"%s"}}',
    f, l, f:lower(), l:lower(), i, phone,
    1950 + h % 55, 1 + floor(h / 55) % 12, 1 + floor(h / 660) % 28,
    place[1], place[2], os.date("!%Y-%m-%dT%H:%M:%SZ", 1577836800 + h % 157766400),
    floor(h / 7) % 10000, TIERS[floor(h / 3) % 4 + 1])
end

function request()
  if verify_call then
    verify_call = false
    return wrk.format("PUT", "/v1/databases/bench/profiles/c" .. first, put_headers, body(first))
  end
  if nxt < last then
    local i = nxt
    nxt = nxt + 1
    return wrk.format("PUT", "/v1/databases/bench/profiles/c" .. i, put_headers, body(i))
  end
  return wrk.format("GET", "/healthz")
end

function response(status, headers, body)
  if body:sub(1, 12) ~= '{"status":"o' then -- not a /healthz filler: a PUT's answer
    answered = answered + 1
    if status ~= 200 then
      failed = failed + 1
      if failed <= 3 then io.stderr:write("PUT failed: " .. status .. " " .. body .. "\n") end
    end
  end
  if answered >= last - first then wrk.thread:stop() end
end
LUA

log "loading $PROFILES profiles (wrk -t$LOAD_THREADS -c$LOAD_CONNECTIONS, capped at ${LOAD_CAP}s)"
LOAD_START=$(date +%s.%N)
wrk -t"$LOAD_THREADS" -c"$LOAD_CONNECTIONS" -d"${LOAD_CAP}s" --timeout 30s -H "$AUTH" \
    -s "$TMP/load.lua" "$BASE" -- "$PROFILES" "$LOAD_THREADS" >"$TMP/load.out" 2>&1 &
WRK_PID=$!
COUNT=0
while kill -0 "$WRK_PID" 2>/dev/null; do
    COUNT=$(profile_count || echo 0)
    [ "${COUNT:-0}" -ge "$PROFILES" ] && break
    sleep 0.5
done
# wrk's main thread sleeps out -d even when every thread has stopped; SIGINT ends it.
if kill -0 "$WRK_PID" 2>/dev/null; then
    sleep 0.5
    kill -INT "$WRK_PID" 2>/dev/null || true
fi
wait "$WRK_PID" || true
WRK_PID=""
LOAD_SECS=$(awk -v a="$(date +%s.%N)" -v b="$LOAD_START" 'BEGIN {print a - b}')
grep -E 'PUT failed|Non-2xx|Socket errors' "$TMP/load.out" >&2 || true

COUNT=$(profile_count)
if [ "$COUNT" -ne "$PROFILES" ]; then
    log "expected $PROFILES profiles, the server holds $COUNT"
    cat "$TMP/load.out" >&2
    exit 1
fi
LOAD_RATE=$(awk -v n="$PROFILES" -v s="$LOAD_SECS" 'BEGIN {printf "%.0f", n / s}')
log "loaded $COUNT profiles in $(printf '%.1f' "$LOAD_SECS") s ($LOAD_RATE PUT/s)"

sleep 1 # let the allocator settle after the writes
RSS_LOADED=$(rss_kib)

# Median document size over 101 evenly spaced profiles.
MEDIAN_BYTES=$(
    for k in $(seq 0 100); do
        i=$(( k * (PROFILES - 1) / 100 ))
        curl -fsS -H "$AUTH" "$BASE/v1/databases/bench/profiles/c$i" | wc -c
    done | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
)
log "median document: $MEDIAN_BYTES bytes"

# The bare map holds its own copy of the bodies (PROFILES x MEDIAN_BYTES); it idles while
# persona's routes run and the other way round.
target/release/examples/bare_map "$PROFILES" "$MEDIAN_BYTES" >"$TMP/bare.log" 2>&1 &
BARE_PID=$!
BARE=""
for _ in $(seq 1 1200); do
    BARE=$(grep -oE '127\.0\.0\.1:[0-9]+' "$TMP/bare.log" | head -n1 || true)
    if [ -n "$BARE" ]; then BARE="http://$BARE"; break; fi
    kill -0 "$BARE_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$BARE" ] || { log "bare_map did not start:"; cat "$TMP/bare.log" >&2; exit 1; }
log "bare map pid $BARE_PID on $BARE"

# --- measure ---------------------------------------------------------------------------
cat >"$TMP/lookup.lua" <<LUA
local n = $PROFILES
local t = 0
function setup(thread) thread:set("tid", t); t = t + 1 end
function init(args) math.randomseed(os.time() * 1000 + tid * 7919) end
function request()
  return wrk.format("GET", "/v1/databases/bench/profiles/c" .. math.random(0, n - 1))
end
LUA

run_wrk() { # NAME ROUND URL [wrk args...]
    local name=$1 round=$2 url=$3
    shift 3
    log "round $round: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency: $name"
    local c0 c1
    c0=$(cpu_ticks)
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "$AUTH" "$@" "$url" \
        >"$TMP/$name.$round.out" 2>&1
    c1=$(cpu_ticks)
    awk -v c=$((c1 - c0)) -v t="$TICK_US" '/ requests in / {printf "%.2f\n", c * t / $1}' \
        "$TMP/$name.$round.out" >"$TMP/$name.$round.cpu"
    if grep -qE 'Non-2xx|Socket errors' "$TMP/$name.$round.out"; then
        log "$name had errors:"
        grep -E 'Non-2xx|Socket errors' "$TMP/$name.$round.out" >&2
    fi
}
cat >"$TMP/ceiling.lua" <<LUA
-- The ceiling with lookup.lua's client work: draw a random id, format a request.
local n = $PROFILES
local t = 0
function setup(thread) thread:set("tid", t); t = t + 1 end
function init(args) math.randomseed(os.time() * 1000 + tid * 7919) end
function request()
  local unused = "c" .. math.random(0, n - 1)
  return wrk.format("GET", "/v1/databases/bench/ceiling?bytes=$MEDIAN_BYTES")
end
LUA

for route in map constant; do
    cat >"$TMP/bare_$route.lua" <<LUA
-- (d) and (e): lookup.lua's client work against the bare map.
local n = $PROFILES
local t = 0
function setup(thread) thread:set("tid", t); t = t + 1 end
function init(args) math.randomseed(os.time() * 1000 + tid * 7919) end
function request()
  local path = "/p/c" .. math.random(0, n - 1)
  if "$route" == "constant" then path = "/constant" end
  return wrk.format("GET", path)
end
LUA
done

# The machine is shared and noisy: the routes take turns for ROUNDS rounds, and the
# table reports medians, with the ratio taken within each round.
for round in $(seq 1 "$ROUNDS"); do
    run_wrk lookup "$round" "$BASE" -s "$TMP/lookup.lua"
    run_wrk ceiling "$round" "$BASE/v1/databases/bench/ceiling?bytes=$MEDIAN_BYTES"
    run_wrk ceiling_lua "$round" "$BASE" -s "$TMP/ceiling.lua"
    PID_OF_RUN=$BARE_PID run_wrk bare "$round" "$BARE" -s "$TMP/bare_map.lua"
    PID_OF_RUN=$BARE_PID run_wrk bare_constant "$round" "$BARE" -s "$TMP/bare_constant.lua"
done
RSS_AFTER=$(rss_kib)

# With PERF_OUT set: one more lookup run and one more ceiling run, each under `perf
# record` of the server alone, into $PERF_OUT.lookup and $PERF_OUT.ceiling (compare them
# with `perf report --no-children -i ...`). Not in the table: perf's sampling costs CPU.
if [ -n "${PERF_OUT:-}" ]; then
    need perf linux-perf
    for route in lookup ceiling; do
        perf record -F 1999 -e cpu-clock -p "$SERVER_PID" -o "$PERF_OUT.$route" \
            -- sleep "$DURATION" 2>"$TMP/perf.$route.err" &
        PERF_PID=$!
        if [ "$route" = lookup ]; then
            run_wrk perf_lookup 0 "$BASE" -s "$TMP/lookup.lua"
        else
            run_wrk perf_ceiling 0 "$BASE/v1/databases/bench/ceiling?bytes=$MEDIAN_BYTES"
        fi
        if wait "$PERF_PID" && [ -s "$PERF_OUT.$route" ]; then
            log "perf profile of the server under $route: $PERF_OUT.$route"
        else
            log "perf record failed under $route:"
            cat "$TMP/perf.$route.err" >&2
        fi
        PERF_PID=""
    done
fi

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
rps_of() { awk '/^Requests\/sec:/ {print $2}' "$TMP/$1.$2.out"; }
# wrk prints latencies with units; normalize to microseconds for the median.
pct_of() { awk -v p="$3%" '$1 == p {v = $2; u = v; gsub(/[0-9.]/, "", u); gsub(/[a-z]/, "", v);
    f = (u == "ms") ? 1000 : (u == "s") ? 1000000 : 1; print v * f; exit}' "$TMP/$1.$2.out"; }
med_rps() { for r in $(seq 1 "$ROUNDS"); do rps_of "$1" "$r"; done | median; }
med_pct() { for r in $(seq 1 "$ROUNDS"); do pct_of "$1" "$r" "$2"; done | median; }
ratios() { for r in $(seq 1 "$ROUNDS"); do # [OF] OVER: OF (lookup) over OVER, per round
    local of=lookup over=$1
    if [ $# -ge 2 ]; then of=$1 over=$2; fi
    awk -v a="$(rps_of "$of" "$r")" -v b="$(rps_of "$over" "$r")" 'BEGIN {printf "%.3f\n", a / b}'; done; }
fmt_us() { awk -v u="$1" 'BEGIN {if (u >= 1000) printf "%.2f ms", u / 1000; else printf "%.0f us", u}'; }
med_cpu() { for r in $(seq 1 "$ROUNDS"); do cat "$TMP/$1.$r.cpu"; done | median; }
row() { printf '| %s | %.0f | %s | %s | %.1f us |\n' "$1" "$(med_rps "$2")" "$(fmt_us "$(med_pct "$2" 50)")" "$(fmt_us "$(med_pct "$2" 99)")" "$(med_cpu "$2")"; }

echo
echo "### persona lookup load ($PROFILES profiles, $ROUNDS rounds of ${DURATION}s a route, wrk -t$THREADS -c$CONNECTIONS, $(nproc) cores; medians)"
echo
echo "| route | requests/s | p50 | p99 | server CPU per request |"
echo "|---|---:|---:|---:|---:|"
row "(a) GET /v1/databases/bench/profiles/{random id}" lookup
row "(b) GET /v1/databases/bench/ceiling?bytes=$MEDIAN_BYTES" ceiling
row "(c) the same ceiling, Lua-driven like (a)" ceiling_lua
row "(d) bare map: GET /p/{random id} (pre-serialized bodies, no auth or middleware)" bare
row "(e) bare map: GET /constant, Lua-driven like (d)" bare_constant
echo
echo "server CPU per request, ceiling/lookup: $(awk -v a="$(med_cpu lookup)" -v b="$(med_cpu ceiling)" 'BEGIN {printf "%.2f", b / a}')"
echo "lookups/ceiling per round: a/b $(ratios ceiling | tr '\n' ' ')(median $(ratios ceiling | median)); a/c $(ratios ceiling_lua | tr '\n' ' ')(median $(ratios ceiling_lua | median))"
echo "bare map/its constant per round: d/e $(ratios bare bare_constant | tr '\n' ' ')(median $(ratios bare bare_constant | median)); server CPU per request, e/d: $(awk -v a="$(med_cpu bare)" -v b="$(med_cpu bare_constant)" 'BEGIN {printf "%.2f", b / a}')"
echo
awk -v e="$RSS_EMPTY" -v l="$RSS_LOADED" -v a="$RSS_AFTER" -v n="$PROFILES" \
    -v m="$MEDIAN_BYTES" -v s="$LOAD_SECS" -v r="$LOAD_RATE" 'BEGIN {
    printf "- load: %d profiles in %.1f s (%s PUT/s)\n", n, s, r
    printf "- server RSS: %.1f MiB empty, %.1f MiB after loading, %.1f MiB after the runs\n", e / 1024, l / 1024, a / 1024
    printf "- RSS per profile: %.0f bytes (%.0f bytes over the empty server)\n", l * 1024 / n, (l - e) * 1024 / n
    printf "- raw data estimate: median document %d bytes x %d = %.1f MiB (RSS is %.2fx that)\n", m, n, m * n / 1048576, l * 1024 / (m * n)
}'
