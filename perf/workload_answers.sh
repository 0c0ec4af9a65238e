# perf/workload_answers.sh, sourced by perf/changes.sh and perf/compaction.sh: the generator's
# workload (queries.csv) posted in CSV batches to a server of a data directory, and two sets
# of answers compared. Needs $bin (the executables' directory), $port and $work (batches go to
# $work/batches); sets a trap that stops the server on exit.

# workload_batches QUERIES_CSV DATE: the workload as batches of 10,000 without `expected`, a
# query without a date dated DATE (the day the generator's truth holds).
workload_batches() {
  python3 - "$1" "$work/batches" "$2" <<'PY'
import csv, os, sys
rows = list(csv.reader(open(sys.argv[1], encoding="utf-8")))
head, body = rows[0], rows[1:]
keep = [i for i, h in enumerate(head) if h != "expected"]
d = head.index("date")
for r in body:
    r[d] = r[d] or sys.argv[3]
os.makedirs(sys.argv[2], exist_ok=True)
for n in range(0, len(body), 10000):
    with open(f"{sys.argv[2]}/{n // 10000:05}.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([head[i] for i in keep])
        w.writerows([[r[i] for i in keep] for r in body[n:n + 10000]])
PY
}

SP=
trap '[[ -n $SP ]] && kill "$SP" 2>/dev/null; wait 2>/dev/null || true' EXIT

# workload_answer DATA OUT: the answers of every batch from DATA's live generation.
workload_answer() {
  "$bin/shikaku" serve --data "$1" --resp 127.0.0.1:0 --http "127.0.0.1:$port" --threads 1 \
    >"$2.log" 2>&1 &
  SP=$!
  until curl -sf "127.0.0.1:$port/healthz" >/dev/null 2>&1; do
    kill -0 "$SP" 2>/dev/null || { cat "$2.log" >&2; return 1; }
    sleep 0.1
  done
  : >"$2"
  for b in "$work"/batches/*.csv; do
    curl -sf -H 'content-type: text/csv' --data-binary "@$b" "127.0.0.1:$port/v1/batch" >>"$2"
  done
  kill "$SP"
  wait "$SP" 2>/dev/null || true
  SP=
}

# workload_compare A B QUERIES_CSV WHAT: prints how many answers differ between A and B
# (`generation` aside) and how many validities of A differ from the generator's truth; fails
# when any answer differs or one is missing.
workload_compare() {
  python3 - "$1" "$2" "$3" "$4" <<'PY'
import csv, sys
def load(path):
    rows, head = [], None
    for r in csv.reader(open(path, encoding="utf-8")):
        if r and r[0] == "kind":
            head = r
            continue
        rows.append([c for h, c in zip(head, r) if h != "generation"])
    return head, rows
head, a = load(sys.argv[1])
_, b = load(sys.argv[2])
want = [r["expected"] for r in csv.DictReader(open(sys.argv[3], encoding="utf-8"))]
v = [h for h in head if h != "generation"].index("validity")
differ = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
cards = sum(r[0] == "card" for r in a)
wrong = sum(r[v] != w for r, w in zip(a, want))
print(f"queries {len(a)} ({cards} card, {len(a) - cards} person): {differ} answers differ "
      f"{sys.argv[4]}; {wrong} validities differ from the generator's truth")
sys.exit(1 if differ or len(a) != len(want) else 0)
PY
}
