#!/usr/bin/env python3
"""perf/experiments/normalize_queries.py: compare_redis.sh's workload with its card fields
already in the form the server normalizes them to (NFKC, no spaces, leading zeros of an
all-digit symbol or number dropped, two-digit branch, ISO dates), so a load run measures
the server without its field normalization (the floor of that step).

    perf/experiments/normalize_queries.py SRC_QUERIES_CSV DST_QUERIES_CSV

Rows keep their order and expected validity; person rows are copied as they are.
"""
import csv
import re
import sys
import unicodedata

ERA_START = {"M": 1868, "T": 1912, "S": 1926, "H": 1989, "R": 2019}
ERA_CODE = {"1": "M", "2": "T", "3": "S", "4": "H", "5": "R"}


def folded(s):
    return "".join(c for c in unicodedata.normalize("NFKC", s) if not c.isspace())


def iso_date(s):
    s = folded(s)
    if not s or re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
        return s
    if re.fullmatch(r"\d{8}", s):
        return f"{s[:4]}-{s[4:6]}-{s[6:]}"
    if re.fullmatch(r"\d{7}", s):
        year = ERA_START[ERA_CODE[s[0]]] + int(s[1:3]) - 1
        return f"{year:04d}-{s[3:5]}-{s[5:7]}"
    m = re.fullmatch(r"([A-Za-z])(\d+)[./-](\d+)[./-](\d+)", s)
    if m:
        year = ERA_START[m.group(1).upper()] + int(m.group(2)) - 1
        return f"{year:04d}-{int(m.group(3)):02d}-{int(m.group(4)):02d}"
    sys.exit(f"a date form this script does not know: {s!r}")


def card_text(s):
    s = folded(s)
    return (s.lstrip("0") or "0") if s.isdigit() else s


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
