#!/usr/bin/env bash
# perf/national.sh: the nation (126M persons): generate, build (signed), and time verification
# and start-up, cold and warm, deep and signed (perf/verify.sh).
# Needs ~16 GB of disk for the CSV and ~18 GB for the index. WORK [/tmp/shikaku-national]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${WORK:-/tmp/shikaku-national}
cargo build --release --workspace -q
bin=target/release
rm -rf "$work" && mkdir -p "$work"
/usr/bin/time -v "$bin/shikaku-datagen" --persons 126000000 --seed 7 --out "$work/snap" --date 2026-11-24 --queries 10000 --quiet \
    >"$work/datagen.out" 2>"$work/datagen.time"
# Signed: the build deep-checks what it wrote (phase deep_check) and signs its manifest, so
# that the signed start-up below checks checksums only.
"$bin/shikaku" signing-key new --out "$work/signing.key" >"$work/trusted.keys"
/usr/bin/time -v "$bin/shikaku" build --snapshots "$work/snap" --data "$work/data" --date 2026-11-24 \
    --signing-key "$work/signing.key" >"$work/build.out" 2>"$work/build.time"
for f in datagen build; do
    echo "$f: wall $(grep 'Elapsed (wall' "$work/$f.time" | awk '{print $NF}'), peak RSS $(grep 'Maximum resident' "$work/$f.time" | awk '{print $NF}') kB"
done
cat "$work/build.out"
gen=$(cat "$work/data/CURRENT")
python3 -c "import json; r=json.load(open('$work/data/generations/$gen/report.json')); print('index bytes', r['index_bytes'], 'per person', r['index_bytes']/126e6)"
# The phase table: wall and CPU per phase, CPU per read_encode stage, the process's peak RSS.
python3 perf/phases.py "$work/data/generations/$gen/report.json" "$work/build.time"
# Verification and start-up, cold and warm, deep and signed (perf/verify.sh).
DATA="$work/data" TRUSTED="$work/trusted.keys" BIN="$PWD/$bin/shikaku" WORK="$work/verify" \
    perf/verify.sh
