-- Deferred accumulation (0.2.0): deltas recorded by atomik_defer without
-- locking or updating the row, folded into the rows' accumulators by
-- atomik_fold_deferred (or the background worker) exactly once. No index:
-- writers only append; folds and reads scan what is pending, which the
-- fold keeps small. grp is the group code of the cell when the delta was
-- recorded (1 add, 2 xor); key is the primary key as text, as in
-- atomik.new_cells.
CREATE TABLE atomik.deferred (
    table_name text NOT NULL,
    column_name text NOT NULL,
    key text[] NOT NULL CHECK (pg_catalog.cardinality(key) BETWEEN 1 AND 8
                               AND pg_catalog.array_position(key, NULL) IS NULL),
    grp integer NOT NULL CHECK (grp IN (1, 2)),
    delta bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 50000);
COMMENT ON TABLE atomik.deferred IS 'deferred deltas not yet folded into their rows (atomik_defer)';
SELECT pg_catalog.pg_extension_config_dump('atomik.deferred', '');
-- No privileges for PUBLIC (0.5.0): atomik_defer appends after checking
-- that the caller may UPDATE the cell (and is not bound by row-level
-- security), and atomik_live reads after checking that it may read the
-- table; a forged row would be folded past the forger's GRANTs. Folding
-- (atomik_fold_deferred, and the protocol calls, which fold first) needs
-- SELECT, INSERT and DELETE here and UPDATE on the tables (GRANT them).
