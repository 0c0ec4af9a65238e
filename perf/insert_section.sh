#!/usr/bin/env bash
# perf/insert_section.sh RESULTS SECTION BLOCK: inserts the file BLOCK at the end of the
# section "## SECTION" of RESULTS (before the next "## " heading), making the file and the
# section when missing. Used by compare_redis.sh and compare_postgres.sh.
set -euo pipefail
results=$1 section=$2 block=$3
[[ -f $results ]] || printf '# Performance results\n\nAppended by the scripts in perf/.\n' >"$results"
grep -qxF "## $section" "$results" || printf '\n## %s\n\n' "$section" >>"$results"
awk -v block="$block" -v heading="## $section" '
    function flush() { while ((getline l < block) > 0) print l; done = 1 }
    /^## / && insec && !done { flush() }
    { print }
    $0 == heading { insec = 1 }
    END { if (!done) flush() }
' "$results" >"$results.tmp" && mv "$results.tmp" "$results"
