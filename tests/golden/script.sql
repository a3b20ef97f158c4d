-- The same atomik_* calls on SQLite and PostgreSQL; both must print this
-- file's golden output (golden/script.out). {atomik} and {int} are the
-- column types of each engine.
-- Values: construct, accumulate, read, set, pending, group.
SELECT atomik_read(atomik_add(42)), atomik_pending(atomik_add(42)), atomik_group(atomik_add(42));
SELECT atomik_read(atomik_xor(255)), atomik_pending(atomik_xor(255)), atomik_group(atomik_xor(255));
SELECT atomik_read(atomik_accum(atomik_add(40), 2)), atomik_pending(atomik_accum(atomik_add(40), 2));
SELECT atomik_read(atomik_accum(atomik_accum(atomik_xor(12), 10), 6));
SELECT atomik_read(atomik_set(atomik_add(10), 3)), atomik_pending(atomik_set(atomik_add(10), 3));
SELECT atomik_read(atomik_set(atomik_xor(10), 3)), atomik_pending(atomik_set(atomik_xor(10), 3));
-- add wraps at 64 bits, in both directions.
SELECT atomik_read(atomik_accum(atomik_add(9223372036854775807), 1));
SELECT atomik_read(atomik_accum(atomik_add(-9223372036854775808), -1));
SELECT atomik_read(atomik_xor(-1)), atomik_read(atomik_accum(atomik_xor(-1), -1));
-- The canonical 17 bytes, and back.
SELECT atomik_bytes(atomik_add(1)), atomik_bytes(atomik_xor(1));
SELECT atomik_bytes(atomik_accum(atomik_add(5), -7));
SELECT atomik_read(atomik_from_bytes(atomik_bytes(atomik_accum(atomik_add(5), -7))));
SELECT atomik_pending(atomik_from_bytes(atomik_bytes(atomik_accum(atomik_add(5), -7))));
-- NULL in, NULL out; but a NULL cell accumulates from add:0.
SELECT atomik_read(NULL), CASE WHEN atomik_accum(atomik_add(1), NULL) IS NULL THEN 'null' END, CASE WHEN atomik_add(NULL) IS NULL THEN 'null' END;
SELECT atomik_read(atomik_accum(NULL, 3)), atomik_pending(atomik_accum(NULL, 3)), atomik_group(atomik_accum(NULL, 3));
-- Bad input is refused with the same message on both engines.
SELECT atomik_read(atomik_from_bytes(substr(atomik_bytes(atomik_add(1)), 1, 16)));
SELECT atomik_read(atomik_fold(v)) FROM (SELECT atomik_add(1) AS v UNION ALL SELECT atomik_xor(1)) AS t;
-- A table with an add and an xor column, under replication.
CREATE TABLE inv (sku {int} PRIMARY KEY, qty {atomik}, flags {atomik});
SELECT atomik_track('inv', 'qty');
SELECT atomik_track('inv', 'flags', 'xor');
-- Tracking again does nothing (0).
SELECT atomik_track('inv', 'qty');
SELECT atomik_track('inv', 'nosuch');
SELECT atomik_track('nosuch', 'qty');
INSERT INTO inv VALUES (1, atomik_add(100), atomik_xor(1));
INSERT INTO inv VALUES (2, atomik_add(-5), atomik_xor(2));
INSERT INTO inv VALUES (3, atomik_add(0), atomik_xor(0));
UPDATE inv SET qty = atomik_accum(qty, 7), flags = atomik_accum(flags, 12) WHERE sku = 1;
UPDATE inv SET qty = atomik_accum(qty, -3) WHERE sku = 2;
SELECT sku, atomik_read(qty), atomik_pending(qty), atomik_read(flags), atomik_pending(flags) FROM inv ORDER BY sku;
SELECT atomik_read(atomik_fold(qty)), atomik_pending(atomik_fold(qty)), atomik_read(atomik_fold(flags)) FROM inv;
SELECT atomik_digest('inv', 'qty'), atomik_digest('inv', 'flags');
-- The changefeed of a replica that has neither served nor synced: an
-- empty log at position 0.
SELECT atomik_log_position();
SELECT count(*) FROM atomik_feed(0);
-- Sealing ships the pending deltas: seq 1, then nothing pending (0).
SELECT atomik_seal();
SELECT atomik_seal();
SELECT sku, atomik_bytes(qty), atomik_bytes(flags) FROM inv ORDER BY sku;
SELECT atomik_digest('inv', 'qty'), atomik_digest('inv', 'flags');
UPDATE inv SET qty = atomik_accum(qty, 1) WHERE sku = 3;
SELECT atomik_seal();
SELECT length(atomik_vector()), length(atomik_sync_request());
-- What a request holds, as rows.
SELECT kind, seq, tbl, col, grp, key, delta FROM atomik_inspect(atomik_sync_request()) ORDER BY tbl, col, key, seq;
SELECT atomik_digest('inv', 'nosuch');
SELECT atomik_apply(atomik_bytes(atomik_add(1)));
SELECT atomik_sync_finish(atomik_sync_request());
-- A replica that syncs upstream is a device: it keeps no log to feed from.
SELECT * FROM atomik_feed(0);
SELECT atomik_log_position();
SELECT * FROM atomik_feed(-1);
SELECT atomik_untrack('inv', 'flags');
-- Untracking an untracked column does nothing (0).
SELECT atomik_untrack('inv', 'flags');
SELECT atomik_digest('inv', 'flags');
