#!/usr/bin/env bash
# perf/layers_ab.sh: what unfolded change layers cost a lookup. Generates PERSONS [1000000]
# with DAYS [11] days of change files, builds day by day (a base, then one change generation
# a day: DAYS - 1 layers), copies the data directory and folds the copy (`build --fold`),
# then serves each in turn under the same load with perf/ab.sh's measurement (server CPU time
# per answer, closed loop, 50 connections at depth P [16]), ROUNDS [2] alternations (the side
# that goes first alternating too).
# The queries are the generator's, whose `expected` is the snapshot day's: answers a change
# moved count as "wrong" in both, and the two counts must be equal (the layered and the
# folded generation answer alike). WORK [/tmp/shikaku-layers-ab]; BIN [target/release];
# MERGE [0; 1: the layered side's layers merged into one first, `build --compact`].
set -euo pipefail
cd "$(dirname "$0")/.."
persons=${PERSONS:-1000000}
days=${DAYS:-11}
work=${WORK:-/tmp/shikaku-layers-ab}
bin=${BIN:-target/release}
date_=2026-11-24
rm -rf "$work" && mkdir -p "$work/layered" "$work/folded"
"$bin/shikaku-datagen" --persons "$persons" --seed 7 --out "$work/snap" --date "$date_" \
  --queries 200000 --changes-days "$days" --quiet >/dev/null
for ((d = 0; d < days; d++)); do
  on=$(date -d "$date_ + $d day" +%F)
  "$bin/shikaku" build --snapshots "$work/snap" --data "$work/layered/data" --date "$on" \
    --max-drop-percent 100 >/dev/null 2>&1
done
last=$(date -d "$date_ + $((days - 1)) day" +%F)
cp -a "$work/layered/data" "$work/folded/data"
if [[ ${MERGE:-0} == 1 ]]; then
  "$bin/shikaku" build --snapshots "$work/snap" --data "$work/layered/data" --date "$last" \
    --max-drop-percent 100 --compact >/dev/null 2>&1
fi
"$bin/shikaku" build --snapshots "$work/snap" --data "$work/folded/data" --date "$last" \
  --max-drop-percent 100 --fold >/dev/null 2>&1
for side in layered folded; do
  ln -s "$work/snap" "$work/$side/snapshots"
  gen=$(cat "$work/$side/data/CURRENT")
  python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], r['generation'], r.get('generation_kind'), 'layers', r.get('layer_count', 0))" \
    "$work/$side/data/generations/$gen/report.json" "$side"
  find "$work/$side/data/generations/$gen/segments" -name '*.seg' | wc -l | sed 's/^/  segment files: /'
done
for ((round = 1; round <= ${ROUNDS:-2}; round++)); do
  # Which side goes first alternates, so an order effect cancels over the rounds.
  sides="layered folded"
  ((round % 2 == 0)) && sides="folded layered"
  for side in $sides; do
    echo "round $round, $side:"
    WORK="$work/$side" ROUNDS=1 P="${P:-16}" perf/ab.sh "$bin/shikaku" | grep -v '^#' | sed "s/^/  /"
  done
done
