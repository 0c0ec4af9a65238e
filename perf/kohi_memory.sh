#!/usr/bin/env bash
# perf/kohi_memory.sh [PERSONS]: index bytes per public-expense certificate (issue 26's target:
# at most 120 at 10M persons). Generates PERSONS [10000000] with their registers
# (shikaku-datagen --kohi), builds them, and prints the certificate sections of the main index
# file as one JSON line (perf/kohi_sections.py), with the build's wall and CPU seconds.
# WORK [/tmp/shikaku-kohi-memory] holds the data.
set -euo pipefail
cd "$(dirname "$0")/.."
persons=${1:-10000000}
work=${WORK:-/tmp/shikaku-kohi-memory}
cargo build --release -q -p shikaku -p data-gen
bin=target/release
rm -rf "$work" && mkdir -p "$work"
"$bin/shikaku-datagen" --persons "$persons" --seed 7 --out "$work/snap" --date 2026-11-24 \
    --kohi --quiet >"$work/datagen.json"
/usr/bin/time -f '{"build_wall_s": %e, "build_cpu_s": %U, "build_sys_s": %S, "build_peak_rss_kb": %M}' \
    -o "$work/build.time" \
    "$bin/shikaku" build --snapshots "$work/snap" --data "$work/data" --date 2026-11-24 >/dev/null
gen=$(cat "$work/data/CURRENT")
echo "# $(date -u +%FT%TZ), $(git rev-parse --short HEAD), $(nproc) cores, $persons persons"
python3 perf/kohi_sections.py "$work/data/generations/$gen/index.shk"
cat "$work/build.time"
python3 - "$work/datagen.json" <<'PY'
import json, sys
k = json.load(open(sys.argv[1]))["kohi"]
print(json.dumps({"payers": k["payers"], "holders": k["holders"],
                  "holders_by_program": k["holders_by_program"]}, ensure_ascii=False))
PY
