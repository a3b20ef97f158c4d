#!/usr/bin/env bash
# The upgrade paths yield the same extension as a fresh install, and an
# upgraded replica keeps its replication state:
# 1. `CREATE EXTENSION pg_atomik VERSION '0.1.0'`, `... '0.2.0'`,
#    `... '0.3.0'` and `... '0.4.0'`, each with a tracked column, then
#    `ALTER EXTENSION pg_atomik UPDATE` (0.1.0 -> 0.2.0 -> 0.3.0 -> 0.4.0 ->
#    VERSION, 0.2.0 -> VERSION, 0.3.0 -> VERSION and 0.4.0 -> VERSION) must
#    give the same
#    catalog listing of every member object as `CREATE EXTENSION pg_atomik`
#    (functions with their flags, source and ACL; tables with columns,
#    constraints, indexes, options and ACLs; types, operators, casts,
#    comments, config-dump tables), and the same triggers on the tracked
#    table as atomik_track gives in a fresh install.
# 2. The upgraded 0.1.0 database is used: deferred deltas fold and seal.
# 3. Protocol v1 state migrates (0.2.0 -> 0.3.0): a root hub and a device
#    that synced over v1 — the device with a batch the hub has not
#    acknowledged, both with local writes never sealed — are upgraded; the
#    v2 registry, own seq, outbox and dirty record must be what v1 held,
#    and one v2 sync round trip must make them converge to the exact sums.
#
# Only this build's library is installed, and an old version's SQL
# functions run its code, so the old state is written in SQL exactly as
# the old versions left it (atomik_track's rows and triggers of 0.1.0 /
# 0.2.0; for step 3 the v1 tables as a v1 sync leaves them, with a real v1
# batch: core/fixtures/batch_small.bin).
# Usage: upgrade_check.sh BINDIR SOCKDIR PORT VERSION
set -euo pipefail
BIN=$1 SOCK=$2 PORT=$3 VERSION=$4
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql() { as_pg "$BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres "$@"; }
DBS="atomik_up_old atomik_up_020 atomik_up_030 atomik_up_040 atomik_up_new atomik_up_hub atomik_up_dev"
for db in $DBS; do
    psql -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done

# What atomik_track did in 0.1.0 and 0.2.0 for TABLE.COLUMN with key id.
old_track() {
    local t=$1 c=$2
    cat <<SQL
INSERT INTO atomik.tracked VALUES ('$t', '$c', '$t'::regclass, '{id}', 'i');
CREATE TRIGGER atomik_new_$c AFTER INSERT ON public.$t FOR EACH ROW
  WHEN (NEW.$c IS NOT NULL) EXECUTE FUNCTION atomik.mark_new('$t', '$c', 'id');
CREATE TRIGGER atomik_set_$c AFTER UPDATE OF $c ON public.$t FOR EACH ROW
  WHEN (OLD.$c IS NULL AND NEW.$c IS NOT NULL) EXECUTE FUNCTION atomik.mark_new('$t', '$c', 'id');
INSERT INTO atomik.new_cells SELECT '$t', '$c', ARRAY[id::text] FROM public.$t WHERE $c IS NOT NULL;
SQL
}

psql -d atomik_up_old <<SQL
CREATE EXTENSION pg_atomik VERSION '0.1.0';
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik);
$(old_track inv stock)
INSERT INTO inv VALUES (1, atomik_add(5));
ALTER EXTENSION pg_atomik UPDATE TO '$VERSION';
SQL
# (A tracked table dropped before the upgrade leaves its row in
# atomik.tracked: the upgrade must pass over it.)
psql -d atomik_up_020 <<SQL
CREATE EXTENSION pg_atomik VERSION '0.2.0';
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik);
$(old_track inv stock)
INSERT INTO inv VALUES (1, atomik_add(5));
CREATE TABLE gone (id bigint PRIMARY KEY, n atomik);
$(old_track gone n)
DROP TABLE gone;
ALTER EXTENSION pg_atomik UPDATE TO '$VERSION';
SQL
# The triggers atomik_track made on inv.stock in 0.3.0 and 0.4.0 (the ones
# this build makes).
v3_triggers() {
    cat <<'SQL'
CREATE TRIGGER atomik_new_stock AFTER INSERT ON public.inv FOR EACH ROW
  WHEN (NEW.stock IS NOT NULL) EXECUTE FUNCTION atomik.mark_new('inv', 'stock', 'id');
CREATE TRIGGER atomik_set_stock AFTER UPDATE OF stock, id ON public.inv FOR EACH ROW
  WHEN (NEW.stock IS NOT NULL AND (OLD.stock IS NULL OR ROW(OLD.id) IS DISTINCT FROM ROW(NEW.id)))
  EXECUTE FUNCTION atomik.mark_new('inv', 'stock', 'id');
CREATE TRIGGER atomik_acc_stock AFTER UPDATE OF stock ON public.inv FOR EACH ROW
  WHEN (atomik.dirtied(OLD.stock, NEW.stock)) EXECUTE FUNCTION atomik.mark_dirty('inv', 'stock', 'id');
SQL
}
# What atomik_track did in 0.3.0 (its row had no group).
psql -d atomik_up_030 >/dev/null <<SQL
CREATE EXTENSION pg_atomik VERSION '0.3.0';
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik);
INSERT INTO atomik.tracked VALUES ('inv', 'stock', 'inv'::regclass, '{id}', 'i');
$(v3_triggers)
INSERT INTO inv VALUES (1, atomik_add(5));
ALTER EXTENSION pg_atomik UPDATE TO '$VERSION';
SQL
# What atomik_track did in 0.4.0 (this build's atomik_track needs the
# 0.5.0 lock table): the row with its group, the triggers, the group check.
psql -d atomik_up_040 >/dev/null <<SQL
CREATE EXTENSION pg_atomik VERSION '0.4.0';
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik);
INSERT INTO atomik.tracked VALUES ('inv', 'stock', 'inv'::regclass, '{id}', 'i', 1);
$(v3_triggers)
ALTER TABLE public.inv ADD CONSTRAINT atomik_group_stock
  CHECK (atomik.in_group(stock, 1, 'inv', 'stock')) NOT VALID;
INSERT INTO inv VALUES (1, atomik_add(5));
ALTER EXTENSION pg_atomik UPDATE TO '$VERSION';
SQL
psql -d atomik_up_new >/dev/null <<SQL
CREATE EXTENSION pg_atomik;
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik);
SELECT atomik_track('inv', 'stock');
SQL
listing="
WITH members AS (
    SELECT classid, objid, objsubid FROM pg_depend
     WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
       AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_atomik'))
SELECT 'version ' || extversion FROM pg_extension WHERE extname = 'pg_atomik'
UNION ALL SELECT 'member ' || pg_describe_object(classid, objid, objsubid) FROM members
UNION ALL SELECT format('function %s returns %s kind=%s vol=%s strict=%s parallel=%s secdef=%s config=%s src=%s bin=%s acl=%s comment=%s',
        p.oid::regprocedure, p.prorettype::regtype, p.prokind, p.provolatile, p.proisstrict, p.proparallel,
        p.prosecdef, p.proconfig, p.prosrc, p.probin, p.proacl, obj_description(p.oid, 'pg_proc'))
    FROM pg_proc p JOIN members m ON m.classid = 'pg_proc'::regclass AND m.objid = p.oid
UNION ALL SELECT format('relation %s kind=%s options=%s acl=%s comment=%s', c.oid::regclass, c.relkind,
        c.reloptions, coalesce(c.relacl, acldefault('r', c.relowner)), obj_description(c.oid, 'pg_class'))
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
UNION ALL SELECT format('trigger on tracked table: %s', pg_get_triggerdef(tg.oid))
    FROM pg_trigger tg WHERE tg.tgrelid = 'public.inv'::regclass AND NOT tg.tgisinternal
ORDER BY 1"
new=$(psql -d atomik_up_new -c "$listing")
for from in old:0.1.0 020:0.2.0 030:0.3.0 040:0.4.0; do
    db=atomik_up_${from%%:*} v=${from#*:}
    got=$(psql -d "$db" -c "$listing")
    if [ "$got" != "$new" ]; then
        echo "upgrade $v -> $VERSION differs from a fresh $VERSION install (< upgraded, > fresh):" >&2
        diff <(echo "$got") <(echo "$new") >&2 || true
        exit 1
    fi
    echo "upgrade $v -> $VERSION: $(echo "$new" | wc -l) catalog lines identical to a fresh install"
done
# Each upgraded tracked column has a fixed group (the group of its cells)
# and the check constraint that keeps it; a value of another group is
# refused.
for db in atomik_up_old atomik_up_020 atomik_up_030 atomik_up_040; do
    got=$(psql -d "$db" -c "SELECT grp FROM atomik.tracked WHERE table_name = 'inv'" \
              -c "SELECT count(*) FROM pg_catalog.pg_constraint WHERE conname = 'atomik_group_stock'")
    [ "$(echo "$got" | tr '\n' ' ')" = "1 1 " ] || {
        echo "$db: tracked group and constraint after the upgrade: unexpected $got" >&2
        exit 1
    }
    if psql -d "$db" -c "INSERT INTO inv VALUES (99, atomik_xor(1))" >/dev/null 2>&1; then
        echo "$db: an xor value was written to an add column after the upgrade" >&2
        exit 1
    fi
done
echo "upgraded tracked columns have fixed groups"
got=$(psql -d atomik_up_old -c "SELECT atomik_defer('inv', 'stock', 1, 3); SELECT atomik_live('inv', 'stock', 1);" \
          -c "SELECT atomik_fold_deferred(); SELECT atomik_seal(); SELECT atomik_read(stock) FROM inv")
[ "$(echo "$got" | tr '\n' ' ')" = " 8 1 1 8 " ] || {
    echo "deferred path after upgrade: unexpected output: $got" >&2
    exit 1
}

# 3. Protocol v1 state. Sites: hub H = aa..aa, device D = 1112..20 (the
# origin of the fixture batch), a third origin O = bb..bb the hub had
# applied. The fixture is D's batch 1: inventory.qty key 1 -1, key 2 +3,
# key 300 +0. The hub never got it (no D entry in its vector); the device
# keeps it (not acknowledged). Unsealed writes: hub row 1 +4, device row
# 2 +6, neither recorded anywhere in 0.2.0 (it scanned at seal).
H="\\xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
D="\\x1112131415161718191a1b1c1d1e1f20"
O="\\xbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
FIXTURE="\\x414b11011112131415161718191a1b1c1d1e1f200109696e76656e746f72790371747901010c02010206d404006160e595"
psql -d atomik_up_hub <<SQL
CREATE EXTENSION pg_atomik VERSION '0.2.0';
CREATE TABLE inventory (id bigint PRIMARY KEY, qty atomik);
INSERT INTO inventory VALUES (1, 'add:10'), (2, 'add:10'), (3, 'add:10');
$(old_track inventory qty)
DELETE FROM atomik.new_cells;
INSERT INTO atomik.meta (site_id, relay) VALUES ('$H', true);
INSERT INTO atomik.vector VALUES ('$H', 2), ('$O', 4);
INSERT INTO atomik.folded VALUES ('$O', 4);
INSERT INTO atomik.peers VALUES ('$D', 'downstream', '\\x00', 1000);
INSERT INTO atomik.settings VALUES ('horizon_secs', 86400), ('root_hub', 1);
UPDATE inventory SET qty = qty + 4 WHERE id = 1;
ALTER EXTENSION pg_atomik UPDATE TO '$VERSION';
SQL
psql -d atomik_up_dev <<SQL
CREATE EXTENSION pg_atomik VERSION '0.2.0';
CREATE TABLE inventory (id bigint PRIMARY KEY, qty atomik);
INSERT INTO inventory VALUES (1, 'add:9'), (2, 'add:13'), (3, 'add:10'), (300, 'add:0');
$(old_track inventory qty)
DELETE FROM atomik.new_cells;
INSERT INTO atomik.meta (site_id) VALUES ('$D');
INSERT INTO atomik.vector VALUES ('$D', 1), ('$H', 2);
INSERT INTO atomik.batches VALUES ('$D', 1, '$FIXTURE');
INSERT INTO atomik.peers VALUES ('$H', 'upstream', '\\x00', 1000);
UPDATE inventory SET qty = qty + 6 WHERE id = 2;
ALTER EXTENSION pg_atomik UPDATE TO '$VERSION';
SQL
expect() { # DB LABEL SQL WANT
    local got
    got=$(psql -d "$1" -c "$3" | tr '\n' ' ')
    [ "$got" = "$4" ] || { echo "migration, $2: got '$got', want '$4'" >&2; exit 1; }
}
state="SELECT (SELECT string_agg(encode(site, 'hex') || '=' || seq, ',' ORDER BY site) FROM atomik.registry),
              (SELECT string_agg(name || '=' || value, ',' ORDER BY name) FROM atomik.settings WHERE name <> 'v2_upstream'),
              (SELECT count(*) FROM atomik.settings WHERE name = 'v2_upstream'),
              (SELECT string_agg(position || ':' || seq || ':' || (bytes = '$FIXTURE')::text, ',') FROM atomik.outbox),
              (SELECT string_agg(key[1], ',' ORDER BY key[1]) FROM atomik.dirty),
              (SELECT count(*) FROM atomik.link),
              (SELECT count(*) FROM pg_tables WHERE schemaname = 'atomik' AND tablename IN ('vector', 'folded', 'batches', 'peers'))"
expect atomik_up_hub "hub state" "$state" \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=2,bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb=4|horizon_secs=86400,v2_hub=1,v2_own_seq=2,v2_root=1|0||1|0|0 "
expect atomik_up_dev "device state" "$state" \
    "1112131415161718191a1b1c1d1e1f20=1,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=2|v2_outbox_end=1,v2_own_seq=1|1|1:1:true|2|0|0 "
# One v2 round trip: the device's migrated batch 1 and its seal of the
# +6 (seq 2) reach the hub, the hub seals its +4 (seq 3), and the device,
# which holds no cursor yet, installs the hub's snapshot.
req=$(psql -d atomik_up_dev -c "SELECT encode(atomik_sync_request(), 'hex')")
resp=$(psql -d atomik_up_hub -c "SELECT encode(atomik_sync(decode('$req', 'hex')), 'hex')")
psql -d atomik_up_dev -c "SELECT atomik_sync_finish(decode('$resp', 'hex'))" >/dev/null
values="SELECT string_agg(id || '=' || qty::text, ' ' ORDER BY id), atomik_digest('inventory', 'qty') FROM inventory"
hub=$(psql -d atomik_up_hub -c "$values")
dev=$(psql -d atomik_up_dev -c "$values")
want="1=add:13 2=add:19 3=add:10 300=add:0"
[ "${hub%|*}" = "$want" ] && [ "$hub" = "$dev" ] || {
    echo "migrated replicas after one v2 sync: hub '$hub', device '$dev', want '$want' on both" >&2
    exit 1
}
expect atomik_up_hub "hub registry after the sync" \
    "SELECT string_agg(encode(site, 'hex') || '=' || seq, ',' ORDER BY site) FROM atomik.registry" \
    "1112131415161718191a1b1c1d1e1f20=2,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=3,bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb=4 "
expect atomik_up_dev "device after the sync" \
    "SELECT count(*), (SELECT count(*) FROM atomik.link), (SELECT value FROM atomik.settings WHERE name = 'v2_own_seq') FROM atomik.outbox" \
    "0|1|2 "
# The re-created triggers record writes: a write, a seal, nothing left.
expect atomik_up_dev "a write after the upgrade" \
    "UPDATE inventory SET qty = qty + 1 WHERE id = 3; SELECT count(*) FROM atomik.dirty; SELECT atomik_seal(); SELECT count(*) FROM atomik.dirty" \
    "1 3 0 "
echo "protocol v1 state migrated: registry, own seq, outbox and dirty record as v1 held them; one v2 sync converges ($want)"
for db in $DBS; do
    psql -d postgres -c "DROP DATABASE $db"
done
