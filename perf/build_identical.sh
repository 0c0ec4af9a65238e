#!/usr/bin/env bash
# perf/build_identical.sh BEFORE AFTER [PERSONS]: builds one fixed generator output (row
# defects, CP932 and UTF-8 files, change files) with two `shikaku` binaries and checks that
# the generations are the same bytes: every segment file, the main file (its generation id
# and the header checksum over it aside), rejects.csv, and report.json without its
# generation id and times. A build made faster must index exactly what it indexed before.
set -euo pipefail
before=$1 after=$2 persons=${3:-300000}
work=${WORK:-/tmp/shikaku-identical-$persons}
date_=2026-11-24
datagen=${DATAGEN:-$(dirname "$before")/shikaku-datagen}
rm -rf "$work" && mkdir -p "$work"
"$datagen" --persons "$persons" --seed 11 --out "$work/snap" --date "$date_" \
    --defects 0.003 --changes-days 2 --quiet >"$work/datagen.out"
for side in before after; do
    bin=$before; [ "$side" = after ] && bin=$after
    "$bin" build --snapshots "$work/snap" --data "$work/$side" --date 2026-11-26 >"$work/$side.out" 2>"$work/$side.err"
done
python3 - "$work" <<'PY'
import json, os, sys
work = sys.argv[1]
def gen(side):
    d = f"{work}/{side}"
    g = open(f"{d}/CURRENT").read().strip()
    return g, f"{d}/generations/{g}"
(ga, da), (gb, db) = gen("before"), gen("after")
sa, sb = sorted(os.listdir(f"{da}/segments")), sorted(os.listdir(f"{db}/segments"))
assert sa == sb, "segment files differ by name (so by content)"
for n in sa:
    assert open(f"{da}/segments/{n}", "rb").read() == open(f"{db}/segments/{n}", "rb").read(), n
def main(d, g):
    b = bytearray(open(f"{d}/index.shk", "rb").read())
    b[120:128] = bytes(8)  # the header's checksum covers the generation id
    return bytes(b).replace(g.encode(), b"G" * len(g))
assert main(da, ga) == main(db, gb), "main files differ"
assert open(f"{da}/rejects.csv", "rb").read() == open(f"{db}/rejects.csv", "rb").read(), "rejects.csv"
def report(d):
    r = json.load(open(f"{d}/report.json"))
    for k in ("generation", "elapsed_ms", "phases_ms", "phases_cpu_ms", "stages_cpu_ms"):
        r.pop(k, None)
    return r
assert report(da) == report(db), "report.json differs"
rows = report(da)["totals"]
print(f"identical: {len(sa)} segment files, main file, rejects.csv, report.json; "
      f"{rows['rows_read']} rows read, {rows['rows_rejected']} rejected, "
      f"{rows['rows_deduplicated']} duplicates; encodings "
      f"{sorted(set(i.get('encoding') or '-' for i in report(da)['insurers']))}")
PY
