#!/usr/bin/env bash
# PostgreSQL CPU per job of the hot path's SQL (claim, submit, complete, events, triggers),
# measured as the CPU time of the backends (the postmaster's reaped children), so a busy
# machine changes the wall clock but hardly the figure. A/B a migration by running this on
# two databases, e.g. one migrated with `dbs-archiver migrate` and one where the migration
# under test is reverted by hand.
#
#   bench/sql/pg_cpu_per_job.sh [JOBS] [BINARY]    (defaults: 20000, target/release/dbs-archiver)
set -euo pipefail
cd "$(dirname "$0")"
JOBS=${1:-20000}
BIN=${2:-../../target/release/dbs-archiver}
PG="-h 127.0.0.1 -U postgres"
DB=dbs_archiver_cpu_per_job
PM=$(head -1 /var/lib/postgresql/*/main/postmaster.pid)
cpu() { awk '{print $16+$17}' "/proc/$PM/stat"; }   # clock ticks

psql $PG -qc "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB" 2>/dev/null
DBS_ARCHIVER__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$DB" "$BIN" migrate >/dev/null
psql $PG -d $DB -qc "INSERT INTO jobs (region, instance, bak_set_type, bak_set_id, format, target_type, source)
  SELECT 'cn-hangzhou', 'rm-' || g, 'full', '1001', 'CSV', 'URL', 'sql' FROM generate_series(1, $JOBS) g" \
  -c "VACUUM ANALYZE"
before=$(cpu)
tps=$(pgbench $PG -n -f pg_cycle.sql -t $((JOBS / 10)) $DB 2>&1 | grep -oP 'tps = \K[0-9.]+')
sleep 0.5
after=$(cpu)
hz=$(getconf CLK_TCK)
echo "jobs=$JOBS wall_jobs_per_s=$(echo "$tps * 10" | bc) pg_cpu_ms_per_job=$(echo "($after - $before) * 1000 / $hz / $JOBS" | bc -l | cut -c1-6)"
psql $PG -qc "DROP DATABASE $DB" 2>/dev/null
