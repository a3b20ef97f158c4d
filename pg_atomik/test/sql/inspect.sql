-- atomik_inspect: a sync message as rows (the same SQL as in SQLite).
CREATE EXTENSION pg_atomik;

-- A leaf's request (core/fixtures/v2_request_leaf.bin): its site, cursor,
-- and one row per uploaded cell with the batch it belongs to.
SELECT kind, site, hub, position, origin, seq, tbl, col, grp, key, delta
  FROM atomik_inspect('\x414b21021112131415161718191a1b1c1d1e1f20999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8030462696e7305636f756e7425076465766963657305666c6167732209696e76656e746f72790371747901000201d2090207030004056e6f7274680d54010a0670756d702d378de0b7ddf0ddefd6de010576616c766505020c02010206d40400030004056e6f7274680d54010a0670756d702d378de0b7ddf0ddefd6de010576616c766505020c02010206d4040083069c26');

-- A real round trip: a device's request, the hub's answer.
CREATE TABLE inv (id bigint PRIMARY KEY, qty atomik);
SELECT atomik_track('inv', 'qty');
INSERT INTO inv VALUES (1, atomik_add(5)), (2, atomik_add(-3));
CREATE TEMP TABLE msg AS SELECT atomik_sync_request() AS req;
SELECT kind, site = atomik_site_id() AS own_site, position, seq, tbl, col, grp, key, delta
  FROM msg, atomik_inspect(req) ORDER BY key;
SELECT count(*) FROM atomik_inspect(NULL);

-- Not a message: the decoder's error, nothing else.
SELECT * FROM atomik_inspect('\x41');
SELECT * FROM atomik_inspect('hello'::bytea);
SELECT * FROM atomik_inspect(overlay('\x414b21021112131415161718191a1b1c1d1e1f20999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8030462696e7305636f756e7425076465766963657305666c6167732209696e76656e746f72790371747901000201d2090207030004056e6f7274680d54010a0670756d702d378de0b7ddf0ddefd6de010576616c766505020c02010206d40400030004056e6f7274680d54010a0670756d702d378de0b7ddf0ddefd6de010576616c766505020c02010206d4040083069c26'::bytea placing '\x31' from 3 for 1));
SELECT * FROM atomik_inspect(substr('\x414b21021112131415161718191a1b1c1d1e1f20999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8030462696e7305636f756e7425076465766963657305666c6167732209696e76656e746f72790371747901000201d2090207030004056e6f7274680d54010a0670756d702d378de0b7ddf0ddefd6de010576616c766505020c02010206d40400030004056e6f7274680d54010a0670756d702d378de0b7ddf0ddefd6de010576616c766505020c02010206d4040083069c26'::bytea, 1, 100));
SELECT p.proisstrict, p.provolatile, p.proparallel FROM pg_proc p WHERE p.proname = 'atomik_inspect';

-- atomik_accum counts a NULL cell from add:0 (a counter without a
-- default); a NULL delta gives NULL.
SELECT atomik_accum(NULL, 3) AS from_null, atomik_accum('add:1'::atomik, NULL) IS NULL AS null_delta;
CREATE TABLE cnt (id bigint PRIMARY KEY, n atomik);
SELECT atomik_track('cnt', 'n');
INSERT INTO cnt(id) VALUES (1);
UPDATE cnt SET n = n + 1;
UPDATE cnt SET n = atomik_accum(n, 1);
SELECT atomik_read(n) FROM cnt;
DROP TABLE inv, cnt, msg;
DROP EXTENSION pg_atomik;
