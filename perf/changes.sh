#!/usr/bin/env bash
# The change-stream equivalence at scale (docs/delivery.md "Change files"): a delivery with
# DAYS days of change files is built day by day, as the builder takes each day's files, and
# answers every query of the workload (card and person) and checks every receipt exactly as a
# full build of the generator's materialized snapshots.
#   perf/changes.sh [PERSONS] [DAYS]     (default 1000000 persons, 30 days)
# Prints per-day build times and bytes written per generation, then the differing answers
# and receipts (0 expected; exit 1 otherwise). Settings: WORK, DATE [2025-10-01], QUERIES
# [200000], CLAIMS [20000], DEFECTS [0.001], PORT [17490], BIN [target/release, built]. DATE + DAYS must not reach today:
# a build for today applies change files only up to now, the truth holds them all.
set -euo pipefail
cd "$(dirname "$0")/.."
persons=${1:-1000000}
days=${2:-30}
work=${WORK:-/tmp/shikaku-changes-$persons-$days}
date_=${DATE:-2025-10-01}
queries=${QUERIES:-200000}
claims=${CLAIMS:-20000}
port=${PORT:-17490}
if [[ -z ${BIN:-} ]]; then
  cargo build --release --workspace -q
fi
bin=${BIN:-$PWD/target/release}
rm -rf "$work" && mkdir -p "$work"

secs() { # command...: wall seconds of it, its output kept in $work/last.out, its CPU
  # seconds (user + system) in $work/last.cpu
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$work/last.time" "$@" >"$work/last.out" 2>"$work/last.err" ||
    { cat "$work/last.err" >&2; return 1; }
  t1=$(date +%s.%N)
  awk '{print $1 + $2}' "$work/last.time" >"$work/last.cpu"
  echo "$t1 - $t0" | bc -l
}

# The newest generation's kind and phases (report.json), for the per-build line.
kind_phases() {
  python3 - "$1/generations/$(cat "$1/CURRENT")/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
kind = r.get("generation_kind", "base")
if kind == "layer":
    kind += f" {r.get('layer_count')}"
print(kind, " ".join(f"{k}={v}" for k, v in sorted(r.get("phases_ms", {}).items())))
PY
}

# Bytes the newest generation of DATA wrote: its files not hard-linked from its parent.
written() { python3 perf/written_bytes.py "$1"; }

t=$(secs "$bin/shikaku-datagen" --persons "$persons" --seed 7 --out "$work/snap" --date "$date_" \
  --defects "${DEFECTS:-0.001}" --queries "$queries" --claims "$claims" --changes-days "$days" --quiet)
cp "$work/last.out" "$work/summary.json"
python3 - "$work/summary.json" "$t" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))["changes"]
print(f"datagen {float(sys.argv[2]):.1f} s: {c['files']} change files, {c['rows']} rows, "
      f"{c['bytes']} bytes, events {c['events']}, defects {sum(c['defects'].values())}")
PY

printf 'day         build s   cpu s   written bytes   files applied   kind, phases (ms)\n'
for ((d = 0; d < days; d++)); do
  on=$(date -d "$date_ + $d day" +%F)
  t=$(secs "$bin/shikaku" build --snapshots "$work/snap" --data "$work/data" --date "$on" \
    --max-drop-percent 100)
  printf '%s  %7.2f  %6.2f  %14s  %13s   %s\n' "$on" "$t" "$(cat "$work/last.cpu")" "$(written "$work/data")" \
    "$(find "$work/snap" -path '*/changes/*' -name "$(date -d "$on" +%Y%m%d)-*" | wc -l)" \
    "$(kind_phases "$work/data")"
done
last=$(date -d "$date_ + $((days - 1)) day" +%F)
t=$(secs "$bin/shikaku" build --snapshots "$work/snap.materialized" --data "$work/truth" \
  --date "$last" --full --max-drop-percent 100)
printf 'full build of the materialized snapshots: %.2f s, %s bytes\n' "$t" "$(written "$work/truth")"

# Every query, as CSV batches of 10,000 (without the expected column), to each generation;
# a query without a date is dated as the generator's truth holds it (the day after the last
# change), not on the day the script runs.
qdate=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["changes"]["queries_date"])' "$work/summary.json")
source perf/workload_answers.sh
workload_batches "$work/snap/queries.csv" "$qdate"
workload_answer "$work/data" "$work/answers.changes.csv"
workload_answer "$work/truth" "$work/answers.truth.csv"
workload_compare "$work/answers.changes.csv" "$work/answers.truth.csv" "$work/snap/queries.csv" \
  "between the generations"

files=$(tail -n +2 "$work/snap.claims/truth.csv" | cut -d, -f1 | sort -u | sed "s|^|$work/snap.claims/|")
# shellcheck disable=SC2086
"$bin/shikaku" claims --data "$work/data" $files >"$work/claims.changes.csv" 2>/dev/null
# shellcheck disable=SC2086
"$bin/shikaku" claims --data "$work/truth" $files >"$work/claims.truth.csv" 2>/dev/null
rows=$(wc -l <"$work/claims.changes.csv")
if cmp -s "$work/claims.changes.csv" "$work/claims.truth.csv"; then
  echo "claims: $rows rows, identical"
else
  echo "claims: $rows rows, $(diff "$work/claims.changes.csv" "$work/claims.truth.csv" | grep -c '^<') differ" >&2
  exit 1
fi
