#!/usr/bin/env bash
# W3 (benches/README.md, "The workloads"): one hot `add` counter, N concurrent pgbench
# clients each adding 1 per transaction. Variants, side by side in one run:
#   update      plain `UPDATE w3_plain SET n = n + 1 WHERE id = 1`
#   slots64     the same spread over 64 rows (random slot), read = sum
#   deltas      append-only delta table (INSERT), read = sum over it
#   accum       `UPDATE ... SET n = atomik_accum(n, 1)` on one atomik row
#   deferred    `SELECT atomik_defer('w3_def', 'n', 1, 1)`, folded by the
#               worker; read = atomik_live('w3_def', 'n', 1)
#   ceiling     a bare one-row INSERT into an unindexed table
# at N in W3_CLIENTS (default "1 4 16 64 128"), synchronous_commit in
# W3_SYNC (default "on off"), W3_SECONDS each (default 5), W3_REPS times
# (default 1; the median is reported). While the writers run, one extra
# pgbench client reads the live value 20 times a second; its p99 (query
# time, without schedule lag) is the read latency. Prints one JSON document on stdout (progress on stderr).
# The cluster (fsync on, pg_atomik preloaded so the fold worker runs) is
# created under WORKDIR (default a temp dir) on W3_PORT (default 55487).
# Usage: w3.sh [WORKDIR]. Needs the extension installed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BIN=$("$PG_CONFIG" --bindir)
WORK=${1:-$(mktemp -d /tmp/pg_atomik_w3.XXXXXX)}
PORT=${W3_PORT:-55487}
CLIENTS=${W3_CLIENTS:-"1 4 16 64 128"}
SYNCS=${W3_SYNC:-"on off"}
SECONDS_EACH=${W3_SECONDS:-5}
REPS=${W3_REPS:-1}
VARIANTS=${W3_VARIANTS:-"update slots64 deltas accum deferred ceiling"}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$WORK"
[ "$(id -u)" = 0 ] && chown postgres: "$WORK"
DIR="$WORK/w3"
cleanup() { "$HERE/scripts/cluster.sh" stop "$DIR" || true; }
trap cleanup EXIT
"$HERE/scripts/cluster.sh" start "$DIR" "$PORT"
cat >>"$DIR/data/postgresql.conf" <<CONF
fsync = on
max_connections = 200
shared_buffers = 256MB
shared_preload_libraries = 'pg_atomik'
atomik.fold_database = 'w3'
atomik.fold_interval_ms = ${W3_FOLD_MS:-200}
# The buffer is insert-and-delete heavy: vacuum it within seconds, not the
# default minute, so folds and live reads do not scan a minute of dead rows.
autovacuum_naptime = ${W3_NAPTIME:-1s}
CONF
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -m fast -w restart >/dev/null
SOCK="$DIR/sock"
psql() { as_pg "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres "$@"; }
psql -d postgres -c "DROP DATABASE IF EXISTS w3" -c "CREATE DATABASE w3"
psql -d w3 >/dev/null <<'SQL'
CREATE EXTENSION pg_atomik;
CREATE TABLE w3_plain (id int PRIMARY KEY, n bigint NOT NULL);
CREATE TABLE w3_slots (id int PRIMARY KEY, n bigint NOT NULL);
CREATE TABLE w3_deltas (counter_id int NOT NULL, d bigint NOT NULL);
CREATE TABLE w3_atomik (id int PRIMARY KEY, n atomik);
CREATE TABLE w3_def (id int PRIMARY KEY, n atomik);
CREATE TABLE w3_bare (v int);
SELECT atomik_track('w3_atomik', 'n'), atomik_track('w3_def', 'n');
SQL
S="$WORK/scripts"
mkdir -p "$S"
echo 'UPDATE w3_plain SET n = n + 1 WHERE id = 1;' >"$S/update.sql"
printf '%s\n' '\set s random(1, 64)' 'UPDATE w3_slots SET n = n + 1 WHERE id = :s;' >"$S/slots64.sql"
echo 'INSERT INTO w3_deltas VALUES (1, 1);' >"$S/deltas.sql"
echo 'UPDATE w3_atomik SET n = atomik_accum(n, 1) WHERE id = 1;' >"$S/accum.sql"
echo "SELECT atomik_defer('w3_def', 'n', 1, 1);" >"$S/deferred.sql"
echo 'INSERT INTO w3_bare VALUES (1);' >"$S/ceiling.sql"
echo 'SELECT n FROM w3_plain WHERE id = 1;' >"$S/read_update.sql"
echo 'SELECT sum(n) FROM w3_slots;' >"$S/read_slots64.sql"
echo 'SELECT sum(d) FROM w3_deltas WHERE counter_id = 1;' >"$S/read_deltas.sql"
echo 'SELECT atomik_read(n) FROM w3_atomik WHERE id = 1;' >"$S/read_accum.sql"
echo "SELECT atomik_live('w3_def', 'n', 1);" >"$S/read_deferred.sql"
echo 'SELECT count(*) FROM w3_bare;' >"$S/read_ceiling.sql"
chown -R postgres: "$S" 2>/dev/null || true

reset_tables() {
    psql -d w3 <<'SQL'
SELECT atomik_fold_deferred();
TRUNCATE w3_plain, w3_slots, w3_deltas, w3_atomik, w3_def, w3_bare, atomik.deferred;
INSERT INTO w3_plain VALUES (1, 0);
INSERT INTO w3_slots SELECT i, 0 FROM generate_series(1, 64) i;
INSERT INTO w3_atomik VALUES (1, atomik_add(0));
INSERT INTO w3_def VALUES (1, atomik_add(0));
SELECT atomik_seal();
VACUUM ANALYZE w3_plain, w3_slots, w3_deltas, w3_atomik, w3_def, w3_bare, atomik.deferred;
CHECKPOINT;
SQL
}

# p99 (ms) of pgbench per-transaction logs: the latency column (3rd,
# microseconds) minus the schedule lag (7th, present with --rate), so a
# reader starved of CPU is not charged for starting late.
p99() { cat "$@" 2>/dev/null | awk '{print ($7 != "" ? $3 - $7 : $3)}' | sort -n | awk '{a[NR]=$1} END {if (NR == 0) {print "null"} else {i = int(NR * 0.99); if (i < 1) i = 1; printf "%.3f\n", a[i] / 1000}}'; }

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
for rep in $(seq 1 "$REPS"); do
  for sync in $SYNCS; do
    for c in $CLIENTS; do
      for v in $VARIANTS; do
        reset_tables >/dev/null
        L="$WORK/logs/$v-$sync-$c-$rep"
        rm -rf "$L"; mkdir -p "$L"; chown postgres: "$L" 2>/dev/null || true
        j=$(( c < 4 ? c : 4 ))
        ( cd "$L" && as_pg env PGOPTIONS="-c synchronous_commit=$sync" "$BIN/pgbench" -n -h "$SOCK" -p "$PORT" -U postgres \
            -c 1 -j 1 -R 20 -T "$SECONDS_EACH" -f "$S/read_$v.sql" --log --log-prefix=read w3 >"$L/read.out" 2>&1 ) &
        reader=$!
        ( cd "$L" && as_pg env PGOPTIONS="-c synchronous_commit=$sync" "$BIN/pgbench" -n -h "$SOCK" -p "$PORT" -U postgres \
            -c "$c" -j "$j" -T "$SECONDS_EACH" -f "$S/$v.sql" --log --log-prefix=write w3 >"$L/write.out" 2>&1 )
        wait "$reader" || true
        tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$L/write.out" | head -1)
        failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$L/write.out" | head -1)
        wp99=$(p99 "$L"/write.*)
        rp99=$(p99 "$L"/read.*)
        echo "{\"variant\":\"$v\",\"sync_commit\":\"$sync\",\"clients\":$c,\"rep\":$rep,\"tps\":${tps:-null},\"p99_ms\":$wp99,\"read_p99_ms\":$rp99,\"failed\":${failed:-0}}" | tee -a "$RESULTS" >&2
        rm -f "$L"/write.* "$L"/read.*
      done
    done
  done
done
# Check that the deferred counter is exact after the last run.
psql -d w3 -c "SELECT atomik_fold_deferred()" >/dev/null
python3 - "$RESULTS" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = {}
for r in rows:
    groups.setdefault((r["variant"], r["sync_commit"], r["clients"]), []).append(r)
out = []
for (v, s, c), rs in groups.items():
    med = lambda k: (statistics.median([r[k] for r in rs if r[k] is not None]) if any(r[k] is not None for r in rs) else None)
    out.append({"variant": v, "sync_commit": s, "clients": c, "reps": len(rs),
                "tps": med("tps"), "p99_ms": med("p99_ms"), "read_p99_ms": med("read_p99_ms"),
                "tps_runs": [r["tps"] for r in rs]})
ceil = {(o["sync_commit"], o["clients"]): o["tps"] for o in out if o["variant"] == "ceiling"}
plain = {(o["sync_commit"], o["clients"]): o["tps"] for o in out if o["variant"] == "update"}
for o in out:
    k = (o["sync_commit"], o["clients"])
    if o["tps"] and ceil.get(k):
        o["of_ceiling"] = round(o["tps"] / ceil[k], 3)
    if o["tps"] and plain.get(k):
        o["x_plain_update"] = round(o["tps"] / plain[k], 2)
print(json.dumps({"workload": "W3", "results": out}, indent=1))
PY
