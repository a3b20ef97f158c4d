#!/usr/bin/env bash
# Cross-engine tests against a real PostgreSQL: SQLite device processes and
# PostgreSQL hubs under chaos (W4), the golden script on both engines, and
# `atomik demo --hub postgres://…`. Needs pg_atomik installed in the system
# PostgreSQL 15 (pg_atomik/test.sh builds and installs it; scripts/test.sh
# runs that first). Starts a throwaway cluster and stops it, also on failure.
#
#   tests/cross-engine.sh            300 W4 schedules (ATOMIK_W4_SCHEDULES)
#   tests/cross-engine.sh --long     5,000 schedules
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PORT=${ATOMIK_XE_PORT:-55498}
step() { printf '\n== %s\n' "$*"; }
if [ "${1:-}" = "--long" ]; then
    export ATOMIK_W4_SCHEDULES=${ATOMIK_W4_SCHEDULES:-5000}
fi

if [ ! -f "$("$PG_CONFIG" --sharedir)/extension/pg_atomik.control" ]; then
    echo "pg_atomik is not installed in $("$PG_CONFIG" --sharedir): run pg_atomik/test.sh first" >&2
    exit 1
fi

step "build (release): atomik, the w4-device program, the tests"
cd "$ROOT"
cargo build --locked --release -p atomik-cli -p atomik-cross-engine
cargo test --locked --release -p atomik-cross-engine --no-run

step "throwaway cluster on port $PORT"
WORK=$(mktemp -d /tmp/atomik_xe.XXXXXX)
chmod 755 "$WORK"
cleanup() {
    "$ROOT/pg_atomik/scripts/cluster.sh" stop "$WORK/cluster" || true
    rm -rf "$WORK"
}
trap cleanup EXIT
"$ROOT/pg_atomik/scripts/cluster.sh" start "$WORK/cluster" "$PORT"
export ATOMIK_PG_HOST="$WORK/cluster/sock" ATOMIK_PG_PORT="$PORT" ATOMIK_PG_DIR="$WORK/cluster"
export ATOMIK_BIN="$ROOT/target/release/atomik"

step "cross-engine tests: golden script on both engines, W4 with PostgreSQL hubs, atomik serve across a database restart"
cargo test --locked --release -p atomik-cross-engine -- --include-ignored --nocapture

step "atomik demo with a PostgreSQL hub"
BIN=$("$PG_CONFIG" --bindir)
psql_pg() { "$BIN/psql" -X -q -h "$ATOMIK_PG_HOST" -p "$PORT" -U postgres "$@"; }
psql_pg -d postgres -c "DROP DATABASE IF EXISTS atomik_demo" -c "CREATE DATABASE atomik_demo"
HUB="postgresql://postgres@${ATOMIK_PG_HOST//\//%2F}:$PORT/atomik_demo"
"$ATOMIK_BIN" demo --hub "$HUB" --devices 6 --rounds 3 --json >"$WORK/demo.json"
python3 - "$WORK/demo.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["converged"], r
assert r["hub"].startswith("PostgreSQL"), r["hub"]
assert all(row["identical_to_hub"] for row in r["rows"]), r["rows"]
print(f'demo with a PostgreSQL hub converged: {r["devices"]} devices, {r["changes"]} changes, '
      f'{r["atomik_bytes"]} bytes moved vs {r["full_state_bytes"]} for full-state sync')
PY
"$ROOT/pg_atomik/scripts/cluster.sh" stop "$WORK/cluster"
step "cross-engine tests passed"
