-- Deferred accumulation (0.2.0): atomik_defer records deltas without
-- locking the row, atomik_live reads them, atomik_fold_deferred folds them
-- into the rows exactly once; seal, sync and digest fold first.
CREATE EXTENSION pg_atomik;
CREATE FUNCTION deferred_error(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
CREATE TABLE hot (id bigint PRIMARY KEY, n atomik, f atomik, plain atomik);
CREATE TABLE tk (name text PRIMARY KEY, n atomik);
CREATE TABLE ck (region text, shelf int, n atomik, PRIMARY KEY (region, shelf));
SELECT atomik_track('hot', 'n'), atomik_track('hot', 'f', 'xor'), atomik_track('tk', 'n'), atomik_track('ck', 'n');
INSERT INTO hot VALUES (1, atomik_add(10), atomik_xor(12), atomik_add(0)), (2, atomik_add(0), NULL, NULL);
INSERT INTO tk VALUES ('a', atomik_add(5));
INSERT INTO ck VALUES ('eu', 7, atomik_add(1));
SELECT atomik_seal() AS sealed;

-- Record, read live; the row itself is untouched until a fold.
SELECT atomik_defer('hot', 'n', 1, 1), atomik_defer('hot', 'n', 1, 2), atomik_defer('hot', 'n', 2, -5);
SELECT atomik_defer('hot', 'f', 1, 3);           -- xor: 12 ^ 3 = 15
SELECT atomik_defer('tk', 'n', 'a', 100);
SELECT atomik_defer('ck', 'n', ARRAY['eu', '007'], 41);   -- integer parts are canonicalised
SELECT id, n, f FROM hot ORDER BY id;
SELECT atomik_live('hot', 'n', 1) AS n1, atomik_live('hot', 'n', 2) AS n2, atomik_live('hot', 'f', 1) AS f1,
       atomik_live('tk', 'n', 'a') AS a, atomik_live('ck', 'n', ARRAY['eu', '7']) AS eu7,
       atomik_live('hot', 'n', 99) AS missing;
SELECT table_name, column_name, key, grp, delta FROM atomik.deferred ORDER BY table_name, column_name, key, delta;

-- An aborted transaction's deltas never count; a transaction sees its own.
BEGIN;
SELECT atomik_defer('hot', 'n', 1, 1000);
SELECT atomik_live('hot', 'n', 1) AS own_uncommitted;
ROLLBACK;
SELECT atomik_live('hot', 'n', 1) AS after_rollback;
BEGIN;
SELECT atomik_defer('hot', 'n', 1, 7);
SAVEPOINT s;
SELECT atomik_defer('hot', 'n', 1, 500);
ROLLBACK TO s;
COMMIT;
SELECT atomik_live('hot', 'n', 1) AS after_savepoint;
-- A session remembers a cell's group after its first delta, but forgets
-- after an abort: a row whose insert was rolled back is not recreated.
BEGIN;
INSERT INTO hot VALUES (3, atomik_add(0), NULL, NULL);
SELECT atomik_defer('hot', 'n', 3, 1), atomik_defer('hot', 'n', 3, 1);
SELECT atomik_live('hot', 'n', 3) AS own_new_row;
ROLLBACK;
SELECT deferred_error($$SELECT atomik_defer('hot', 'n', 3, 1)$$);

-- Fold: deltas move into the accumulators (pending), the buffer empties.
SELECT atomik_fold_deferred() AS folded;
SELECT atomik_fold_deferred() AS folded_again;
SELECT id, n, f FROM hot ORDER BY id;
SELECT name, n FROM tk;
SELECT region, shelf, n FROM ck;
SELECT count(*) AS buffered FROM atomik.deferred;
SELECT atomik_live('hot', 'n', 1) = atomik_read(n) AS live_is_read FROM hot WHERE id = 1;
-- The fold is a local write: the cells it made pending are recorded as
-- dirty, so the next seal ships them (it reads only that record).
SELECT table_name, column_name, key FROM atomik.dirty ORDER BY 1, 2, 3;

-- Seal folds first, so a deferred delta ships in the same batch.
SELECT atomik_defer('hot', 'n', 2, 1);
SELECT atomik_seal() AS seq;
SELECT id, n FROM hot ORDER BY id;
SELECT count(*) AS buffered FROM atomik.deferred;
-- The digest sees deferred deltas (it folds first).
SELECT atomik_digest('hot', 'n') AS before_digest \gset
SELECT atomik_defer('hot', 'n', 2, 3);
SELECT atomik_digest('hot', 'n') <> :before_digest AS digest_moved;
SELECT count(*) AS buffered FROM atomik.deferred;
UPDATE hot SET n = n + -3 WHERE id = 2;
SELECT atomik_digest('hot', 'n') = :before_digest AS digest_back;

-- A deleted row is recreated by the fold (like a received delta).
SELECT atomik_defer('tk', 'n', 'a', 1);
DELETE FROM tk WHERE name = 'a';
SELECT atomik_live('tk', 'n', 'a') AS live_without_row;
SELECT atomik_fold_deferred() AS folded;
SELECT name, n FROM tk;
SELECT table_name, key FROM atomik.new_cells ORDER BY 1, 2;

-- A column's group is fixed (atomik_track): a cell cannot change group
-- after a delta was deferred for it, so the delta folds.
SELECT atomik_defer('hot', 'n', 2, 9);
UPDATE hot SET n = atomik_xor(0) WHERE id = 2;
SELECT atomik_live('hot', 'n', 2) AS live;
SELECT atomik_fold_deferred() AS folded;
SELECT table_name, key, grp, delta FROM atomik.deferred;
SELECT n FROM hot WHERE id = 2;

-- Bad input: every error with its SQLSTATE and text.
SELECT deferred_error($$SELECT atomik_defer('nope', 'n', 1, 1)$$);
SELECT deferred_error($$SELECT atomik_defer('hot', 'nope', 1, 1)$$);
SELECT deferred_error($$SELECT atomik_defer('hot', 'id', 1, 1)$$);
SELECT deferred_error($$SELECT atomik_defer('hot', 'plain', 1, 1)$$);
SELECT deferred_error($$SELECT atomik_defer('hot', 'n', 'x', 1)$$);
SELECT deferred_error($$SELECT atomik_defer('hot', 'n', ARRAY['1', '2'], 1)$$);
SELECT deferred_error($$SELECT atomik_defer('hot', 'n', ARRAY['x'], 1)$$);
SELECT deferred_error($$SELECT atomik_defer('hot', 'n', ARRAY[NULL]::text[], 1)$$);
SELECT deferred_error($$SELECT atomik_defer('tk', 'n', 5, 1)$$);
SELECT deferred_error($$SELECT atomik_defer('ck', 'n', 'eu', 1)$$);
SELECT deferred_error($$SELECT atomik_defer('ck', 'n', ARRAY['eu', 'x'], 1)$$);
SELECT deferred_error($$SELECT atomik_defer('hot', 'n', 42, 1)$$);
SELECT deferred_error($$SELECT atomik_defer('hot', 'f', 2, 1)$$);
SELECT deferred_error($$SELECT atomik_live('hot', 'plain', 1)$$);
SELECT deferred_error($$SELECT atomik_live('tk', 'n', 1)$$);
SELECT atomik_defer('hot', 'n', 1, NULL) IS NULL AS strict_null, count(*) AS buffered FROM atomik.deferred;

-- Untracking folds the column's deferred deltas first; the cache notices.
SELECT atomik_defer('hot', 'n', 1, 1);
SELECT atomik_untrack('hot', 'n');
SELECT n FROM hot WHERE id = 1;
SELECT deferred_error($$SELECT atomik_defer('hot', 'n', 1, 1)$$);
SELECT atomik_track('hot', 'n');
SELECT atomik_defer('hot', 'n', 1, 1), atomik_live('hot', 'n', 1) AS live;

-- A read-only transaction can neither defer nor fold; its digest works
-- (on the folded values).
BEGIN READ ONLY;
SELECT deferred_error($$SELECT atomik_defer('hot', 'n', 1, 1)$$);
SELECT atomik_digest('hot', 'n') IS NOT NULL AS digest_read_only;
COMMIT;

-- Settings.
SHOW atomik.fold_batch;
SHOW atomik.fold_interval_ms;
SET atomik.fold_batch = 1;
SELECT atomik_defer('hot', 'n', 1, 1), atomik_defer('hot', 'n', 2, 1);
SELECT atomik_fold_deferred() AS folded_in_batches_of_one;
RESET atomik.fold_batch;

DROP TABLE hot, tk, ck;
DROP FUNCTION deferred_error(text);
DROP EXTENSION pg_atomik;
