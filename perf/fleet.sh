#!/usr/bin/env bash
# The fleet at a given scale, against moto's S3 server on loopback: upload of a full and of a
# nightly generation (1% of insurers with a changed snapshot), download and verify on 3
# replicas, and the time from `shikaku fleet promote` to every replica serving it.
#   [REPLICAS=3] perf/fleet.sh [PERSONS]   (default 1000000; needs moto[server], the release build)
# Prints one line per step; append them to perf/RESULTS.md by hand with the date.
# moto keeps the objects in its memory (about the size of two generations).
set -euo pipefail
cd "$(dirname "$0")/.."
persons=${1:-1000000}
work=${WORK:-/tmp/shikaku-fleet-$persons}
date_=${DATE:-2026-11-24}
bin=${BIN:-target/release}
# REPLICAS=0: the uploads only (no replicas, nothing promoted), for scales whose copies do
# not fit the disk three times over.
replicas=${REPLICAS:-3}
rm -rf "$work" && mkdir -p "$work"
source perf/fleet_common.sh
start_moto
store=s3://perf/fleet

nice -n 10 "$bin/shikaku-datagen" --persons "$persons" --seed 7 --out "$work/snap" --date "$date_" --queries 1000 --quiet >/dev/null
"$bin/shikaku" build --snapshots "$work/snap" --data "$work/data" --date "$date_" 2>"$work/build-full.log" | grep -E '^published'
g1=$(cat "$work/data/CURRENT")
echo "generation $g1: $(du -sb --apparent-size "$work/data/generations/$g1" | cut -f1) bytes"
echo "publish (full): $("$bin/shikaku" publish --data "$work/data" --to $store | head -n 1)"

# The replicas, one core each; they download the first generation before serving.
start_replicas $store
sealed_line() { # replica, generation: its log line saying it holds the generation
  grep "verified and sealed" "$work/r$1.log" | grep -- "generation=$2" || true
}
sealed() { # generation: until every replica's log says it holds it
  for i in $(seq "$replicas"); do
    until [ -n "$(sealed_line $i "$1")" ]; do sleep 0.05; done
  done
}
sealed "$g1"
for i in $(seq "$replicas"); do
  echo "r$i download+verify+seal of $g1: $(sealed_line $i "$g1" | grep -o 'downloaded_bytes=[0-9]*\|elapsed_ms=[0-9]*' | tr '\n' ' ')"
done

promote() { # generation: prints ms from the command's start to every replica serving it
  ((replicas)) || return 0
  local t0; t0=$(ms)
  "$bin/shikaku" fleet --store $store promote "$1" >/dev/null &
  local cmd=$!
  until_live "$1"
  local t1; t1=$(ms)
  wait $cmd
  echo "promote $1: every replica live $((t1 - t0)) ms after the command started; the command (the move, then the store's clean-up) took $(($(ms) - t0)) ms"
}
promote "$g1"

# Nightly: 1% of insurers deliver a new snapshot with one member fewer (a real change of
# their segment); the rest are unchanged and keep their segment files.
mapfile -t dirs < <(find "$work/snap" -mindepth 1 -maxdepth 1 -type d | sort)
step=100
for ((i = 0; i < ${#dirs[@]}; i += step)); do
  d=${dirs[$i]}
  newest=$(ls "$d" | sort | tail -n 1)
  head -n -1 "$d/$newest" >"$d/20261125.csv"
done
echo "changed insurers: $(( (${#dirs[@]} + step - 1) / step )) of ${#dirs[@]}"
next_date=$(date -d "$date_ + 1 day" +%F)
"$bin/shikaku" build --snapshots "$work/snap" --data "$work/data" --date "$next_date" 2>"$work/build-nightly.log" | grep -E '^published'
g2=$(cat "$work/data/CURRENT")
t0=$(ms)
echo "publish (nightly): $("$bin/shikaku" publish --data "$work/data" --to $store | head -n 1)"
sealed "$g2"
((replicas)) && echo "from publish's start to every replica ready with $g2: $(($(ms) - t0)) ms"
for i in $(seq "$replicas"); do
  echo "r$i download+verify+seal of $g2: $(sealed_line $i "$g2" | grep -o 'downloaded_bytes=[0-9]*\|linked_files=[0-9]*\|elapsed_ms=[0-9]*' | tr '\n' ' ')"
done
promote "$g2"
((replicas)) || exit 0
# A replica holds the previous generation ready (opened and verified) a few seconds after a
# promote; a rollback before that swaps as a reload does, verifying the whole index. An
# operator rolls back minutes after a promote, not within a second: wait ROLLBACK_AFTER_S
# (default 15; 0 measures a rollback at once).
sleep "${ROLLBACK_AFTER_S:-15}"
t0=$(ms)
"$bin/shikaku" fleet --store $store rollback >/dev/null &
cmd=$!
until_live "$g1"
echo "rollback to $g1: every replica live $(($(ms) - t0)) ms after the command started"
wait $cmd
