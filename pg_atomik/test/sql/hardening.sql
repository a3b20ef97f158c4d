-- 0.5.0 hardening: roles that may connect cannot steer replication.
-- No PUBLIC privileges on the record of written cells, the deferred
-- buffer, parked deltas or the locks; atomik_defer checks what an UPDATE
-- would; only atomik_track's triggers record; malformed keys cannot enter.
CREATE EXTENSION pg_atomik;
CREATE OR REPLACE FUNCTION show_error(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION show_error(text) TO PUBLIC;

-- What each internal table grants (owner: the installing superuser).
SELECT c.relname, c.relacl FROM pg_class c
 WHERE c.relnamespace = 'atomik'::regnamespace AND c.relkind = 'r'
 ORDER BY 1;
-- No function runs as its owner (SECURITY DEFINER).
SELECT p.oid::regprocedure, p.proconfig FROM pg_proc p
 WHERE p.pronamespace IN ('atomik'::regnamespace, 'public'::regnamespace) AND p.prosecdef;

CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik);
SELECT atomik_track('inv', 'stock');
INSERT INTO inv VALUES (1, atomik_add(10)), (2, atomik_add(20));
SELECT atomik_seal();

DROP ROLE IF EXISTS atomik_app;
DROP ROLE IF EXISTS atomik_viewer;
DROP ROLE IF EXISTS atomik_col;
CREATE ROLE atomik_app;
CREATE ROLE atomik_viewer;
CREATE ROLE atomik_col;
GRANT SELECT, INSERT, UPDATE ON inv TO atomik_app;
GRANT SELECT ON inv TO atomik_viewer;
GRANT SELECT, UPDATE (stock) ON inv TO atomik_col;

-- An application role writes the table; its writes are recorded although
-- it holds no privilege on the record, and it cannot write the record,
-- the buffer or read what others sent, nor take the locks.
SET ROLE atomik_app;
UPDATE inv SET stock = atomik_accum(stock, 1) WHERE id = 1;
INSERT INTO inv VALUES (3, atomik_add(30));
SELECT show_error($$INSERT INTO atomik.dirty VALUES ('inv', 'stock', '{2}')$$);
SELECT show_error($$INSERT INTO atomik.new_cells VALUES ('inv', 'stock', '{9}')$$);
SELECT show_error($$INSERT INTO atomik.deferred VALUES ('inv', 'stock', '{1}', 1, 1000)$$);
SELECT show_error($$SELECT * FROM atomik.deferred$$);
SELECT show_error($$SELECT * FROM atomik.parked$$);
SELECT show_error($$SELECT * FROM atomik.log$$);
SELECT show_error($$LOCK TABLE atomik.replication_lock IN ACCESS EXCLUSIVE MODE$$);
SELECT show_error($$LOCK TABLE atomik.fold_lock IN EXCLUSIVE MODE$$);
SELECT show_error($$SELECT * FROM atomik.replication_lock$$);
-- It may defer deltas to cells it may update, and read them back.
SELECT atomik_defer('inv', 'stock', 2, 5);
SELECT atomik_defer('inv', 'stock', 2, 5);
SELECT atomik_live('inv', 'stock', 2);
RESET ROLE;
SELECT table_name, column_name, key FROM atomik.dirty ORDER BY key;
SELECT table_name, column_name, key FROM atomik.new_cells ORDER BY key;
SELECT key, grp, delta FROM atomik.deferred ORDER BY key;

-- A role that may only read the table cannot defer (as it cannot UPDATE).
SET ROLE atomik_viewer;
SELECT show_error($$SELECT atomik_defer('inv', 'stock', 1, 1000)$$);
SELECT atomik_live('inv', 'stock', 2);
RESET ROLE;
-- UPDATE on the column alone is enough.
SET ROLE atomik_col;
SELECT atomik_defer('inv', 'stock', 1, 100);
RESET ROLE;
SELECT atomik_fold_deferred();
SELECT id, stock FROM inv ORDER BY id;

-- Row-level security: deferred deltas are folded without the writer's
-- policies, so a role bound by them is refused (it writes with UPDATE,
-- where the policies hold); the table's owner is not bound.
CREATE TABLE rls_d (id bigint PRIMARY KEY, c atomik);
SELECT atomik_track('rls_d', 'c');
INSERT INTO rls_d VALUES (1, atomik_add(1)), (2, atomik_add(2));
ALTER TABLE rls_d ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_one ON rls_d USING (id = 1);
GRANT SELECT, UPDATE ON rls_d TO atomik_app;
SET ROLE atomik_app;
SELECT show_error($$SELECT atomik_defer('rls_d', 'c', 2, 1000)$$);
SELECT show_error($$SELECT atomik_live('rls_d', 'c', 1)$$);
UPDATE rls_d SET c = atomik_accum(c, 1000);
RESET ROLE;
SELECT atomik_defer('rls_d', 'c', 2, 3);
SELECT atomik_fold_deferred();
SELECT id, c FROM rls_d ORDER BY id;

-- A trigger of one's own that records another table's cells is refused.
CREATE TABLE mine (id bigint PRIMARY KEY, c atomik);
ALTER TABLE mine OWNER TO atomik_app;
SET ROLE atomik_app;
CREATE TRIGGER forged_new AFTER INSERT ON mine FOR EACH ROW
  EXECUTE FUNCTION atomik.mark_new('inv', 'stock', 'id');
CREATE TRIGGER forged_dirty AFTER UPDATE ON mine FOR EACH ROW
  EXECUTE FUNCTION atomik.mark_dirty('inv', 'stock', 'id');
SELECT show_error($$INSERT INTO mine VALUES (77, atomik_add(0))$$);
DROP TRIGGER forged_new ON mine;
INSERT INTO mine VALUES (77, atomik_add(0));
SELECT show_error($$UPDATE mine SET c = atomik_accum(c, 1)$$);
RESET ROLE;
SELECT count(*) AS forged_records FROM atomik.dirty WHERE key = '{77}';

-- Malformed keys cannot enter the record or the buffer, even by hand.
SELECT show_error($$INSERT INTO atomik.dirty VALUES ('inv', 'stock', '{}')$$);
SELECT show_error($$INSERT INTO atomik.new_cells VALUES ('inv', 'stock', '{1,NULL}')$$);
SELECT show_error($$INSERT INTO atomik.deferred VALUES ('inv', 'stock', '{1,2,3,4,5,6,7,8,9}', 1, 1)$$);
-- A record of the right shape that names no cell of the key's type is
-- dropped by the seal with a warning; the rest is sealed.
INSERT INTO atomik.dirty VALUES ('inv', 'stock', '{not-an-integer}');
SELECT atomik_seal() > 0 AS sealed;
SELECT count(*) AS left_over FROM atomik.dirty;

-- Parked deltas (for rows this replica cannot create) are bounded: a
-- message that would park more cells than atomik_max_parked() is refused
-- whole (54000), so no uploader can grow what every sync re-checks.
SELECT atomik_horizon() AS horizon, atomik_horizon(86400) AS set_horizon;
SELECT show_error($$SELECT atomik_horizon(0)$$);
SELECT atomik_max_parked() AS max_parked, atomik_max_parked(2) AS set_max;
SELECT show_error($$SELECT atomik_max_parked(-1)$$);
CREATE TABLE p (id bigint PRIMARY KEY, n atomik, label text NOT NULL);
SELECT atomik_track('p', 'n');
DROP DATABASE IF EXISTS atomik_hardening_device;
CREATE DATABASE atomik_hardening_device;
\c atomik_hardening_device
CREATE EXTENSION pg_atomik;
CREATE TABLE p (id bigint PRIMARY KEY, n atomik, label text NOT NULL);
SELECT atomik_track('p', 'n');
INSERT INTO p VALUES (1, atomik_add(1), 'a'), (2, atomik_add(2), 'b'), (3, atomik_add(3), 'c');
SELECT atomik_sync_request() AS req \gset
\c atomik_regress
SELECT show_error(format('SELECT atomik_sync(%L::bytea)', :'req'));
SELECT count(*) AS parked FROM atomik.parked;
SELECT atomik_max_parked(3) AS raised;
SELECT atomik_sync(:'req'::bytea) IS NOT NULL AS served;
SELECT key, delta FROM atomik.parked ORDER BY key;

DROP TABLE inv, rls_d, mine, p;
DROP EXTENSION pg_atomik;

DROP OWNED BY atomik_app, atomik_viewer, atomik_col;
DROP ROLE atomik_app, atomik_viewer, atomik_col;
\c postgres
DROP DATABASE atomik_hardening_device;
