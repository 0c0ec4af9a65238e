#!/usr/bin/env bash
# perf/compare_postgres.sh [PERSONS]: shikaku and PostgreSQL side by side on this machine, the
# anchor a national service would otherwise pick (issue 28).
#
# One data set (shikaku-datagen, SEED, DATE, QUERIES, no defects) for both:
#   load   shikaku build from the raw snapshot CSV (timed with /usr/bin/time -v: wall, CPU,
#          peak RSS; bytes of the generation on disk), against PostgreSQL given the same rows:
#          a pre-pass (perf/pg_rows.py: decoding, the card key normalization, dates to ISO, the
#          individual number to a keyed hash) timed on its own line, then COPY into a table
#          created in the same transaction, a B-tree on the card key (insurer, symbol, number,
#          branch, birthdate), a B-tree on the person hash, the X1 (identity-unverified) table,
#          ANALYZE, each phase timed (wall, and the server's CPU); bytes on disk
#          (pg_total_relation_size of the tables, the database, the data directory).
#          LOAD_ROUNDS rounds, the order alternating, medians.
#   serve  the card query: shikaku serve --threads 1 --poll-us 0 driven by shikaku load, and
#          PostgreSQL's card_query (perf/pg_card.sql: the card decision of docs/api.md in
#          PL/pgSQL) called as a prepared statement by pgbench -M prepared, over the same
#          requests: the workload's card queries, their fields normalized beforehand
#          (perf/experiments/normalize_queries.py) for both. Both servers pinned to SERVER_CPU,
#          clients to CLIENT_CPU, CONNECTIONS connections at depth 1 (pgbench runs one query per
#          transaction and waits for it). Every answer is checked: shikaku load against the
#          expected validity; in PostgreSQL card_check(i) raises an error when query i's
#          validity is not the expected one, which aborts pgbench (a failed run); before the
#          runs one SQL statement checks the whole workload, and perf/pg_crosscheck.py compares
#          every PostgreSQL answer with shikaku's (POST /v1/batch): validity and record.
#          Server CPU per answer: the server's utime + stime over the run (/proc/PID/stat) per
#          answer, as compare_redis.sh measures it. For PostgreSQL the server is every process
#          of the cluster: the postmaster's own and reaped children's time (utime, stime,
#          cutime, cstime: a backend that exited during the run is counted when the postmaster
#          reaps it) plus every live child's utime + stime, before and after each run.
#          ROUNDS rounds, the order alternating, medians.
# PostgreSQL: Debian's package (apt-get install postgresql), a cluster of its own made by initdb
# in WORK and removed at exit, on a loopback port. Durability as shikaku's: fsync on (shikaku
# build fsyncs every file it publishes), wal_level minimal (a table loaded in the transaction that
# created it, and an index, are written without WAL and fsynced at commit: what a bulk load
# would use), autovacuum off (a read-only table, analyzed once), jit off, shared_buffers sized to
# hold the tables and indexes (SHARED_BUFFERS). The results are printed and inserted into
# perf/RESULTS.md under "## Server vs PostgreSQL".
#
# Settings (environment, defaults in brackets):
#   PERSONS [1000000] (or the first argument) QUERIES [100000] SEED [7] DATE [2026-11-24]
#   LOAD_ROUNDS [3; 1 above 2M persons]   ROUNDS [5]   serving rounds
#   DURATION [10] WARMUP [2]               seconds per serving run (pgbench: a WARMUP-second
#                                          run, checked, then DURATION measured)
#   CONNECTIONS [16]                       client connections, each at depth 1
#   SHARED_BUFFERS [600 bytes a person, at least 256MB]
#   SERVER_CPU [0] CLIENT_CPU [1]  PG_PORT [15432] SHIKAKU_PORT [17479] HTTP_PORT [17480]
#   WORK [target/perf/postgres-PERSONS]  APPEND [1] RESULTS [perf/RESULTS.md]
#   SHIKAKU, DATAGEN                       the shikaku and shikaku-datagen binaries (both
#                                          given: no cargo build) [target/release/...]
# The whole script is one block, read before any of it runs (editing it during a run changes
# nothing of that run).
{
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

PERSONS=${1:-${PERSONS:-1000000}}
QUERIES=${QUERIES:-100000}
SEED=${SEED:-7}
DATE=${DATE:-2026-11-24}
if ((PERSONS > 2000000)); then LOAD_ROUNDS=${LOAD_ROUNDS:-1}; else LOAD_ROUNDS=${LOAD_ROUNDS:-3}; fi
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-16}
SB_MB=$((PERSONS * 600 / 1048576))
((SB_MB >= 256)) || SB_MB=256
SHARED_BUFFERS=${SHARED_BUFFERS:-${SB_MB}MB}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PG_PORT=${PG_PORT:-15432}
SHIKAKU_PORT=${SHIKAKU_PORT:-17479}
HTTP_PORT=${HTTP_PORT:-17480}
WORK=${WORK:-target/perf/postgres-$PERSONS}
APPEND=${APPEND:-1}
RESULTS=${RESULTS:-perf/RESULTS.md}
for v in PERSONS QUERIES LOAD_ROUNDS ROUNDS DURATION WARMUP CONNECTIONS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive number" >&2; exit 1; }
done
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
LOG=$WORK/compare.log
: >"$LOG"

say() { printf '%s\n' "$*" >&2; }
die() {
    say "compare_postgres: $*"
    exit 1
}

# ---- tools: PostgreSQL is checked for, never installed here --------------------------------
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
for t in initdb pg_ctl postgres psql pgbench; do
    [[ -n $PGBIN && -x $PGBIN/$t ]] ||
        die "PostgreSQL's $t is missing: install Debian's package (apt-get install postgresql)"
done
command -v taskset >/dev/null || die "taskset (util-linux) is needed"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is needed (apt-get install time)"
command -v python3 >/dev/null || die "python3 is needed (the rows' pre-pass)"
# initdb and postgres refuse to run as root: as root, the cluster belongs to the postgres user.
AS_PG=()
if [[ $(id -u) == 0 ]]; then
    getent passwd postgres >/dev/null || die "no postgres user (Debian's package makes it)"
    AS_PG=(runuser -u postgres --)
fi
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres)

if [[ -z ${SHIKAKU:-} || -z ${DATAGEN:-} ]]; then
    say "building release binaries (cargo build --release -p shikaku -p data-gen)"
    cargo build --release -q -p shikaku -p data-gen >>"$LOG" 2>&1 || die "cargo build failed; see $LOG"
fi
SHIKAKU=${SHIKAKU:-$ROOT/target/release/shikaku}
DATAGEN=${DATAGEN:-$ROOT/target/release/shikaku-datagen}

# ---- servers and the cluster are ours to stop and remove, whatever happens -----------------
PGDATA=$WORK/pgdata
SHIKAKU_PID=
PG_UP=0
cleanup() {
    if [[ -n $SHIKAKU_PID ]] && kill -0 "$SHIKAKU_PID" 2>/dev/null; then
        kill "$SHIKAKU_PID" 2>/dev/null || true
        wait "$SHIKAKU_PID" 2>/dev/null || true
    fi
    if ((PG_UP)); then "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >>"$LOG" 2>&1 || true; fi
    rm -rf "$PGDATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- data: generated once per (persons, seed, queries, date), cached in WORK ---------------
SNAP=$WORK/snapshots
PARAMS="persons=$PERSONS seed=$SEED queries=$QUERIES date=$DATE"
if [[ ! -f $WORK/params || $(cat "$WORK/params") != "$PARAMS" ]]; then
    rm -rf "$SNAP" "$WORK/params"
    say "generating $PARAMS"
    "$DATAGEN" --persons "$PERSONS" --seed "$SEED" --out "$SNAP" --date "$DATE" \
        --queries "$QUERIES" --quiet >>"$LOG" 2>&1 || die "data generation failed; see $LOG"
    echo "$PARAMS" >"$WORK/params"
fi
SNAP_BYTES=$(du -sb "$SNAP" | cut -f1)
# The workload: its card queries with their fields normalized, for both servers (shikaku load
# reads the CSV; PostgreSQL gets them numbered in a table, for pgbench).
python3 "$ROOT/perf/experiments/normalize_queries.py" "$SNAP/queries.csv" "$WORK/normalized.csv"
awk -F, 'NR == 1 || $1 == "card"' "$WORK/normalized.csv" >"$WORK/card.csv"
awk -F, -v OFS=, 'NR > 1 { print NR - 1, $2, $3, $4, $5, $6, $8, $10 }' "$WORK/card.csv" >"$WORK/workload.csv"
NCARD=$(($(wc -l <"$WORK/card.csv") - 1))
((NCARD > 0)) || die "no card query in $SNAP/queries.csv"
chmod -R a+rX "$WORK" # the postgres user reads nothing of it but must reach its data directory

# ---- helpers -------------------------------------------------------------------------------
HZ=$(getconf CLK_TCK)
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# proc_ticks PID: utime + stime in clock ticks (/proc/PID/stat, fields 14 and 15 counted after
# the command name, which may hold spaces).
proc_ticks() { sed -E 's/^.*\) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
# pg_ticks: the cluster's CPU so far: the postmaster's utime + stime + cutime + cstime (the
# children it reaped) and every live child's utime + stime.
pg_ticks() {
    local pm t=0 c
    pm=$(head -n 1 "$PGDATA/postmaster.pid")
    t=$(sed -E 's/^.*\) //' "/proc/$pm/stat" | awk '{ print $12 + $13 + $14 + $15 }')
    for c in $(ps -o pid= --ppid "$pm"); do
        t=$((t + $(proc_ticks "$c" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
# pg_settle: waits (at most 10 s) until no client backend is left and no child is a zombie, so
# that the backends of the run just ended have exited and been reaped: their time is then in
# the postmaster's cutime. (A zombie's own /proc/PID/stat no longer counts its time: read
# before the reaping, the run's backends would be missing.)
pg_settle() {
    local pm i
    pm=$(head -n 1 "$PGDATA/postmaster.pid")
    for ((i = 0; i < 100; i++)); do
        [[ $(ps -o stat=,args= --ppid "$pm" | grep -c -E '^Z|postgres: postgres' || true) == 0 ]] && break
        sleep 0.1
    done
    ((i < 100)) || say "warning: client backends still alive or unreaped 10 s after the run"
    # Then until the cluster's CPU time stands still (at most 10 s more): whatever a phase left
    # running (a worker, a process still exiting) is counted in that phase, not the next.
    local a b
    b=$(pg_ticks)
    for ((i = 0; i < 40; i++)); do
        sleep 0.25
        a=$b
        b=$(pg_ticks)
        ((b - a <= 1)) && return 0
    done
    say "warning: the cluster was still busy 10 s after the run"
}
ms_to_s() { awk -v x="$1" 'BEGIN { printf "%.2f", x / 1000 }'; }
median() { tr ' ' '\n' <<<"$1" | { grep -v '^$' || true; } | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print ""; exit }
    if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f×", a / b }'; }
fmt2() { awk -v x="$1" 'BEGIN { if (x == "" || x == "null") print "-"; else printf "%.2f", x }'; }
fmt0() { awk -v x="$1" 'BEGIN { if (x == "" || x == "null") print "-"; else printf "%.0f", x }'; }
mb() { awk -v x="$1" 'BEGIN { if (x == "") print "-"; else printf "%.0f MB", x / 1e6 }'; }
json_num() { sed -E "s/.*\"$1\":(-?[0-9.eE+-]+|null).*/\1/" <<<"$2"; }
loadavg1() { cut -d' ' -f1 /proc/loadavg; }

pg_start() { # [taskset CPU list]: starts the cluster, pinned when given (backends inherit it)
    local pin=()
    [[ -n ${1:-} ]] && pin=(taskset -c "$1")
    "${pin[@]}" "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -w -t 120 -l "$PGDATA/server.log" \
        -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
            -c shared_buffers=$SHARED_BUFFERS -c fsync=on -c synchronous_commit=on \
            -c wal_level=minimal -c max_wal_senders=0 -c max_wal_size=8GB \
            -c checkpoint_timeout=30min -c maintenance_work_mem=1GB -c work_mem=64MB \
            -c autovacuum=off -c jit=off -c max_connections=100" start >>"$LOG" 2>&1 ||
        die "PostgreSQL did not start; see $LOG and $PGDATA/server.log"
    PG_UP=1
}
pg_stop() {
    "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >>"$LOG" 2>&1 || true
    PG_UP=0
}

say "initdb $PGDATA ($("$PGBIN/postgres" --version))"
rm -rf "$PGDATA"
mkdir -p "$PGDATA"
[[ ${#AS_PG[@]} == 0 ]] || chown postgres "$PGDATA"
"${AS_PG[@]}" "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >>"$LOG" 2>&1 || die "initdb failed; see $LOG"
pg_start

# ---- load: shikaku build and PostgreSQL's load, alternating rounds -------------------------
DATA=$WORK/data
ROWS_DIR=$WORK/rows
declare -A L=() # "what" -> space-separated values, one per round
LOAD_LINES=()
add() { L[$1]+="$2 "; }

shikaku_build() {
    rm -rf "$DATA"
    say "shikaku build ($PERSONS persons)"
    /usr/bin/time -v "$SHIKAKU" build --snapshots "$SNAP" --data "$DATA" --date "$DATE" \
        >"$WORK/build.out" 2>"$WORK/build.time" || die "shikaku build failed; see $WORK/build.time"
    local wall user sys rss bytes
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$WORK/build.time")
    user=$(awk -F': ' '/User time/ { print $2 }' "$WORK/build.time")
    sys=$(awk -F': ' '/System time/ { print $2 }' "$WORK/build.time")
    rss=$(awk -F': ' '/Maximum resident/ { print $2 * 1024 }' "$WORK/build.time")
    bytes=$(du -sb "$DATA/generations/$(cat "$DATA/CURRENT")" | cut -f1)
    add build_wall "$wall"
    add build_cpu "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')"
    add build_rss "$rss"
    add build_bytes "$bytes"
    LOAD_LINES+=("| $ROUND | shikaku build (raw CSV) | $(fmt2 "$wall") | $(fmt2 "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')") | $(mb "$rss") | $(mb "$bytes") | $(loadavg1) |")
}

# pg_phase NAME: one phase (SQL on stdin) in its own psql session; its wall time and CPU: the
# cluster's and psql's (which reads the file of a \copy and sends it).
pg_phase() {
    local name=$1 t0 t1 c0 c1 client
    pg_settle
    c0=$(pg_ticks)
    t0=$(now)
    /usr/bin/time -f '%U %S' -o "$WORK/psql.time" "${PSQL[@]}" -d shikaku >>"$LOG" 2>&1 ||
        die "PostgreSQL phase '$name' failed; see $LOG"
    t1=$(now)
    pg_settle
    c1=$(pg_ticks)
    client=$(awk '{ print $1 + $2 }' "$WORK/psql.time")
    PHASE_WALL=$(secs "$t0" "$t1")
    PHASE_CPU=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v c="$client" 'BEGIN { printf "%.2f", t / hz + c }')
    add "pg_${name}_wall" "$PHASE_WALL"
    add "pg_${name}_cpu" "$PHASE_CPU"
}

pg_load() {
    say "PostgreSQL: pre-pass, COPY, indexes, ANALYZE ($PERSONS persons)"
    rm -rf "$ROWS_DIR"
    mkdir -p "$ROWS_DIR"
    /usr/bin/time -v python3 "$ROOT/perf/pg_rows.py" "$SNAP" "$DATE" "$ROWS_DIR" \
        2>"$WORK/prepass.time" || die "the pre-pass failed; see $WORK/prepass.time"
    grep '^pg_rows:' "$WORK/prepass.time" >>"$LOG" || true
    local pwall pcpu
    pwall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$WORK/prepass.time")
    pcpu=$(awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { print u + s }' "$WORK/prepass.time")
    add pre_wall "$pwall"
    add pre_cpu "$pcpu"
    "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS shikaku" -c "CREATE DATABASE shikaku" >>"$LOG" 2>&1 ||
        die "CREATE DATABASE failed; see $LOG"
    # COPY into tables created in the same transaction: with wal_level minimal, no WAL is
    # written for them; the files are fsynced at commit.
    pg_phase copy <<SQL
BEGIN;
CREATE TABLE insurers (insurer_number text NOT NULL, insurer_name text NOT NULL, kind text NOT NULL);
CREATE TABLE records (insurer_number text NOT NULL, symbol text NOT NULL, number text NOT NULL,
    branch text NOT NULL, birthdate date NOT NULL, person bytea, name text NOT NULL,
    name_kana text NOT NULL, sex smallint NOT NULL, relationship smallint NOT NULL,
    qualification_date date NOT NULL, disqualification_date date, reason_of_loss text,
    copay_ratio smallint NOT NULL, limit_category text);
\copy insurers FROM '$ROWS_DIR/insurers.tsv'
\copy records FROM '$ROWS_DIR/records.tsv'
COMMIT;
SQL
    local copy_wall=$PHASE_WALL copy_cpu=$PHASE_CPU
    pg_phase card_index <<SQL
CREATE UNIQUE INDEX insurers_number ON insurers (insurer_number);
CREATE INDEX records_card ON records (insurer_number, symbol, number, branch, birthdate);
SQL
    local card_wall=$PHASE_WALL card_cpu=$PHASE_CPU
    pg_phase person_index <<SQL
CREATE INDEX records_person ON records (person) WHERE person IS NOT NULL;
SQL
    local person_wall=$PHASE_WALL person_cpu=$PHASE_CPU
    # X1: a number on records whose birthdates or sexes differ is identity-unverified.
    pg_phase unverified <<SQL
CREATE TABLE unverified AS SELECT person FROM records WHERE person IS NOT NULL
    GROUP BY person HAVING count(DISTINCT (birthdate, sex)) > 1;
CREATE UNIQUE INDEX unverified_person ON unverified (person);
SQL
    local unv_wall=$PHASE_WALL unv_cpu=$PHASE_CPU
    pg_phase analyze <<SQL
ANALYZE insurers; ANALYZE records; ANALYZE unverified;
SQL
    local an_wall=$PHASE_WALL an_cpu=$PHASE_CPU
    # Not needed for durability (the tables and indexes were fsynced at their commits): it
    # writes the pages whose hint bits the index builds set, which a first read would write
    # anyway. Timed on its own line, outside the total.
    pg_phase checkpoint <<SQL
CHECKPOINT;
SQL
    local total_wall total_cpu
    total_wall=$(awk -v a="$copy_wall" -v b="$card_wall" -v c="$person_wall" -v d="$unv_wall" -v e="$an_wall" 'BEGIN { print a + b + c + d + e }')
    total_cpu=$(awk -v a="$copy_cpu" -v b="$card_cpu" -v c="$person_cpu" -v d="$unv_cpu" -v e="$an_cpu" 'BEGIN { print a + b + c + d + e }')
    add pg_total_wall "$total_wall"
    add pg_total_cpu "$total_cpu"
    local sizes
    sizes=$("${PSQL[@]}" -d shikaku -At -F ' ' -c "SELECT pg_total_relation_size('records'),
        pg_relation_size('records'), pg_relation_size('records_card'), pg_relation_size('records_person'),
        pg_total_relation_size('insurers') + pg_total_relation_size('unverified'),
        pg_database_size('shikaku'), (SELECT count(*) FROM records)")
    read -r S_TOTAL S_HEAP S_CARD S_PERSON S_OTHER S_DB PG_ROWS <<<"$sizes"
    S_DIR=$(du -sb "$PGDATA" | cut -f1)
    add pg_bytes "$S_TOTAL"
    add pg_db_bytes "$S_DB"
    add pg_dir_bytes "$S_DIR"
    LOAD_LINES+=("| $ROUND | pre-pass (perf/pg_rows.py) | $(fmt2 "$pwall") | $(fmt2 "$pcpu") | $(mb "$(awk -F': ' '/Maximum resident/ { print $2 * 1024 }' "$WORK/prepass.time")") | $(mb "$(du -sb "$ROWS_DIR" | cut -f1)") (TSV) | $(loadavg1) |")
    LOAD_LINES+=("| $ROUND | PostgreSQL COPY / card index / person index / X1 / ANALYZE (then CHECKPOINT) | $copy_wall / $card_wall / $person_wall / $unv_wall / $an_wall = $(fmt2 "$total_wall") ($PHASE_WALL) | $copy_cpu / $card_cpu / $person_cpu / $unv_cpu / $an_cpu = $(fmt2 "$total_cpu") ($PHASE_CPU) | - | $(mb "$S_TOTAL") (records: heap $(mb "$S_HEAP"), card index $(mb "$S_CARD"), person index $(mb "$S_PERSON")); database $(mb "$S_DB"), data dir $(mb "$S_DIR") | $(loadavg1) |")
}

for ((ROUND = 1; ROUND <= LOAD_ROUNDS; ROUND++)); do
    if ((ROUND % 2)); then shikaku_build; pg_load; else pg_load; shikaku_build; fi
done
rm -rf "$ROWS_DIR"
INDEX_BYTES=$(median "${L[build_bytes]}")
PUBLISHED=$(grep -m 1 '^published' "$WORK/build.out" || true)

# ---- serving: both pinned to SERVER_CPU, clients to CLIENT_CPU -----------------------------
say "PostgreSQL: restarting pinned to core $SERVER_CPU; loading the workload ($NCARD card queries)"
pg_stop
pg_start "$SERVER_CPU"
"${PSQL[@]}" -d shikaku -f - >>"$LOG" 2>&1 <<SQL || die "loading the workload or pg_card.sql failed; see $LOG"
CREATE TABLE workload (i int PRIMARY KEY, insurer_number text NOT NULL, symbol text NOT NULL,
    number text NOT NULL, branch text, birthdate date NOT NULL, date date NOT NULL, expected int NOT NULL);
\copy workload FROM '$WORK/workload.csv' WITH (FORMAT csv, FORCE_NOT_NULL (symbol))
ANALYZE workload;
\i $ROOT/perf/pg_card.sql
SQL
# Every card query of the workload through card_query, in one statement (also warms the cache).
WRONG_BY=$("${PSQL[@]}" -d shikaku -At -F ' ' -c "SELECT expected, v, count(*) FROM (SELECT expected,
    (card_query(insurer_number, symbol, number, branch, birthdate, date)).validity AS v FROM workload) a
    WHERE v <> expected GROUP BY 1, 2 ORDER BY 1, 2") || die "the workload check failed; see $LOG"
PG_WRONG=$(awk '{ s += $3 } END { print s + 0 }' <<<"$WRONG_BY")
say "PostgreSQL: $PG_WRONG of $NCARD card queries answered with another validity than expected"
FAILED=0
((PG_WRONG == 0)) || FAILED=1

printf '\\set i random(1, %d)\nSELECT * FROM card_check(:i);\n' "$NCARD" >"$WORK/card.pgbench"
# The harness alone: the round trip, the call and the workload row, no card query.
printf '\\set i random(1, %d)\nSELECT * FROM workload_row(:i);\n' "$NCARD" >"$WORK/floor.pgbench"

say "starting shikaku serve --threads 1 --poll-us 0 on core $SERVER_CPU"
taskset -c "$SERVER_CPU" "$SHIKAKU" serve --data "$DATA" --resp "127.0.0.1:$SHIKAKU_PORT" \
    --http "127.0.0.1:$HTTP_PORT" --threads 1 --poll-us 0 >>"$LOG" 2>&1 &
SHIKAKU_PID=$!
for ((i = 0; i < 1800; i++)); do
    "$SHIKAKU" load --queries "$WORK/card.csv" --addr "127.0.0.1:$SHIKAKU_PORT" --mode ping \
        --connections 1 --requests 1 --warmup 0 >/dev/null 2>&1 && break
    kill -0 "$SHIKAKU_PID" 2>/dev/null || die "shikaku serve exited during start-up; see $LOG"
    sleep 0.1
done

# Record by record: PostgreSQL's answer to every card query of the workload against shikaku's
# (POST /v1/batch): the validity, and the record of a validity 1 or 2.
say "comparing every card answer of PostgreSQL with shikaku's (perf/pg_crosscheck.py)"
"${PSQL[@]}" -d shikaku -c "COPY (SELECT a.validity, a.insurer_number, a.symbol, a.number,
    a.branch, a.name, a.qualification_date, a.disqualification_date FROM workload w,
    LATERAL card_query(w.insurer_number, w.symbol, w.number, w.branch, w.birthdate, w.date) a
    ORDER BY w.i) TO STDOUT WITH (FORMAT csv)" >"$WORK/pg_answers.csv" 2>>"$LOG" ||
    die "PostgreSQL's answers could not be written; see $LOG"
CROSS=$(python3 "$ROOT/perf/pg_crosscheck.py" "$WORK/card.csv" "127.0.0.1:$HTTP_PORT" \
    "$WORK/pg_answers.csv" 2>>"$LOG") || FAILED=1
say "${CROSS:-the comparison failed; see $LOG}"

declare -A S=() # "server|shape" -> "cpu_us rate" per round
RUN_LINES=()
run_shikaku() { # SHAPE (card: ELIG.CARD of every card query; floor: PING, the round trip alone)
    local out status=0 p0 p1 cpu mode=elig label="card queries"
    [[ $1 == floor ]] && mode=ping label="PING (the round trip alone)"
    say "round $ROUND: shikaku load $label c$CONNECTIONS P1"
    p0=$(proc_ticks "$SHIKAKU_PID")
    taskset -c "$CLIENT_CPU" "$SHIKAKU" load --queries "$WORK/card.csv" \
        --addr "127.0.0.1:$SHIKAKU_PORT" --mode "$mode" --threads 1 --connections "$CONNECTIONS" \
        --pipeline 1 --duration "$DURATION" --warmup "$WARMUP" --json >"$WORK/load.out" 2>>"$LOG" || status=$?
    p1=$(proc_ticks "$SHIKAKU_PID")
    out=$(cat "$WORK/load.out")
    echo "load round $ROUND: $out" >>"$LOG"
    cpu=$(awk -v t=$((p1 - p0)) -v n="$(json_num replies "$out")" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.3f", t / hz * 1e6 / n }')
    local check="right $(json_num right "$out"), wrong $(json_num wrong "$out")"
    if ((status != 0)); then check="FAIL (exit $status): $check, errors $(json_num errors "$out")"; FAILED=1; fi
    RUN_LINES+=("| $ROUND | shikaku serve | shikaku load, $label | $(fmt0 "$(json_num rate "$out")") | $(fmt2 "$cpu") | $(fmt0 "$(json_num p50_us "$out")") | $(fmt0 "$(json_num p99_us "$out")") | $(json_num replies "$out") | $check | $(loadavg1) |")
    ((status == 0)) && S["shikaku|$1"]+="$cpu " && S["shikaku|$1_rate"]+="$(json_num rate "$out") "
    return 0
}
# pgbench_run SCRIPT SECONDS: one pgbench run, client pinned; sets PGB_N, PGB_TPS, PGB_LAT, PGB_STATUS.
pgbench_run() {
    PGB_STATUS=0
    taskset -c "$CLIENT_CPU" "$PGBIN/pgbench" -n -M prepared -h 127.0.0.1 -p "$PG_PORT" -U postgres \
        -c "$CONNECTIONS" -j 1 -T "$2" -f "$1" shikaku >"$WORK/pgbench.out" 2>>"$LOG" || PGB_STATUS=$?
    cat "$WORK/pgbench.out" >>"$LOG"
    PGB_N=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$WORK/pgbench.out")
    PGB_TPS=$(sed -n 's/^tps = \([0-9.]*\) (without.*/\1/p' "$WORK/pgbench.out")
    PGB_LAT=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$WORK/pgbench.out")
}
run_pg() { # SHAPE SCRIPT LABEL
    local c0 c1 cpu check
    say "round $ROUND: pgbench $3 c$CONNECTIONS"
    pgbench_run "$2" "$WARMUP" # warm-up: checked, not measured
    if ((PGB_STATUS != 0)); then
        RUN_LINES+=("| $ROUND | PostgreSQL | pgbench, $3 (warm-up) | - | - | - | - | - | FAIL (exit $PGB_STATUS; see log) | $(loadavg1) |")
        FAILED=1
        return 0
    fi
    pg_settle
    c0=$(pg_ticks)
    pgbench_run "$2" "$DURATION"
    pg_settle
    c1=$(pg_ticks)
    cpu=$(awk -v t=$((c1 - c0)) -v n="${PGB_N:-0}" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.3f", t / hz * 1e6 / n }')
    check="every answer checked in card_check"
    [[ $1 == floor ]] && check="no card query"
    if ((PGB_STATUS != 0)); then check="FAIL (exit $PGB_STATUS; see log)"; FAILED=1; fi
    RUN_LINES+=("| $ROUND | PostgreSQL | pgbench -M prepared, $3 | $(fmt0 "$PGB_TPS") | $(fmt2 "$cpu") | $(awk -v x="${PGB_LAT:-}" 'BEGIN { if (x == "") print "-"; else printf "%.0f (mean)", x * 1000 }') | - | ${PGB_N:-0} | $check | $(loadavg1) |")
    ((PGB_STATUS == 0)) && S["pg|$1"]+="$cpu " && S["pg|$1_rate"]+="$PGB_TPS "
    return 0
}
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    if ((ROUND % 2)); then
        run_shikaku card
        run_pg card "$WORK/card.pgbench" "SELECT * FROM card_check(:i)"
        run_shikaku floor
        run_pg floor "$WORK/floor.pgbench" "SELECT * FROM workload_row(:i) (the harness alone)"
    else
        run_pg card "$WORK/card.pgbench" "SELECT * FROM card_check(:i)"
        run_shikaku card
        run_pg floor "$WORK/floor.pgbench" "SELECT * FROM workload_row(:i) (the harness alone)"
        run_shikaku floor
    fi
done
SHIKAKU_RSS=$(awk '/^VmRSS/ { print $2 * 1024 }' "/proc/$SHIKAKU_PID/status" 2>/dev/null || echo)
PG_BUFFERS=$("${PSQL[@]}" -d shikaku -At -c "SHOW shared_buffers")
cleanup
PG_UP=0
SHIKAKU_PID=

# ---- report --------------------------------------------------------------------------------
SH_CPU=$(median "${S["shikaku|card"]:-}")
PG_CPU=$(median "${S["pg|card"]:-}")
SH_FLOOR=$(median "${S["shikaku|floor"]:-}")
PG_FLOOR=$(median "${S["pg|floor"]:-}")
minus() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "") print ""; else print a - b }'; }
SH_OWN=$(minus "$SH_CPU" "$SH_FLOOR")
PG_OWN=$(minus "$PG_CPU" "$PG_FLOOR")
STAMP=$(date -u +%Y-%m-%dT%H:%M:%SZ)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
med() { median "${L[$1]:-}"; }
BLOCK=$(mktemp)
{
    echo "### $STAMP, $PERSONS persons, commit $COMMIT"
    echo
    echo "- command: \`perf/compare_postgres.sh $PERSONS\` (QUERIES=$QUERIES SEED=$SEED DATE=$DATE LOAD_ROUNDS=$LOAD_ROUNDS ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS)"
    echo "- machine: $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -n 1)), kernel $(uname -r), $(free -g | awk '/^Mem:/ { print $2 " GiB RAM" }'); shared with other engineers' builds"
    echo "- load average (1, 5, 15 min) at start: $LOADAVG_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- $("$PGBIN/postgres" --version) (Debian's package), own cluster: shared_buffers $PG_BUFFERS, fsync on, synchronous_commit on, wal_level minimal (COPY into a table created in its transaction, indexes: no WAL, fsynced at commit), maintenance_work_mem 1GB, autovacuum off, jit off; shikaku build fsyncs what it publishes"
    echo "- data: shikaku-datagen --persons $PERSONS --seed $SEED --date $DATE --queries $QUERIES (no defects): $(mb "$SNAP_BYTES") of snapshot CSV, $PG_ROWS rows; $NCARD card queries in the workload; ${PUBLISHED:-}"
    echo
    echo "Load and index, medians of $LOAD_ROUNDS round(s) (wall s; CPU s: shikaku build's user + sys, the pre-pass's, PostgreSQL's server processes' and psql's):"
    echo
    echo "| | wall s | CPU s | on disk |"
    echo "|---|---:|---:|---|"
    echo "| shikaku build (raw CSV: decode, normalize, check, index, fsync) | $(fmt2 "$(med build_wall)") | $(fmt2 "$(med build_cpu)") | $(mb "$INDEX_BYTES") (the generation) |"
    echo "| PostgreSQL: pre-pass (perf/pg_rows.py, Python: decode, normalize, hash) | $(fmt2 "$(med pre_wall)") | $(fmt2 "$(med pre_cpu)") | |"
    echo "| PostgreSQL: COPY | $(fmt2 "$(med pg_copy_wall)") | $(fmt2 "$(med pg_copy_cpu)") | |"
    echo "| PostgreSQL: card key index | $(fmt2 "$(med pg_card_index_wall)") | $(fmt2 "$(med pg_card_index_cpu)") | |"
    echo "| PostgreSQL: person hash index | $(fmt2 "$(med pg_person_index_wall)") | $(fmt2 "$(med pg_person_index_cpu)") | |"
    echo "| PostgreSQL: X1 table | $(fmt2 "$(med pg_unverified_wall)") | $(fmt2 "$(med pg_unverified_cpu)") | |"
    echo "| PostgreSQL: ANALYZE | $(fmt2 "$(med pg_analyze_wall)") | $(fmt2 "$(med pg_analyze_cpu)") | |"
    echo "| PostgreSQL: CHECKPOINT afterwards (not in the total: not needed for durability; writes the pages the index builds set hint bits on) | $(fmt2 "$(med pg_checkpoint_wall)") | $(fmt2 "$(med pg_checkpoint_cpu)") | |"
    echo "| **PostgreSQL load and index, without the pre-pass** | $(fmt2 "$(med pg_total_wall)") | $(fmt2 "$(med pg_total_cpu)") | $(mb "$(med pg_bytes)") (tables and indexes), database $(mb "$(med pg_db_bytes)"), data dir $(mb "$(med pg_dir_bytes)") |"
    echo "| ratio PostgreSQL (without the pre-pass) / shikaku build | $(ratio "$(med pg_total_wall)" "$(med build_wall)") | $(ratio "$(med pg_total_cpu)" "$(med build_cpu)") | $(ratio "$(med pg_bytes)" "$INDEX_BYTES") (tables and indexes) |"
    echo "| ratio PostgreSQL with the pre-pass / shikaku build | $(ratio "$(awk -v a="$(med pg_total_wall)" -v b="$(med pre_wall)" 'BEGIN { print a + b }')" "$(med build_wall)") | $(ratio "$(awk -v a="$(med pg_total_cpu)" -v b="$(med pre_cpu)" 'BEGIN { print a + b }')" "$(med build_cpu)") | |"
    echo
    echo "Card query, server CPU per answer (µs; medians of $ROUNDS rounds; servers pinned to core $SERVER_CPU, clients to core $CLIENT_CPU, $CONNECTIONS connections at depth 1, ${DURATION} s after ${WARMUP} s):"
    echo
    echo "| | shikaku | PostgreSQL | PostgreSQL / shikaku |"
    echo "|---|---:|---:|---:|"
    echo "| **server CPU µs per card answer** | $(fmt2 "$SH_CPU") | $(fmt2 "$PG_CPU") | **$(ratio "$PG_CPU" "$SH_CPU")** |"
    echo "| the floor: the round trip alone (shikaku: PING; PostgreSQL: the harness, workload_row(:i): call, round trip, the workload row) | $(fmt2 "$SH_FLOOR") | $(fmt2 "$PG_FLOOR") | $(ratio "$PG_FLOOR" "$SH_FLOOR") |"
    echo "| the card query's own work (answer less floor) | $(fmt2 "$SH_OWN") | $(fmt2 "$PG_OWN") | $(ratio "$PG_OWN" "$SH_OWN") |"
    echo "| answers/s of the card runs (client- or core-bound; not the figure compared) | $(fmt0 "$(median "${S["shikaku|card_rate"]:-}")") | $(fmt0 "$(median "${S["pg|card_rate"]:-}")") | |"
    echo "| card runs, CPU µs each round | ${S["shikaku|card"]:-} | ${S["pg|card"]:-} | |"
    echo "| floor runs, CPU µs each round | ${S["shikaku|floor"]:-} | ${S["pg|floor"]:-} | |"
    echo
    echo "- answers checked: PostgreSQL $PG_WRONG of $NCARD card queries with another validity than expected (one SQL statement over the workload), and every pgbench answer in card_check (a mismatch fails the run); shikaku load checks every answer; record by record (perf/pg_crosscheck.py: validity, and the record's insurer, symbol, number, branch, name and dates for 1 and 2): ${CROSS:-the comparison failed}"
    echo "- shikaku serve's VmRSS after the runs $SHIKAKU_RSS bytes"
    echo
    echo "Every load round:"
    echo
    echo "| round | what | wall s | CPU s | peak RSS | on disk | load avg (1 min) at end |"
    echo "|---:|---|---:|---:|---:|---|---:|"
    printf '%s\n' "${LOAD_LINES[@]}"
    echo
    echo "Every serving run:"
    echo
    echo "| round | server | client | answers/s | server CPU µs/answer | p50 µs | p99 µs | answers | check | load avg (1 min) at end |"
    echo "|---:|---|---|---:|---:|---:|---:|---:|---|---:|"
    printf '%s\n' "${RUN_LINES[@]}"
    echo
} >"$BLOCK"
cat "$BLOCK"
if [[ $APPEND != 1 ]]; then
    rm -f "$BLOCK"
    exit "$FAILED"
fi
"$ROOT/perf/insert_section.sh" "$RESULTS" "Server vs PostgreSQL" "$BLOCK"
rm -f "$BLOCK"
say "inserted into $RESULTS; log in $LOG"
exit "$FAILED"
}
