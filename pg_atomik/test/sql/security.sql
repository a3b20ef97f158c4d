-- Replication functions run as the caller: a role without UPDATE on a
-- table cannot change it through atomik_apply or atomik_sync.
CREATE EXTENSION pg_atomik;
DROP DATABASE IF EXISTS atomik_sec_device;
CREATE DATABASE atomik_sec_device;
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik);
SELECT atomik_track('inv', 'stock');
INSERT INTO inv VALUES (1, atomik_add(10));
SELECT p.proname, p.prosecdef FROM pg_proc p
 WHERE p.proname LIKE 'atomik%' AND p.prosecdef;
DROP ROLE IF EXISTS atomik_reader;
CREATE ROLE atomik_reader;
-- Full use of the replication state, but only SELECT on the table.
GRANT ALL ON ALL TABLES IN SCHEMA atomik TO atomik_reader;
GRANT SELECT ON inv TO atomik_reader;

\c atomik_sec_device
CREATE EXTENSION pg_atomik;
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik);
SELECT atomik_track('inv', 'stock');
INSERT INTO inv VALUES (1, atomik_add(5)), (2, atomik_add(7));
SELECT atomik_sync_request() AS req \gset
SELECT atomik_seal() AS nothing;

\c atomik_regress
CREATE FUNCTION show_error(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8,32}', '<hex>', 'g');
END
$$;
CREATE TABLE msg AS SELECT :'req'::bytea AS req;
GRANT SELECT ON msg TO atomik_reader;
SET ROLE atomik_reader;
SELECT show_error($$SELECT atomik_sync(req) FROM msg$$);
RESET ROLE;
SELECT id, stock FROM inv ORDER BY id;
SELECT count(*) AS origins FROM atomik.registry;

-- With UPDATE but not INSERT: existing rows change, a missing row cannot
-- be created behind the role's back (INSERT is checked too).
GRANT UPDATE ON inv TO atomik_reader;
SET ROLE atomik_reader;
SELECT show_error($$SELECT atomik_sync(req) FROM msg$$);
RESET ROLE;
SELECT id, stock FROM inv ORDER BY id;
GRANT INSERT ON inv TO atomik_reader;
SET ROLE atomik_reader;
SELECT atomik_sync(req) IS NOT NULL AS served FROM msg;
RESET ROLE;
SELECT id, stock FROM inv ORDER BY id;

-- Row-level security holds as well: rows hidden by a policy are not
-- updated through atomik_apply.
CREATE TABLE rls_t (id bigint PRIMARY KEY, c atomik);
SELECT atomik_track('rls_t', 'c');
INSERT INTO rls_t VALUES (1, atomik_add(1)), (2, atomik_add(2));
ALTER TABLE rls_t ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_one ON rls_t USING (id = 1);
GRANT SELECT, UPDATE, INSERT ON rls_t TO atomik_reader;

\c atomik_sec_device
CREATE TABLE rls_t (id bigint PRIMARY KEY, c atomik);
SELECT atomik_track('rls_t', 'c');
INSERT INTO rls_t VALUES (1, atomik_add(100)), (2, atomik_add(200));
SELECT atomik_sync_request() AS req_rls \gset

\c atomik_regress
CREATE TABLE msg_rls AS SELECT :'req_rls'::bytea AS req;
GRANT SELECT ON msg_rls TO atomik_reader;
SET ROLE atomik_reader;
SELECT show_error($$SELECT atomik_sync(req) FROM msg_rls$$);
RESET ROLE;
SELECT id, c FROM rls_t ORDER BY id;

-- A policy that lets the role see a row but not update it: the UPDATE
-- skips the row without an error, and the delta must not be lost — the
-- whole message is refused (42501) and nothing of it is applied.
CREATE TABLE rls_u (id bigint PRIMARY KEY, c atomik);
SELECT atomik_track('rls_u', 'c');
INSERT INTO rls_u VALUES (1, atomik_add(1)), (500, atomik_add(1));
ALTER TABLE rls_u ENABLE ROW LEVEL SECURITY;
CREATE POLICY see_all ON rls_u FOR SELECT USING (true);
CREATE POLICY update_low ON rls_u FOR UPDATE USING (id < 100) WITH CHECK (id < 100);
GRANT SELECT, UPDATE, INSERT ON rls_u TO atomik_reader;
DROP DATABASE IF EXISTS atomik_sec_device2;
CREATE DATABASE atomik_sec_device2;

\c atomik_sec_device2
CREATE EXTENSION pg_atomik;
CREATE TABLE rls_u (id bigint PRIMARY KEY, c atomik);
SELECT atomik_track('rls_u', 'c');
INSERT INTO rls_u VALUES (1, atomik_add(7)), (500, atomik_add(7));
SELECT atomik_sync_request() AS req_rls_u \gset

\c atomik_regress
CREATE TABLE msg_rls_u AS SELECT :'req_rls_u'::bytea AS req;
GRANT SELECT ON msg_rls_u TO atomik_reader;
SET ROLE atomik_reader;
SELECT show_error($$SELECT atomik_sync(req) FROM msg_rls_u$$);
RESET ROLE;
SELECT id, c FROM rls_u ORDER BY id;
SELECT count(*) AS origins FROM atomik.registry WHERE seq > 0;

DROP TABLE msg, msg_rls, rls_t, inv, msg_rls_u, rls_u;
DROP EXTENSION pg_atomik;
DROP OWNED BY atomik_reader;
DROP ROLE atomik_reader;
\c postgres
DROP DATABASE atomik_sec_device;
DROP DATABASE atomik_sec_device2;
