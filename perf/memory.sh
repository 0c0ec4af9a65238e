#!/usr/bin/env bash
# perf/memory.sh: the server's resident memory under issue 27's hostile loads (perf/memory.py),
# on a synthetic population of PERSONS [100000]; one JSON line per run. WORK [/tmp/shikaku-memory]
set -euo pipefail
cd "$(dirname "$0")/.."
persons=${1:-100000}
work=${WORK:-/tmp/shikaku-memory}
cargo build --release --workspace -q
bin=target/release
if [ ! -f "$work/data/CURRENT" ]; then
    rm -rf "$work" && mkdir -p "$work"
    "$bin/shikaku-datagen" --persons "$persons" --seed 7 --out "$work/snap" --date 2026-11-24 \
        --queries 10000 --quiet
    "$bin/shikaku" build --snapshots "$work/snap" --data "$work/data" --date 2026-11-24 >/dev/null
fi
run() { python3 perf/memory.py --bin "$bin/shikaku" --data "$work/data" --queries "$work/snap/queries.csv" "$@"; }
echo "# $(date -u +%FT%TZ), $(git rev-parse --short HEAD), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
# 300 keep-alive connections idle after a ~2 MB answer each.
run --scenario idle --clients 300 --json-batch
# 1,500 clients that never read their answers, with the default budget and with 64 MiB.
run --scenario silent --clients 1500 --json-batch
run --scenario silent --clients 1000 --json-batch --budget-bytes 67108864
# 8 concurrent claims files of 256 MiB: receipts of 30 records, then one-line receipts.
run --scenario claims --clients 8 --claims-kind hospital
run --scenario claims --clients 8 --claims-kind one-line
