#!/usr/bin/env bash
# Freshness through the fleet: from a change file's rename into the delivery to every
# replica answering a card of the file from the generation built from it,
# and serving that generation, with `shikaku build --watch --publish` on
# the builder, moto's S3 server on loopback, 3 replicas (`serve --follow`) and the promote
# policy `auto-changes`. The change files are data-gen's (`--changes-days 1`): the FILES
# largest of the day (default 5), landed one at a time.
#   perf/freshness.sh [PERSONS]   (default 1000000; needs moto[server], the release build)
# Prints, per file: its rows, the time to every replica serving it and each phase (settle,
# build and its phases, upload, replicas' poll/download/verify, promote, swap), bytes
# uploaded against bytes the generation wrote, the CPU time of the builder's loop, of the
# replicas (together) and of moto over that span; then the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
persons=${1:-1000000}
files=${FILES:-5}
work=${WORK:-/tmp/shikaku-freshness-$persons}
date_=${DATE:-2026-11-24}
on=$(date -d "$date_ + 1 day" +%F)
bin=${BIN:-target/release}
datagen=${DATAGEN:-$bin/shikaku-datagen}
replicas=${REPLICAS:-3}
rm -rf "$work" && mkdir -p "$work"
source perf/fleet_common.sh
start_moto
store=s3://perf/fresh

nice -n 10 "$datagen" --persons "$persons" --seed 7 --out "$work/snap" --date "$date_" \
  --queries 1000 --changes-days 1 --quiet >/dev/null
# The day's change files wait outside the delivery until landed.
mkdir -p "$work/staged"
(cd "$work/snap" && find . -path '*/changes/*.csv' -printf '%s %P\n') | sort -rn >"$work/staged.list"
while read -r _ rel; do
  mkdir -p "$work/staged/$(dirname "$rel")"
  mv "$work/snap/$rel" "$work/staged/$rel"
done <"$work/staged.list"
echo "change files (--changes-days 1): $(wc -l <"$work/staged.list"), $(awk '{s+=$1} END {print s}' "$work/staged.list") bytes"

"$bin/shikaku" build --snapshots "$work/snap" --data "$work/data" --date "$on" 2>"$work/build.log" | grep -E '^published'
g1=$(cat "$work/data/CURRENT")
"$bin/shikaku" publish --data "$work/data" --to $store | head -n 1
start_replicas $store
until "$bin/shikaku" fleet --store $store promote "$g1" >/dev/null 2>&1; do sleep 0.2; done
until_live "$g1"
"$bin/shikaku" fleet --store $store policy auto-changes
"$bin/shikaku" build --watch --publish $store --snapshots "$work/snap" --data "$work/data" \
  --date "$on" 2>"$work/watch.log" &
pids+=($!)
watch_pid=$!
until grep -q "watching for change files" "$work/watch.log"; do sleep 0.1; done
sleep 1

# A batch (HTTP /v1/batch's JSON) of a card query for every row of change file $1, on the
# build date: one request per replica per poll, and whichever rows change what an answer
# shows (a row the build rejects, or an update of nothing shown, changes nothing).
card_queries() {
  python3 - "$1" "$on" <<'PY'
import csv, json, sys
qs = []
for row in csv.DictReader(open(sys.argv[1], encoding="utf-8")):
    q = {k: row[k].strip() for k in ("insurer_number", "symbol", "number", "branch", "birthdate")}
    qs.append({"kind": "card", **{k: v for k, v in q.items() if v}, "date": sys.argv[2]})
print(json.dumps(qs, ensure_ascii=False))
PY
}
answer() { # replica, batch: its answers without the generation that gave them
  curl -s -H 'Host: localhost' -H 'Content-Type: application/json' --data-binary "$2" \
    "http://127.0.0.1:$(cat "$work/r$1.http")/v1/batch" | sed 's/"generation":"[^"]*",\{0,1\}//g'
}
# Until every replica answers query $1 otherwise than it did before the rename
# ($before_answers); gives up (prints "unchanged") 30 s after a replica serves generation $2
# (the row was rejected, or changed nothing the answer shows).
until_answered() {
  local i
  for i in $(seq "$replicas"); do
    until [ "$(answer "$i" "$1")" != "${before_answers[$i]}" ]; do
      if [ -z "${live_at:-}" ] && [ "$(serving "$i")" = "$2" ]; then live_at=$(ms); fi
      if [ -n "${live_at:-}" ] && (($(ms) - live_at > 30000)); then echo unchanged; return; fi
      sleep 0.01
    done
  done
  echo changed
}

built_gen() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["last_build"].get("generation") or "")' "$work/data/watch.json" 2>/dev/null || true; }
: >"$work/runs.tsv"
head -n "$files" "$work/staged.list" | while read -r bytes rel; do
  before=$(built_gen)
  c0=$(cpu_ms "$watch_pid"); m0=$(cpu_ms "$moto_pid")
  r0=0; for p in "${replica_pids[@]}"; do r0=$((r0 + $(cpu_ms "$p"))); done
  query=$(card_queries "$work/staged/$rel")
  before_answers=()
  for i in $(seq "$replicas"); do before_answers[$i]=$(answer "$i" "$query"); done
  live_at=
  t0=$(ms)
  mv "$work/staged/$rel" "$work/snap/$rel"
  until g=$(built_gen) && [ -n "$g" ] && [ "$g" != "$before" ]; do sleep 0.01; done
  answered=$(until_answered "$query" "$g")
  until_live "$g"
  t1=$(ms)
  c1=$(cpu_ms "$watch_pid"); m1=$(cpu_ms "$moto_pid")
  r1=0; for p in "${replica_pids[@]}"; do r1=$((r1 + $(cpu_ms "$p"))); done
  rows=$(($(wc -l <"$work/snap/$rel") - 1))
  written=$(python3 perf/written_bytes.py "$work/data" "$g")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$rel" "$rows" "$g" "$t0" "$t1" "$written" \
    $((c1 - c0)) $((r1 - r0)) $((m1 - m0)) "$answered" >>"$work/runs.tsv"
  sleep 1
done
python3 perf/freshness.py "$work" "$replicas"
