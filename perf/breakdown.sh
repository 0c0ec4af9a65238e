#!/usr/bin/env bash
# perf/breakdown.sh: where a card query's server time goes, on compare_redis.sh's data set.
#
#   perf/breakdown.sh [SERVE_BIN]
#
# Serves the data set of perf/compare_redis.sh (run it once first) with SERVE_BIN
# (`serve --threads 1 --poll-us 0`, pinned to SERVER_CPU) and drives it with `shikaku load
# --mode elig-keyed --connections 50 --pipeline P` (pinned to CLIENT_CPU) for DURATION
# seconds, or with REDIS=1 a redis-server loaded as compare_redis.sh does, driven by
# `--mode redis-get`. Meanwhile `perf stat` counts the server's task clock, context switches,
# system calls and io_uring submissions, and `perf record -e cpu-clock` samples it. Prints
# per answer: CPU µs (utime + stime from /proc/PID/stat), system calls, io_uring requests,
# context switches; then the profile's top symbols, user and kernel, with the ns per answer
# each share of the CPU time stands for. This VM has no hardware counters (cycles, cache and
# TLB misses are "not supported"): the profile is a timer's.
#
# Settings: P [16] DURATION [8] FREQ [4999] TOP [40] WORK [target/perf/compare]
#           SERVER_CPU [0] CLIENT_CPU [1] PORT [17391] LOAD_BIN [target/release/shikaku]
#           REDIS [0] OUT [target/perf/breakdown] SERVE_ARGS [] (more serve options)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/shikaku}
P=${P:-16}
DURATION=${DURATION:-8}
FREQ=${FREQ:-4999}
TOP=${TOP:-40}
WORK=${WORK:-target/perf/compare}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-17391}
LOAD_BIN=${LOAD_BIN:-target/release/shikaku}
REDIS=${REDIS:-0}
OUT=${OUT:-target/perf/breakdown}
PERF=${PERF:-$(command -v perf || command -v perf_6.1)}
[[ -f $WORK/data/CURRENT && -f $WORK/snapshots/queries.csv ]] ||
    { echo "no data set in $WORK: run perf/compare_redis.sh first" >&2; exit 1; }
mkdir -p "$OUT"
SP=
trap '[[ -n $SP ]] && kill "$SP" 2>/dev/null; wait 2>/dev/null || true' EXIT

if [[ $REDIS == 1 ]]; then
    taskset -c "$SERVER_CPU" redis-server --port "$PORT" --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$OUT" --daemonize no >"$OUT/server.log" 2>&1 &
    SP=$!
    mode=redis-get
else
    taskset -c "$SERVER_CPU" "$BIN" serve --data "$WORK/data" --resp "127.0.0.1:$PORT" \
        --http "127.0.0.1:$((PORT + 1))" --threads 1 --poll-us 0 ${SERVE_ARGS:-} >"$OUT/server.log" 2>&1 &
    SP=$!
    mode=elig-keyed
fi
for _ in $(seq 300); do
    redis-cli -p "$PORT" PING >/dev/null 2>&1 && break
    sleep 0.1
done
if [[ $REDIS == 1 ]]; then
    "$LOAD_BIN" redis-export --data "$WORK/data" --queries "$WORK/snapshots/queries.csv" \
        2>/dev/null | redis-cli -p "$PORT" --pipe >/dev/null
fi
ticks() { sed -E 's/^.*\) //' "/proc/$SP/stat" | awk '{ print $12 + $13 }'; }

# The load runs warm-up + DURATION; perf covers the DURATION after the warm-up second.
taskset -c "$CLIENT_CPU" "$LOAD_BIN" load --queries "$WORK/snapshots/queries.csv" \
    --addr "127.0.0.1:$PORT" --mode "$mode" --threads 1 --connections 50 --pipeline "$P" \
    --warmup 1 --duration "$DURATION" --json >"$OUT/load.json" 2>/dev/null &
LP=$!
sleep 1
t0=$(ticks)
"$PERF" stat -x, -o "$OUT/stat.csv" -e task-clock,context-switches,raw_syscalls:sys_enter,io_uring:io_uring_submit_req \
    -p "$SP" -- sleep "$((DURATION / 2))" 2>/dev/null &
PS=$!
wait "$PS"
t1=$(ticks)
"$PERF" record -q -e cpu-clock -F "$FREQ" -o "$OUT/perf.data" -p "$SP" -- sleep "$((DURATION / 2 - 1))" \
    >/dev/null 2>&1 || true
wait "$LP" || true
load=$(cat "$OUT/load.json")
rate=$(sed -E 's/.*"rate":([0-9.]+).*/\1/' <<<"$load")
wrong=$(sed -E 's/.*"wrong":([0-9]+).*/\1/' <<<"$load")
hz=$(getconf CLK_TCK)
# perf stat's window is DURATION/2 seconds at the run's rate: the answers in it.
awk -F, -v rate="$rate" -v secs="$((DURATION / 2))" -v t="$((t1 - t0))" -v hz="$hz" '
    $3 == "task-clock" { clock = $1 }
    $3 == "context-switches" { cs = $1 }
    $3 == "raw_syscalls:sys_enter" { sc = $1 }
    $3 == "io_uring:io_uring_submit_req" { sq = $1 }
    END {
        n = rate * secs
        printf "rate %.0f/s; per answer over %d s: CPU %.3f µs (task-clock %.3f µs), system calls %.4f, io_uring requests %.4f, context switches %.4f\n",
            rate, secs, t / hz * 1e6 / n, clock * 1e3 / n, sc / n, sq / n, cs / n
        printf "%.0f\n", t / hz * 1e9 / n > "'"$OUT"'/ns_per_answer"
    }' "$OUT/stat.csv"
echo "wrong answers: $wrong; load average $(cut -d' ' -f1-3 /proc/loadavg)"
ns=$(cat "$OUT/ns_per_answer")
echo
echo "top symbols (share of the server's samples, and ns per answer at $ns ns per answer):"
"$PERF" report -i "$OUT/perf.data" --no-children --sort dso,sym --stdio -q 2>/dev/null |
    awk -v ns="$ns" -v top="$TOP" 'NF && $1 ~ /%$/ && n < top {
        p = $1; sub("%", "", p); $1 = ""; printf "%6.2f%% %6.0f ns %s\n", p, p * ns / 100, $0; n++ }'
echo
echo "by step (symbols grouped by name; inlined code counts in the function it was inlined into):"
"$PERF" report -i "$OUT/perf.data" --no-children --sort dso,sym --stdio -q 2>/dev/null |
    awk -v ns="$ns" -f perf/steps.awk | sort -rn
