-- pg_atomik 0.4.0 -> 0.5.0: hardening against roles that may connect but
-- should not steer replication.
--
-- * No PUBLIC privileges on the record of written cells (atomik.new_cells,
--   atomik.dirty), the deferred buffer (atomik.deferred) or the parked
--   deltas (atomik.parked). The triggers record without them (mark_new,
--   now in C, inserts as the record's owner; mark_dirty appends directly),
--   and both refuse a trigger that atomik_track did not make. atomik_defer checks that its
--   caller may UPDATE the cell (and is not bound by row-level security)
--   before it appends; atomik_live checks that it may read the table.
-- * Keys of the record and the buffer are checked at insert: 1 to 8
--   parts, none NULL. Rows that break this are deleted here (they name no
--   cell); seal and fold drop such rows with a warning rather than fail.
-- * The replication lock and the fold lock are the table locks of the new
--   tables atomik.replication_lock and atomik.fold_lock (no privileges
--   for anyone but their owner), not advisory locks any role could take.
-- * Device keys: the table atomik.device_keys and the functions
--   atomik_set_device_key, atomik_new_device_key, atomik_require_device_keys
--   (sync messages tagged with a per-device key, for transports without
--   TLS and tokens).
-- * Parked deltas are bounded (max_parked, 10,000 unless set): a message
--   that would park more cells is refused. New functions atomik_horizon()
--   / atomik_horizon(secs) and atomik_max_parked() / atomik_max_parked(n).
-- * atomik_accum(NULL, d) counts from the identity of add (it was STRICT:
--   a NULL cell stayed NULL, so a counter column without a default never
--   counted); a NULL delta still gives NULL.
-- * atomik_inspect(message bytea): one row per cell of a sync message, with
--   its header (the same SQL as in SQLite).
-- The other functions keep their names, types and C symbols.

REVOKE INSERT ON atomik.new_cells, atomik.dirty FROM PUBLIC;
REVOKE SELECT ON atomik.parked FROM PUBLIC;
REVOKE INSERT, SELECT ON atomik.deferred FROM PUBLIC;

DELETE FROM atomik.new_cells
 WHERE NOT (pg_catalog.cardinality(key) BETWEEN 1 AND 8
            AND pg_catalog.array_position(key, NULL) IS NULL);
DELETE FROM atomik.dirty
 WHERE NOT (pg_catalog.cardinality(key) BETWEEN 1 AND 8
            AND pg_catalog.array_position(key, NULL) IS NULL);
DELETE FROM atomik.deferred
 WHERE NOT (pg_catalog.cardinality(key) BETWEEN 1 AND 8
            AND pg_catalog.array_position(key, NULL) IS NULL);
ALTER TABLE atomik.new_cells ADD CONSTRAINT new_cells_key_check
    CHECK (pg_catalog.cardinality(key) BETWEEN 1 AND 8
           AND pg_catalog.array_position(key, NULL) IS NULL);
ALTER TABLE atomik.dirty DROP CONSTRAINT dirty_key_check;
ALTER TABLE atomik.dirty ADD CONSTRAINT dirty_key_check
    CHECK (pg_catalog.cardinality(key) BETWEEN 1 AND 8
           AND pg_catalog.array_position(key, NULL) IS NULL);
ALTER TABLE atomik.deferred ADD CONSTRAINT deferred_key_check
    CHECK (pg_catalog.cardinality(key) BETWEEN 1 AND 8
           AND pg_catalog.array_position(key, NULL) IS NULL);

CREATE TABLE atomik.device_keys (
    site bytea PRIMARY KEY CHECK (length(site) = 16),
    key bytea NOT NULL CHECK (length(key) = 32)
);
SELECT pg_catalog.pg_extension_config_dump('atomik.device_keys', '');

CREATE TABLE atomik.replication_lock ();
COMMENT ON TABLE atomik.replication_lock IS 'pg_atomik replication lock: serves of a root hub hold ROW EXCLUSIVE, every other protocol call EXCLUSIVE (never holds rows)';
CREATE TABLE atomik.fold_lock ();
COMMENT ON TABLE atomik.fold_lock IS 'pg_atomik fold lock: folds of deferred deltas hold EXCLUSIVE (never holds rows)';

-- The new-cell trigger function is C now (src/record.rs), as the dirty
-- one is: it checks its trigger and inserts as the record's owner.
CREATE OR REPLACE FUNCTION atomik."mark_new"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'mark_new_wrapper';

-- Device keys: the SQL functions.
CREATE  FUNCTION "atomik_new_device_key"() RETURNS bytea /* Vec < u8 > */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_new_device_key_wrapper';
CREATE  FUNCTION "atomik_require_device_keys"() RETURNS bigint /* i64 */
STRICT  
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_require_device_keys_get_wrapper';
CREATE  FUNCTION "atomik_require_device_keys"(
	"on" bool /* bool */
) RETURNS bigint /* i64 */
STRICT  
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_require_device_keys_set_wrapper';
CREATE  FUNCTION "atomik_set_device_key"(
	"site" TEXT, /* & str */
	"key" bytea /* Option < & [u8] > */
) RETURNS bigint /* i64 */

LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_set_device_key_wrapper';
COMMENT ON FUNCTION atomik_set_device_key(text, bytea) IS 'store (or with NULL remove) the 32-byte device key of a site: a hub enrolls a device, a device sets its own; 1 if something changed';
COMMENT ON FUNCTION atomik_new_device_key() IS 'a new random 32-byte device key';
COMMENT ON FUNCTION atomik_require_device_keys() IS 'hub: 1 if it serves only sites with an enrolled device key';
COMMENT ON FUNCTION atomik_require_device_keys(boolean) IS 'hub: serve only sites with an enrolled device key (or not); the new setting';

-- Companions of two settings: the log's retention horizon (horizon_secs)
-- and the bound on parked cells (max_parked: a message that would park
-- more is refused, SQLSTATE 54000).
CREATE  FUNCTION "atomik_horizon"() RETURNS bigint /* i64 */
STRICT  
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_horizon_get_wrapper';
CREATE  FUNCTION "atomik_max_parked"(
	"n" bigint /* i64 */
) RETURNS bigint /* i64 */
STRICT  
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_max_parked_set_wrapper';
CREATE  FUNCTION "atomik_horizon"(
	"secs" bigint /* i64 */
) RETURNS bigint /* i64 */
STRICT  
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_horizon_set_wrapper';
CREATE  FUNCTION "atomik_max_parked"() RETURNS bigint /* i64 */
STRICT  
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_max_parked_get_wrapper';
COMMENT ON FUNCTION atomik_horizon() IS 'hub: seconds log entries are kept (30 days unless set)';
COMMENT ON FUNCTION atomik_horizon(bigint) IS 'hub: set the seconds log entries are kept; the new value';
COMMENT ON FUNCTION atomik_max_parked() IS 'how many cells may be kept parked (deltas for rows that cannot be created; 10000 unless set)';
COMMENT ON FUNCTION atomik_max_parked(bigint) IS 'set the parked-cell limit; a message that would park more is refused; the new value';

ALTER FUNCTION atomik_accum(atomik, bigint) CALLED ON NULL INPUT;
COMMENT ON FUNCTION atomik_accum(atomik, bigint) IS 'accumulate delta d (a NULL cell counts from add:0)';
CREATE  FUNCTION "atomik_inspect"(
	"message" bytea /* & [u8] */
) RETURNS TABLE (
	"kind" TEXT,  /* String */
	"site" TEXT,  /* Option < String > */
	"hub" TEXT,  /* Option < String > */
	"position" bigint,  /* Option < i64 > */
	"base" bigint,  /* Option < i64 > */
	"ack" bigint,  /* Option < i64 > */
	"origin" TEXT,  /* Option < String > */
	"seq" bigint,  /* Option < i64 > */
	"tbl" TEXT,  /* Option < String > */
	"col" TEXT,  /* Option < String > */
	"grp" TEXT,  /* Option < String > */
	"key" TEXT,  /* Option < String > */
	"delta" bigint  /* Option < i64 > */
)
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_inspect_wrapper';

-- The changefeed (atomik_feed, atomik_log_position) and atomik_publish.
CREATE  FUNCTION "atomik_feed"(
	"after" bigint, /* Option < i64 > */
	"max_entries" bigint DEFAULT NULL /* Option < i64 > */
) RETURNS TABLE (
	"position" bigint,  /* i64 */
	"origin" TEXT,  /* Option < String > */
	"seq" bigint,  /* Option < i64 > */
	"tbl" TEXT,  /* Option < String > */
	"col" TEXT,  /* Option < String > */
	"grp" TEXT,  /* Option < String > */
	"key" jsonb,  /* Option < JsonB > */
	"delta" bigint  /* Option < i64 > */
)
STABLE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_feed_wrapper';
CREATE  FUNCTION "atomik_log_position"() RETURNS bigint /* i64 */
STRICT STABLE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_log_position_wrapper';
CREATE  FUNCTION "atomik_publish"() RETURNS bigint /* i64 */
STRICT 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_publish_wrapper';
COMMENT ON FUNCTION atomik_feed(bigint, bigint) IS 'hub: one row per cell of each log entry after position after (at most max_entries entries), the columns the caller may read; resume from the last row''s position';
COMMENT ON FUNCTION atomik_log_position() IS 'hub: the position where its log ends: the cursor a new feed consumer starts from';
COMMENT ON FUNCTION atomik_publish() IS 'hub: number the committed log entries not numbered yet (feed, LISTEN atomik_log); the log position';
