#!/usr/bin/env bash
# pg_dump / pg_restore of a database with atomik columns and replication
# state: every value (byte for byte), the site id, the protocol v2 state
# (position, outbox, settings), the tracked set and the record of written
# cells survive. Usage: dump_restore.sh BINDIR SOCKDIR PORT WORKDIR
set -euo pipefail
BIN=$1 SOCK=$2 PORT=$3 WORK=$4
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql() { as_pg "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres "$@"; }
psql -d postgres -c "DROP DATABASE IF EXISTS atomik_dump_src" -c "DROP DATABASE IF EXISTS atomik_dump_dst" \
     -c "CREATE DATABASE atomik_dump_src" -c "CREATE DATABASE atomik_dump_dst"
psql -d atomik_dump_src <<'SQL'
CREATE EXTENSION pg_atomik;
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik, flags atomik);
SELECT atomik_track('inv', 'stock');
INSERT INTO inv SELECT i, atomik_add(i * 3), CASE WHEN i % 2 = 0 THEN atomik_xor(-i) END
  FROM generate_series(1, 1000) i;
SELECT atomik_seal();
UPDATE inv SET stock = stock + 7 WHERE id % 10 = 0;
SQL
state="SELECT atomik_site_id(), encode(atomik_vector(), 'hex'),
       (SELECT string_agg(table_name || '.' || column_name, ',') FROM atomik.tracked),
       (SELECT string_agg(position || ':' || seq || ':' || md5(bytes), ',' ORDER BY position) FROM atomik.outbox),
       (SELECT string_agg(name || '=' || value, ',' ORDER BY name) FROM atomik.settings),
       (SELECT count(*) FROM atomik.dirty),
       (SELECT md5(string_agg(id || ':' || coalesce(encode(atomik_bytes(stock), 'hex'), '-') || ':' ||
                              coalesce(encode(atomik_bytes(flags), 'hex'), '-'), ',' ORDER BY id)) FROM inv)"
before=$(psql -d atomik_dump_src -c "$state")
as_pg "$BIN/pg_dump" -h "$SOCK" -p "$PORT" -U postgres -Fc -f "$WORK/dump.pgc" atomik_dump_src
as_pg "$BIN/pg_restore" -h "$SOCK" -p "$PORT" -U postgres --exit-on-error -d atomik_dump_dst "$WORK/dump.pgc"
after=$(psql -d atomik_dump_dst -c "$state")
if [ "$before" != "$after" ]; then
    echo "pg_dump / pg_restore changed the data:" >&2
    echo " before: $before" >&2
    echo " after:  $after" >&2
    exit 1
fi
# The restored replica keeps working: the pending writes (recorded in
# atomik.dirty, which was dumped) seal as seq 2.
seq=$(psql -d atomik_dump_dst -c "SELECT atomik_seal()")
[ "$seq" = 2 ] || { echo "restored replica sealed seq $seq, expected 2" >&2; exit 1; }
psql -d postgres -c "DROP DATABASE atomik_dump_src" -c "DROP DATABASE atomik_dump_dst"
echo "pg_dump / pg_restore: values, site id, position, outbox, settings, tracked set and dirty record preserved"
