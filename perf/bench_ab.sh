#!/usr/bin/env bash
# Two builds of one criterion bench, side by side: runs OLD and NEW alternately ROUNDS times
# (the order flips each round, since this VM's speed drifts by minutes) and prints each
# run's median time, each build's median of them, and how many rounds NEW was faster.
#
#   perf/bench_ab.sh OLD_BIN NEW_BIN FILTER [ROUNDS]
#
# OLD_BIN and NEW_BIN are bench executables (`cargo bench --bench session --no-run` prints
# the path; copy it aside before building the other commit), FILTER a criterion filter such
# as 'depth/16'. MEASURE_S (default 5) is each run's measurement time.
{
set -euo pipefail
old=$1 new=$2 filter=$3 rounds=${4:-6} measure=${MEASURE_S:-5}
run() { # prints the median time of one run, in µs
    "$1" --bench "$filter" --measurement-time "$measure" 2>&1 |
        awk '/time:/ { sub(/.*time: *\[/, ""); v = $3; u = $4
            if (u == "ns") v /= 1000; else if (u == "ms") v *= 1000
            printf "%.3f\n", v; exit }'
}
olds=() news=() wins=0
for r in $(seq 1 "$rounds"); do
    if (( r % 2 )); then o=$(run "$old"); n=$(run "$new"); else n=$(run "$new"); o=$(run "$old"); fi
    olds+=("$o") news+=("$n")
    awk -v o="$o" -v n="$n" 'BEGIN { exit !(n < o) }' && wins=$((wins + 1))
    echo "round $r: old $o µs, new $n µs"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo "median: old $(median "${olds[@]}") µs, new $(median "${news[@]}") µs; new faster in $wins of $rounds rounds"
exit
}
