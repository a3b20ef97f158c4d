-- pg_atomik 0.3.0 -> 0.4.0: a root hub serves syncs of different devices
-- in parallel (no database-wide lock held for a whole sync).
--
-- * New table atomik.log_pending: serves append here, and the one
--   transaction at a time that holds the log_end settings row numbers
--   every committed pending entry into atomik.log, so that a position
--   handed out as a cursor is never passed by an entry that commits later.
-- * atomik.registry admits seq 0: a serve locks each origin's row before
--   it applies anything, creating it at 0 for an origin's first batch.
-- * Fixed column groups: atomik.tracked.grp (the group of the column's
--   first non-NULL cell, else add); each tracked column gets the check
--   constraint atomik_group_<column> (atomik.in_group, NOT VALID: cells
--   written before the upgrade are not re-checked); new function
--   atomik_track(table, column, group).
-- The other functions keep their names, types and C symbols.

CREATE TABLE atomik.log_pending (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin bytea NOT NULL CHECK (length(origin) = 16),
    seq bigint NOT NULL CHECK (seq > 0),
    via bytea NOT NULL CHECK (length(via) = 16),
    appended_at bigint NOT NULL CHECK (appended_at >= 0),
    bytes bytea NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('atomik.log_pending', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.log_pending_id_seq', '');

ALTER TABLE atomik.registry DROP CONSTRAINT registry_seq_check;
ALTER TABLE atomik.registry ADD CONSTRAINT registry_seq_check CHECK (seq >= 0);

ALTER TABLE atomik.tracked ADD COLUMN grp integer NOT NULL DEFAULT 1 CHECK (grp IN (1, 2));
ALTER TABLE atomik.tracked ALTER COLUMN grp DROP DEFAULT;

CREATE FUNCTION atomik."in_group"(
	"cell" atomik, /* Option < Atomik > */
	"grp" INT, /* i32 */
	"tbl" TEXT, /* & str */
	"col" TEXT /* & str */
) RETURNS bool /* bool */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'in_group_wrapper';

CREATE FUNCTION "atomik_track"(
	"table" TEXT, /* & str */
	"column" TEXT, /* & str */
	"group" TEXT /* & str */
) RETURNS bigint /* i64 */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_track_group_wrapper';
COMMENT ON FUNCTION atomik_track(text, text) IS 'put an atomik column of a table with a primary key under replication, in the group of its cells (add when it has none)';
COMMENT ON FUNCTION atomik_track(text, text, text) IS 'put an atomik column under replication, fixing its group (add or xor)';

DO $$
DECLARE
    t record;
    g integer;
BEGIN
    -- (A tracked table dropped since keeps its row, at add, and is skipped.)
    FOR t IN SELECT tr.table_name, tr.column_name, tr.relid
               FROM atomik.tracked tr JOIN pg_catalog.pg_class c ON c.oid = tr.relid LOOP
        EXECUTE format('SELECT atomik.group_code(%1$I) FROM %2$s WHERE %1$I IS NOT NULL LIMIT 1',
                       t.column_name, t.relid)
           INTO g;
        UPDATE atomik.tracked SET grp = coalesce(g, 1)
         WHERE table_name = t.table_name AND column_name = t.column_name;
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (atomik.in_group(%I, %s, %L, %L)) NOT VALID',
                       t.relid, 'atomik_group_' || t.column_name, t.column_name, coalesce(g, 1),
                       t.table_name, t.column_name);
    END LOOP;
END
$$;
