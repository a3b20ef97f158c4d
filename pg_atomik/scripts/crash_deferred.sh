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
