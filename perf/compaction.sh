#!/usr/bin/env bash
# Compaction after a stream of change generations, against today's incremental build, with
# every answer compared across it (docs/operations.md "Change generations").
#   perf/compaction.sh SNAP DAYS      (SNAP: shikaku-datagen --changes-days DAYS output, the
#                                      materialized snapshots not needed: --no-materialized)
# The change files land day by day, as a watch would see them: the builds read a stage of hard
# links that holds the snapshots and, at day D, the change files dated up to D; every build is
# dated the day after the last change (as a watch's are dated today), so a change generation
# takes its insurers' named cards (the card path) and not their whole states. Day 1 builds the
# base. Day 2 is built as today's incremental build would (`build --fold`: its change files
# re-read with each touched insurer's snapshot, a new main file), the figure compaction is held
# to. Days 3..DAYS are change generations (layers; at 32 a build merges them by itself). Then
# the workload (SNAP/queries.csv, dated the day after the last change) is answered from the
# layered generation, `build --compact` merges the layers into one, the workload is answered
# again, then (FOLD [1]) `build --fold` folds them into a base and it is answered a third
# time: 0 answers may differ, and the validities are compared with the generator's truth. Old
# generations are removed as it goes (the nation's would not fit many times). Settings: WORK
# [/tmp/shikaku-compaction], PORT [17491], BIN [target/release, built], INCREMENTAL [1; 0:
# day 2 a change generation too], UNTIL [layers: stop once the layered answers are in], FROM
# [compaction: only what follows, on the WORK an UNTIL=layers run left; e.g. to compact the
# nation's layers with another binary without building them again].
set -euo pipefail
cd "$(dirname "$0")/.."
snap=$(realpath "$1")
days=$2
work=${WORK:-/tmp/shikaku-compaction}
port=${PORT:-17491}
if [[ -z ${BIN:-} ]]; then
  cargo build --release --workspace -q
fi
bin=${BIN:-$PWD/target/release}
[[ ${FROM:-} == compaction ]] || { rm -rf "$work" && mkdir -p "$work"; }
# The snapshots' day (the newest snapshot file's name; some insurers have older ones too).
first=$(find "$snap" -mindepth 2 -maxdepth 2 -name '2*.csv' -printf '%f\n' | sort | tail -n 1 |
  sed -E 's|([0-9]{4})([0-9]{2})([0-9]{2})\.csv|\1-\2-\3|')
data=$work/data
stage=$work/stage
last=$(date -d "$first + $((days - 1)) day" +%F)
on=$(date -d "$last + 1 day" +%F)

# stage_up_to DAY: the stage holds the delivery but the insurers' change files dated after DAY
# (YYYY-MM-DD), as hard links; change files are added, never taken away.
stage_up_to() {
  python3 - "$snap" "$stage" "${1//-/}" <<'PY'
import os, sys
snap, stage, upto = sys.argv[1], sys.argv[2], sys.argv[3]
for root, dirs, files in os.walk(snap):
    rel = os.path.relpath(root, snap)
    held = os.path.basename(rel) == "changes" and not rel.startswith("kohi")
    out = os.path.join(stage, rel)
    os.makedirs(out, exist_ok=True)
    have = set(os.listdir(out))
    for f in files:
        if f in have or (held and f[:8] > upto):
            continue
        os.link(os.path.join(root, f), os.path.join(out, f))
PY
}

# Bytes the newest generation of DATA wrote: its files not hard-linked from its parent.
written() { python3 perf/written_bytes.py "$data"; }
kind() {
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); k=r.get("generation_kind","base"); print(k + (" %d" % r["layer_count"] if k == "layer" else ""))' \
    "$data/generations/$(cat "$data/CURRENT")/report.json"
}
build() { # LABEL DAY ARGS...: the change files up to DAY staged, one build dated $on: its
  # wall and CPU seconds, bytes written, kind
  local label=$1 day=$2 t0 t1
  shift 2
  stage_up_to "$day"
  t0=$(date +%s.%N)
  /usr/bin/time -f '%U %S %M' -o "$work/last.time" "$bin/shikaku" build --snapshots "$stage" \
    --data "$data" --date "$on" --max-drop-percent 100 "$@" >"$work/last.out" 2>"$work/last.err" ||
    { tail -n 5 "$work/last.err" >&2; exit 1; }
  t1=$(date +%s.%N)
  printf '%-28s %s  wall %7.2f s  cpu %7.2f s  peak %6.0f MB  written %14s  %s\n' "$label" "$day" \
    "$(echo "$t1 - $t0" | bc -l)" "$(awk '{print $1 + $2}' "$work/last.time")" \
    "$(awk '{print $3 / 1024}' "$work/last.time")" "$(written)" "$(kind)"
  # After a base, keep it and its parent only (the nation's would not fit many times).
  if [[ $(kind) == base ]]; then
    "$bin/shikaku" generations gc --data "$data" --keep 2 >"$work/gc.out" 2>&1 ||
      { cat "$work/gc.out" >&2; exit 1; }
  fi
}

source perf/workload_answers.sh
if [[ ${FROM:-} != compaction ]]; then
build "base" "$first"
if [[ ${INCREMENTAL:-1} == 1 ]]; then
  build "incremental (day 2)" "$(date -d "$first + 1 day" +%F)" --fold
else
  build "day 2" "$(date -d "$first + 1 day" +%F)"
fi
for ((d = 2; d < days; d++)); do
  build "day $((d + 1))" "$(date -d "$first + $d day" +%F)"
done

# The workload as CSV batches of 10,000, dated as the generator's truth holds it.
workload_batches "$snap/queries.csv" "$on"
workload_answer "$data" "$work/answers.layered.csv"
[[ ${UNTIL:-} != layers ]] || exit 0
fi
build "compaction (--compact)" "$last" --compact
workload_answer "$data" "$work/answers.compacted.csv"
workload_compare "$work/answers.layered.csv" "$work/answers.compacted.csv" "$snap/queries.csv" \
  "across the compaction"
if [[ ${FOLD:-1} == 1 ]]; then
  build "fold into a base (--fold)" "$last" --fold
  workload_answer "$data" "$work/answers.folded.csv"
  workload_compare "$work/answers.layered.csv" "$work/answers.folded.csv" "$snap/queries.csv" \
    "across the fold"
fi
