#!/usr/bin/env python3
"""perf/pg_rows.py: the snapshot rows normalized for PostgreSQL's COPY (perf/compare_postgres.sh).

    perf/pg_rows.py SNAPSHOTS DATE OUT_DIR

Reads what `shikaku build --snapshots SNAPSHOTS --date DATE` reads (insurers.csv and, of each
insurer, its newest snapshot file dated on or before DATE) and writes two files of COPY's text
format (tab-separated, \\N for absent):

- OUT_DIR/insurers.tsv: insurer_number, insurer_name, kind
- OUT_DIR/records.tsv:  insurer_number, symbol, number, branch, birthdate, person, name,
  name_kana, sex, relationship, qualification_date, disqualification_date, reason_of_loss,
  copay_ratio, limit_category

Normalized as shikaku normalizes (docs/api.md, docs/delivery.md): UTF-8 (BOM or not) or CP932
per file; header names trimmed and lowercased, columns in any order, unknown ones ignored;
insurer number NFKC without white space; symbol and number NFKC, white space removed, leading
zeros of an all-digit value dropped (a card without a symbol gets the empty symbol); every date
to YYYY-MM-DD (ISO, compact, 和暦 with an era letter, the seven-digit era-code form); `3割` to 30;
kana NFKC. The individual number is never written in clear: a valid one (12 digits, check
digit holds; else dropped, as W1 does) becomes a keyed hash (BLAKE2b-128 under a random key
made per run; shikaku uses keyed BLAKE3), bytea in hex. Exact duplicate rows
of a file are written once.

What it does not do: shikaku's row rules (R0-R7) and file rejections (F1-F4). It is meant for
shikaku-datagen's output without --defects, whose rows all pass them; the answers check of
compare_postgres.sh says whether that held. The summary (rows read, written, duplicates) goes to
stderr.
"""
import csv
import hashlib
import os
import secrets
import sys
import unicodedata

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fields import card_text, folded, iso_date  # noqa: E402

KEY = secrets.token_bytes(32)
COLUMNS = ["insurer_number", "symbol", "number", "branch", "birthdate", "individual_number",
           "name", "name_kana", "sex", "relationship", "qualification_date",
           "disqualification_date", "reason_of_loss", "copay_ratio", "limit_category"]


def date_cell(s, where):
    return iso_date(s, where) or None


def person(s):
    s = folded(s)
    if len(s) != 12 or not s.isdigit():
        return None
    r = sum(int(d) * w for d, w in zip(reversed(s[:11]), (2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6))) % 11
    if int(s[11]) != (0 if r <= 1 else 11 - r):
        return None
    return "\\x" + hashlib.blake2b(s.encode(), key=KEY, digest_size=16).hexdigest()


def copay(s):
    s = folded(s)
    return str(int(s[:-1]) * 10) if s.endswith("割") else s


def cell(v):
    if v is None or v == "":
        return "\\N"
    return v.replace("\\", "\\\\").replace("\t", "\\t")


def decoded(path):
    raw = open(path, "rb").read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp932")


def main(snap, date, out):
    day = date.replace("-", "")
    read = written = dups = 0
    with open(os.path.join(snap, "insurers.csv"), encoding="utf-8-sig", newline="") as f, \
            open(os.path.join(out, "insurers.tsv"), "w", encoding="utf-8") as o:
        rows = csv.reader(f)
        next(rows)
        insurers = []
        for number, name, kind in rows:
            insurers.append(folded(number))
            o.write("\t".join(cell(x) for x in (folded(number), name.strip(), kind.strip())) + "\n")
    with open(os.path.join(out, "records.tsv"), "w", encoding="utf-8") as o:
        for insurer in sorted(os.listdir(snap)):
            d = os.path.join(snap, insurer)
            if not os.path.isdir(d):
                continue
            files = sorted(f for f in os.listdir(d) if f.endswith(".csv") and f[:-4] <= day)
            if not files:
                continue
            path = os.path.join(d, files[-1])
            rows = csv.reader(decoded(path).splitlines())
            header = [h.strip().lower() for h in next(rows)]
            at = {c: header.index(c) for c in COLUMNS if c in header}
            seen = set()
            for line, r in enumerate(rows, start=2):
                if not r:
                    continue  # a blank line (csv gives []): no row
                read += 1
                g = lambda c: r[at[c]] if c in at else ""  # noqa: E731
                where = f"{path}:{line}"
                row = (
                    folded(g("insurer_number")), card_text(g("symbol")), card_text(g("number")),
                    folded(g("branch")), date_cell(g("birthdate"), where),
                    person(g("individual_number")), g("name").strip(),
                    unicodedata.normalize("NFKC", g("name_kana")).strip(), folded(g("sex")),
                    folded(g("relationship")), date_cell(g("qualification_date"), where),
                    date_cell(g("disqualification_date"), where), folded(g("reason_of_loss")),
                    copay(g("copay_ratio")), folded(g("limit_category")),
                )
                if row in seen:
                    dups += 1
                    continue
                seen.add(row)
                # The symbol column is NOT NULL: a card without one has the empty symbol.
                o.write("\t".join([cell(row[0]), row[1].replace("\\", "\\\\")]
                                  + [cell(x) for x in row[2:]]) + "\n")
                written += 1
    print(f"pg_rows: {len(insurers)} insurers, {read} rows read, {written} written, "
          f"{dups} exact duplicates dropped", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:4])
