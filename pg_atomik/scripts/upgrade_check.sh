#!/usr/bin/env bash
# The upgrade path yields the same extension as a fresh install:
# `CREATE EXTENSION pg_atomik VERSION '0.1.0'; ALTER EXTENSION pg_atomik
# UPDATE` in one database, `CREATE EXTENSION pg_atomik` in another, then a
# catalog listing of every member object (functions with their flags,
# source and ACL; tables with columns, constraints, indexes, options and
# ACLs; types, operators, casts, comments, config-dump tables) must be
# identical. Then the upgraded database is used: deferred deltas fold.
# Usage: upgrade_check.sh BINDIR SOCKDIR PORT VERSION
set -euo pipefail
BIN=$1 SOCK=$2 PORT=$3 VERSION=$4
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql() { as_pg "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres "$@"; }
psql -d postgres -c "DROP DATABASE IF EXISTS atomik_up_old" -c "DROP DATABASE IF EXISTS atomik_up_new" \
     -c "CREATE DATABASE atomik_up_old" -c "CREATE DATABASE atomik_up_new"
psql -d atomik_up_old <<SQL
CREATE EXTENSION pg_atomik VERSION '0.1.0';
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik);
SELECT atomik_track('inv', 'stock');
INSERT INTO inv VALUES (1, atomik_add(5));
ALTER EXTENSION pg_atomik UPDATE TO '$VERSION';
SQL
psql -d atomik_up_new -c "CREATE EXTENSION pg_atomik"
listing="
WITH members AS (
    SELECT classid, objid, objsubid FROM pg_depend
     WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
       AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_atomik'))
SELECT 'version ' || extversion FROM pg_extension WHERE extname = 'pg_atomik'
UNION ALL SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM members
UNION ALL SELECT format('function %s returns %s kind=%s vol=%s strict=%s parallel=%s secdef=%s src=%s bin=%s acl=%s comment=%s',
        p.oid::regprocedure, p.prorettype::regtype, p.prokind, p.provolatile, p.proisstrict, p.proparallel,
        p.prosecdef, p.prosrc, p.probin, p.proacl, obj_description(p.oid, 'pg_proc'))
    FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
UNION ALL SELECT format('relation %s kind=%s options=%s acl=%s comment=%s', c.oid::regclass, c.relkind,
        c.reloptions, c.relacl, obj_description(c.oid, 'pg_class'))
    FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
UNION ALL SELECT format('column %s.%s %s notnull=%s default=%s', c.oid::regclass, a.attname,
        format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(ad.adbin, ad.adrelid))
    FROM pg_class c JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = c.oid
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
UNION ALL SELECT format('constraint %s on %s: %s', con.conname, con.conrelid::regclass, pg_get_constraintdef(con.oid))
    FROM pg_constraint con JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = con.conrelid
UNION ALL SELECT 'index ' || pg_get_indexdef(i.indexrelid)
    FROM pg_index i JOIN members m ON m.classid = 'pg_class'::regclass AND m.objid = i.indrelid
UNION ALL SELECT format('type %s len=%s comment=%s', t.oid::regtype, t.typlen, obj_description(t.oid, 'pg_type'))
    FROM pg_type t JOIN members m ON m.classid = 'pg_type'::regclass AND m.objid = t.oid
UNION ALL SELECT format('operator %s comment=%s', o.oid::regoperator, obj_description(o.oid, 'pg_operator'))
    FROM pg_operator o JOIN members m ON m.classid = 'pg_operator'::regclass AND m.objid = o.oid
UNION ALL SELECT format('config %s %s', cfg::regclass, cond)
    FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(cfg, cond) WHERE e.extname = 'pg_atomik'
UNION ALL SELECT format('schema %s acl=%s comment=%s', nspname, nspacl, obj_description(oid, 'pg_namespace'))
    FROM pg_namespace WHERE nspname = 'atomik'
ORDER BY 1"
old=$(psql -d atomik_up_old -c "$listing")
new=$(psql -d atomik_up_new -c "$listing")
if [ "$old" != "$new" ]; then
    echo "upgrade 0.1.0 -> $VERSION differs from a fresh $VERSION install (< upgraded, > fresh):" >&2
    diff <(echo "$old") <(echo "$new") >&2 || true
    exit 1
fi
echo "upgrade 0.1.0 -> $VERSION: $(echo "$new" | wc -l) catalog lines identical to a fresh install"
got=$(psql -d atomik_up_old -c "SELECT atomik_defer('inv', 'stock', 1, 3); SELECT atomik_live('inv', 'stock', 1);" \
          -c "SELECT atomik_fold_deferred(); SELECT atomik_seal(); SELECT atomik_read(stock) FROM inv")
[ "$(echo "$got" | tr '\n' ' ')" = " 8 1 1 8 " ] || {
    echo "deferred path after upgrade: unexpected output: $got" >&2
    exit 1
}
psql -d postgres -c "DROP DATABASE atomik_up_old" -c "DROP DATABASE atomik_up_new"
