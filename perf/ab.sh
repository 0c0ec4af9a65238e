#!/usr/bin/env bash
# perf/ab.sh: two or more shikaku builds side by side, alternating, under the same load.
#
#   perf/ab.sh OLD_BIN NEW_BIN [...]
#
# Each round serves the data set of perf/compare_redis.sh (run it once first; WORK below)
# with each binary in turn (`serve --threads 1` pinned to SERVER_CPU) and drives it with
# `shikaku load` (pinned to CLIENT_CPU) over 50 connections at depth P, closed loop, or open
# loop at RATE. Prints one line per run: binary, achieved rate, the server's CPU time per
# answer (utime + stime of its process over the client's run, warm-up included, divided by
# every reply), p50, p99, p99.9 (µs), wrong answers and the load average. Run-to-run spread
# on the 2-core VM is about 5-10%: compare rounds, not runs; the CPU time per answer is the
# steadier figure (no client caps it).
#
# Settings: P [16] RATE [closed loop] ROUNDS [2] DURATION [8] LOAD_BIN [the first binary]
#           WORK [target/perf/compare] SERVER_CPU [0] CLIENT_CPU [1] PORT [17479]
#           MODE [elig] (elig-keyed: compare_redis.sh's requests) POLL_US [200]
set -euo pipefail
cd "$(dirname "$0")/.."
(($# >= 1)) || { echo "usage: perf/ab.sh BIN [BIN...]" >&2; exit 1; }
P=${P:-16}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-8}
WORK=${WORK:-target/perf/compare}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-17479}
LOAD_BIN=${LOAD_BIN:-$1}
MODE=${MODE:-elig}
POLL_US=${POLL_US:-200}
[[ -f $WORK/data/CURRENT && -f $WORK/snapshots/queries.csv ]] ||
    { echo "no data set in $WORK: run perf/compare_redis.sh first" >&2; exit 1; }
shape=(--connections 50)
if [[ -n ${RATE:-} ]]; then shape+=(--rate "$RATE"); else shape+=(--pipeline "$P"); fi
SP=
trap '[[ -n $SP ]] && kill "$SP" 2>/dev/null; wait 2>/dev/null || true' EXIT
for ((round = 1; round <= ROUNDS; round++)); do
    for bin in "$@"; do
        taskset -c "$SERVER_CPU" "$bin" serve --data "$WORK/data" --resp "127.0.0.1:$PORT" \
            --threads 1 --poll-us "$POLL_US" >/dev/null 2>&1 &
        SP=$!
        for _ in $(seq 100); do
            redis-cli -p "$PORT" PING >/dev/null 2>&1 && break
            sleep 0.1
        done
        ticks() { sed -E 's/^.*\) //' "/proc/$SP/stat" | awk '{ print $12 + $13 }'; }
        t0=$(ticks)
        out=$(taskset -c "$CLIENT_CPU" "$LOAD_BIN" load --queries "$WORK/snapshots/queries.csv" \
            --addr "127.0.0.1:$PORT" --mode "$MODE" --threads 1 --duration "$DURATION" --warmup 1 \
            "${shape[@]}" --json 2>/dev/null || true)
        cpu_s=$(awk -v t="$(($(ticks) - t0))" -v hz="$(getconf CLK_TCK)" 'BEGIN { print t / hz }')
        kill "$SP"
        wait "$SP" 2>/dev/null || true
        SP=
        python3 - "$bin" "$out" "$round" "$cpu_s" "$(cut -d' ' -f1 /proc/loadavg)" <<'PY'
import json, sys
d = json.loads(sys.argv[2] or "{}")
head = f"round {sys.argv[3]} {sys.argv[1]}: "
if not d:
    print(head + "FAILED")
else:
    cpu = float(sys.argv[4]) * 1e6 / max(d["replies"], 1)
    print(head + "{:.0f}/s server CPU {:.3f} µs/answer p50 {:.0f} p99 {:.0f} p99.9 {:.0f} µs, wrong {}, load {}".format(
        d["rate"], cpu, d["p50_us"], d["p99_us"], d["p999_us"], d["wrong"], sys.argv[5]))
PY
    done
done
