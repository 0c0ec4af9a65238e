#!/usr/bin/env bash
# perf/swap.sh: latency around hot-swaps, and how soon an old generation's memory is released.
#
# shikaku serve (one thread, pinned to SERVER_CPU) answers an open-loop `shikaku load` (pinned
# to CLIENT_CPU) twice for DURATION seconds at RATE requests/s: once steady, once while
# CURRENT flips between two generations every SWAP_EVERY seconds (so every second is "around a
# swap"). Prints both p99.9s and their ratio, and the delay between each swap and the release
# (unmapping) of the generation it replaced, from the server's log.
#
# Settings: PERSONS [1000000] RATE [20000] DURATION [20] SWAP_EVERY [1] WORK [target/perf/swap]
#           SERVER_CPU [0] CLIENT_CPU [1] PORT [18379]
set -euo pipefail
cd "$(dirname "$0")/.."
PERSONS=${PERSONS:-1000000}
RATE=${RATE:-20000}
DURATION=${DURATION:-20}
SWAP_EVERY=${SWAP_EVERY:-1}
WORK=${WORK:-target/perf/swap}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-18379}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
cargo build --release --workspace -q
BIN=target/release

if [[ ! -f $WORK/snap/queries.csv ]]; then
    rm -rf "$WORK/snap" "$WORK/data"
    "$BIN/shikaku-datagen" --persons "$PERSONS" --seed 7 --out "$WORK/snap" --queries 20000 --quiet >/dev/null
fi
# Two generations of the same delivery to flip between.
rm -rf "$WORK/data"
"$BIN/shikaku" build --snapshots "$WORK/snap" --data "$WORK/data" >/dev/null 2>&1
A=$(cat "$WORK/data/CURRENT")
sleep 1
# --full: B shares no segment file with A (a nightly build would hard-link them all), so every
# swap maps, verifies and releases a whole index: the worst case.
"$BIN/shikaku" build --snapshots "$WORK/snap" --data "$WORK/data" --max-drop-percent 100 --full >/dev/null 2>&1
B=$(cat "$WORK/data/CURRENT")

SERVER_PID=
cleanup() { [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true; }
trap cleanup EXIT
taskset -c "$SERVER_CPU" "$BIN/shikaku" serve --data "$WORK/data" --threads 1 --resp "127.0.0.1:$PORT" \
    --http "127.0.0.1:$((PORT + 1))" >"$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done

load() {
    taskset -c "$CLIENT_CPU" "$BIN/shikaku" load --queries "$WORK/snap/queries.csv" --addr "127.0.0.1:$PORT" \
        --connections 50 --rate "$RATE" --duration "$DURATION" --warmup 2 --json
}
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])['$2'])" "$1"; }

steady=$(load)
flipper() {
    local next=$A
    while true; do
        sleep "$SWAP_EVERY"
        printf '%s\n' "$next" >"$WORK/data/CURRENT.tmp" && mv "$WORK/data/CURRENT.tmp" "$WORK/data/CURRENT"
        if [[ $next == "$A" ]]; then next=$B; else next=$A; fi
    done
}
flipper &
FLIP_PID=$!
swapping=$(load)
kill "$FLIP_PID" 2>/dev/null || true
sleep 3

s999=$(field "$steady" p999_us)
w999=$(field "$swapping" p999_us)
swaps=$(grep -c 'hot-swapped' "$WORK/serve.log" || true)
echo "steady:   $(field "$steady" rate) req/s, p99 $(field "$steady" p99_us) us, p99.9 $s999 us, p99.99 $(field "$steady" p9999_us) us, wrong $(field "$steady" wrong)"
echo "swapping: $(field "$swapping" rate) req/s, p99 $(field "$swapping" p99_us) us, p99.9 $w999 us, p99.99 $(field "$swapping" p9999_us) us, wrong $(field "$swapping" wrong), swaps $swaps"
python3 -c "print(f'p99.9 ratio swapping/steady: {$w999/$s999:.2f}')"
# Release delay: from each 'hot-swapped' line to the next 'old generation released' line.
python3 - "$WORK/serve.log" <<'EOF'
import re, sys, datetime
swap, delays = None, []
for line in open(sys.argv[1]):
    line = re.sub(r'\x1b\[[0-9;]*m', '', line)
    m = re.match(r'(\S+Z)', line)
    if not m:
        continue
    t = datetime.datetime.fromisoformat(m.group(1).replace('Z', '+00:00'))
    if 'hot-swapped' in line:
        swap = t
    elif 'old generation released' in line and swap:
        delays.append((t - swap).total_seconds())
        swap = None
if delays:
    delays.sort()
    print(f"old generation released after a swap: median {delays[len(delays)//2]*1000:.0f} ms, max {delays[-1]*1000:.0f} ms over {len(delays)} swaps")
EOF
