#!/usr/bin/env bash
# Build the loadable extension on its own (never together with `bundled`)
# and load it as apps do: in /usr/bin/python3's sqlite3 module and in the
# sqlite3 shell, including a sync between two database files through files
# on disk. Fails loudly on any mismatch.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CARGO_TARGET_DIR="${ATOMIK_LOADABLE_TARGET_DIR:-$here/../target/loadable}"

if ! command -v sqlite3 >/dev/null; then
    apt-get update -qq && apt-get install -y -qq sqlite3
fi
cargo build --manifest-path "$here/Cargo.toml" -p sqlite_atomik --release \
    --no-default-features --features loadable
so="$CARGO_TARGET_DIR/release/libsqlite_atomik"
test -f "$so.so" || { echo "FAIL: $so.so was not built" >&2; exit 1; }

echo "== python (/usr/bin/python3, SQLite $(/usr/bin/python3 -c 'import sqlite3; print(sqlite3.sqlite_version)'))"
/usr/bin/python3 "$here/tests/loadable.py" "$so" "$here/src/lib.rs"

echo "== sqlite3 shell ($(sqlite3 --version | cut -d' ' -f1))"
got="$(sqlite3 :memory: -cmd ".load $so" < "$here/tests/loadable-shell.sql")"
want="$(cat "$here/tests/loadable-shell.expected")"
if [ "$got" != "$want" ]; then
    echo "FAIL: sqlite3 shell output differs" >&2
    diff <(echo "$want") <(echo "$got") >&2 || true
    exit 1
fi

echo "== sqlite3 shell: device and hub files, messages through files"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
for db in device hub; do
    sqlite3 "$dir/$db.db" -cmd ".load $so" \
        "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB); SELECT atomik_track('t', 'n');" >/dev/null
done
sqlite3 "$dir/device.db" -cmd ".load $so" "INSERT INTO t VALUES (1, atomik_add(3)), (2, atomik_add(4));"
sqlite3 "$dir/hub.db" -cmd ".load $so" "INSERT INTO t VALUES (1, atomik_add(10));"
for round in 1 2; do
    sqlite3 "$dir/device.db" -cmd ".load $so" "SELECT writefile('$dir/req.bin', atomik_sync_request());" >/dev/null
    sqlite3 "$dir/hub.db" -cmd ".load $so" "SELECT writefile('$dir/resp.bin', atomik_sync(readfile('$dir/req.bin')));" >/dev/null
    sqlite3 "$dir/device.db" -cmd ".load $so" "SELECT atomik_sync_finish(readfile('$dir/resp.bin'));" >/dev/null
done
q="SELECT group_concat(id || '=' || atomik_text(n), ' ') || ' ' || atomik_digest('t', 'n') FROM t;"
dev="$(sqlite3 "$dir/device.db" -cmd ".load $so" "$q")"
hub="$(sqlite3 "$dir/hub.db" -cmd ".load $so" "$q")"
case "$dev" in "1=add:13 2=add:4 "*) ;; *) echo "FAIL: device holds $dev" >&2; exit 1 ;; esac
if [ "$dev" != "$hub" ]; then
    echo "FAIL: device ($dev) and hub ($hub) differ" >&2
    exit 1
fi
# A bad message is an error naming the problem, and the shell exits non-zero.
if out="$(sqlite3 "$dir/hub.db" -cmd ".load $so" "SELECT atomik_apply(x'00112233');" 2>&1)"; then
    echo "FAIL: a bad message was accepted" >&2; exit 1
fi
case "$out" in *"atomik_apply: not an atomik message"*) ;; *) echo "FAIL: unexpected error: $out" >&2; exit 1 ;; esac
echo "loadable extension: ok ($dev)"
