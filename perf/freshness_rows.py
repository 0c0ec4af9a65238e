"""perf/freshness_national.sh's change files, written from the snapshots alone (no
materialized snapshots, so it runs at 126M): valid `update`, `lose` and `add` rows of
existing members, into STAGED/<insurer>/changes/<name>.csv, and a probe per file (a card it
loses, covered until then, which a server answers as not covered on the change day once the
file is live).

    freshness_rows.py SNAP STAGED DAY FILES ROWS DAY_ROWS DAY_INSURERS SEED

(a) FILES files of ROWS rows for the largest insurer (by snapshot bytes), timed DAY 00:00:01,
00:00:02, …; rows taken in order from its snapshot (a file may touch keys an earlier one did:
a later update or lose of them applies again), filled with adds when it has fewer members.
(b) one file each for DAY_INSURERS insurers drawn at random (SEED), DAY_ROWS rows shared in
proportion to their snapshot bytes (at least one each), timed DAY 12:00:00.
Prints one line per file: kind (a|b), relative path, rows, and the probe as JSON.
"""
import csv
import io
import json
import os
import random
import sys

snap, staged, day, files, rows_per_file, day_rows, day_insurers, seed = sys.argv[1:9]
files, rows_per_file, day_rows, day_insurers = int(files), int(rows_per_file), int(day_rows), int(day_insurers)
compact = day.replace("-", "")
rng = random.Random(int(seed))
# RUN (env, default 0): the how-manieth run over one data directory. Each run's rows are the
# next members (a run changing the members an earlier one lost would see its rows rejected,
# C1, and its probes never change), and its files are named later the same day.
run = int(os.environ.get("RUN", "0"))


def snapshot_of(insurer):
    d = os.path.join(snap, insurer)
    names = sorted(n for n in os.listdir(d) if n.endswith(".csv") and len(n) == 12) if os.path.isdir(d) else []
    return os.path.join(d, names[-1]) if names else None


def head_rows(path, n):
    """The first n data rows of a snapshot, as dicts (UTF-8 with or without BOM, else CP932;
    no cell of a snapshot holds a line break), read line by line: a few MB of a 3 GB file."""
    def decode(b):
        try:
            return b.decode("utf-8-sig")
        except UnicodeDecodeError:
            return b.decode("cp932")
    out, header = [], None
    with open(path, "rb") as f:
        for raw in f:
            cells = next(csv.reader([decode(raw).rstrip("\r\n")]))
            if header is None:
                header = [c.strip().lower() for c in cells]
                continue
            out.append({k: v.strip() for k, v in zip(header, cells)})
            if len(out) == n:
                break
    return out


COLUMNS = ["change", "insurer_number", "symbol", "number", "branch", "individual_number", "name",
           "name_kana", "sex", "birthdate", "relationship", "qualification_date",
           "disqualification_date", "reason_of_loss", "copay_ratio", "limit_category"]


def change_rows(members, n, tag):
    """n change rows over distinct keys of `members`: 60% update (a corrected name), 25%
    lose (covered until the day before `day`), 15% add (a new card number, not yet linked to
    an individual number); adds fill what the members do not."""
    out, probe = [], None
    for i in range(n):
        if i < len(members) and i % 20 < 17:
            m = dict(members[i])
            if i % 20 < 12:
                m["change"] = "update"
                # A corrected name: a change no warning rule looks at (another copay ratio
                # would be a W2 warning on most rows, a line each in rejects.csv).
                m["name"] = m["name"][:-1] + ("一" if m["name"][-1:] != "一" else "二")
            else:
                m["change"] = "lose"
                covered = not m.get("disqualification_date")
                m["disqualification_date"] = day
                m["reason_of_loss"] = "03"
                if probe is None and covered:
                    # With its branch: twins on one card share a birthdate, and a query
                    # without the branch answers "multiple" before and after.
                    probe = {"insurer_number": m["insurer_number"], "symbol": m["symbol"],
                             "number": m["number"], "branch": m["branch"],
                             "birthdate": m["birthdate"], "date": day}
        else:
            m = dict(members[i % len(members)])
            m["change"] = "add"
            m["number"] = f"{tag}{i:07d}"
            m["individual_number"] = ""
            m["disqualification_date"] = ""
            m["reason_of_loss"] = ""
        out.append(m)
    return out, probe


def write(insurer, name, rows):
    rel = f"{insurer}/changes/{name}.csv"
    path = os.path.join(staged, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return rel


insurers = [r["insurer_number"] for r in csv.DictReader(open(os.path.join(snap, "insurers.csv"), encoding="utf-8-sig"))]
# Insurers with members (a snapshot of more than its header).
sizes = {i: os.path.getsize(p) for i in insurers if (p := snapshot_of(i)) and os.path.getsize(p) > 400}
largest = max(sizes, key=sizes.get)
block = files * rows_per_file
members = head_rows(snapshot_of(largest), block * (run + 1))[block * run:]
for k in range(files):
    # Keys distinct within a file (C4); files share keys only when the insurer is small.
    start = (k * rows_per_file) % max(1, len(members))
    mine = (members[start:] + members[:start])[:rows_per_file]
    rows, probe = change_rows(mine, rows_per_file, f"{98 - run}{k}")
    print("a", write(largest, f"{compact}-0{run}000{k + 1}", rows), len(rows), json.dumps(probe))

chosen = rng.sample(sorted(sizes), min(day_insurers, len(sizes)))
total = sum(sizes[i] for i in chosen)
for i in chosen:
    n = max(1, round(day_rows * sizes[i] / total))
    rows, probe = change_rows(head_rows(snapshot_of(i), n * (run + 1))[n * run:], n,
                              "97" if run == 0 else f"96{run}")
    print("b", write(i, f"{compact}-12{run:02d}00", rows), len(rows), json.dumps(probe))
