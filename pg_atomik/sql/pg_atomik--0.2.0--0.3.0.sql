-- pg_atomik 0.2.0 -> 0.3.0: replication moves to protocol v2 (a hub log,
-- one cursor per replica, a per-origin registry; wire format version 2),
-- and seal reads a record of written cells instead of scanning the
-- tracked tables.
--
-- * New state tables: atomik.dirty (cells a local write left with a
--   non-zero accumulator), atomik.outbox, atomik.link, atomik.log (with
--   its appended_at index), atomik.registry; new functions
--   atomik_make_relay(), atomik.dirtied(atomik, atomik) and the trigger
--   function atomik.mark_dirty(); the replication functions keep their
--   names, types and C symbols (their comments describe v2).
-- * Every tracked column gets the triggers atomik_track creates in 0.3.0:
--   atomik_set_<c> is re-created (it now also fires on a change of the
--   row's key) and atomik_acc_<c> is added (the dirty record).
-- * The protocol v1 state is migrated, then its tables are dropped
--   (atomik.vector, atomik.folded, atomik.batches, atomik.peers and the
--   column atomik.meta.relay):
--     registry            <- atomik.vector (per origin, the highest seq
--                            applied: exactly what the v2 registry holds)
--     v2_own_seq          <- the vector's entry of this site
--     outbox              <- a device's own stored batches (position = seq,
--                            v2_outbox_end = its own seq); a relay hub's
--                            every stored batch (it uploads them again, its
--                            upstream skips what it has); none on a root hub
--     v2_acked_seq        <- the folded vector's entry of this site
--     roles               <- a replica that served (meta.relay) is a hub:
--                            a root if it knows no upstream (no upstream
--                            peer, no pending_upstream_since), else a relay;
--                            one that knows an upstream gets v2_upstream
--     atomik.dirty        <- every tracked cell whose accumulator is not
--                            the identity (a one-time scan)
--   Cursors start empty: the first v2 sync of every replica downstream of
--   an upgraded hub takes a snapshot (its unacknowledged outbox is
--   re-applied on top of it). horizon_secs keeps its meaning for the hub
--   log's retention.
-- scripts/upgrade_check.sh checks that this yields the same objects as a
-- fresh 0.3.0 install, and that migrated replicas converge over v2.
\echo Use "ALTER EXTENSION pg_atomik UPDATE TO '0.3.0'" to load this file. \quit

-- Tracked cells whose accumulator a local write made non-zero since the
-- last seal (the row trigger atomik_acc_<column> that atomik_track adds
-- fires on the first such write after a seal). Seal reads only the cells
-- recorded here and in new_cells, never the tables. No index: writers
-- only append; a key may appear twice (seal merges them).
CREATE TABLE atomik.dirty (
    table_name text NOT NULL,
    column_name text NOT NULL,
    key text[] NOT NULL CHECK (cardinality(key) BETWEEN 1 AND 8)
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

-- Protocol v2 registry (a hub's exactly-once record): per origin, the
-- highest seq applied here.
CREATE TABLE atomik.registry (
    site bytea PRIMARY KEY CHECK (length(site) = 16),
    seq bigint NOT NULL CHECK (seq > 0)
);

SELECT pg_catalog.pg_extension_config_dump('atomik.dirty', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.link', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.log', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.registry', '');
GRANT INSERT ON atomik.dirty TO PUBLIC;

-- The trigger function of the atomik_acc_<column> triggers: records the
-- written cell in atomik.dirty (src/dirty.rs: a heap insert after the
-- INSERT privilege check).
CREATE FUNCTION atomik."mark_dirty"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'mark_dirty_wrapper';

CREATE FUNCTION atomik."dirtied"(
	"old" atomik, /* Atomik */
	"new" atomik /* Atomik */
) RETURNS bool /* bool */
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'dirtied_wrapper';

CREATE FUNCTION "atomik_make_relay"() RETURNS bigint /* i64 */
STRICT
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'atomik_make_relay_wrapper';

COMMENT ON FUNCTION atomik_seal() IS 'seal pending local writes into a batch; its seq, or 0 if nothing was pending';
COMMENT ON FUNCTION atomik_vector() IS 'where this replica stands: its site and its cursor into its hub''s log (a protocol v2 message for atomik_changes)';
COMMENT ON FUNCTION atomik_changes(bytea) IS 'hub: what a replica at that position (atomik_vector) lacks, as a response for atomik_apply';
COMMENT ON FUNCTION atomik_apply(bytea) IS 'apply a response of atomik_sync or atomik_changes exactly once; deltas newly applied';
COMMENT ON FUNCTION atomik_make_relay() IS 'make this replica a relay hub (serves others, syncs to an upstream); 1, or 0 if it already was one';

-- Migrate the protocol v1 state (see the header), then the triggers and
-- the dirty record of every tracked column.
DO $migrate$
DECLARE
    me bytea := (SELECT site_id FROM atomik.meta);
    served boolean := coalesce((SELECT relay FROM atomik.meta), false);
    own bigint := coalesce((SELECT v.seq FROM atomik.vector v WHERE v.site = me), 0);
    acked bigint := coalesce((SELECT f.seq FROM atomik.folded f WHERE f.site = me), 0);
    upstream_since bigint := coalesce(
        (SELECT s.value FROM atomik.settings s WHERE s.name = 'pending_upstream_since'),
        (SELECT max(p.last_seen) FROM atomik.peers p WHERE p.role = 'upstream'));
    entries bigint;
    t record;
    args text;
    old_keys text;
    new_keys text;
    key_list text;
    key_texts text;
BEGIN
    INSERT INTO atomik.registry (site, seq) SELECT v.site, v.seq FROM atomik.vector v;
    IF own > 0 THEN
        INSERT INTO atomik.settings (name, value) VALUES ('v2_own_seq', own);
    END IF;
    IF acked > 0 THEN
        INSERT INTO atomik.settings (name, value) VALUES ('v2_acked_seq', acked);
    END IF;
    IF upstream_since IS NOT NULL THEN
        INSERT INTO atomik.settings (name, value) VALUES ('v2_upstream', upstream_since);
    END IF;
    IF served THEN
        INSERT INTO atomik.settings (name, value) VALUES ('v2_hub', 1);
    END IF;
    IF served AND upstream_since IS NULL THEN
        -- A root hub keeps no outbox.
        INSERT INTO atomik.settings (name, value) VALUES ('v2_root', 1);
    ELSIF served THEN
        -- A relay hub: everything it still stores waits for its upstream.
        INSERT INTO atomik.outbox (position, origin, seq, bytes)
        SELECT row_number() OVER (ORDER BY b.origin, b.seq), b.origin, b.seq, b.bytes
          FROM atomik.batches b;
        entries := (SELECT count(*) FROM atomik.outbox);
        IF entries > 0 THEN
            INSERT INTO atomik.settings (name, value) VALUES ('v2_outbox_end', entries);
        END IF;
    ELSE
        -- A device: its own batches not yet acknowledged, position = seq.
        INSERT INTO atomik.outbox (position, origin, seq, bytes)
        SELECT b.seq, b.origin, b.seq, b.bytes FROM atomik.batches b WHERE b.origin = me;
        IF own > 0 THEN
            INSERT INTO atomik.settings (name, value) VALUES ('v2_outbox_end', own);
        END IF;
    END IF;
    DELETE FROM atomik.settings WHERE name IN ('pending_upstream_since', 'root_hub');

    -- Tracked columns of tables dropped since (their rows stay in
    -- atomik.tracked, and the store ignores them) have nothing to migrate.
    FOR t IN SELECT tr.table_name, tr.column_name, tr.relid, tr.key_columns
               FROM atomik.tracked tr JOIN pg_catalog.pg_class c ON c.oid = tr.relid
              ORDER BY tr.table_name, tr.column_name LOOP
        SELECT string_agg(format('%L', a), ', ' ORDER BY o) INTO args
          FROM unnest(ARRAY[t.table_name, t.column_name] || t.key_columns) WITH ORDINALITY AS u(a, o);
        SELECT string_agg(format('OLD.%I', k), ', ' ORDER BY o),
               string_agg(format('NEW.%I', k), ', ' ORDER BY o),
               string_agg(format('%I', k), ', ' ORDER BY o),
               string_agg(format('t.%I::text', k), ', ' ORDER BY o)
          INTO old_keys, new_keys, key_list, key_texts
          FROM unnest(t.key_columns) WITH ORDINALITY AS u(k, o);
        EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', 'atomik_set_' || t.column_name, t.relid);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER UPDATE OF %I, %s ON %s FOR EACH ROW
               WHEN (NEW.%I IS NOT NULL AND (OLD.%I IS NULL OR ROW(%s) IS DISTINCT FROM ROW(%s)))
               EXECUTE FUNCTION atomik.mark_new(%s)',
            'atomik_set_' || t.column_name, t.column_name, key_list, t.relid,
            t.column_name, t.column_name, old_keys, new_keys, args);
        EXECUTE format(
            'CREATE TRIGGER %I AFTER UPDATE OF %I ON %s FOR EACH ROW
               WHEN (atomik.dirtied(OLD.%I, NEW.%I)) EXECUTE FUNCTION atomik.mark_dirty(%s)',
            'atomik_acc_' || t.column_name, t.column_name, t.relid,
            t.column_name, t.column_name, args);
        EXECUTE format(
            'INSERT INTO atomik.dirty (table_name, column_name, key)
             SELECT $1, $2, ARRAY[%s] FROM %s t WHERE atomik.pending(t.%I) <> 0',
            key_texts, t.relid, t.column_name)
          USING t.table_name, t.column_name;
    END LOOP;
END
$migrate$;

-- Out of the extension first: that also takes them off its list of
-- configuration tables (pg_extension.extconfig), which DROP TABLE alone
-- leaves behind.
ALTER EXTENSION pg_atomik DROP TABLE atomik.vector;
ALTER EXTENSION pg_atomik DROP TABLE atomik.folded;
ALTER EXTENSION pg_atomik DROP TABLE atomik.batches;
ALTER EXTENSION pg_atomik DROP TABLE atomik.peers;
DROP TABLE atomik.vector, atomik.folded, atomik.batches, atomik.peers;
ALTER TABLE atomik.meta DROP COLUMN relay;
