#!/usr/bin/env python3
"""perf/experiments/normalize_queries.py: compare_redis.sh's workload with its card fields
already in the form the server normalizes them to (NFKC, no spaces, leading zeros of an
all-digit symbol or number dropped, two-digit branch, ISO dates), so a load run measures
the server without its field normalization (the floor of that step).

    perf/experiments/normalize_queries.py SRC_QUERIES_CSV DST_QUERIES_CSV

Rows keep their order and expected validity; person rows are copied as they are.
"""
import csv
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fields import card_text, folded, iso_date  # noqa: E402


def main(src, dst):
    with open(src, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    with open(dst, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(rows[0])
        for kind, ins, sym, num, br, bd, ind, d, lc, exp in rows[1:]:
            if kind == "card":
                ins, sym, num = folded(ins), card_text(sym), card_text(num)
                br = folded(br).zfill(2) if folded(br) else ""
                bd, d = iso_date(bd), iso_date(d)
            out.writerow([kind, ins, sym, num, br, bd, ind, d, lc, exp])


if __name__ == "__main__":
    main(*sys.argv[1:3])
