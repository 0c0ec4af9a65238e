#!/usr/bin/env bash
# perf/compare_redis.sh: shikaku and Redis side by side on this machine, reproducibly.
#
# Both servers (shikaku serve --threads 1 and redis-server) run pinned to one core
# (SERVER_CPU), driven one at a time, every client (redis-benchmark, shikaku load --threads 1) pinned to another
# (CLIENT_CPU). Redis holds the same records as shikaku: key = the normalized card key, value
# = shikaku's answer JSON, for every card query of the workload that names a branch and then
# for every other card key of the index, answered for today (shikaku redis-export |
# redis-cli --pipe; before 2026-11-24T06:40Z only the workload's keys were loaded, a working
# set that fit in the CPU's caches). For each server:
#   redis-benchmark -c 50 -P 1 and -P 16   shikaku: ELIG.CARD of one fixed valid query;
#                                          Redis: GET of that query's card key
#   shikaku load closed loop               50 connections at depth 1 and at depth 16, the same
#                                          requests to both: the workload's distinct card
#                                          queries that name a branch (shikaku: --mode
#                                          elig-keyed, raw fields; Redis: --mode redis-get)
#   shikaku load open loop                 at half of Redis's median depth-1 closed-loop
#                                          rate under shikaku load (OPEN_BASIS=max: half its
#                                          best median), every server at the same rate
#   redis-benchmark PING at -P 1 and -P 16,
#   shikaku load --mode ping at P1 and P16  the floor: the least work a server can do per
#                                          request, so the most this client and the kernel's
#                                          loopback path allow any server on this machine
# Each shape runs ROUNDS times against both servers back to back, the order alternating, and
# the summary gives medians: this VM's speed drifts with the host's load (steal).
# Every table line also gives the busy share of the server's and the client's core during the
# run (from /proc/stat), so it says which side was the limit, and the server's CPU time per
# answer: its process's utime + stime (/proc/PID/stat) over the run divided by the answers
# (shikaku load's replies, warm-up included; redis-benchmark's -n). No client caps that figure.
# shikaku runs twice: `shikaku` with --poll-us 0 (a polling core's idle spin is not work, so
# this is the figure compared with Redis) and `shikaku-poll` with the default polling window.
# shikaku load checks every answer against the workload's expected validity. The table is
# printed and appended, with the date and the machine, to perf/RESULTS.md under
# "## Server vs Redis". Exit status non-zero if any run failed or got a wrong answer.
#
# Settings (environment, defaults in brackets):
#   PERSONS [1000000] QUERIES [100000] SEED [7]   data set (cached in WORK between runs)
#   DURATION [10] WARMUP [2]                      seconds per shikaku load run
#   BENCH_N1 [500000] BENCH_N16 [4000000]         redis-benchmark requests at -P 1 / -P 16
#   OPEN_RATE                                     open-loop rate [half Redis's, below]
#   OPEN_BASIS [p1]                               p1: half of Redis's depth-1 closed-loop rate
#                                                 under shikaku load. Open-loop requests go out one by one as
#                                                 they fall due, as at depth 1, so half the
#                                                 depth-16 rate overloads a server (max: use it)
#   ROUNDS [3]                                    rounds of every shape against both servers
#                                                 (medians in the summary)
#   SERVER_CPU [0] CLIENT_CPU [1]
#   SHIKAKU_PORT [17379] HTTP_PORT [17380] REDIS_PORT [16379]
#   WORK [target/perf/compare]
#   ONLY [all]                                    all, or redis: the Redis half alone (also
#                                                 chosen when this build has no `serve`)
#   QUICK [0]                                     1: a quick A/B run: shikaku load at depth 1
#                                                 and 16 and PING at 16, 5 s each after 1 s,
#                                                 no polling server, no redis-benchmark, no
#                                                 open loop, no hiccups; printed, not appended
#   SHAPES                                        the closed-loop shapes to run [rb1 rb16 ping1
#                                                 ping16 load1 load16 lping1 lping16]
#   POLL [1]                                      0: leave out shikaku-poll (--poll-us 200)
#   SERVE_EXTRA                                   more `shikaku serve` options (a bash
#                                                 array's words, space-separated)
#   OPEN [1]                                      0: no open-loop runs
#   APPEND [1]                                    0: print the report only (QUICK sets 0)
#   SERVE_BIN [target/release/shikaku]            the shikaku binary that serves (e.g. to
#                                                 compare another build)
#   DATAGEN                                       a shikaku-datagen binary to use instead of
#                                                 cargo run --release -p data-gen
#   RESULTS [perf/RESULTS.md]
# The whole script is one block, read before any of it runs: bash otherwise reads a script as
# it goes, and editing it during a (long) run would change what that run executes.
{
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

PERSONS=${PERSONS:-1000000}
QUERIES=${QUERIES:-100000}
SEED=${SEED:-7}
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    DURATION=${DURATION:-5} WARMUP=${WARMUP:-1} SHAPES=${SHAPES:-load1 load16 lping16}
    POLL=${POLL:-0} OPEN=${OPEN:-0} APPEND=${APPEND:-0} HICCUPS_S=0
fi
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
SHAPES=${SHAPES:-rb1 rb16 ping1 ping16 load1 load16 lping1 lping16}
POLL=${POLL:-1}
read -r -a SERVE_EXTRA <<<"${SERVE_EXTRA:-}"
OPEN=${OPEN:-1}
APPEND=${APPEND:-1}
HICCUPS_S=${HICCUPS_S:-10}
BENCH_N1=${BENCH_N1:-500000}
BENCH_N16=${BENCH_N16:-4000000}
OPEN_RATE=${OPEN_RATE:-}
OPEN_BASIS=${OPEN_BASIS:-p1}
ROUNDS=${ROUNDS:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive number" >&2; exit 1; }
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
    stop "${POLL_PID:-}"
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
# row SERVER CLIENT SHAPE RATE CPU P50 P99 P999 P9999 MAX ANSWERS: one line of the table, with
# the round, the busy share of both cores over the run (set by `measured`) and the load average.
row() { ROWS+=("| $ROUND $(printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' "$@") $CORES | $(cut -d' ' -f1 /proc/loadavg) |"); }
ROUND=-
# Every run's figures by "server|what": space-separated, one per round (the summary's medians).
declare -A RATES=() CPUS=() P50S=() P99S=() P999S=() P9999S=() LAG99S=() SERVICE99S=() SERVICE9999S=()
record() { # SERVER WHAT RATE CPU [P99 P9999 LAG_P99 SERVICE_P99 SERVICE_P9999 P50 P999]
    local k="$1|$2"
    RATES[$k]+="$3 "
    [[ -n ${4:-} ]] && CPUS[$k]+="$4 "
    [[ -n ${5:-} ]] && P99S[$k]+="$5 "
    [[ -n ${6:-} ]] && P9999S[$k]+="$6 "
    [[ -n ${7:-} ]] && LAG99S[$k]+="$7 "
    [[ -n ${8:-} ]] && SERVICE99S[$k]+="$8 "
    [[ -n ${9:-} ]] && SERVICE9999S[$k]+="$9 "
    [[ -n ${10:-} ]] && P50S[$k]+="${10} "
    [[ -n ${11:-} ]] && P999S[$k]+="${11} "
    return 0
}
median() { tr ' ' '\n' <<<"$1" | { grep -v '^$' || true; } | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print ""; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
CORES="- | -"

# core_ticks CPU: "busy total steal" clock ticks of one core since boot (/proc/stat: user nice
# system idle iowait irq softirq steal; guest time is already inside user).
core_ticks() {
    awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9 }' /proc/stat
}
# proc_ticks PID: the process's CPU time so far, utime + stime in clock ticks (/proc/PID/stat,
# fields 14 and 15 counted after the command name, which may hold spaces).
proc_ticks() { sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
HZ=$(getconf CLK_TCK)
# The server process being driven (set by one_shape) and its CPU ticks over the last run.
CUR_PID=
SERVER_TICKS=
# cpu_per_answer ANSWERS: the server's CPU µs per answer over the last run, from SERVER_TICKS.
cpu_per_answer() {
    awk -v t="$SERVER_TICKS" -v n="$1" -v hz="$HZ" 'BEGIN {
        if (t == "" || n == "" || n == "null" || n <= 0) { print ""; exit }
        printf "%.3f", t / hz * 1e6 / n }'
}
# measured COMMAND...: runs COMMAND and sets CORES to "server % | client %", each core's busy
# share of the run, so a table line says which side was the limit. A core near 100% bounds the
# rate; the other side then has room to spare.
measured() {
    local s0 c0 s1 c1 p0 p1 status=0
    s0=$(core_ticks "$SERVER_CPU")
    c0=$(core_ticks "$CLIENT_CPU")
    p0=$(proc_ticks "$CUR_PID")
    "$@" || status=$?
    p1=$(proc_ticks "$CUR_PID")
    s1=$(core_ticks "$SERVER_CPU")
    c1=$(core_ticks "$CLIENT_CPU")
    SERVER_TICKS=$((p1 - p0))
    CORES="$(busy_pct "$s0" "$s1") | $(busy_pct "$c0" "$c1")"
    return $status
}
busy_pct() { # BEFORE AFTER (core_ticks lines)
    awk -v a="$1" -v b="$2" 'BEGIN {
        split(a, x, " "); split(b, y, " "); t = y[2] - x[2]
        if (t <= 0) { print "-"; exit }
        printf "%.0f", 100 * (y[1] - x[1]) / t
        if (y[3] > x[3]) printf " (steal %.0f)", 100 * (y[3] - x[3]) / t
    }'
}
STEAL_START="$(core_ticks "$SERVER_CPU")/$(core_ticks "$CLIENT_CPU")"
# busy_steal START: the steal share of each core since START ("server/client" core_ticks).
busy_steal() {
    local s=${1%/*} c=${1#*/}
    awk -v a="$s" -v b="$(core_ticks "$SERVER_CPU")" -v c="$c" -v d="$(core_ticks "$CLIENT_CPU")" '
        function st(p, q) { split(p, x, " "); split(q, y, " "); t = y[2] - x[2]
            return t > 0 ? sprintf("%.1f%%", 100 * (y[3] - x[3]) / t) : "-" }
        BEGIN { print st(a, b) " / " st(c, d) }'
}
fmt() { awk -v x="$1" 'BEGIN { if (x == "" || x == "null") print "-"; else printf "%.0f", x }'; }
# fmt2 X: X with two decimals ("-" when empty).
fmt2() { awk -v x="$1" 'BEGIN { if (x == "" || x == "null") print "-"; else printf "%.2f", x }'; }
# fmts "X Y ...": each number rounded, comma-separated.
fmts() { awk -v xs="$1" 'BEGIN { n = split(xs, x, " "); for (i = 1; i <= n; i++) printf "%s%.0f", (i > 1 ? ", " : ""), x[i] }'; }

# bench NAME PORT DEPTH N COMMAND...: one redis-benchmark run, client pinned.
bench() {
    local name=$1 port=$2 depth=$3 n=$4
    shift 4
    local out
    say "redis-benchmark $name -c 50 -P $depth -n $n $1"
    measured taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$port" -c 50 -P "$depth" \
        -n "$n" --csv "$@" 2>>"$LOG" >"$WORK/bench.out" || true
    out=$(tail -n 1 "$WORK/bench.out")
    echo "bench $name P$depth $1: $out" >>"$LOG"
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    local rps p50 p99 max
    IFS=, read -r _ rps _ _ p50 _ p99 max <<<"$(tr -d '"' <<<"$out")"
    if [[ -z ${rps:-} || ! $rps =~ ^[0-9.]+$ ]]; then
        row "$name" "redis-benchmark $1" "c50 P$depth" FAILED - - - - - - "see log"
        FAILED=1
        return
    fi
    local us='{ printf "%.0f", $1 * 1000 }' cpu
    cpu=$(cpu_per_answer "$n")
    row "$name" "redis-benchmark $1" "c50 P$depth" "$(fmt "$rps")" "$(fmt2 "$cpu")" "$(awk "$us" <<<"$p50")" \
        "$(awk "$us" <<<"$p99")" - - "$(awk "$us" <<<"$max")" "not checked"
    record "$name" "redis-benchmark $([[ $1 == PING ]] && echo PING || echo query) P$depth" "$rps" "$cpu"
}

# load NAME PORT MODE SHAPE ARGS...: one shikaku load run, client pinned.
load() {
    local name=$1 port=$2 mode=$3 shape=$4
    shift 4
    local out status=0
    say "shikaku load $name $shape"
    measured taskset -c "$CLIENT_CPU" "$SHIKAKU" load --queries "$Q" --addr "127.0.0.1:$port" \
        --mode "$mode" --threads 1 --duration "$DURATION" --warmup "$WARMUP" --json "$@" \
        2>>"$LOG" >"$WORK/load.out" || status=$?
    out=$(cat "$WORK/load.out")
    echo "load $name $shape: $out" >>"$LOG"
    if [[ -z $out ]]; then
        row "$name" "shikaku load" "$shape" FAILED - - - - - - "exit $status"
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
        check="FAIL: wrong $wrong, unexpected $unexp, errors $errors, conn failures $fails, unanswered $unans, dropped $(json_num dropped "$out")"
        FAILED=1
    fi
    if [[ $(json_num cap_hits "$out") != 0 || $(json_num dropped "$out") != 0 ]]; then
        check="$check (fell behind schedule)"
    fi
    local rate p99 p9999 cpu
    rate=$(json_num rate "$out")
    p99=$(json_num p99_us "$out")
    p9999=$(json_num p9999_us "$out")
    cpu=$(cpu_per_answer "$(json_num replies "$out")")
    row "$name" "shikaku load" "$shape" "$(fmt "$rate")" "$(fmt2 "$cpu")" "$(fmt "$(json_num p50_us "$out")")" \
        "$(fmt "$p99")" "$(fmt "$(json_num p999_us "$out")")" \
        "$(fmt "$p9999")" "$(fmt "$(json_num max_us "$out")")" "$check"
    # A failed run is in the table above, never in the medians.
    ((status == 0)) || return
    record "$name" "shikaku load ${shape%% @*}" "$rate" "$cpu" "$p99" "$p9999" \
        "$(json_num lag_p99_us "$out")" "$(json_num service_p99_us "$out")" \
        "$(json_num service_p9999_us "$out")" "$(json_num p50_us "$out")" "$(json_num p999_us "$out")"
}

# ---- the fixed query for redis-benchmark ---------------------------------------------------
# A card query with expected validity 1 whose fields are already in normal form (ASCII digits,
# no leading zeros, two-digit branch, ISO dates), so its card key is the fields joined by ':'.
FIXED=$(grep -m 1 -E '^card,[0-9]{6}([0-9]{2})?,[1-9][0-9]*,[1-9][0-9]*,[0-9]{2},[0-9]{4}-[0-9]{2}-[0-9]{2},,[0-9]{4}-[0-9]{2}-[0-9]{2},,1$' "$Q") ||
    die "no card query in normal form with expected validity 1 in $Q"
IFS=, read -r _ F_INS F_SYM F_NUM F_BR F_BIRTH _ F_DATE _ _ <<<"$FIXED"
FIXED_KEY="$F_INS:$F_SYM:$F_NUM:$F_BR:$F_BIRTH"
say "fixed query: ELIG.CARD $F_INS $F_SYM $F_NUM $F_BR $F_BIRTH $F_DATE (key $FIXED_KEY)"

# ---- the machine's own stalls, before any server runs ---------------------------------------
# perf/hiccups.py: gaps in a busy thread's running on each core, and the latency floor they set
# for a request at a random moment (no server can answer faster than its core runs).
HICCUPS="not measured (python3 missing)"
if ((HICCUPS_S == 0)); then
    HICCUPS="not measured (QUICK or HICCUPS_S=0)"
elif command -v python3 >/dev/null; then
    say "measuring the machine's stalls (perf/hiccups.py $HICCUPS_S $SERVER_CPU $CLIENT_CPU)"
    HICCUPS=$(python3 "$ROOT/perf/hiccups.py" "$HICCUPS_S" "$SERVER_CPU" "$CLIENT_CPU" 2>>"$LOG" | sed 's/^/  - /') ||
        HICCUPS="failed; see $LOG"
fi

# ---- both servers, pinned to the same core, measured in alternating rounds ----------------
# This VM's speed drifts (steal from the host reaches 20-30% at times), so every shape runs
# against both servers back to back, the order alternating between rounds, and the summary
# takes each server's median over the rounds.
start_shikaku() { # PORT HTTP_PORT POLL_US: sets STARTED_PID
    port_free "$1" || die "port $1 is in use"
    say "starting shikaku serve --poll-us $3 on core $SERVER_CPU"
    taskset -c "$SERVER_CPU" "$SERVE_BIN" serve --data "$DATA" --resp "127.0.0.1:$1" \
        --http "127.0.0.1:$2" --threads 1 --poll-us "$3" "${SERVE_EXTRA[@]}" >>"$LOG" 2>&1 &
    STARTED_PID=$!
    wait_port "$1" "$STARTED_PID" "shikaku serve"
}
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
REDIS_MEMORY_BYTES=$(redis-cli -p "$REDIS_PORT" INFO memory | tr -d '\r' | sed -n 's/^used_memory://p')
got=$(redis-cli -p "$REDIS_PORT" GET "$FIXED_KEY")
[[ $got == '{"validity":1,'* ]] || die "Redis has no answer for $FIXED_KEY: $got"
SERVERS=(redis)
POLL_PORT=$((SHIKAKU_PORT + 2))
POLL_PID=
if [[ $ONLY == all ]]; then
    start_shikaku "$SHIKAKU_PORT" "$HTTP_PORT" 0
    SHIKAKU_PID=$STARTED_PID
    got=$(redis-cli -p "$SHIKAKU_PORT" ELIG.CARD "$F_INS" "$F_SYM" "$F_NUM" "$F_BR" "$F_BIRTH" "$F_DATE")
    [[ $got == '{"validity":1,'* ]] || die "shikaku answered the fixed query with: $got"
    SERVERS=(shikaku redis)
    if [[ $POLL == 1 ]]; then
        start_shikaku "$POLL_PORT" "$((HTTP_PORT + 2))" 200
        POLL_PID=$STARTED_PID
        SERVERS=(shikaku shikaku-poll redis)
    fi
fi

# one_shape SERVER SHAPE: one run of a closed-loop shape against SERVER.
one_shape() {
    # Both get the same requests: the workload's distinct card queries that name a branch
    # (Redis holds no answer for the others), shikaku's with their raw fields.
    local server=$1 port=$SHIKAKU_PORT mode=elig-keyed query
    query=(ELIG.CARD "$F_INS" "$F_SYM" "$F_NUM" "$F_BR" "$F_BIRTH" "$F_DATE")
    CUR_PID=$SHIKAKU_PID
    if [[ $server == redis ]]; then
        port=$REDIS_PORT mode=redis-get query=(GET "$FIXED_KEY") CUR_PID=$REDIS_PID
    elif [[ $server == shikaku-poll ]]; then
        port=$POLL_PORT CUR_PID=$POLL_PID
    fi
    case $2 in
    rb1) bench "$server" "$port" 1 "$BENCH_N1" "${query[@]}" ;;
    rb16) bench "$server" "$port" 16 "$BENCH_N16" "${query[@]}" ;;
    ping1) bench "$server" "$port" 1 "$BENCH_N1" PING ;;
    ping16) bench "$server" "$port" 16 "$BENCH_N16" PING ;;
    load1) load "$server" "$port" "$mode" "closed c50 P1" --connections 50 --pipeline 1 ;;
    load16) load "$server" "$port" "$mode" "closed c50 P16" --connections 50 --pipeline 16 ;;
    lping1) load "$server" "$port" ping "PING closed c50 P1" --connections 50 --pipeline 1 ;;
    lping16) load "$server" "$port" ping "PING closed c50 P16" --connections 50 --pipeline 16 ;;
    open) load "$server" "$port" "$mode" "open c50 @$OPEN_RATE/s" --connections 50 --rate "$OPEN_RATE" ;;
    esac
}
# in_rounds SHAPE...: each shape against every server, in alternating order, ROUNDS times.
in_rounds() {
    local shape server order
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        order=("${SERVERS[@]}")
        if ((ROUND % 2 == 0)); then order=($(printf '%s\n' "${SERVERS[@]}" | tac)); fi
        for shape in "$@"; do
            for server in "${order[@]}"; do one_shape "$server" "$shape"; done
        done
    done
    ROUND=-
}
# shellcheck disable=SC2086 # SHAPES is a list of words
in_rounds $SHAPES

# Resident memory of each shikaku server after the runs (the index pages the runs touched, and
# the process), and the index's size on disk: what all of it resident would take.
SHIKAKU_RSS=$(awk '/^VmRSS/ { print $2 * 1024 }' "/proc/$SHIKAKU_PID/status" 2>/dev/null || echo)
INDEX_BYTES=$(du -sbL "$DATA/generations/$(cat "$DATA/CURRENT")" 2>/dev/null | cut -f1 || echo)

# ---- open loop at half of Redis's rate, against every server at the same rate --------------
SERVER=redis
if [[ -z $OPEN_RATE ]]; then
    if [[ $OPEN_BASIS == p1 ]]; then
        BASE=$(median "${RATES["$SERVER|shikaku load closed c50 P1"]:-}")
        BASIS="half of $SERVER's median closed-loop rate at depth 1 with shikaku load"
    else
        BASIS="half of $SERVER's median closed-loop rate at depth 1 or 16, whichever is higher"
        BASE=$(printf '%s\n' "$(median "${RATES["$SERVER|shikaku load closed c50 P1"]:-}")" \
            "$(median "${RATES["$SERVER|shikaku load closed c50 P16"]:-}")" | sort -g | tail -n 1)
    fi
    OPEN_RATE=$(awk -v r="${BASE:-0}" 'BEGIN { printf "%.0f", r / 2 }')
else
    BASIS="OPEN_RATE=$OPEN_RATE"
fi
if [[ $OPEN != 1 ]]; then
    say "open loop left out (OPEN=0)"
elif [[ $OPEN_RATE -gt 0 ]]; then
    in_rounds open
else
    say "no closed-loop rate to base the open-loop run on; skipped"
fi
cleanup

# summary: each server's median over the rounds, and the ratio of the medians.
SUMMARY=()
# fmts2 "X Y ...": each number with two decimals, comma-separated.
fmts2() { awk -v xs="$1" 'BEGIN { n = split(xs, x, " "); for (i = 1; i <= n; i++) printf "%s%.2f", (i > 1 ? ", " : ""), x[i] }'; }
ratio() { awk -v s="$1" -v r="$2" 'BEGIN { if (s == "" || r == "" || r == 0) print "-"; else printf "%.2f×", s / r }'; }
summarize() { # WHAT LABEL
    local s r p sc rc pc
    [[ -n ${RATES["shikaku|$1"]:-}${RATES["redis|$1"]:-} ]] || return 0
    s=$(median "${RATES["shikaku|$1"]:-}")
    r=$(median "${RATES["redis|$1"]:-}")
    p=$(median "${RATES["shikaku-poll|$1"]:-}")
    sc=$(median "${CPUS["shikaku|$1"]:-}")
    rc=$(median "${CPUS["redis|$1"]:-}")
    pc=$(median "${CPUS["shikaku-poll|$1"]:-}")
    SUMMARY+=("| $2 | $(fmt2 "$sc") | $(fmt2 "$rc") | **$(ratio "$sc" "$rc")** | $(fmt2 "$pc") | $(fmt "$s") | $(fmt "$r") | $(ratio "$s" "$r") | $(fmt "$p") | $(fmts2 "${CPUS["shikaku|$1"]:-}") | $(fmts2 "${CPUS["redis|$1"]:-}") | $(fmts "${RATES["shikaku|$1"]:-}") | $(fmts "${RATES["redis|$1"]:-}") |")
}
summarize "redis-benchmark query P1" "redis-benchmark, c50 P1 (ELIG.CARD / GET)"
summarize "redis-benchmark query P16" "redis-benchmark, c50 P16 (ELIG.CARD / GET)"
summarize "redis-benchmark PING P1" "redis-benchmark PING, c50 P1 (the floor)"
summarize "redis-benchmark PING P16" "redis-benchmark PING, c50 P16 (the floor)"
summarize "shikaku load closed c50 P1" "shikaku load, c50 P1"
summarize "shikaku load closed c50 P16" "shikaku load, c50 P16"
summarize "shikaku load PING closed c50 P1" "shikaku load PING, c50 P1 (the floor)"
summarize "shikaku load PING closed c50 P16" "shikaku load PING, c50 P16 (the floor)"
OPEN_LINES=()
for server in "${SERVERS[@]}"; do
    w="shikaku load open c50"
    [[ -n ${P99S["$server|$w"]:-} ]] || continue
    OPEN_LINES+=("| $server | $OPEN_RATE/s | $(fmt "$(median "${P50S["$server|$w"]:-}")") | $(fmt "$(median "${P99S["$server|$w"]}")") | $(fmt "$(median "${P999S["$server|$w"]:-}")") | $(fmt "$(median "${P9999S["$server|$w"]}")") | $(fmts "${P50S["$server|$w"]:-}") | $(fmts "${P99S["$server|$w"]}") | $(fmts "${P999S["$server|$w"]:-}") | $(fmt "$(median "${LAG99S["$server|$w"]:-}")") | $(fmt "$(median "${SERVICE99S["$server|$w"]:-}")") | $(fmt2 "$(median "${CPUS["$server|$w"]:-}")") |")
done

# ---- report --------------------------------------------------------------------------------
STAMP=$(date -u +%Y-%m-%dT%H:%M:%SZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
CPU=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
BLOCK=$(mktemp)
{
    echo "### $STAMP, commit $COMMIT"
    echo
    echo "- machine: $(nproc) cores (${CPU:-unknown CPU}), kernel $(uname -r), $(free -g | awk '/^Mem:/ { print $2 " GiB RAM" }')"
    echo "- $(redis-server --version | cut -d' ' -f1-3); data: $PERSONS persons, seed $SEED, $QUERIES queries; Redis holds $KEYS keys (used_memory $REDIS_MEMORY, $REDIS_MEMORY_BYTES bytes)"
    echo "- memory: shikaku's index on disk $INDEX_BYTES bytes ($(ratio "$INDEX_BYTES" "$REDIS_MEMORY_BYTES") of Redis's used_memory), the whole index resident at most; shikaku serve's VmRSS after the closed-loop runs $SHIKAKU_RSS bytes"
    echo "- $([[ $QUICK == 1 ]] && echo "**QUICK run** (\`QUICK=1 perf/compare_redis.sh\`): ")shapes: $SHAPES; servers pinned to core $SERVER_CPU (shikaku serve --threads 1${SERVE_EXTRA:+ ${SERVE_EXTRA[*]}}: \`shikaku\` with --poll-us 0$([[ $POLL == 1 ]] && echo ", \`shikaku-poll\` with --poll-us 200"); all up, one driven at a time), clients to core $CLIENT_CPU"
    echo "- shikaku load: $DURATION s after $WARMUP s warm-up, latency from the intended send time; open loop at $BASIS"
    echo "- load average (1, 5, 15 min) at start: $LOADAVG_START; at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews results)"
    [[ $ONLY == all ]] || echo "- **Redis half only**: this build had no shikaku serve"
    echo "- fixed query for redis-benchmark: \`ELIG.CARD $F_INS $F_SYM $F_NUM $F_BR $F_BIRTH $F_DATE\` / \`GET $FIXED_KEY\`"
    echo
    echo "- server % / client %: each core's busy share (user, system, interrupts) during the run; a client core near 100% is the limit. shikaku-poll's core polls for 200 µs after each request, so its share reads near 100% below saturation too; shikaku's (--poll-us 0) and Redis's do not. PING: the least work a server does per request; where the client's core is near 100% in a PING run, that rate is the most this client drives on this machine"
    echo "- shikaku load sends both servers the same requests: the workload's distinct card queries that name a branch (\`--mode elig-keyed\` with their raw fields, \`--mode redis-get\` as GET of their card keys); a failed run is listed but left out of the medians"
    echo "- steal on the server's / client's core over the whole script: $(busy_steal "$STEAL_START")"
    echo "- the machine's stalls before the runs (\`perf/hiccups.py $HICCUPS_S $SERVER_CPU $CLIENT_CPU\`, idle cores; an indication of the host at that moment, not a bound on the runs after it):"
    echo "$HICCUPS"
    echo
    echo "Medians over $ROUNDS rounds (each round runs every shape against every server back to back, the order alternating). Server CPU: the server process's utime + stime over the run per answer (/proc/PID/stat, resolution 1/$HZ s); \`shikaku\` is --poll-us 0, \`poll\` is --poll-us 200, whose idle spinning counts as CPU:"
    echo
    echo "| client, shape | shikaku CPU µs/answer | Redis CPU µs/answer | CPU ratio | poll CPU µs/answer | shikaku req/s | Redis req/s | req/s ratio | poll req/s | shikaku CPU, each round | Redis CPU, each round | shikaku req/s, each round | Redis req/s, each round |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|"
    printf '%s\n' "${SUMMARY[@]}"
    echo
    if ((${#OPEN_LINES[@]} > 0)); then
        echo "Open loop: latency from the intended send time; of it, the client's lag (due to written) and the server's part (written to answered), medians over the rounds:"
        echo
        echo "| open loop, server | rate | p50 µs | p99 µs | p99.9 µs | p99.99 µs | p50 each round | p99 each round | p99.9 each round | client lag p99 µs | server part p99 µs | server CPU µs/answer |"
        echo "|---|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|"
        printf '%s\n' "${OPEN_LINES[@]}"
        echo
    fi
    echo "Every run:"
    echo
    echo "| round | server | client | shape | req/s | server CPU µs/answer | p50 µs | p99 µs | p99.9 µs | p99.99 µs | max µs | answers | server % | client % | load avg (1 min) at end |"
    echo "|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo '```'
    free -g
    echo '```'
    echo
} >"$BLOCK"
cat "$BLOCK"
if [[ $APPEND != 1 ]]; then
    rm -f "$BLOCK"
    exit "$FAILED"
fi

"$ROOT/perf/insert_section.sh" "$RESULTS" "Server vs Redis" "$BLOCK"
rm -f "$BLOCK"
say "appended to $RESULTS; log in $LOG"
exit "$FAILED"
}
