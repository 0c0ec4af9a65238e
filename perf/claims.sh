#!/usr/bin/env bash
# perf/claims.sh: the claims pre-check, receipts per second per core, side by side in one run
# with the way a clinic's software would do it today with shikaku: one card query per
# receipt and day of service, sent as JSON batches of 10,000 (POST /v1/batch).
#
#   perf/claims.sh
#
# The data set (generated once, cached in WORK, with nice): PERSONS persons, RECEIPTS
# receipts of the month before 2026-11-24 in the synthetic institutions' UKE files
# (shikaku-datagen --claims), built into WORK/data. The files are read once first, so they
# are in the page cache. Each round, in turn (the order alternating):
#   claims   `shikaku claims --data WORK/data FILE…` pinned to CPU, its CPU time (user + sys,
#            the whole process: opening the index, reading, checking, writing the rows)
#   batch    `shikaku serve --threads 1 --poll-us 0` pinned to CPU; a client on CLIENT_CPU
#            posts every batch in turn; the server's CPU time over the run (from
#            /proc/PID/stat). The client's own work (building the queries, putting each
#            receipt's answers back together) is not counted: the vendor way gets the benefit.
#   http     the same server; a client on CLIENT_CPU posts each file whole to POST /v1/claims;
#            the server's CPU time over the run: the check where the generation is already
#            open and verified (a served generation), so the figure per receipt that a run of
#            `shikaku claims` pays besides opening and verifying the generation
# Receipts per CPU second of each, the medians over ROUNDS, and the ratio. Both ways read the
# same receipts; the script checks that the batch answers hold one answer per query.
# Settings (environment, defaults in brackets): PERSONS [1000000] RECEIPTS [200000]
# ROUNDS [3] WORK [target/perf/claims] CPU [0] CLIENT_CPU [1] PORT [17490]
set -euo pipefail
cd "$(dirname "$0")/.."
PERSONS=${PERSONS:-1000000}
RECEIPTS=${RECEIPTS:-200000}
ROUNDS=${ROUNDS:-3}
WORK=${WORK:-target/perf/claims}
CPU=${CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-17490}
cargo build --release --workspace --bins >&2
BIN=$PWD/target/release/shikaku
GEN=$PWD/target/release/shikaku-datagen
mkdir -p "$WORK"
STAMP="$WORK/made-$PERSONS-$RECEIPTS"
if [[ ! -f $STAMP ]]; then
    rm -rf "$WORK/snap" "$WORK/claims" "$WORK/data" "$WORK/batches" "$WORK"/made-*
    nice -n 10 "$GEN" --persons "$PERSONS" --seed 7 --date 2026-11-24 --out "$WORK/snap" \
        --claims "$RECEIPTS" --claims-out "$WORK/claims" --quiet >/dev/null
    nice -n 10 "$BIN" build --snapshots "$WORK/snap" --data "$WORK/data" --date 2026-11-24 >&2
    touch "$STAMP"
fi
FILES=("$WORK"/claims/*/RECEIPTC.UKE)
cat "${FILES[@]}" >/dev/null
python3 - "$BIN" "$WORK" "$CPU" "$CLIENT_CPU" "$PORT" "$ROUNDS" "${FILES[@]}" <<'PY'
import http.client, json, os, resource, statistics, subprocess, sys, time

bin_, work, cpu, client_cpu, port, rounds = sys.argv[1:7]
files = sys.argv[7:]
port, rounds = int(port), int(rounds)

def fields(line):
    return line.split(",")

# The vendor's card queries: one per receipt and day of service, from the same files.
batches_dir = os.path.join(work, "batches")
if not os.path.isdir(batches_dir):
    os.makedirs(batches_dir)
    queries, n = [], 0
    def flush():
        global queries, n
        if queries:
            with open(os.path.join(batches_dir, f"{n:05}.json"), "w", encoding="utf-8") as f:
                json.dump(queries, f, ensure_ascii=False)
            n += 1
            queries = []
    for path in files:
        raw = open(path, "rb").read().rstrip(b"\x1a")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp932")
        rec = None
        def emit(rec):
            if rec and rec.get("ho"):
                for d in sorted(rec["days"]) or range(1, 32):
                    q = {"kind": "card", "insurer_number": rec["ho"][1], "symbol": rec["ho"][2],
                         "number": rec["ho"][3], "birthdate": rec["re"][6],
                         "date": f"{rec['month'][:4]}-{rec['month'][4:6]}-{d:02}"}
                    if rec.get("branch"):
                        q["branch"] = rec["branch"]
                    queries.append(q)
                    if len(queries) == 10000:
                        flush()
        for line in text.splitlines():
            f = fields(line)
            if f[0] == "RE":
                emit(rec)
                month = f[3] if len(f[3]) == 6 else f"{2018 + int(f[3][1:3])}{f[3][3:5]}"
                rec = {"re": f, "month": month, "days": set()}
            elif rec is None:
                continue
            elif f[0] == "HO":
                rec["ho"] = f
            elif f[0] == "SN" and f[1] == "1":
                rec["branch"] = f[6]
            elif f[0] in ("SI", "IY", "TO"):
                first = 13 if f[0] != "TO" else 17
                for d in range(31):
                    c = f[first + d] if first + d < len(f) else ""
                    if c.isdigit() and int(c) > 0:
                        rec["days"].add(d + 1)
            elif f[0] == "GO":
                emit(rec)
                rec = None
        emit(rec)
    flush()
batches = [open(os.path.join(batches_dir, b), "rb").read() for b in sorted(os.listdir(batches_dir))]
query_count = sum(b.count(b'"kind"') for b in batches)

def cpu_of(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def run_claims():
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    out = subprocess.run(["taskset", "-c", cpu, bin_, "claims", "--data", os.path.join(work, "data"), *files],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rows = out.stdout.count(b"\n") - 1
    return rows, cpu_s, wall

def serving():
    server = subprocess.Popen(["taskset", "-c", cpu, bin_, "serve", "--data", os.path.join(work, "data"),
                               "--resp", "127.0.0.1:0", "--http", f"127.0.0.1:{port}", "--threads", "1",
                               "--poll-us", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.sched_setaffinity(0, {int(client_cpu)})
    try:
        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port)
                c.request("GET", "/healthz"); c.getresponse().read(); break
            except OSError:
                time.sleep(0.05)
        return server
    except BaseException:
        server.terminate(); server.wait()
        raise

def post_each(path, bodies, content_type, count):
    """Serves the data set, POSTs each body to `path` in turn, and returns what `count` finds
    in the answers, the server's CPU seconds over the posts, and their wall time."""
    server = serving()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port)
        start_cpu, t = cpu_of(server.pid), time.monotonic()
        found = 0
        for b in bodies:
            c.request("POST", path, body=b, headers={"Content-Type": content_type})
            r = c.getresponse()
            body = r.read()
            assert r.status == 200, body[:200]
            found += count(body)
        wall = time.monotonic() - t
        return found, cpu_of(server.pid) - start_cpu, wall
    finally:
        server.terminate(); server.wait()

def run_batches():
    # An answer, or a malformed query's slot (a receipt-day whose fields do not make a card
    # query): one slot per query either way.
    return post_each("/v1/batch", batches, "application/json",
                     lambda body: body.count(b'{"validity"') + body.count(b'{"error"'))

def run_server_claims():
    # The same files, each POSTed whole to the server's own claims endpoint: the check as a
    # served generation does it, with no opening or verifying per run (the server did that
    # once, before its first answer). The server's CPU, as for the batch way. Rows: the
    # CSV's lines less its header.
    bodies = [open(path, "rb").read() for path in files]
    return post_each("/v1/claims", bodies, "application/octet-stream",
                     lambda body: body.count(b"\n") - 1)

receipts = None
ways = ["claims", "http", "batch"]
res = {w: [] for w in ways}
for i in range(rounds):
    order = ways if i % 2 == 0 else ways[::-1]
    for way in order:
        if way == "claims":
            rows, cpu_s, wall = run_claims()
            receipts = rows
        elif way == "http":
            rows, cpu_s, wall = run_server_claims()
            assert receipts is None or rows == receipts, (rows, receipts)
        else:
            answers, cpu_s, wall = run_batches()
            assert answers == query_count, (answers, query_count)
        res[way].append((cpu_s, wall))
        print(f"round {i + 1} {way}: {cpu_s:.3f} s CPU, {wall:.3f} s wall", file=sys.stderr)
line = f"{receipts} receipts ({query_count} receipt-days) at the data set's persons; medians of {rounds} rounds"
print(line)
rates = {}
for way, label in (("claims", "shikaku claims (the whole command)"),
                   ("http", "POST /v1/claims (server CPU)"),
                   ("batch", "POST /v1/batch, a query per receipt-day")):
    cpu_s = statistics.median(c for c, _ in res[way])
    wall = statistics.median(w for _, w in res[way])
    rates[way] = receipts / cpu_s
    print(f"  {label:<42} {rates[way]:>12,.0f} receipts/s per core  (CPU {cpu_s:.3f} s, wall {wall:.3f} s)")
print(f"  ratio, shikaku claims / batch: {rates['claims'] / rates['batch']:.1f}x")
print(f"  ratio, POST /v1/claims / batch (server CPU both): {rates['http'] / rates['batch']:.1f}x")
PY
