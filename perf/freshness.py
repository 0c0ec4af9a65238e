"""perf/freshness.sh's breakdown: each landed file's phases from the builder's and the
replicas' logs (their timestamps), the time to every replica serving it, and the median."""
import datetime
import json
import re
import statistics
import sys

work, replicas = sys.argv[1], int(sys.argv[2])


def ms_of(line):
    stamp = line.split()[0]
    t = datetime.datetime.strptime(stamp[:26].rstrip("Z"), "%Y-%m-%dT%H:%M:%S.%f")
    return t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000


def lines(path):
    return open(path, encoding="utf-8", errors="replace").read().splitlines()


def field(line, name):
    m = re.search(rf"\b{name}=(\S+)", line)
    return m.group(1).strip('"') if m else None


watch = lines(f"{work}/watch.log")
logs = [lines(f"{work}/r{i}.log") for i in range(1, replicas + 1)]
rows = []
for run in open(f"{work}/runs.tsv"):
    rel, nrows, gen, t0, t1, written, cpu_builder, cpu_replicas, cpu_moto, answered = run.rstrip("\n").split("\t")
    t0, t1 = int(t0), int(t1)
    start = next(ms_of(l) for l in watch if "building from what landed" in l and ms_of(l) >= t0 - 5)
    built = next(l for l in watch if "published from what landed" in l and f"generation={gen}" in l)
    up = next(l for l in watch if " uploaded " in l and f"generation={gen}" in l)
    promoted = next(ms_of(l) for l in watch if "promoted by the fleet's promote policy" in l and f"generation={gen}" in l)
    phases = json.loads(re.search(r"phases_ms=(\{.*?\})", built).group(1).replace('"', '"'))
    sealed, took, live = [], [], []
    for log in logs:
        s = next(l for l in log if "verified and sealed" in l and f"generation={gen}" in l)
        sealed.append(ms_of(s))
        took.append(int(field(s, "elapsed_ms")))
        live.append(next(ms_of(l) for l in log if "made live" in l and f"generation={gen}" in l))
    r = {
        "file": rel, "rows": int(nrows), "total_ms": t1 - t0, "card_answer": answered,
        "settle_ms": start - t0,
        "build_ms": ms_of(built) - start, "phases_ms": phases,
        "upload_ms": int(field(up, "elapsed_ms")),
        "uploaded_bytes": int(field(up, "uploaded_bytes")), "written_bytes": int(written),
        "generation_bytes": int(field(up, "bytes")),
        "replica_poll_ms": max(s - k - ms_of(up) for s, k in zip(sealed, took)),
        "replica_download_verify_ms": max(took),
        "promote_ms": promoted - max(sealed),
        "swap_ms": max(live) - promoted,
        "seen_ms": t1 - max(live),
        "cpu_builder_ms": int(cpu_builder), "cpu_replicas_ms": int(cpu_replicas), "cpu_moto_ms": int(cpu_moto),
    }
    rows.append(r)
    print(json.dumps(r))
med = lambda k: statistics.median(r[k] for r in rows)
print(
    "median of %d files: rename to every replica serving it %d ms (settle %d, build %d, upload %d, replica poll %d, download+verify+seal %d, promote %d, swap %d, seen %d); uploaded %d bytes for %d written (%.2fx)"
    % (len(rows), med("total_ms"), med("settle_ms"), med("build_ms"), med("upload_ms"), med("replica_poll_ms"),
       med("replica_download_verify_ms"), med("promote_ms"), med("swap_ms"), med("seen_ms"),
       med("uploaded_bytes"), med("written_bytes"), med("uploaded_bytes") / max(1, med("written_bytes")))
)
print("median CPU time over that span: builder's loop %d ms, the replicas together %d ms, moto %d ms; load average %s"
      % (med("cpu_builder_ms"), med("cpu_replicas_ms"), med("cpu_moto_ms"), open("/proc/loadavg").read().split()[0]))
