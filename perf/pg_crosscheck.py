#!/usr/bin/env python3
"""perf/pg_crosscheck.py: PostgreSQL's card answers against shikaku's, record by record
(perf/compare_postgres.sh).

    perf/pg_crosscheck.py CARD_CSV HTTP_ADDR PG_CSV

CARD_CSV: the workload's card queries (queries.csv's columns, `expected` last). Each query is
asked of shikaku serve at HTTP_ADDR (POST /v1/batch, CSV, 10,000 a request). PG_CSV: PostgreSQL's
answers to the same queries in the same order, one CSV row each (no header): validity,
insurer_number, symbol, number, branch, name, qualification_date, disqualification_date (the
record's fields empty for validity 3, 4 and 5). Prints how many answers differ (validity, or
the record of a validity 1 or 2) and the first few; exit status 1 if any does.
"""
import csv
import io
import sys
import urllib.request

FIELDS = ["q_insurer_number", "q_symbol", "q_number", "q_branch", "q_name",
          "q_qualification_date", "q_disqualification_date"]


def shikaku_answers(card_csv, addr):
    with open(card_csv, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0][:9], [r[:9] for r in rows[1:]]
    for at in range(0, len(rows), 10000):
        body = io.StringIO()
        w = csv.writer(body, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows[at:at + 10000])
        req = urllib.request.Request(f"http://{addr}/v1/batch", data=body.getvalue().encode(),
                                     headers={"Content-Type": "text/csv"})
        with urllib.request.urlopen(req, timeout=120) as r:
            for a in csv.DictReader(io.StringIO(r.read().decode("utf-8"))):
                yield [a["validity"]] + [a[f] for f in FIELDS]


def main(card_csv, addr, pg_csv):
    with open(pg_csv, encoding="utf-8", newline="") as f:
        pg = list(csv.reader(f))
    n = differ = 0
    for n, s in enumerate(shikaku_answers(card_csv, addr), start=1):
        p = pg[n - 1] if n <= len(pg) else None
        if p != s:
            differ += 1
            if differ <= 5:
                print(f"query {n}: shikaku {s}, PostgreSQL {p}", file=sys.stderr)
    if n != len(pg):
        print(f"shikaku answered {n} queries, PostgreSQL {len(pg)}", file=sys.stderr)
        differ += abs(n - len(pg))
    print(f"{differ} of {n} card answers differ between shikaku and PostgreSQL")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:4])
