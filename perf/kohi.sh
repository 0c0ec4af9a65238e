#!/usr/bin/env bash
# perf/kohi.sh: public expense (公費), side by side in one run on one data set.
#
#   perf/kohi.sh
#
#   claims   `shikaku claims` pinned to CPU over the same receipts twice: as generated (no KO
#            record) and with a KO record on KO_PERCENT of them; the process's CPU time
#            (user + sys: opening the index, reading, checking, writing the rows). Receipts
#            per CPU second of each, and the ratio.
#   http     the same two file sets POSTed whole to `POST /v1/claims` of
#            `shikaku serve --threads 1 --poll-us 0` pinned to CPU, POSTS times each round;
#            the server's CPU time (/proc/PID/stat, in ticks of 10 ms: hence the repeats): the
#            check alone, the generation already open and verified.
#   answers  the same server driven by `shikaku load` (pinned to CLIENT_CPU, closed loop,
#            CONNECTIONS connections at depth DEPTH, every answer checked) with the
#            workload's card queries, then with public-expense queries (`ELIG.KOHI`); the
#            server's CPU per answer.
# Rounds alternate the order; the summary gives the medians of ROUNDS rounds.
#
# The data set (generated once, cached in WORK, with nice): shikaku-datagen PERSONS persons,
# RECEIPTS receipts (--claims) and QUERIES queries; then the public-expense registers, made
# here: three payers of Tokyo (医療扶助 12, 難病 54, a local program 88), a certificate for
# each receipt given a KO record (90% covering October, 10% ended on 2026-10-15; the 医療扶助
# ones for the receipt's institution only), and filler certificates up to CERT_SHARE of the
# persons; the public-expense workload asks for CERT_QUERIES of them (with 5% unknown
# recipient numbers), expected validities from the registers.
# Settings (environment, defaults in brackets): PERSONS [1000000] RECEIPTS [100000]
# QUERIES [200000] KO_PERCENT [30] CERT_SHARE [0.1] CERT_QUERIES [200000] ROUNDS [3]
# DURATION [5] WARMUP [1] DEPTH [16] CONNECTIONS [50] POSTS [5] WORK [target/perf/kohi] CPU [0]
# CLIENT_CPU [1] PORT [17491] RESP_PORT [17492]
set -euo pipefail
cd "$(dirname "$0")/.."
PERSONS=${PERSONS:-1000000}
RECEIPTS=${RECEIPTS:-100000}
QUERIES=${QUERIES:-200000}
KO_PERCENT=${KO_PERCENT:-30}
CERT_SHARE=${CERT_SHARE:-0.1}
CERT_QUERIES=${CERT_QUERIES:-200000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-1}
DEPTH=${DEPTH:-16}
CONNECTIONS=${CONNECTIONS:-50}
POSTS=${POSTS:-5}
WORK=${WORK:-target/perf/kohi}
CPU=${CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-17491}
RESP_PORT=${RESP_PORT:-17492}
cargo build --release --workspace --bins >&2
BIN=$PWD/target/release/shikaku
GEN=$PWD/target/release/shikaku-datagen
mkdir -p "$WORK"
STAMP="$WORK/made-$PERSONS-$RECEIPTS-$QUERIES-$KO_PERCENT-$CERT_SHARE-$CERT_QUERIES"
if [[ ! -f $STAMP ]]; then
    rm -rf "$WORK/snap" "$WORK/claims" "$WORK/claims-ko" "$WORK/data" "$WORK"/made-*
    nice -n 10 "$GEN" --persons "$PERSONS" --seed 7 --date 2026-11-24 --out "$WORK/snap" \
        --queries "$QUERIES" --claims "$RECEIPTS" --claims-out "$WORK/claims" --quiet >/dev/null
    nice -n 10 python3 perf/kohi_data.py "$WORK" "$KO_PERCENT" "$CERT_SHARE" "$PERSONS" "$CERT_QUERIES"
    nice -n 10 "$BIN" build --snapshots "$WORK/snap" --data "$WORK/data" --date 2026-11-24 >&2
    touch "$STAMP"
fi
cat "$WORK"/claims/*/RECEIPTC.UKE "$WORK"/claims-ko/*/RECEIPTC.UKE >/dev/null
python3 - "$BIN" "$WORK" "$CPU" "$CLIENT_CPU" "$PORT" "$RESP_PORT" "$ROUNDS" "$DURATION" \
    "$WARMUP" "$DEPTH" "$CONNECTIONS" "$KO_PERCENT" "$POSTS" <<'PY'
import glob, http.client, json, os, resource, statistics, subprocess, sys, time

(bin_, work, cpu, client_cpu, port, resp_port, rounds, duration, warmup, depth, conns,
 ko_percent, posts) = sys.argv[1:]
port, rounds, posts = int(port), int(rounds), int(posts)
data = os.path.join(work, "data")
sets = {w: sorted(glob.glob(os.path.join(work, w, "*", "RECEIPTC.UKE"))) for w in ("claims", "claims-ko")}
workloads = {"card": os.path.join(work, "card.csv"), "kohi": os.path.join(work, "kohi.csv")}

def cpu_of(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def run_claims(files):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["taskset", "-c", cpu, bin_, "claims", "--data", data, *files],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out.stdout.count(b"\n") - 1, cpu_s, out.stderr.decode()

def serve():
    server = subprocess.Popen(["taskset", "-c", cpu, bin_, "serve", "--data", data,
                               "--resp", f"127.0.0.1:{resp_port}", "--http", f"127.0.0.1:{port}",
                               "--threads", "1", "--poll-us", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(400):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port)
            c.request("GET", "/healthz"); c.getresponse().read()
            return server
        except OSError:
            time.sleep(0.05)
    server.terminate(); server.wait()
    raise SystemExit("the server did not come up")

def post_claims(server, files):
    c = http.client.HTTPConnection("127.0.0.1", port)
    bodies = [open(p, "rb").read() for p in files] * posts
    start, rows = cpu_of(server.pid), 0
    for b in bodies:
        c.request("POST", "/v1/claims", body=b, headers={"Content-Type": "application/octet-stream"})
        r = c.getresponse(); body = r.read()
        assert r.status == 200, body[:200]
        rows += body.count(b"\n") - 1
    return rows, cpu_of(server.pid) - start

def load(server, workload):
    start = cpu_of(server.pid)
    out = subprocess.run(["taskset", "-c", client_cpu, bin_, "load", "--queries", workload,
                          "--addr", f"127.0.0.1:{resp_port}", "--threads", "1",
                          "--connections", conns, "--pipeline", depth, "--duration", duration,
                          "--warmup", warmup, "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    used = cpu_of(server.pid) - start
    r = json.loads(out.stdout)
    assert out.returncode == 0 and r["wrong"] == 0 and r["errors"] == 0, (out.returncode, out.stdout[:400], out.stderr[-400:])
    return r["replies"], used

res = {k: [] for k in ("claims", "claims-ko", "http", "http-ko", "card", "kohi")}
counts = {}
for i in range(rounds):
    order = ["claims", "claims-ko"] if i % 2 == 0 else ["claims-ko", "claims"]
    for way in order:
        rows, cpu_s, summary = run_claims(sets[way])
        counts[way] = rows
        res[way].append(rows / cpu_s)
        print(f"round {i + 1} shikaku claims {way}: {rows} receipts, {cpu_s:.3f} s CPU", file=sys.stderr)
        if i == 0:
            print(summary, file=sys.stderr)
    server = serve()
    try:
        for way in order:
            rows, cpu_s = post_claims(server, sets[way])
            key = "http" if way == "claims" else "http-ko"
            res[key].append(rows / cpu_s)
            print(f"round {i + 1} POST /v1/claims {way}: {rows} receipts, {cpu_s:.3f} s server CPU", file=sys.stderr)
        for kind in (["card", "kohi"] if i % 2 == 0 else ["kohi", "card"]):
            replies, cpu_s = load(server, workloads[kind])
            res[kind].append(cpu_s / replies * 1e6)
            print(f"round {i + 1} load {kind} P{depth}: {replies} answers, {cpu_s:.3f} s server CPU", file=sys.stderr)
    finally:
        server.terminate(); server.wait()
assert counts["claims"] == counts["claims-ko"], counts
m = {k: statistics.median(v) for k, v in res.items()}
print(f"{counts['claims']} receipts, {ko_percent}% of them with a KO record in the second set; medians of {rounds} rounds ({posts} posts of each set a round over HTTP)")
print("| what | without KO | with KO | ratio |")
print("| --- | ---: | ---: | ---: |")
print(f"| `shikaku claims`, receipts per CPU second (whole process) | {m['claims']:,.0f} | {m['claims-ko']:,.0f} | {m['claims-ko'] / m['claims']:.2f} |")
print(f"| `POST /v1/claims`, receipts per server CPU second | {m['http']:,.0f} | {m['http-ko']:,.0f} | {m['http-ko'] / m['http']:.2f} |")
print()
print(f"| server CPU per answer, depth {depth}, {conns} connections | card | public expense | ratio |")
print("| --- | ---: | ---: | ---: |")
print(f"| µs | {m['card']:.2f} | {m['kohi']:.2f} | {m['kohi'] / m['card']:.2f} |")
PY
