-- Hub (this database) and device (atomik_device) roles over protocol v2,
-- one round trip at a time, through psql variables as the transport.
CREATE EXTENSION pg_atomik;
DROP DATABASE IF EXISTS atomik_device;
CREATE DATABASE atomik_device;
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik, flags atomik, note text NOT NULL DEFAULT '');
SELECT atomik_track('inv', 'stock'), atomik_track('inv', 'flags', 'xor');
SELECT atomik_track('inv', 'stock');  -- tracking twice does nothing
SELECT table_name, column_name, relid, key_columns, key_kinds FROM atomik.tracked;
INSERT INTO inv (id, stock) VALUES (1, atomik_add(100)), (2, atomik_add(0));
SELECT atomik_site_id() ~ '^[0-9a-f]{32}$' AS site_id_is_hex, atomik_site_id() = atomik_site_id() AS stable;

\c atomik_device
CREATE EXTENSION pg_atomik;
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik, flags atomik, note text NOT NULL DEFAULT '');
SELECT atomik_track('inv', 'stock'), atomik_track('inv', 'flags', 'xor');
INSERT INTO inv (id, stock, flags) VALUES (1, atomik_add(-3), atomik_xor(5)), (7, atomik_add(9), NULL);
UPDATE inv SET stock = stock + -2 WHERE id = 1;
SELECT atomik_sync_request() AS req \gset
SELECT id, stock, flags FROM inv ORDER BY id;

\c atomik_regress
-- The hub seals its own writes, applies the upload, answers.
SELECT atomik_sync(:'req') AS resp \gset
SELECT id, stock, flags FROM inv ORDER BY id;
-- The same request again applies nothing twice.
SELECT atomik_sync(:'req') IS NOT NULL AS served_again;
SELECT id, stock FROM inv ORDER BY id;
-- Serving made this replica a root hub: its log holds its own batch and
-- the device's (each once), its registry one entry per origin.
SELECT name, value FROM atomik.settings WHERE name IN ('v2_hub', 'v2_root', 'v2_upstream') ORDER BY name;
SELECT position, seq, origin = via AS from_origin, origin = decode(atomik_site_id(), 'hex') AS own
  FROM atomik.log ORDER BY position;
SELECT count(*) AS origins, max(seq) AS max_seq FROM atomik.registry;

\c atomik_device
-- The device had no cursor: it gets a snapshot (4 cells) and holds a
-- cursor afterwards; its acknowledged batch leaves the outbox. The cursor
-- is 1, the hub's own batch: the answer is read before the uploads are
-- applied, and the device's batch is numbered by the next serve.
SELECT count(*) AS outbox_before, (SELECT count(*) FROM atomik.link) AS cursors_before FROM atomik.outbox;
SELECT atomik_sync_finish(:'resp') AS applied;
SELECT atomik_sync_finish(:'resp') AS applied_again;
SELECT count(*) AS outbox_after, (SELECT position FROM atomik.link) AS cursor_position FROM atomik.outbox;
SELECT id, stock, flags FROM inv ORDER BY id;
SELECT atomik_digest('inv', 'stock') AS device_stock, atomik_digest('inv', 'flags') AS device_flags \gset
SELECT atomik_vector() AS device_vector \gset

\c atomik_regress
SELECT atomik_digest('inv', 'stock') = :device_stock AS stock_agrees,
       atomik_digest('inv', 'flags') = :device_flags AS flags_agree;
SELECT string_agg(atomik_bytes(stock)::text, ',' ORDER BY id) AS hub_bytes FROM inv \gset

\c atomik_device
SELECT string_agg(atomik_bytes(stock)::text, ',' ORDER BY id) = :'hub_bytes' AS byte_identical FROM inv;

-- atomik_changes: what a replica at a position (its atomik_vector())
-- lacks: here the hub's seal since the device's cursor.
\c atomik_regress
UPDATE inv SET stock = stock + 1000 WHERE id = 7;
SELECT atomik_seal() AS hub_seq;
SELECT atomik_changes(:'device_vector') AS download \gset
\c atomik_device
SELECT atomik_apply(:'download') AS applied, atomik_apply(:'download') AS applied_again;
SELECT id, stock FROM inv ORDER BY id;

-- Seal right after a remote apply: nothing was written here, nothing is
-- recorded, nothing is sealed.
SELECT count(*) AS recorded FROM atomik.dirty;
SELECT atomik_seal() AS nothing;
-- A plain UPDATE ... atomik_accum is recorded by the trigger (once per
-- cell until the seal), and the seal ships it (the hub shows it below).
UPDATE inv SET stock = atomik_accum(stock, 1) WHERE id = 1;
UPDATE inv SET stock = stock + 1 WHERE id = 1;
SELECT table_name, column_name, key FROM atomik.dirty;
SELECT atomik_seal() AS seq, atomik_seal() AS again;
SELECT count(*) AS recorded FROM atomik.dirty;
SELECT position, seq FROM atomik.outbox ORDER BY position;
SELECT id, stock FROM inv ORDER BY id;

-- A row the receiver lacks is created with column defaults; one that
-- cannot be created is parked, visibly, and applied when the row appears.
CREATE TABLE strict_t (id text PRIMARY KEY, c atomik, must text NOT NULL);
SELECT atomik_track('strict_t', 'c');
INSERT INTO strict_t VALUES ('a''b', atomik_add(5), 'x');
SELECT atomik_sync_request() AS req2 \gset
\c atomik_regress
CREATE TABLE strict_t (id text PRIMARY KEY, c atomik, must text NOT NULL);
SELECT atomik_track('strict_t', 'c');
DELETE FROM inv WHERE id = 2;
SELECT atomik_sync(:'req2') AS resp2 \gset
SELECT id, stock FROM inv ORDER BY id;  -- the device's +1 +1 arrived
SELECT table_name, column_name, grp, key, delta FROM atomik.parked;
INSERT INTO strict_t VALUES ('a''b', NULL, 'now');
SELECT atomik_seal() AS hub_seq;  -- any atomik call applies what is parked
SELECT * FROM strict_t;
SELECT count(*) AS parked_left FROM atomik.parked;
\c atomik_device
SELECT atomik_sync_finish(:'resp2') AS applied;
SELECT count(*) AS outbox FROM atomik.outbox;

-- Another round trip, both sides having written: the device gets the
-- hub's log range after its cursor (not a snapshot) and they converge
-- (row 2, deleted on the hub only, stays on the device: deletes are local).
\c atomik_regress
UPDATE inv SET stock = atomik_accum(stock, 10) WHERE id = 1;
\c atomik_device
UPDATE inv SET stock = atomik_accum(stock, 3) WHERE id = 7;
UPDATE strict_t SET c = atomik_accum(c, 1);
SELECT atomik_sync_request() AS req3 \gset
\c atomik_regress
SELECT atomik_sync(:'req3') AS resp3 \gset
SELECT string_agg(id || '=' || stock::text, ' ' ORDER BY id) AS hub_inv FROM inv WHERE id <> 2 \gset
SELECT atomik_digest('strict_t', 'c') AS hub_strict, atomik_digest('inv', 'flags') AS hub_flags \gset
\c atomik_device
SELECT atomik_sync_finish(:'resp3') AS applied;
SELECT string_agg(id || '=' || stock::text, ' ' ORDER BY id) AS device_inv,
       string_agg(id || '=' || stock::text, ' ' ORDER BY id) = :'hub_inv' AS inv_agrees
  FROM inv WHERE id <> 2;
SELECT atomik_digest('strict_t', 'c') = :hub_strict AS strict_agrees,
       atomik_digest('inv', 'flags') = :hub_flags AS flags_agree;
SELECT atomik_seal() AS nothing_after_apply;
\c atomik_regress

-- Bad input to the replication functions. show_error prints SQLSTATE and
-- message, with random site ids and checksums masked.
CREATE FUNCTION show_error(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8,32}', '<hex>', 'g');
END
$$;
CREATE TEMP TABLE msg AS SELECT :'resp'::bytea AS resp, :'req2'::bytea AS req;
SELECT show_error($$SELECT atomik_apply('\x')$$);
SELECT show_error($$SELECT atomik_apply('\x414b')$$);
SELECT show_error($$SELECT atomik_apply(req) FROM msg$$);
SELECT show_error($$SELECT atomik_sync_finish(req) FROM msg$$);
SELECT show_error($$SELECT atomik_sync_finish(resp) FROM msg$$);
SELECT show_error($$SELECT atomik_apply(substr(resp, 1, length(resp) - 3)) FROM msg$$);
-- Flip (not overwrite) one byte, so that the message always changes.
SELECT show_error($$SELECT atomik_apply(set_byte(resp, 19, get_byte(resp, 19) # 255)) FROM msg$$);
SELECT show_error($$SELECT atomik_sync(overlay(req placing '\x00' from 1 for 1)) FROM msg$$);
SELECT show_error($$SELECT atomik_sync(atomik_sync_request())$$);
SELECT show_error($$SELECT atomik_changes(req) FROM msg$$);
-- Messages of protocol v1 (wire version 1: core/fixtures/batch_small.bin
-- and request_leaf.bin) name their version.
SELECT show_error($$SELECT atomik_apply('\x414b11011112131415161718191a1b1c1d1e1f200109696e76656e746f72790371747901010c02010206d404006160e595')$$);
SELECT show_error($$SELECT atomik_sync('\x414b13021112131415161718191a1b1c1d1e1f2022232425262728292a2b2c2d2e2f3031030462696e7305636f756e7425076465766963657305666c6167732209696e76656e746f7279037174790100000200050182010100040201020c02010206d40400030004056e6f7274680d54010a0670756d702d378de0b7ddf0ddefd6de010576616c766505020c02010206d40400f23ae06f')$$);
SELECT show_error($$SELECT atomik_changes('\x414b11011112131415161718191a1b1c1d1e1f200109696e76656e746f72790371747901010c02010206d404006160e595')$$);
-- A root hub cannot become a relay.
SELECT show_error($$SELECT atomik_make_relay()$$);
SELECT show_error($$SELECT atomik_track('nope', 'c')$$);
SELECT show_error($$SELECT atomik_track('inv', 'nope')$$);
SELECT show_error($$SELECT atomik_track('inv', 'note')$$);
CREATE TABLE nokey (c atomik);
SELECT show_error($$SELECT atomik_track('nokey', 'c')$$);
CREATE TABLE uuidkey (id uuid PRIMARY KEY, c atomik);
SELECT show_error($$SELECT atomik_track('uuidkey', 'c')$$);
CREATE VIEW inv_view AS SELECT * FROM inv;
SELECT show_error($$SELECT atomik_track('inv_view', 'stock')$$);
SELECT show_error($$SELECT atomik_untrack('nokey', 'c')$$);
SELECT show_error($$SELECT atomik_digest('nope', 'c')$$);
-- A column's group is fixed when it is tracked.
SELECT show_error($$INSERT INTO inv (id, flags) VALUES (60, atomik_add(1))$$);
SELECT show_error($$UPDATE inv SET stock = atomik_xor(1) WHERE id = 1$$);
SELECT show_error($$SELECT atomik_track('inv', 'flags', 'add')$$);
SELECT show_error($$SELECT atomik_track('inv', 'stock', 'max')$$);
SELECT atomik_track('inv', 'flags', 'xor') AS same_group_again;

-- A message naming an untracked table, or a delta in another group than
-- its cell, rejects the whole message: nothing of it is applied.
DROP DATABASE IF EXISTS atomik_device2;
CREATE DATABASE atomik_device2;
\c atomik_device2
CREATE EXTENSION pg_atomik;
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik, flags atomik, note text NOT NULL DEFAULT '');
CREATE TABLE secret (id bigint PRIMARY KEY, c atomik);
SELECT atomik_track('inv', 'stock'), atomik_track('secret', 'c');
INSERT INTO inv (id, stock) VALUES (1, atomik_add(1000000));
INSERT INTO secret VALUES (1, atomik_add(1));
SELECT atomik_sync_request() AS req_untracked \gset
-- atomik_make_relay: 1 when it made this replica a relay, 0 after.
SELECT atomik_make_relay() AS made, atomik_make_relay() AS again;
SELECT name, value > 0 AS set FROM atomik.settings WHERE name LIKE 'v2\_%' ORDER BY name;
DROP DATABASE IF EXISTS atomik_device3;
CREATE DATABASE atomik_device3;
\c atomik_device3
CREATE EXTENSION pg_atomik;
CREATE TABLE inv (id bigint PRIMARY KEY, stock atomik, flags atomik, note text NOT NULL DEFAULT '');
SELECT atomik_track('inv', 'stock', 'xor');
INSERT INTO inv (id, stock) VALUES (5, atomik_xor(1)), (1, atomik_xor(1));
SELECT atomik_sync_request() AS req_mismatch \gset
-- A replica that never served keeps no log: atomik_changes asks a hub.
CREATE FUNCTION show_error(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8,32}', '<hex>', 'g');
END
$$;
SELECT show_error($$SELECT atomik_changes(atomik_vector())$$);
\c atomik_regress
SELECT string_agg(id || '=' || stock::text, ' ' ORDER BY id) AS before FROM inv \gset
CREATE TEMP TABLE bad AS SELECT :'req_untracked'::bytea AS untracked, :'req_mismatch'::bytea AS mismatch;
SELECT show_error($$SELECT atomik_sync(untracked) FROM bad$$);
SELECT show_error($$SELECT atomik_sync(mismatch) FROM bad$$);
SELECT string_agg(id || '=' || stock::text, ' ' ORDER BY id) = :'before' AS unchanged FROM inv;
SELECT count(*) AS origins FROM atomik.registry;
DROP VIEW inv_view;
DROP TABLE inv, strict_t, nokey, uuidkey;
DROP FUNCTION show_error(text);
DROP EXTENSION pg_atomik;

\c postgres
DROP DATABASE atomik_device;
DROP DATABASE atomik_device2;
DROP DATABASE atomik_device3;
