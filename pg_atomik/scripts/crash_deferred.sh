#!/usr/bin/env bash
# Crash test of the deferred path (see client/src/bin/crash_deferred.rs):
# a cluster that preloads pg_atomik (so the fold worker runs, every 20 ms),
# concurrent atomik_defer writers, manual folds and seals, and
# `pg_ctl stop -m immediate` at random moments, ROUNDS times (default 5).
# Usage: crash_deferred.sh [WORKDIR [PORT]]; env ATOMIK_CRASH_ROUNDS,
# ATOMIK_CRASH_SEED. Needs the extension installed (test.sh does that).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BIN=$("$PG_CONFIG" --bindir)
WORK=${1:-$(mktemp -d /tmp/pg_atomik_crash.XXXXXX)}
PORT=${2:-${ATOMIK_CRASH_PORT:-55498}}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
mkdir -p "$WORK"
[ "$(id -u)" = 0 ] && chown postgres: "$WORK"
DIR="$WORK/crash"
cleanup() { "$HERE/scripts/cluster.sh" stop "$DIR" || true; }
trap cleanup EXIT
"$HERE/scripts/cluster.sh" start "$DIR" "$PORT"
cat >>"$DIR/data/postgresql.conf" <<CONF
shared_preload_libraries = 'pg_atomik'
atomik.fold_database = 'atomik_crash'
atomik.fold_interval_ms = 20
fsync = on
CONF
as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -m fast -w restart >/dev/null
cargo build --release --manifest-path "$HERE/client/Cargo.toml" --bin crash_deferred
export ATOMIK_PG="host=$DIR/sock port=$PORT user=postgres"
export ATOMIK_CRASH_STOP="runuser -u postgres -- $BIN/pg_ctl -D $DIR/data -m immediate -w stop >/dev/null"
export ATOMIK_CRASH_START="runuser -u postgres -- $BIN/pg_ctl -D $DIR/data -l $DIR/server.log -w start >/dev/null"
[ "$(id -u)" = 0 ] || {
    ATOMIK_CRASH_STOP="$BIN/pg_ctl -D $DIR/data -m immediate -w stop >/dev/null"
    ATOMIK_CRASH_START="$BIN/pg_ctl -D $DIR/data -l $DIR/server.log -w start >/dev/null"
}
"$CARGO_TARGET_DIR/release/crash_deferred"
workers=$(as_pg "$BIN/psql" -X -At -h "$DIR/sock" -p "$PORT" -U postgres -d postgres \
    -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_atomik fold'")
echo "fold workers running after the last restart: $workers"
[ "$workers" = 1 ] || { echo "the fold worker is not running" >&2; exit 1; }

# The worker also numbers committed log entries (atomik_publish's job): a
# device's upload served here reaches the log, and NOTIFY, without any
# further serve or call.
psql_at() { as_pg env PGOPTIONS="-c client_min_messages=warning" "$BIN/psql" -X -At -v ON_ERROR_STOP=1 -h "$DIR/sock" -p "$PORT" -U postgres -d "$1" -c "$2"; }
psql_at postgres "DROP DATABASE IF EXISTS atomik_crash_device" >/dev/null
psql_at postgres "CREATE DATABASE atomik_crash_device" >/dev/null
psql_at atomik_crash_device "CREATE EXTENSION pg_atomik; CREATE TABLE hot (id bigint PRIMARY KEY, n atomik); SELECT atomik_track('hot', 'n'); INSERT INTO hot VALUES (1, atomik_add(5))" >/dev/null
request=$(psql_at atomik_crash_device "SELECT encode(atomik_sync_request(), 'hex')")
before=$(psql_at atomik_crash "SELECT atomik_sync(decode('$request', 'hex')) IS NOT NULL; SELECT atomik_log_position()" | tail -1)
for _ in $(seq 1 100); do
    after=$(psql_at atomik_crash "SELECT atomik_log_position()")
    [ "$after" -gt "$before" ] && break
    sleep 0.05
done
echo "log position after the device's sync: $before, then $after (numbered by the worker)"
[ "$after" -gt "$before" ] || { echo "the fold worker did not number the device's log entry" >&2; exit 1; }
psql_at postgres "DROP DATABASE atomik_crash_device" >/dev/null
