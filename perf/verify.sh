#!/usr/bin/env bash
# perf/verify.sh: what a generation costs to verify and to start serving, each figure cold
# (page cache dropped) and warm, wall and CPU time, for one binary or two side by side:
#   - `shikaku verify`: the full deep check (every checksum and structural check), with its
#     per-phase profile;
#   - `shikaku verify --trusted-keys`: what a server or replica trusting the builder's key runs
#     on a signed generation (every byte against the signed manifest and the index's own
#     checksums);
#   - `shikaku serve` from start to READY=1 (perf/ready.py), deep and signed;
#   - the disk: the sequential read time of the generation's bytes (`cat` of every file after
#     dropping the page cache) and dd's rate on the main file.
# PERSONS [10000000]; WORK [/tmp/shikaku-verify]; BEFORE: another shikaku binary to measure
# the same way (e.g. main's), signed figures skipped for it; DATA + TRUSTED: an existing data
# directory whose live generation was built with --signing-key and the trusted-keys file
# (skips data-gen and build; perf/national.sh passes them); BIN: the shikaku binary to
# measure as "after" (default: this checkout's, built first); RUNS [3] warm runs.
set -euo pipefail
cd "$(dirname "$0")/.."
persons=${PERSONS:-10000000}
work=${WORK:-/tmp/shikaku-verify}
runs=${RUNS:-3}
if [ -z "${BIN:-}" ]; then
    cargo build --release --workspace -q
fi
bin=${BIN:-$PWD/target/release/shikaku}
mkdir -p "$work"
if [ -z "${DATA:-}" ]; then
    rm -rf "$work/snap" "$work/data" "$work/signing.key"
    target/release/shikaku-datagen --persons "$persons" --seed 7 --out "$work/snap" \
        --date 2026-11-24 --quiet
    "$bin" signing-key new --out "$work/signing.key" >"$work/trusted.keys"
    "$bin" build --snapshots "$work/snap" --data "$work/data" --date 2026-11-24 \
        --signing-key "$work/signing.key" >"$work/build.out"
    DATA=$work/data
    TRUSTED=$work/trusted.keys
fi
gen=$(cat "$DATA/CURRENT")
dir=$DATA/generations/$gen

drop_caches() {
    sync
    if ! echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
        echo "cannot drop the page cache (not root?): the cold figures below are warm" >&2
    fi
}

# `timed LABEL CMD...`: one line, wall and CPU seconds of CMD (its output to $work/last.out).
timed() {
    local label=$1
    shift
    /usr/bin/time -f "%e %U %S" -o "$work/time.txt" "$@" >"$work/last.out" 2>&1
    read -r wall user sys <"$work/time.txt"
    printf '%-46s wall %7.2f s  CPU %7.2f s (user %.2f, sys %.2f)\n' "$label" "$wall" \
        "$(echo "$user + $sys" | bc)" "$user" "$sys"
}

echo "generation $gen: $(du -sb --apparent-size "$dir" | cut -f1) bytes, $(ls "$dir/segments" | wc -l) segment files"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u +%Y-%m-%dT%H:%MZ)"
drop_caches
start=$(date +%s.%N)
find "$dir" -type f \( -name '*.seg' -o -name 'index.shk' \) -exec cat {} + >/dev/null
echo "disk: every index byte read sequentially (cat) cold in $(echo "$(date +%s.%N) - $start" | bc | cut -c1-6) s"
drop_caches
dd if="$dir/index.shk" of=/dev/null bs=8M 2>&1 | tail -1 | sed 's/^/disk: dd of the main file: /'

measure() {
    local name=$1 b=$2
    shift 2
    drop_caches
    timed "$name: verify (deep), cold" "$b" verify --data "$DATA"
    for i in $(seq "$runs"); do
        timed "$name: verify (deep), warm $i" "$b" verify --data "$DATA"
    done
    # The last warm run's per-phase profile (a build that has one).
    grep -E '^  ' "$work/last.out" | sed "s/^/$name:   /" || true
    drop_caches
    echo "$name: serve (deep), cold: $(python3 perf/ready.py "$b" serve --data "$DATA" --threads 2 --resp 127.0.0.1:0 --http 127.0.0.1:0)"
    echo "$name: serve (deep), warm: $(python3 perf/ready.py "$b" serve --data "$DATA" --threads 2 --resp 127.0.0.1:0 --http 127.0.0.1:0)"
    [ -n "${TRUSTED:-}" ] && [ "$name" = after ] || return 0
    drop_caches
    timed "$name: verify --trusted-keys (signed), cold" "$b" verify --data "$DATA" --trusted-keys "$TRUSTED"
    for i in $(seq "$runs"); do
        timed "$name: verify --trusted-keys (signed), warm $i" "$b" verify --data "$DATA" --trusted-keys "$TRUSTED"
    done
    grep -E '^generation' "$work/last.out" | sed "s/^/$name: /"
    drop_caches
    echo "$name: serve (signed), cold: $(python3 perf/ready.py "$b" serve --data "$DATA" --trusted-keys "$TRUSTED" --threads 2 --resp 127.0.0.1:0 --http 127.0.0.1:0)"
    echo "$name: serve (signed), warm: $(python3 perf/ready.py "$b" serve --data "$DATA" --trusted-keys "$TRUSTED" --threads 2 --resp 127.0.0.1:0 --http 127.0.0.1:0)"
}

if [ -n "${BEFORE:-}" ]; then
    measure before "$BEFORE"
fi
measure after "$bin"
