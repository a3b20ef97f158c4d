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
    key text[] NOT NULL,
    grp integer NOT NULL CHECK (grp IN (1, 2)),
    delta bigint NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
        autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 50000);
COMMENT ON TABLE atomik.deferred IS 'deferred deltas not yet folded into their rows (atomik_defer)';
SELECT pg_catalog.pg_extension_config_dump('atomik.deferred', '');
-- Any role that may write a tracked table may defer deltas to it and read
-- them back; folding needs UPDATE on the table and DELETE here (GRANT it).
GRANT INSERT, SELECT ON atomik.deferred TO PUBLIC;
