#!/usr/bin/env bash
# Build throughput, peak memory and the incremental nightly build, at a given scale.
#   perf/build.sh [PERSONS]      (default 10000000; needs ~1.3 GB disk per 10M persons)
# Prints one line per step; append them to perf/RESULTS.md by hand with the date.
set -euo pipefail
cd "$(dirname "$0")/.."
persons=${1:-10000000}
work=${WORK:-/tmp/shikaku-perf-$persons}
date_=${DATE:-2026-11-24}
cargo build --release --workspace -q
bin=target/release
rm -rf "$work" && mkdir -p "$work"

timed() { # label, command...: wall seconds and peak RSS via /usr/bin/time -v
  local label=$1; shift
  /usr/bin/time -v "$@" >"$work/$label.out" 2>"$work/$label.time"
  local wall rss
  wall=$(grep 'Elapsed (wall clock)' "$work/$label.time" | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' "$work/$label.time" | awk '{print $NF}')
  printf '%-12s wall %s  peak RSS %.2f GB\n' "$label" "$wall" "$(echo "$rss/1048576" | bc -l)"
}

timed datagen "$bin/shikaku-datagen" --persons "$persons" --seed 7 --out "$work/snap" --date "$date_" --queries 10000 --quiet
timed build-full "$bin/shikaku" build --snapshots "$work/snap" --data "$work/data" --date "$date_"
grep -E '^published' "$work/build-full.out"
gen=$(cat "$work/data/CURRENT")
bytes=$(du -sb --apparent-size "$work/data/generations/$gen" | cut -f1)
printf 'generation bytes %s (%.1f per person)\n' "$bytes" "$(echo "$bytes/$persons" | bc -l)"
python3 perf/phases.py "$work/data/generations/$gen/report.json" "$work/build-full.time"

# Nightly: 1% of insurers deliver a new snapshot (a new file, with a trailing blank line), the
# rest are unchanged (same path, size and mtime) and keep their segment files.
mapfile -t dirs < <(find "$work/snap" -mindepth 1 -maxdepth 1 -type d | sort)
step=100
for ((i = 0; i < ${#dirs[@]}; i += step)); do
  d=${dirs[$i]}
  newest=$(ls "$d" | sort | tail -n 1)
  { cat "$d/$newest"; echo; } >"$d/20261125.csv"
done
# The nightly build runs the next day, so "covered today" is counted again for every insurer.
next_date=$(date -d "$date_ + 1 day" +%F)
timed build-incr "$bin/shikaku" build --snapshots "$work/snap" --data "$work/data" --date "$next_date"
grep -E '^published' "$work/build-incr.out"
gen=$(cat "$work/data/CURRENT")
grep -o '"phases_ms": {[^}]*}' -z "$work/data/generations/$gen/report.json" | tr -d '\n ' ; echo
echo "changed insurers: $(( (${#dirs[@]} + step - 1) / step )) of ${#dirs[@]}"
