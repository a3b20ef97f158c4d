-- atomik_feed and atomik_log_position: a hub's log as rows after a cursor
-- (the same SQL as in SQLite); atomik_publish; who may see which cells.
CREATE EXTENSION pg_atomik;
DROP DATABASE IF EXISTS atomik_feed_device;
CREATE DATABASE atomik_feed_device;
CREATE TABLE stock (sku bigint PRIMARY KEY, qty atomik, cost atomik);
CREATE TABLE bins (store text, sku bigint, n atomik, PRIMARY KEY (store, sku));
SELECT atomik_track('stock', 'qty'), atomik_track('stock', 'cost'), atomik_track('bins', 'n');
-- An empty log: position 0, no rows.
SELECT atomik_log_position();
SELECT count(*) FROM atomik_feed(0);
SELECT p.proname, p.prosecdef, p.provolatile, p.proisstrict FROM pg_proc p
 WHERE p.proname IN ('atomik_feed', 'atomik_log_position', 'atomik_publish') ORDER BY 1;

\c atomik_feed_device
CREATE EXTENSION pg_atomik;
CREATE TABLE stock (sku bigint PRIMARY KEY, qty atomik, cost atomik);
CREATE TABLE bins (store text, sku bigint, n atomik, PRIMARY KEY (store, sku));
SELECT atomik_track('stock', 'qty'), atomik_track('stock', 'cost'), atomik_track('bins', 'n');
INSERT INTO stock VALUES (7, atomik_add(-2), atomik_add(40)), (9, atomik_add(-1), NULL);
INSERT INTO bins VALUES ('north "1"', 4, atomik_add(2));
SELECT atomik_sync_request() AS req \gset
SELECT atomik_site_id() AS device \gset
-- A device keeps no log.
CREATE FUNCTION feed_error(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{32}', '<site>', 'g');
END
$$;
SELECT feed_error('SELECT * FROM atomik_feed(0)');
SELECT feed_error('SELECT atomik_log_position()');

\c atomik_regress
CREATE FUNCTION feed_error(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{32}', '<site>', 'g');
END
$$;
-- The serve numbers what committed before it: the device's batch waits
-- for the next serve, or for atomik_publish().
SELECT atomik_sync(:'req') IS NOT NULL AS served;
SELECT atomik_log_position();
SELECT atomik_publish();
SELECT atomik_publish() AS again;
SELECT position, origin = :'device' AS from_device, seq, tbl, col, grp, key, delta
  FROM atomik_feed(0) ORDER BY position, tbl, col, key::text;
-- Keys as jsonb: join a single-column key back to its table.
SELECT s.sku, sum(f.delta) FROM atomik_feed(0) f JOIN stock s ON s.sku = (f.key)::bigint
 WHERE f.col = 'qty' GROUP BY s.sku ORDER BY s.sku;
SELECT f.key ->> 0 AS store, (f.key ->> 1)::bigint AS sku FROM atomik_feed(0) f WHERE f.tbl = 'bins';
-- Paged in whole entries; past the end and bad arguments are refused.
INSERT INTO stock VALUES (9, atomik_add(5), NULL) ON CONFLICT (sku) DO UPDATE SET qty = atomik_accum(stock.qty, 5);
SELECT atomik_seal() AS own_batch;
SELECT atomik_publish();
SELECT position, origin = atomik_site_id() AS own, key, delta FROM atomik_feed(0, 1) ORDER BY position, tbl, col, key::text;
SELECT position, origin = atomik_site_id() AS own, key, delta FROM atomik_feed(1, 1);
SELECT count(*) FROM atomik_feed(2);
SELECT count(*) FROM atomik_feed(NULL);
SELECT feed_error('SELECT * FROM atomik_feed(3)');
SELECT feed_error('SELECT * FROM atomik_feed(-1)');
SELECT feed_error('SELECT * FROM atomik_feed(0, 0)');
SELECT feed_error('SELECT * FROM atomik_feed(0, -5)');

-- A role sees the cells of the columns it may SELECT, in tables whose
-- row-level security does not apply to it; an entry with nothing for it
-- is its position alone. It needs no privilege on atomik.log.
DROP ROLE IF EXISTS atomik_feed_reader;
CREATE ROLE atomik_feed_reader;
GRANT SELECT (sku, qty) ON stock TO atomik_feed_reader;
GRANT SELECT ON bins TO atomik_feed_reader;
SET ROLE atomik_feed_reader;
SELECT feed_error('SELECT count(*) FROM atomik.log');
SELECT position, tbl, col, key, delta FROM atomik_feed(0) ORDER BY position, tbl, col, key::text;
SELECT atomik_log_position();
RESET ROLE;
ALTER TABLE bins ENABLE ROW LEVEL SECURITY;
CREATE POLICY north ON bins USING (store = 'north');
SET ROLE atomik_feed_reader;
SELECT position, tbl, col, key, delta FROM atomik_feed(0) ORDER BY position, tbl, col, key::text;
RESET ROLE;
REVOKE ALL ON stock FROM atomik_feed_reader;
SET ROLE atomik_feed_reader;
SELECT position, origin IS NULL AS hidden, tbl, key, delta FROM atomik_feed(0) ORDER BY position;
RESET ROLE;
-- The caller's search_path does not reach the log owner's read: an
-- operator that shadows bigint > (false for everything) changes nothing.
CREATE SCHEMA evil_feed;
CREATE FUNCTION evil_feed.never(bigint, bigint) RETURNS boolean LANGUAGE sql AS 'SELECT false';
CREATE OPERATOR evil_feed.> (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil_feed.never);
SET search_path = evil_feed, pg_catalog, public;
SELECT 2::bigint > 1::bigint AS shadowed;
SELECT count(*) FROM atomik_feed(0);
RESET search_path;
DROP SCHEMA evil_feed CASCADE;

-- The README's consumer job: events and cursor in one statement, the
-- page read once; run twice, it keeps nothing twice.
CREATE TABLE inventory_events (position bigint, origin text, sku bigint, delta bigint);
CREATE TABLE inventory_cursor (position bigint NOT NULL);
INSERT INTO inventory_cursor SELECT 0;
WITH page AS MATERIALIZED (
       SELECT * FROM atomik_feed((SELECT position FROM inventory_cursor), 100)),
     kept AS (
       INSERT INTO inventory_events
       SELECT position, origin, (key)::bigint, delta FROM page
        WHERE tbl = 'stock' AND col = 'qty')
UPDATE inventory_cursor SET position = coalesce((SELECT max(position) FROM page), position);
WITH page AS MATERIALIZED (
       SELECT * FROM atomik_feed((SELECT position FROM inventory_cursor), 100)),
     kept AS (
       INSERT INTO inventory_events
       SELECT position, origin, (key)::bigint, delta FROM page
        WHERE tbl = 'stock' AND col = 'qty')
UPDATE inventory_cursor SET position = coalesce((SELECT max(position) FROM page), position);
SELECT position, sku, delta FROM inventory_events ORDER BY position, sku;
SELECT position FROM inventory_cursor;
DROP TABLE inventory_events, inventory_cursor;

-- A trimmed log refuses a cursor behind it.
SELECT atomik_horizon(1);
SELECT pg_sleep(2.1);
\c atomik_feed_device
INSERT INTO stock VALUES (7, atomik_add(-1), NULL) ON CONFLICT (sku) DO UPDATE SET qty = atomik_accum(stock.qty, -1);
SELECT atomik_sync_request() AS req2 \gset
\c atomik_regress
SELECT atomik_sync(:'req2') IS NOT NULL AS served;
SELECT feed_error('SELECT * FROM atomik_feed(0)');
SELECT atomik_horizon(2592000);

DROP TABLE stock, bins;
DROP FUNCTION feed_error(text);
DROP ROLE atomik_feed_reader;
DROP EXTENSION pg_atomik;
DROP DATABASE atomik_feed_device;
