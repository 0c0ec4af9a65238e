#!/usr/bin/env bash
# perf/query_cost.sh BEFORE AFTER: run from a data directory's parent (here target/perf/claims, built by perf/claims.sh);
# BEFORE and AFTER name shikaku binaries as $BINS/shikaku-NAME (BINS defaults to /work/benchbins).
# 200 runs of one card query per binary, in alternating blocks of 20; user+sys CPU and wall per run.
q=(query --data data card --insurer-number 01350016 --symbol 35843544 --number 10027764 --birthdate 1964-05-03 --date 2026-10-15)
for b in "$1" "$2"; do : > /tmp/qcost-$b.txt; done
for round in $(seq 1 10); do
  for b in "$1" "$2"; do
    /usr/bin/time -f "%e %U %S" -a -o /tmp/qcost-$b.txt bash -c "for i in \$(seq 1 20); do taskset -c 0 ${BINS:-/work/benchbins}/shikaku-$b ${q[*]} >/dev/null 2>&1; done"
  done
done
python3 - "$1" "$2" <<'PY'
import statistics as s, sys
for b in sys.argv[1:]:
    rows = [list(map(float, l.split())) for l in open(f"/tmp/qcost-{b}.txt") if l[:1].isdigit()]
    cpu = s.median((r[1] + r[2]) / 20 * 1000 for r in rows)
    wall = s.median(r[0] / 20 * 1000 for r in rows)
    print(f"{b}: {len(rows)} blocks of 20 runs; median per run: CPU {cpu:.1f} ms, wall {wall:.1f} ms")
PY
