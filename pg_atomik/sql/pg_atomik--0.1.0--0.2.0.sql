-- pg_atomik 0.1.0 -> 0.2.0: deferred accumulation (atomik_defer,
-- atomik_live, atomik_fold_deferred, the atomik.deferred buffer and the
-- internal atomik.defer_apply), and atomik_track / atomik_untrack return
-- 1, or 0 when there was nothing to do, as in SQLite (they returned void;
-- untracking an untracked column was an error). Every other function of
-- 0.1.0 keeps its definition. scripts/upgrade_check.sh checks that this
-- yields the same objects as a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION pg_atomik UPDATE TO '0.2.0'" to load this file. \quit

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

CREATE FUNCTION atomik."defer_apply"(
	"cell" atomik, /* Option < Atomik > */
	"grp" INT, /* i32 */
	"delta" bigint /* i64 */
) RETURNS atomik /* Atomik */
IMMUTABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'defer_apply_wrapper';

CREATE FUNCTION "atomik_defer"(
	"table" TEXT, /* & str */
	"column" TEXT, /* & str */
	"key" bigint, /* i64 */
	"delta" bigint /* i64 */
) RETURNS void
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_defer_int_wrapper';

CREATE FUNCTION "atomik_defer"(
	"table" TEXT, /* & str */
	"column" TEXT, /* & str */
	"key" TEXT, /* & str */
	"delta" bigint /* i64 */
) RETURNS void
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_defer_text_wrapper';

CREATE FUNCTION "atomik_defer"(
	"table" TEXT, /* & str */
	"column" TEXT, /* & str */
	"key" TEXT[], /* Vec < Option < String > > */
	"delta" bigint /* i64 */
) RETURNS void
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_defer_parts_wrapper';

CREATE FUNCTION "atomik_live"(
	"table" TEXT, /* & str */
	"column" TEXT, /* & str */
	"key" bigint /* i64 */
) RETURNS bigint /* Option < i64 > */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_live_int_wrapper';

CREATE FUNCTION "atomik_live"(
	"table" TEXT, /* & str */
	"column" TEXT, /* & str */
	"key" TEXT /* & str */
) RETURNS bigint /* Option < i64 > */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_live_text_wrapper';

CREATE FUNCTION "atomik_live"(
	"table" TEXT, /* & str */
	"column" TEXT, /* & str */
	"key" TEXT[] /* Vec < Option < String > > */
) RETURNS bigint /* Option < i64 > */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_live_parts_wrapper';

CREATE FUNCTION "atomik_fold_deferred"() RETURNS bigint /* i64 */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_fold_deferred_wrapper';

COMMENT ON FUNCTION atomik_defer(text, text, bigint, bigint) IS 'record a delta for a tracked cell without locking its row (folded later)';
COMMENT ON FUNCTION atomik_defer(text, text, text, bigint) IS 'record a delta for a tracked cell (text key) without locking its row';
COMMENT ON FUNCTION atomik_defer(text, text, text[], bigint) IS 'record a delta for a tracked cell (composite key as text[]) without locking its row';
COMMENT ON FUNCTION atomik_live(text, text, bigint) IS 'current value of a tracked cell including deferred deltas not yet folded';
COMMENT ON FUNCTION atomik_live(text, text, text) IS 'current value of a tracked cell (text key) including deferred deltas';
COMMENT ON FUNCTION atomik_live(text, text, text[]) IS 'current value of a tracked cell (composite key) including deferred deltas';
COMMENT ON FUNCTION atomik_fold_deferred() IS 'fold committed deferred deltas into their rows; deltas folded';

-- atomik_track / atomik_untrack return bigint (1 done, 0 nothing to do).
-- A return type cannot be changed in place: drop and create them again.
DROP FUNCTION atomik_track(text, text);
DROP FUNCTION atomik_untrack(text, text);
CREATE FUNCTION "atomik_track"(
	"table" TEXT, /* & str */
	"column" TEXT /* & str */
) RETURNS bigint /* i64 */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_track_wrapper';
CREATE FUNCTION "atomik_untrack"(
	"table" TEXT, /* & str */
	"column" TEXT /* & str */
) RETURNS bigint /* i64 */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_untrack_wrapper';
COMMENT ON FUNCTION atomik_track(text, text) IS 'put an atomik column of a table with a primary key under replication';
COMMENT ON FUNCTION atomik_untrack(text, text) IS 'stop replicating a column';
