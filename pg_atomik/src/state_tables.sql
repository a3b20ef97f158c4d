-- Replication state of this replica, in schema atomik. Every table is
-- marked with pg_extension_config_dump so that pg_dump / pg_restore keep
-- the site id, the tracked set, the record of written cells and the
-- protocol v2 state (outbox, link, hub log, registry).
CREATE SCHEMA IF NOT EXISTS atomik;
COMMENT ON SCHEMA atomik IS 'pg_atomik replication state and internal helpers';

-- One row: this replica's identity (created on first use, never at
-- CREATE EXTENSION, so that a restored dump keeps its own).
CREATE TABLE atomik.meta (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    site_id bytea NOT NULL CHECK (length(site_id) = 16),
    schema_version integer NOT NULL DEFAULT 1
);

-- Columns under replication. table_name is the name on the wire (the
-- unqualified relation name); relid is what SQL is built from; grp is the
-- column's group code (1 add, 2 xor), fixed by atomik_track (0.4.0).
CREATE TABLE atomik.tracked (
    table_name text NOT NULL,
    column_name text NOT NULL,
    relid regclass NOT NULL,
    key_columns text[] NOT NULL,
    key_kinds text NOT NULL CHECK (key_kinds ~ '^[it]{1,8}$'),
    grp integer NOT NULL CHECK (grp IN (1, 2)),
    PRIMARY KEY (table_name, column_name)
);

-- Numeric settings: horizon_secs (the hub log's retention, set by the
-- user), and the numbers protocol v2 keeps (v2_own_seq, v2_outbox_end,
-- v2_acked_seq, the role flags v2_hub, v2_upstream, v2_root,
-- v2_relay_bootstrap) and the hub log's bounds (log_end: the last
-- position handed out; log_trimmed_through: every position at or below it
-- is gone).
CREATE TABLE atomik.settings (
    name text PRIMARY KEY,
    value bigint NOT NULL
);

-- Deltas for rows that do not exist and could not be created (other
-- columns NOT NULL without default, a failing check or foreign key).
-- Applied by the next atomik call after the row appears.
CREATE TABLE atomik.parked (
    table_name text NOT NULL,
    column_name text NOT NULL,
    grp integer NOT NULL,
    key text[] NOT NULL,
    delta bigint NOT NULL,
    PRIMARY KEY (table_name, column_name, key)
);

-- Tracked cells created locally and not yet sealed (rule 3: a new cell
-- ships even at the identity): by an INSERT, an UPDATE from NULL, or an
-- UPDATE of the row's key. Filled by the triggers atomik_track adds.
CREATE TABLE atomik.new_cells (
    table_name text NOT NULL,
    column_name text NOT NULL,
    key text[] NOT NULL CHECK (pg_catalog.cardinality(key) BETWEEN 1 AND 8
                               AND pg_catalog.array_position(key, NULL) IS NULL),
    PRIMARY KEY (table_name, column_name, key)
);

-- Tracked cells whose accumulator a local write made non-zero since the
-- last seal (the row trigger atomik_acc_<column> that atomik_track adds
-- fires on the first such write after a seal). Seal reads only the cells
-- recorded here and in new_cells, never the tables. No index: writers
-- only append; a key may appear twice (seal merges them).
CREATE TABLE atomik.dirty (
    table_name text NOT NULL,
    column_name text NOT NULL,
    key text[] NOT NULL CHECK (pg_catalog.cardinality(key) BETWEEN 1 AND 8
                               AND pg_catalog.array_position(key, NULL) IS NULL)
);

-- Protocol v2 outbox: sealed batches this replica's upstream has not yet
-- acknowledged, at consecutive positions (a leaf: its own batches,
-- position = seq; a relay: every batch it applied that did not come from
-- upstream). bytes is the batch (origin, seq, changes) encoded with the
-- atomik wire codec, as a version 1 batch message.
CREATE TABLE atomik.outbox (
    position bigint PRIMARY KEY CHECK (position > 0),
    origin bytea NOT NULL CHECK (length(origin) = 16),
    seq bigint NOT NULL CHECK (seq > 0),
    bytes bytea NOT NULL
);

-- Protocol v2 link: the cursor into the upstream hub's log (at most one
-- row; none until the first response is applied, and none again after a
-- relay is declared and must bootstrap).
CREATE TABLE atomik.link (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    hub bytea NOT NULL CHECK (length(hub) = 16),
    position bigint NOT NULL CHECK (position >= 0)
);

-- Protocol v2 hub log: every batch this hub applied (its own seals
-- included), at consecutive positions, trimmed by age (appended_at,
-- seconds, against horizon_secs). via is the peer it arrived from, so
-- that it is never sent back there. bytes as in atomik.outbox.
CREATE TABLE atomik.log (
    position bigint PRIMARY KEY CHECK (position > 0),
    origin bytea NOT NULL CHECK (length(origin) = 16),
    seq bigint NOT NULL CHECK (seq > 0),
    via bytea NOT NULL CHECK (length(via) = 16),
    appended_at bigint NOT NULL CHECK (appended_at >= 0),
    bytes bytea NOT NULL
);
-- The trim finds the last entry older than the horizon.
CREATE INDEX log_appended_at ON atomik.log (appended_at, position);

-- Protocol v2 hub log, not yet numbered (0.4.0): serves of different
-- devices run in parallel, and a log position handed out as a cursor must
-- never be passed by an entry that commits later. So a serve appends
-- here, and a serve that takes the log_end settings row (FOR UPDATE SKIP
-- LOCKED: one at a time, nobody waits; the row is created by the first)
-- moves every committed entry into
-- atomik.log at the next positions; the committed log_end is then the
-- highest position below which every entry has committed.
CREATE TABLE atomik.log_pending (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    origin bytea NOT NULL CHECK (length(origin) = 16),
    seq bigint NOT NULL CHECK (seq > 0),
    via bytea NOT NULL CHECK (length(via) = 16),
    appended_at bigint NOT NULL CHECK (appended_at >= 0),
    bytes bytea NOT NULL
);

-- Protocol v2 registry (a hub's exactly-once record): per origin, the
-- highest seq applied here. A serve locks its origins' rows (FOR UPDATE)
-- before it applies anything, so two syncs of one origin serialize; a
-- row with seq 0 is an origin locked before its first batch.
CREATE TABLE atomik.registry (
    site bytea PRIMARY KEY CHECK (length(site) = 16),
    seq bigint NOT NULL CHECK (seq >= 0)
);

-- Device keys (0.5.0; atomik_core::auth): per site, the 32-byte key its
-- sync messages are tagged with — on a hub, one per enrolled device; on a
-- device, its own under its own site id. Secrets: no privileges for PUBLIC.
CREATE TABLE atomik.device_keys (
    site bytea PRIMARY KEY CHECK (length(site) = 16),
    key bytea NOT NULL CHECK (length(key) = 32)
);

-- The replication lock and the fold lock (0.5.0): their table locks,
-- taken by pg_atomik's functions through the lock manager (src/locks.rs).
-- They never hold rows, and no role but their owner has privileges on
-- them, so no other role can take a lock that stops replication.
CREATE TABLE atomik.replication_lock ();
COMMENT ON TABLE atomik.replication_lock IS 'pg_atomik replication lock: serves of a root hub hold ROW EXCLUSIVE, every other protocol call EXCLUSIVE (never holds rows)';
CREATE TABLE atomik.fold_lock ();
COMMENT ON TABLE atomik.fold_lock IS 'pg_atomik fold lock: folds of deferred deltas hold EXCLUSIVE (never holds rows)';

SELECT pg_catalog.pg_extension_config_dump('atomik.meta', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.tracked', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.settings', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.parked', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.new_cells', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.dirty', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.link', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.log', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.log_pending', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.log_pending_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.registry', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.device_keys', '');

-- Any role may write tracked tables (its GRANTs decide which): the
-- triggers (atomik.mark_new, atomik.mark_dirty: src/record.rs) record what
-- it wrote, so it needs no privilege on the record.
-- It may read which columns are tracked. Everything else needs an
-- explicit GRANT (README): parked deltas and the log are others' data.
GRANT USAGE ON SCHEMA atomik TO PUBLIC;
GRANT SELECT ON atomik.tracked TO PUBLIC;
