#!/usr/bin/env bash
# pg_atomik test command. From a fresh Debian 12 machine with Rust 1.95:
#   pg_atomik/test.sh            everything below, then stop the cluster
#   pg_atomik/test.sh --bench    also run the W5 benchmark and the quick W3
#
# 1. installs what is missing: postgresql-server-dev-15, libclang-dev, clang,
#    sudo (apt), cargo-pgrx 0.18.1 (cargo install, ~8 min), `cargo pgrx init`;
# 2. runs the #[pg_test]s with `cargo pgrx test` as postgres;
# 3. builds and installs the extension (`cargo pgrx install --release`) and
#    checks that the install script checked in under sql/ is the generated one;
# 4. starts a throwaway cluster as postgres (private port and socket dir
#    under /tmp), runs the pg_regress golden tests (test/sql, test/expected),
#    the pg_isolation_regress specs (test/isolation), the upgrade check
#    (scripts/upgrade_check.sh: 0.1.0 -> 0.2.0 -> current and 0.2.0 ->
#    current equal a fresh install; protocol v1 state migrates and
#    converges over v2), a pg_dump / pg_restore round trip, and the
#    tokio-postgres concurrency test (client/); stops the cluster (also on
#    failure, by trap);
# 5. runs the deferred-path crash test (scripts/crash_deferred.sh: its own
#    cluster with pg_atomik preloaded, immediate shutdowns at random points).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
PORT=${ATOMIK_TEST_PORT:-55499}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/target}
BENCH=0
[ "${1:-}" = "--bench" ] && BENCH=1
step() { printf '\n== %s\n' "$*"; }

step "prerequisites"
missing=()
for p in postgresql-server-dev-15 libclang-dev clang sudo; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update && apt-get install -y "${missing[@]}"
fi
if [ "$(cargo pgrx --version 2>/dev/null || true)" != "cargo-pgrx 0.18.1" ]; then
    cargo install cargo-pgrx --version 0.18.1 --locked
fi
if ! grep -q '^pg15' "${PGRX_HOME:-$HOME/.pgrx}/config.toml" 2>/dev/null; then
    cargo pgrx init --pg15 "$PG_CONFIG"
fi

# First, because `cargo pgrx test` installs a debug build of the extension
# into the server; the release build installed next is what the rest uses.
step "#[pg_test]s (cargo pgrx test, as postgres)"
cd "$HERE"
PGDATA_TEST=$(mktemp -d /tmp/pg_atomik_pgrx.XXXXXX)
mkdir -p "$PGDATA_TEST" && chown postgres: "$PGDATA_TEST" 2>/dev/null || true
CARGO_PGRX_TEST_RUNAS=postgres CARGO_PGRX_TEST_PGDATA="$PGDATA_TEST" \
    cargo pgrx test pg15
rm -rf "$PGDATA_TEST"

step "build and install"
cargo pgrx install --release --pg-config "$PG_CONFIG"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
GENERATED="$("$PG_CONFIG" --sharedir)/extension/pg_atomik--$VERSION.sql"
# Source line comments (-- src/file.rs:N) move with any edit, and pgrx may
# order independent entities differently from one build to the next: compare
# the scripts' statements line by line, in sorted order.
strip_lines() { grep -v -E '^-- src/.*:[0-9]+$' "$1" | sort; }
if ! diff -q <(strip_lines "$GENERATED") <(strip_lines "sql/pg_atomik--$VERSION.sql") >/dev/null; then
    echo "sql/pg_atomik--$VERSION.sql differs from the generated install script:" >&2
    diff -u "sql/pg_atomik--$VERSION.sql" "$GENERATED" | head -40 >&2 || true
    echo "If the change is intended (an unreleased version), copy $GENERATED over it." >&2
    exit 1
fi
# Earlier released install scripts (for CREATE EXTENSION ... VERSION) and
# the upgrade scripts.
for f in sql/pg_atomik--*.sql; do
    [ "$f" = "sql/pg_atomik--$VERSION.sql" ] || cp "$f" "$("$PG_CONFIG" --sharedir)/extension/"
done

step "throwaway cluster on port $PORT"
WORK=$(mktemp -d /tmp/pg_atomik_test.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$WORK"
chmod 755 "$WORK"
cleanup() {
    "$HERE/scripts/cluster.sh" stop "$WORK/cluster" || true
    rm -rf "$WORK"
}
trap cleanup EXIT
"$HERE/scripts/cluster.sh" start "$WORK/cluster" "$PORT"
SOCK="$WORK/cluster/sock"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
BIN=$("$PG_CONFIG" --bindir)

step "pg_regress golden tests"
mkdir -p "$WORK/regress" "$WORK/isolation"
[ "$(id -u)" = 0 ] && chown postgres: "$WORK/regress" "$WORK/isolation"
as_pg "$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress" \
    --inputdir="$HERE/test" --outputdir="$WORK/regress" --bindir="$BIN" \
    --host="$SOCK" --port="$PORT" --user=postgres --dbname=atomik_regress \
    --schedule="$HERE/test/schedule" || {
    cat "$WORK/regress/regression.diffs" >&2
    exit 1
}

step "pg_isolation_regress (deterministic interleavings of concurrent sessions)"
as_pg "$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/isolation/pg_isolation_regress" \
    --inputdir="$HERE/test/isolation" --outputdir="$WORK/isolation" \
    --host="$SOCK" --port="$PORT" --user=postgres --dbname=atomik_isolation sync_races deferred_races tracked_cache || {
    cat "$WORK/isolation/regression.diffs" >&2
    exit 1
}

step "upgrades 0.1.0 -> ... -> $VERSION and 0.2.0, 0.3.0, 0.4.0 -> $VERSION equal a fresh install; v1 state migrates"
"$HERE/scripts/upgrade_check.sh" "$BIN" "$SOCK" "$PORT" "$VERSION"

step "pg_dump / pg_restore round trip"
"$HERE/scripts/dump_restore.sh" "$BIN" "$SOCK" "$PORT" "$WORK"

step "concurrency (tokio-postgres client)"
export ATOMIK_PG="host=$SOCK port=$PORT user=postgres"
cargo build --release --manifest-path "$HERE/client/Cargo.toml"
"$CARGO_TARGET_DIR/release/concurrency"
if [ "$BENCH" = 1 ]; then
    step "W5 benchmark"
    "$CARGO_TARGET_DIR/release/w5"
fi
"$HERE/scripts/cluster.sh" stop "$WORK/cluster"

step "deferred path: crash test (immediate shutdowns mid-write and mid-fold)"
"$HERE/scripts/crash_deferred.sh" "$WORK" "$((PORT + 1))"
if [ "$BENCH" = 1 ]; then
    step "W3 benchmark (quick)"
    W3_PORT=$((PORT + 2)) "$HERE/scripts/w3.sh" "$WORK" >"$WORK/w3.json"
    cat "$WORK/w3.json"
fi

step "all pg_atomik tests passed"
