#!/usr/bin/env bash
# perf/batch.sh: how long one 10,000-query JSON batch (POST /v1/batch) takes, per build.
#
#   perf/batch.sh BIN [BIN...]
#
# The batch is the first 10,000 queries of perf/compare_redis.sh's workload (run it once
# first; WORK below), cards and persons mixed. Each binary serves on SERVER_CPU; curl posts
# the batch REPEAT times from CLIENT_CPU. Prints the median and fastest time per binary and
# checks every binary answers with the same bytes.
# Settings: REPEAT [20] WORK [target/perf/compare] SERVER_CPU [0] CLIENT_CPU [1] PORT [17480]
set -euo pipefail
cd "$(dirname "$0")/.."
(($# >= 1)) || { echo "usage: perf/batch.sh BIN [BIN...]" >&2; exit 1; }
REPEAT=${REPEAT:-20}
WORK=${WORK:-target/perf/compare}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-17480}
[[ -f $WORK/snapshots/queries.csv ]] || { echo "run perf/compare_redis.sh first" >&2; exit 1; }
BATCH=$WORK/batch10k.json
python3 - "$WORK/snapshots/queries.csv" "$BATCH" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))[:10000]
out = []
for r in rows:
    if r["kind"] == "card":
        q = {k: r[k] for k in ("insurer_number", "symbol", "number", "birthdate")}
        q["kind"] = "card"
        if r["branch"]:
            q["branch"] = r["branch"]
    else:
        q = {"kind": "person", "individual_number": r["individual_number"]}
    if r["date"]:
        q["date"] = r["date"]
    out.append(q)
json.dump(out, open(sys.argv[2], "w", encoding="utf-8"), ensure_ascii=False)
PY
SP=
trap '[[ -n $SP ]] && kill "$SP" 2>/dev/null; wait 2>/dev/null || true' EXIT
first=
for bin in "$@"; do
    taskset -c "$SERVER_CPU" "$bin" serve --data "$WORK/data" --resp 127.0.0.1:0 \
        --http "127.0.0.1:$PORT" --threads 1 >/dev/null 2>&1 &
    SP=$!
    for _ in $(seq 100); do
        curl -sf "127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    times=()
    for _ in $(seq "$REPEAT"); do
        times+=("$(taskset -c "$CLIENT_CPU" curl -sf -o "$WORK/batch.out" -w '%{time_total}' \
            -H 'content-type: application/json' --data-binary "@$BATCH" \
            "127.0.0.1:$PORT/v1/batch")")
    done
    kill "$SP"
    wait "$SP" 2>/dev/null || true
    SP=
    printf '%s\n' "${times[@]}" | sort -n |
        awk -v b="$bin" '{t[NR]=$1} END {printf "%s: median %.1f ms, fastest %.1f ms\n", b, t[int((NR+1)/2)]*1000, t[1]*1000}'
    if [[ -z $first ]]; then
        first=$WORK/batch.first
        cp "$WORK/batch.out" "$first"
    elif ! cmp -s "$first" "$WORK/batch.out"; then
        echo "$bin answers differently from $1" >&2
        exit 1
    fi
done
