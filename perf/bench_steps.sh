#!/usr/bin/env bash
# perf/bench_steps.sh: where the session bench's time goes, step by step, without the kernel.
#
#   perf/bench_steps.sh BENCH_BIN [PERSONS...]
#
# BENCH_BIN is the session bench executable (`cargo bench --bench session --no-run` prints its
# path). For each PERSONS (default: 1000 and 1000000) it runs `resp_session_PERSONS/depth/16`
# (sixteen ELIG.CARD/ELIG.PERSON commands per call, as at pipelining depth 16) for MEASURE_S
# seconds pinned to CPU, sampled by `perf record -e cpu-clock`, and prints the median time per
# command and the steps of perf/steps.awk in ns per command. At 1,000 persons the whole index
# sits in the CPU's caches, so the figures are the steps' work alone; at 1,000,000 they add
# the waits on memory. The difference, step by step, is what memory costs each step.
#
# Settings: MEASURE_S [6] FREQ [4999] CPU [1] OUT [target/perf/bench_steps]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$1
shift
sizes=("$@")
((${#sizes[@]})) || sizes=(1000 1000000)
MEASURE_S=${MEASURE_S:-6}
FREQ=${FREQ:-4999}
CPU=${CPU:-1}
OUT=${OUT:-target/perf/bench_steps}
PERF=${PERF:-$(command -v perf || command -v perf_6.1)}
mkdir -p "$OUT"
for n in "${sizes[@]}"; do
    filter="^resp_session_$n/depth/16\$"
    SHIKAKU_BENCH_PERSONS=$n taskset -c "$CPU" "$PERF" record -q -e cpu-clock -F "$FREQ" \
        -o "$OUT/$n.data" "$BIN" --bench "$filter" --measurement-time "$MEASURE_S" \
        >"$OUT/$n.txt" 2>/dev/null
    # criterion's median, per call of sixteen commands, to ns per command.
    ns=$(awk '/time:/ { sub(/.*time: *\[/, ""); v = $3; u = $4
            if (u == "µs" || u == "us") v *= 1000; else if (u == "ms") v *= 1e6
            printf "%.0f\n", v / 16; exit }' "$OUT/$n.txt")
    echo "== $n persons: $ns ns per command (median of resp_session_$n/depth/16 / 16; load average $(cut -d' ' -f1 /proc/loadavg))"
    # The bench's own loop and criterion's sampling are not the server's work: their share
    # is printed as "other" and left in the total, as it is in the median above.
    "$PERF" report -i "$OUT/$n.data" --no-children --sort dso,sym --stdio -q 2>/dev/null |
        awk -v ns="$ns" -f perf/steps.awk | sort -rn
done
