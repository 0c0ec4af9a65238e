#!/usr/bin/env python3
"""perf/kohi_data.py WORK KO_PERCENT CERT_SHARE PERSONS CERT_QUERIES: perf/kohi.sh's
public-expense data, made from a shikaku-datagen output in WORK (snap/, claims/).

Writes WORK/snap/kohi/ (three payers of Tokyo: 医療扶助 12, 難病 54, a local program 88), a
copy of the claims files with a KO record on KO_PERCENT of the receipts (WORK/claims-ko/, each
KO record's certificate in the registers: 90% covering October, 10% ended on 2026-10-15, the
医療扶助 ones for the file's institution only), filler certificates up to CERT_SHARE of the
persons, and two workloads for shikaku load: WORK/card.csv (the card rows of queries.csv) and
WORK/kohi.csv (CERT_QUERIES public-expense queries on 2026-11-24, 5% of unknown recipient
numbers, each with the validity the registers give)."""
import csv, datetime, os, random, sys, zlib

work, ko_percent, cert_share, persons, cert_queries = sys.argv[1:]
ko_percent, persons, cert_queries = int(ko_percent), int(persons), int(cert_queries)
target = int(persons * float(cert_share))


def luhn(body):
    t = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        p = d * 2 if i % 2 == 0 else d
        t += p // 10 + p % 10
    return str((10 - t % 10) % 10)


PAYERS = [("1213601", "東京都 医療扶助"), ("5413601", "東京都 難病"), ("8813001", "東京都 子ども医療費助成")]
PAYERS = [(b + luhn(b), name) for b, name in PAYERS]
FUJO = PAYERS[0][0]
certs = {p: [] for p, _ in PAYERS}
serial = 0


def recipient(payer, n):
    if payer.startswith("88"):
        return f"L{n:07}"
    body = f"{n % 1_000_000:06}"
    return body + luhn(body)


def add_cert(name, kana, sex, birth, ended, institution):
    global serial
    serial += 1
    payer = PAYERS[serial % 3][0]
    r = recipient(payer, serial)
    to = "2026-10-15" if ended else "2027-03-31"
    inst = institution if payer == FUJO else ""
    # A certificate begins on the birthdate at the earliest (K4).
    start = max("2026-04-01", birth)
    certs[payer].append([payer, r, "", name, kana, sex, birth, start, to, "10000", inst])
    return payer, r


# The claims files: receipts chosen in file order whenever the share so far is below
# KO_PERCENT, among those whose RE record makes a valid certificate (a real birthdate, sex 1 or
# 2, a name); the KO record goes after the HO record (or the RE record without one).
def valid_birth(b):
    """A real date, from 1900 to before October's 1st (born later, no October visit)."""
    try:
        day = datetime.date(int(b[:4]), int(b[4:6]), int(b[6:8]))
        return len(b) == 8 and datetime.date(1900, 1, 1) <= day < datetime.date(2026, 10, 1)
    except ValueError:
        return False


receipts_seen = 0
src_root, dst_root = os.path.join(work, "claims"), os.path.join(work, "claims-ko")
for inst_dir in sorted(os.listdir(src_root)):
    path = os.path.join(src_root, inst_dir, "RECEIPTC.UKE")
    if not os.path.isfile(path):
        continue
    raw = open(path, "rb").read()
    try:
        text, enc = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, enc = raw.decode("cp932"), "cp932"
    eol = "\r\n" if "\r\n" in text else "\n"
    out, institution, pending = [], "", None
    for line in text.split(eol) + [None]:
        f = line.split(",") if line is not None else ["END"]
        if f[0] in ("RE", "GO", "END") and pending is not None:
            # The receipt before this record is complete: give it its KO record.
            at, r, points = pending
            ended = zlib.crc32(f"ended:{inst_dir}:{r[1]}".encode()) % 10 == 9
            birth = f"{r[6][:4]}-{r[6][4:6]}-{r[6][6:]}"
            payer, rec = add_cert(r[4], r[36], r[5], birth, ended, institution)
            out.insert(at, f"KO,{payer},{rec},,1,{points},,,,")
            pending = None
        if line is None:
            break
        out.append(line)
        if f[0] == "IR" and len(f) > 5:
            institution = f[2] + f[3] + f[4]
        elif f[0] == "RE":
            receipts_seen += 1
            ok = len(f) > 36 and valid_birth(f[6]) and f[5] in ("1", "2") and f[4] and f[36]
            if ok and serial * 100 < receipts_seen * ko_percent:
                pending = (len(out), f, "")
        elif f[0] == "HO" and pending is not None:
            pending = (len(out), pending[1], f[5] if len(f) > 5 else "")
    os.makedirs(os.path.join(dst_root, inst_dir), exist_ok=True)
    open(os.path.join(dst_root, inst_dir, "RECEIPTC.UKE"), "wb").write(eol.join(out).encode(enc))
with_ko = serial

# Filler certificates: the registers' other recipients.
rng = random.Random(7)
while serial < target:
    birth = f"{rng.randint(1930, 2020)}-{rng.randint(1, 12):02}-{rng.randint(1, 28):02}"
    add_cert("公費 花子", "コウヒ ハナコ", "2", birth, False, "")

kohi = os.path.join(work, "snap", "kohi")
os.makedirs(kohi, exist_ok=True)
with open(os.path.join(kohi, "payers.csv"), "w", encoding="utf-8") as f:
    f.write("payer_number,payer_name\n")
    for p, name in PAYERS:
        f.write(f"{p},{name}\n")
header = ["payer_number", "recipient_number", "individual_number", "name", "name_kana", "sex",
          "birthdate", "valid_from", "valid_to", "copay_limit_yen", "institutions"]
for p, rows in certs.items():
    os.makedirs(os.path.join(kohi, p), exist_ok=True)
    with open(os.path.join(kohi, p, "20261124.csv"), "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)

# Workloads.
columns = ["kind", "insurer_number", "symbol", "number", "branch", "birthdate",
           "individual_number", "date", "limit_consent", "expected"]
with open(os.path.join(work, "snap", "queries.csv"), encoding="utf-8") as src, \
        open(os.path.join(work, "card.csv"), "w", encoding="utf-8", newline="") as dst:
    r = csv.DictReader(src)
    w = csv.writer(dst, lineterminator="\n")
    w.writerow(columns)
    for row in r:
        if row["kind"] == "card":
            w.writerow([row.get(c, "") for c in columns])
everyone = [c for rows in certs.values() for c in rows]
with open(os.path.join(work, "kohi.csv"), "w", encoding="utf-8", newline="") as dst:
    w = csv.writer(dst, lineterminator="\n")
    w.writerow(columns + ["payer_number", "recipient_number"])
    for i in range(cert_queries):
        c = everyone[rng.randrange(len(everyone))]
        payer, rec, birth, to = c[0], c[1], c[6], c[8]
        expected = "1" if to >= "2026-11-24" else "2"
        if i % 20 == 19:
            # An unknown recipient number: beyond every serial (below 10^6, so no national
            # body wraps onto one in use).
            assert serial + 1 + i < 1_000_000
            rec, expected = recipient(payer, serial + 1 + i), "4"
        w.writerow(["kohi", "", "", "", "", birth, "", "2026-11-24", "", expected, payer, rec])
print(f"kohi data: {with_ko} of {receipts_seen} receipts with a KO record, {serial} certificates", file=sys.stderr)
