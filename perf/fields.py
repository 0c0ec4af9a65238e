"""perf/fields.py: the field normalization of docs/api.md (identifiers, dates) in Python, shared
by perf/pg_rows.py and perf/experiments/normalize_queries.py."""
import re
import sys
import unicodedata

ERA_START = {"M": 1868, "T": 1912, "S": 1926, "H": 1989, "R": 2019}
ERA_CODE = {"1": "M", "2": "T", "3": "S", "4": "H", "5": "R"}
WS = re.compile(r"\s+")
ISO = re.compile(r"\d{4}-\d{2}-\d{2}")
ERA = re.compile(r"([A-Za-z])(\d+)[./-](\d+)[./-](\d+)")


def folded(s):
    """NFKC, then every white-space character removed."""
    if not s.isascii():  # ASCII text (most of it) is its own NFKC
        s = unicodedata.normalize("NFKC", s)
    return WS.sub("", s)


def card_text(s):
    """A symbol or number: folded, leading zeros of an all-digit value dropped."""
    s = folded(s)
    return (s.lstrip("0") or "0") if s.isdigit() else s


def iso_date(s, where="a date"):
    """YYYY-MM-DD from ISO, YYYYMMDD, 和暦 (S45.1.23) or the era-code form (3450123); "" stays ""."""
    s = folded(s)
    if not s or ISO.fullmatch(s):
        return s
    if s.isdigit() and len(s) == 8:
        return f"{s[:4]}-{s[4:6]}-{s[6:]}"
    if s.isdigit() and len(s) == 7:
        year = ERA_START[ERA_CODE[s[0]]] + int(s[1:3]) - 1
        return f"{year:04d}-{s[3:5]}-{s[5:7]}"
    m = ERA.fullmatch(s)
    if m:
        year = ERA_START[m.group(1).upper()] + int(m.group(2)) - 1
        return f"{year:04d}-{int(m.group(3)):02d}-{int(m.group(4)):02d}"
    sys.exit(f"{where}: a date form this script does not know: {s!r}")
