#!/usr/bin/env bash
# perf/compare_redis.sh: shikaku and Redis side by side on this machine, reproducibly.
#
# The server under test (shikaku serve --threads 1, then redis-server) runs pinned to one core
# (SERVER_CPU), every client (redis-benchmark, shikaku load --threads 1) pinned to another
# (CLIENT_CPU). Redis holds the same records as shikaku: key = the normalized card key, value
# = shikaku's answer JSON, for every card query of the workload that names a branch and then
# for every other card key of the index, answered for today (shikaku redis-export |
# redis-cli --pipe; before 2026-11-24T06:40Z only the workload's keys were loaded, a working
# set that fit in the CPU's caches). For each server:
#   redis-benchmark -c 50 -P 1 and -P 16   shikaku: ELIG.CARD of one fixed valid query;
#                                          Redis: GET of that query's card key
#   shikaku load closed loop               50 connections at depth 1 and at depth 16
#   shikaku load open loop                 at half of shikaku's best depth-1 closed-loop
#                                          rate (OPEN_BASIS=max: half its best rate of all)
# shikaku load checks every answer against the workload's expected validity. The table is
# printed and appended, with the date and the machine, to perf/RESULTS.md under
# "## Server vs Redis". Exit status non-zero if any run failed or got a wrong answer.
#
# Settings (environment, defaults in brackets):
#   PERSONS [1000000] QUERIES [100000] SEED [7]   data set (cached in WORK between runs)
#   DURATION [10] WARMUP [2]                      seconds per shikaku load run
#   BENCH_N1 [500000] BENCH_N16 [4000000]         redis-benchmark requests at -P 1 / -P 16
#   OPEN_RATE                                     open-loop rate [half shikaku's best, below]
#   OPEN_BASIS [p1]                               p1: half of shikaku load's depth-1 closed-loop
#                                                 rate. Open-loop requests go out one by one as
#                                                 they fall due, as at depth 1, so half the
#                                                 depth-16 rate overloads a server (max: use it)
#   SERVER_CPU [0] CLIENT_CPU [1]
#   SHIKAKU_PORT [17379] HTTP_PORT [17380] REDIS_PORT [16379]
#   WORK [target/perf/compare]
#   ONLY [all]                                    all, or redis: the Redis half alone (also
#                                                 chosen when this build has no `serve`)
#   SERVE_BIN [target/release/shikaku]            the shikaku binary that serves (e.g. to
#                                                 compare another build)
#   DATAGEN                                       a shikaku-datagen binary to use instead of
#                                                 cargo run --release -p data-gen
#   RESULTS [perf/RESULTS.md]
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

PERSONS=${PERSONS:-1000000}
QUERIES=${QUERIES:-100000}
SEED=${SEED:-7}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
BENCH_N1=${BENCH_N1:-500000}
BENCH_N16=${BENCH_N16:-4000000}
OPEN_RATE=${OPEN_RATE:-}
OPEN_BASIS=${OPEN_BASIS:-p1}
[[ $OPEN_BASIS == p1 || $OPEN_BASIS == max ]] || { echo "OPEN_BASIS must be p1 or max" >&2; exit 1; }
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SHIKAKU_PORT=${SHIKAKU_PORT:-17379}
HTTP_PORT=${HTTP_PORT:-17380}
REDIS_PORT=${REDIS_PORT:-16379}
WORK=${WORK:-target/perf/compare}
ONLY=${ONLY:-all}
RESULTS=${RESULTS:-perf/RESULTS.md}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
LOG=$WORK/compare.log
: >"$LOG"

say() { printf '%s\n' "$*" >&2; }
die() {
    say "compare_redis: $*"
    exit 1
}

# ---- servers are ours to stop, whatever happens --------------------------------------------
SHIKAKU_PID=
REDIS_PID=
stop() {
    local pid=$1
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
cleanup() {
    stop "$SHIKAKU_PID"
    stop "$REDIS_PID"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools -------------------------------------------------------------------------------
need_redis() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null &&
        command -v redis-benchmark >/dev/null
}
if ! need_redis; then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        say "installing redis-server and redis-tools"
        apt-get update -qq >>"$LOG" 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >>"$LOG" 2>&1
    fi
    need_redis || die "redis-server, redis-cli and redis-benchmark are needed (apt-get install redis-server redis-tools)"
fi
command -v taskset >/dev/null || die "taskset (util-linux) is needed"
(( $(nproc) >= 2 )) || say "warning: one core only: server and client share it"

say "building release binaries (cargo build --release)"
cargo build --release -q -p shikaku >>"$LOG" 2>&1 || die "cargo build failed; see $LOG"
SHIKAKU=$ROOT/target/release/shikaku
SERVE_BIN=${SERVE_BIN:-$SHIKAKU}
if [[ $ONLY == all ]] && ! "$SERVE_BIN" serve --help >/dev/null 2>&1; then
    say "warning: this build has no 'shikaku serve': running the Redis half only"
    ONLY=redis
fi

# ---- data: generate and build once per (persons, seed, queries) ----------------------------
SNAP=$WORK/snapshots
DATA=$WORK/data
Q=$SNAP/queries.csv
PARAMS="persons=$PERSONS seed=$SEED queries=$QUERIES"
if [[ ! -f $WORK/params || $(cat "$WORK/params") != "$PARAMS" || ! -f $DATA/CURRENT ]]; then
    rm -rf "$SNAP" "$DATA" "$WORK/params"
    say "generating $PARAMS"
    if [[ -n ${DATAGEN:-} ]]; then
        "$DATAGEN" --persons "$PERSONS" --seed "$SEED" --out "$SNAP" --queries "$QUERIES" >>"$LOG" 2>&1
    else
        cargo run --release -q -p data-gen -- --persons "$PERSONS" --seed "$SEED" --out "$SNAP" \
            --queries "$QUERIES" >>"$LOG" 2>&1
    fi || die "data generation failed; see $LOG"
    say "building the index"
    "$SHIKAKU" build --snapshots "$SNAP" --data "$DATA" >>"$LOG" 2>&1 || die "shikaku build failed; see $LOG"
    echo "$PARAMS" >"$WORK/params"
fi
[[ -s $Q ]] || die "$Q is missing"

# ---- helpers -------------------------------------------------------------------------------
wait_port() { # port pid name
    local i
    for ((i = 0; i < 1800; i++)); do
        if [[ $(redis-cli -p "$1" PING 2>/dev/null) == PONG ]]; then return 0; fi
        kill -0 "$2" 2>/dev/null || die "$3 exited during start-up; see $LOG"
        sleep 0.1
    done
    die "$3 did not answer PING on port $1 within 180 s"
}

port_free() { ! redis-cli -p "$1" PING >/dev/null 2>&1; }

# json_num FIELD JSON: a number (or null) from shikaku load's flat JSON line.
json_num() { sed -E "s/.*\"$1\":(-?[0-9.eE+-]+|null).*/\1/" <<<"$2"; }

ROWS=()
FAILED=0
row() { ROWS+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' "$@")"); }
fmt() { awk -v x="$1" 'BEGIN { if (x == "" || x == "null") print "-"; else printf "%.0f", x }'; }

# bench NAME PORT DEPTH N COMMAND...: one redis-benchmark run, client pinned.
bench() {
    local name=$1 port=$2 depth=$3 n=$4
    shift 4
    local out
    say "redis-benchmark $name -c 50 -P $depth -n $n"
    out=$(taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -P "$depth" -n "$n" \
        --csv "$@" 2>>"$LOG" | tail -n 1) || true
    echo "bench $name P$depth: $out" >>"$LOG"
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    local rps p50 p99 max
    IFS=, read -r _ rps _ _ p50 _ p99 max <<<"$(tr -d '"' <<<"$out")"
    if [[ -z ${rps:-} || ! $rps =~ ^[0-9.]+$ ]]; then
        row "$name" "redis-benchmark" "c50 P$depth" FAILED - - - - - "see log"
        FAILED=1
        return
    fi
    local us='{ printf "%.0f", $1 * 1000 }'
    row "$name" "redis-benchmark" "c50 P$depth" "$(fmt "$rps")" "$(awk "$us" <<<"$p50")" \
        "$(awk "$us" <<<"$p99")" - - "$(awk "$us" <<<"$max")" "not checked"
    BEST_RATE[$name]=$(awk -v a="${BEST_RATE[$name]:-0}" -v b="$rps" 'BEGIN { print (b > a) ? b : a }')
}

# load NAME PORT MODE SHAPE ARGS...: one shikaku load run, client pinned.
load() {
    local name=$1 port=$2 mode=$3 shape=$4
    shift 4
    local out status=0
    say "shikaku load $name $shape"
    out=$(taskset -c "$CLIENT_CPU" "$SHIKAKU" load --queries "$Q" --addr "127.0.0.1:$port" \
        --mode "$mode" --threads 1 --duration "$DURATION" --warmup "$WARMUP" --json "$@" \
        2>>"$LOG") || status=$?
    echo "load $name $shape: $out" >>"$LOG"
    if [[ -z $out ]]; then
        row "$name" "shikaku load" "$shape" FAILED - - - - - "exit $status"
        FAILED=1
        return
    fi
    local check="ok"
    local wrong unexp errors fails unans
    wrong=$(json_num wrong "$out")
    unexp=$(json_num unexpected "$out")
    errors=$(json_num errors "$out")
    fails=$(json_num connection_failures "$out")
    unans=$(json_num unanswered "$out")
    if ((status != 0)); then
        check="FAIL: wrong $wrong, unexpected $unexp, errors $errors, conn failures $fails, unanswered $unans"
        FAILED=1
    fi
    if [[ $(json_num cap_hits "$out") != 0 || $(json_num dropped "$out") != 0 ]]; then
        check="$check (fell behind schedule)"
    fi
    local rate
    rate=$(json_num rate "$out")
    row "$name" "shikaku load" "$shape" "$(fmt "$rate")" "$(fmt "$(json_num p50_us "$out")")" \
        "$(fmt "$(json_num p99_us "$out")")" "$(fmt "$(json_num p999_us "$out")")" \
        "$(fmt "$(json_num p9999_us "$out")")" "$(fmt "$(json_num max_us "$out")")" "$check"
    if [[ $shape == closed* ]]; then
        BEST_RATE[$name]=$(awk -v a="${BEST_RATE[$name]:-0}" -v b="$rate" 'BEGIN { print (b > a) ? b : a }')
    fi
    if [[ $shape == "closed c50 P1" ]]; then
        P1_RATE[$name]=$rate
    fi
}
# Best closed-loop rate of each server over all its runs, and shikaku load's depth-1 rate.
declare -A BEST_RATE=() P1_RATE=()

# ---- the fixed query for redis-benchmark ---------------------------------------------------
# A card query with expected validity 1 whose fields are already in normal form (ASCII digits,
# no leading zeros, two-digit branch, ISO dates), so its card key is the fields joined by ':'.
FIXED=$(grep -m 1 -E '^card,[0-9]{6}([0-9]{2})?,[1-9][0-9]*,[1-9][0-9]*,[0-9]{2},[0-9]{4}-[0-9]{2}-[0-9]{2},,[0-9]{4}-[0-9]{2}-[0-9]{2},,1$' "$Q") ||
    die "no card query in normal form with expected validity 1 in $Q"
IFS=, read -r _ F_INS F_SYM F_NUM F_BR F_BIRTH _ F_DATE _ _ <<<"$FIXED"
FIXED_KEY="$F_INS:$F_SYM:$F_NUM:$F_BR:$F_BIRTH"
say "fixed query: ELIG.CARD $F_INS $F_SYM $F_NUM $F_BR $F_BIRTH $F_DATE (key $FIXED_KEY)"

# ---- shikaku -------------------------------------------------------------------------------
if [[ $ONLY == all ]]; then
    port_free "$SHIKAKU_PORT" || die "port $SHIKAKU_PORT is in use"
    say "starting shikaku serve on core $SERVER_CPU"
    taskset -c "$SERVER_CPU" "$SERVE_BIN" serve --data "$DATA" --resp "127.0.0.1:$SHIKAKU_PORT" \
        --http "127.0.0.1:$HTTP_PORT" --threads 1 >>"$LOG" 2>&1 &
    SHIKAKU_PID=$!
    wait_port "$SHIKAKU_PORT" "$SHIKAKU_PID" "shikaku serve"
    got=$(redis-cli -p "$SHIKAKU_PORT" ELIG.CARD "$F_INS" "$F_SYM" "$F_NUM" "$F_BR" "$F_BIRTH" "$F_DATE")
    [[ $got == '{"validity":1,'* ]] || die "shikaku answered the fixed query with: $got"
    ELIG=(ELIG.CARD "$F_INS" "$F_SYM" "$F_NUM" "$F_BR" "$F_BIRTH" "$F_DATE")
    bench shikaku "$SHIKAKU_PORT" 1 "$BENCH_N1" "${ELIG[@]}"
    bench shikaku "$SHIKAKU_PORT" 16 "$BENCH_N16" "${ELIG[@]}"
    load shikaku "$SHIKAKU_PORT" elig "closed c50 P1" --connections 50 --pipeline 1
    load shikaku "$SHIKAKU_PORT" elig "closed c50 P16" --connections 50 --pipeline 16
    stop "$SHIKAKU_PID"
    SHIKAKU_PID=
fi

# ---- Redis ---------------------------------------------------------------------------------
port_free "$REDIS_PORT" || die "port $REDIS_PORT is in use"
mkdir -p "$WORK/redis"
say "starting redis-server on core $SERVER_CPU"
taskset -c "$SERVER_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$WORK/redis" --daemonize no >>"$LOG" 2>&1 &
REDIS_PID=$!
wait_port "$REDIS_PORT" "$REDIS_PID" "redis-server"
say "loading Redis: shikaku redis-export | redis-cli --pipe"
"$SHIKAKU" redis-export --data "$DATA" --queries "$Q" 2>>"$LOG" |
    redis-cli -p "$REDIS_PORT" --pipe >>"$LOG" 2>&1 || die "loading Redis failed; see $LOG"
KEYS=$(redis-cli -p "$REDIS_PORT" DBSIZE)
REDIS_MEMORY=$(redis-cli -p "$REDIS_PORT" INFO memory | tr -d '\r' | sed -n 's/^used_memory_human://p')
got=$(redis-cli -p "$REDIS_PORT" GET "$FIXED_KEY")
[[ $got == '{"validity":1,'* ]] || die "Redis has no answer for $FIXED_KEY: $got"
bench redis "$REDIS_PORT" 1 "$BENCH_N1" GET "$FIXED_KEY"
bench redis "$REDIS_PORT" 16 "$BENCH_N16" GET "$FIXED_KEY"
load redis "$REDIS_PORT" redis-get "closed c50 P1" --connections 50 --pipeline 1
load redis "$REDIS_PORT" redis-get "closed c50 P16" --connections 50 --pipeline 16

# ---- open loop at half of shikaku's rate, against both --------------------------------------
SERVER=shikaku
[[ $ONLY == all ]] || SERVER=redis
if [[ -z $OPEN_RATE ]]; then
    if [[ $OPEN_BASIS == p1 ]]; then
        BASE=${P1_RATE[$SERVER]:-0}
        BASIS="half of $SERVER's closed-loop rate at depth 1 with shikaku load"
    else
        BASE=${BEST_RATE[$SERVER]:-0}
        BASIS="half of $SERVER's best closed-loop rate"
    fi
    OPEN_RATE=$(awk -v r="$BASE" 'BEGIN { printf "%.0f", r / 2 }')
else
    BASIS="OPEN_RATE=$OPEN_RATE"
fi
if [[ $OPEN_RATE -gt 0 ]]; then
    load redis "$REDIS_PORT" redis-get "open c50 @$OPEN_RATE/s" --connections 50 --rate "$OPEN_RATE"
    stop "$REDIS_PID"
    REDIS_PID=
    if [[ $ONLY == all ]]; then
        taskset -c "$SERVER_CPU" "$SERVE_BIN" serve --data "$DATA" --resp "127.0.0.1:$SHIKAKU_PORT" \
            --http "127.0.0.1:$HTTP_PORT" --threads 1 >>"$LOG" 2>&1 &
        SHIKAKU_PID=$!
        wait_port "$SHIKAKU_PORT" "$SHIKAKU_PID" "shikaku serve"
        load shikaku "$SHIKAKU_PORT" elig "open c50 @$OPEN_RATE/s" --connections 50 --rate "$OPEN_RATE"
    fi
else
    say "no closed-loop rate to base the open-loop run on; skipped"
fi
cleanup

# ---- report --------------------------------------------------------------------------------
STAMP=$(date -u +%Y-%m-%dT%H:%M:%SZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
BLOCK=$(mktemp)
{
    echo "### $STAMP, commit $COMMIT"
    echo
    echo "- machine: $(nproc) cores (${CPU:-unknown CPU}), kernel $(uname -r), $(free -g | awk '/^Mem:/ { print $2 " GiB RAM" }')"
    echo "- $(redis-server --version | cut -d' ' -f1-3); data: $PERSONS persons, seed $SEED, $QUERIES queries; Redis holds $KEYS keys (used_memory $REDIS_MEMORY)"
    echo "- servers pinned to core $SERVER_CPU (shikaku serve --threads 1), clients to core $CLIENT_CPU"
    echo "- shikaku load: $DURATION s after $WARMUP s warm-up, latency from the intended send time; open loop at $BASIS"
    echo "- load average (1, 5, 15 min) at start: $LOADAVG_START; at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews results)"
    [[ $ONLY == all ]] || echo "- **Redis half only**: this build had no shikaku serve"
    echo "- fixed query for redis-benchmark: \`ELIG.CARD $F_INS $F_SYM $F_NUM $F_BR $F_BIRTH $F_DATE\` / \`GET $FIXED_KEY\`"
    echo
    echo "| server | client | shape | req/s | p50 µs | p99 µs | p99.9 µs | p99.99 µs | max µs | answers |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo '```'
    free -g
    echo '```'
    echo
} >"$BLOCK"
cat "$BLOCK"

[[ -f $RESULTS ]] || printf '# Performance results\n\nAppended by the scripts in perf/.\n' >"$RESULTS"
grep -qx '## Server vs Redis' "$RESULTS" || printf '\n## Server vs Redis\n\n' >>"$RESULTS"
# Insert the block at the end of the "Server vs Redis" section (before the next "## ").
awk -v block="$BLOCK" '
    function flush() { while ((getline l < block) > 0) print l; done = 1 }
    /^## / && insec && !done { flush() }
    { print }
    /^## Server vs Redis$/ { insec = 1 }
    END { if (!done) flush() }
' "$RESULTS" >"$RESULTS.tmp" && mv "$RESULTS.tmp" "$RESULTS"
rm -f "$BLOCK"
say "appended to $RESULTS; log in $LOG"
exit "$FAILED"
