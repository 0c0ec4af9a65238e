#!/usr/bin/env bash
# perf/ab.sh: two or more shikaku builds side by side, alternating, under the same load.
#
#   perf/ab.sh OLD_BIN NEW_BIN [...]
#
# Each round serves the data set of perf/compare_redis.sh (run it once first; WORK below)
# with each binary in turn (`serve --threads 1` pinned to SERVER_CPU) and drives it with
# `shikaku load` (pinned to CLIENT_CPU) over 50 connections at depth P, closed loop, or open
# loop at RATE. Prints one line per run: binary, achieved rate, p50, p99, p99.9 (µs), and
# wrong answers. Run-to-run spread on the 2-core VM is about 5-10%: compare rounds, not runs.
#
# Settings: P [16] RATE [closed loop] ROUNDS [2] DURATION [8] LOAD_BIN [the first binary]
#           WORK [target/perf/compare] SERVER_CPU [0] CLIENT_CPU [1] PORT [17479]
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
[[ -f $WORK/data/CURRENT && -f $WORK/snapshots/queries.csv ]] ||
    { echo "no data set in $WORK: run perf/compare_redis.sh first" >&2; exit 1; }
shape=(--connections 50)
if [[ -n ${RATE:-} ]]; then shape+=(--rate "$RATE"); else shape+=(--pipeline "$P"); fi
SP=
trap '[[ -n $SP ]] && kill "$SP" 2>/dev/null; wait 2>/dev/null || true' EXIT
for ((round = 1; round <= ROUNDS; round++)); do
    for bin in "$@"; do
        taskset -c "$SERVER_CPU" "$bin" serve --data "$WORK/data" --resp "127.0.0.1:$PORT" \
            --threads 1 >/dev/null 2>&1 &
        SP=$!
        for _ in $(seq 100); do
            redis-cli -p "$PORT" PING >/dev/null 2>&1 && break
            sleep 0.1
        done
        out=$(taskset -c "$CLIENT_CPU" "$LOAD_BIN" load --queries "$WORK/snapshots/queries.csv" \
            --addr "127.0.0.1:$PORT" --mode elig --threads 1 --duration "$DURATION" --warmup 1 \
            "${shape[@]}" --json 2>/dev/null || true)
        kill "$SP"
        wait "$SP" 2>/dev/null || true
        SP=
        python3 - "$bin" "$out" "$round" <<'PY'
import json, sys
d = json.loads(sys.argv[2] or "{}")
head = f"round {sys.argv[3]} {sys.argv[1]}: "
if not d:
    print(head + "FAILED")
else:
    print(head + "{:.0f}/s p50 {:.0f} p99 {:.0f} p99.9 {:.0f} µs, wrong {}".format(
        d["rate"], d["p50_us"], d["p99_us"], d["p999_us"], d["wrong"]))
PY
    done
done
