#!/usr/bin/env bash
# Freshness on one node at scale (issue 25's national targets): `shikaku build --watch` and a
# server on a built data directory, and change files renamed into the delivery:
#   (a) FILES [5] files of ROWS [10000] rows for the largest insurer, one at a time;
#   (b) one day's changes: DAY_ROWS [55000] rows over DAY_INSURERS [1000] insurers, one file
#       each, renamed together (the national day at every scale: the cost is the change's).
# The rows (perf/freshness_rows.py) are updates, loses and adds of members read from the
# snapshots' first lines: no materialized snapshots, so it runs at 126M on ~40 GB of disk.
#   perf/freshness_national.sh [PERSONS]      (default 1000000)
# SNAP and DATA name a delivery and a data directory already built from it for 2026-11-24
# (e.g. perf/national.sh's WORK/snap and WORK/data): the script lands its change files in
# SNAP and its generations in DATA. Else it generates and builds them in WORK.
# Prints, per file: rows (and rows rejected), rename → CURRENT and rename → the server
# answering the file's probe card as lost (ms), bytes the generation wrote (files not hard
# linked from its parent), CPU s of the build (the watch process, and the report's phases),
# then the medians of (a). BIN [target/release], PORT [17590], ON [2026-11-25: the change
# files' day; later than any change file DATA already holds], SEED [7: which members the rows
# change], RUN [0: the how-manieth run over DATA; each run's rows are the next members and its
# files are named later the same day, so a data directory takes several runs on one ON].
set -euo pipefail
cd "$(dirname "$0")/.."
persons=${1:-1000000}
work=${WORK:-/tmp/shikaku-freshness-national-$persons}
on=${ON:-2026-11-25}
bin=${BIN:-target/release}
port=${PORT:-17590}
mkdir -p "$work"
snap=${SNAP:-$work/snap}
data=${DATA:-$work/data}
# SIGN=1: the builds sign their manifests and the server trusts the key (it then checks
# checksums only); the key is WORK/signing.key, made here unless it exists.
sign=() trust=()
if [[ -n ${SIGN:-} ]]; then
  [[ -f $work/signing.key ]] || "$bin/shikaku" signing-key new --out "$work/signing.key" >"$work/trusted.keys"
  sign=(--signing-key "$work/signing.key") trust=(--trusted-keys "$work/trusted.keys")
fi
if [[ -z ${SNAP:-} ]]; then
  rm -rf "$snap" "$data"
  /usr/bin/time -f '%e s wall, %M kB peak' "$bin/shikaku-datagen" --persons "$persons" --seed 7 \
    --out "$snap" --date 2026-11-24 --quiet >"$work/datagen.json"
  /usr/bin/time -f '%e s wall, %M kB peak' "$bin/shikaku" build --snapshots "$snap" --data "$data" \
    --date 2026-11-24 "${sign[@]}" | grep -E '^published'
fi
rm -rf "$work/staged"
python3 perf/freshness_rows.py "$snap" "$work/staged" "$on" "${FILES:-5}" "${ROWS:-10000}" \
  "${DAY_ROWS:-55000}" "${DAY_INSURERS:-1000}" "${SEED:-7}" >"$work/staged.list"

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
ms() { date +%s%3N; }
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / hz)}' "/proc/$1/stat"; }
"$bin/shikaku" serve --data "$data" --http "127.0.0.1:$port" --resp 127.0.0.1:0 --threads 1 \
  "${trust[@]}" >"$work/serve.log" 2>&1 &
pids+=($!)
until curl -sf "127.0.0.1:$port/healthz" >/dev/null 2>&1; do sleep 0.1; done
"$bin/shikaku" build --watch --snapshots "$snap" --data "$data" --date "$on" \
  --max-drop-percent 100 "${sign[@]}" 2>"$work/watch.log" &
pids+=($!)
watch_pid=$!
until grep -q "watching for change files" "$work/watch.log"; do sleep 0.1; done
sleep 1

# The probe's answer's coverage on the change day (the card lost by the file: false once live).
covered() {
  curl -s "127.0.0.1:$port/v1/card" -H 'Host: localhost' -d "$1" |
    python3 -c 'import json,sys; a=json.load(sys.stdin); print(a.get("validity"))'
}
# land KIND REL...: renames the files in, waits for CURRENT and the server; one line.
land() {
  local kind=$1 before g c0 c1 t0 t_current t_answer probe rows written
  shift
  before=$(cat "$data/CURRENT")
  probe=$(grep -F " $1 " "$work/staged.list" | cut -d' ' -f4-)
  [[ $probe != null ]] || probe=$(awk -v k="$kind" '$1 == k && $4 != "null" {$1 = $2 = $3 = ""; print substr($0, 4); exit}' "$work/staged.list")
  was=$(covered "$probe")
  rows=0
  for rel in "$@"; do rows=$((rows + $(wc -l <"$work/staged/$rel") - 1)); done
  c0=$(cpu_ms "$watch_pid")
  t0=$(ms)
  # One process renames them all, as fast as a delivery lands them (1,000 mv would take seconds).
  python3 -c 'import os, sys
for rel in sys.argv[3:]:
    os.makedirs(os.path.dirname(os.path.join(sys.argv[2], rel)), exist_ok=True)
    os.rename(os.path.join(sys.argv[1], rel), os.path.join(sys.argv[2], rel))' "$work/staged" "$snap" "$@"
  until [[ $(cat "$data/CURRENT") != "$before" ]]; do
    (($(ms) - t0 < 600000)) || { echo "no new generation after 600 s" >&2; return 1; }
    sleep 0.005
  done
  t_current=$(ms)
  until [[ $(covered "$probe") != "$was" ]]; do
    (($(ms) - t0 < 600000)) || { echo "the probe's answer did not change: $probe" >&2; return 1; }
    sleep 0.005
  done
  t_answer=$(ms)
  g=$(cat "$data/CURRENT")
  sleep 0.3
  c1=$(cpu_ms "$watch_pid")
  written=$(python3 perf/written_bytes.py "$data" "$g")
  python3 - "$data/generations/$g/report.json" "$kind" "$#" "$rows" "$((t_current - t0))" \
    "$((t_answer - t0))" "$written" "$((c1 - c0))" "$was" >>"$work/runs.jsonl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
kind, files, rows, to_current, to_answer, written, cpu, was = sys.argv[2:10]
layer = r.get("layer") or {}
rejected = sum(c.get("rows_rejected", 0) for c in layer.get("change_files", []))
print(json.dumps({
    "kind": kind, "files": int(files), "rows": int(rows), "rows_rejected": rejected,
    "generation_kind": r.get("generation_kind", "base"), "to_current_ms": int(to_current),
    "to_answer_ms": int(to_answer), "written_bytes": int(written), "build_cpu_ms": int(cpu),
    "build_wall_ms": r.get("elapsed_ms"), "phases_ms": r.get("phases_ms"),
    "phases_cpu_ms": r.get("phases_cpu_ms"), "stages_cpu_ms": r.get("stages_cpu_ms"), "probe_was": was,
}))
PY
  tail -n 1 "$work/runs.jsonl"
}
: >"$work/runs.jsonl"
while read -r kind rel _; do
  if [[ $kind == a ]]; then land a "$rel" && sleep 1; fi
done <"$work/staged.list"
# shellcheck disable=SC2046
land b $(awk '$1 == "b" {print $2}' "$work/staged.list")
python3 - "$work/runs.jsonl" "$persons" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
a = [r for r in runs if r["kind"] == "a"]
med = lambda k: statistics.median(r[k] for r in a)
print(f"{sys.argv[2]} persons, (a) median of {len(a)} files of {a[0]['rows']} rows: rename to CURRENT "
      f"{med('to_current_ms')} ms, to the server answering {med('to_answer_ms')} ms, written "
      f"{med('written_bytes')} bytes, build CPU {med('build_cpu_ms')} ms")
for r in runs:
    if r["kind"] == "b":
        print(f"(b) {r['files']} files, {r['rows']} rows ({r['rows_rejected']} rejected): rename to CURRENT "
              f"{r['to_current_ms']} ms, to the server answering {r['to_answer_ms']} ms, written "
              f"{r['written_bytes']} bytes, build CPU {r['build_cpu_ms']} ms, phases CPU {r['phases_cpu_ms']}, "
              f"stages CPU {r['stages_cpu_ms']}")
PY
