-- Replication state of this replica, in schema atomik. Every table is
-- marked with pg_extension_config_dump so that pg_dump / pg_restore keep
-- the site id, vectors, stored batches and peers.
CREATE SCHEMA IF NOT EXISTS atomik;
COMMENT ON SCHEMA atomik IS 'pg_atomik replication state and internal helpers';

-- One row: this replica's identity (created on first use, never at
-- CREATE EXTENSION, so that a restored dump keeps its own).
CREATE TABLE atomik.meta (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    site_id bytea NOT NULL CHECK (length(site_id) = 16),
    relay boolean NOT NULL DEFAULT false,
    schema_version integer NOT NULL DEFAULT 1
);

-- Columns under replication. table_name is the name on the wire (the
-- unqualified relation name); relid is what SQL is built from.
CREATE TABLE atomik.tracked (
    table_name text NOT NULL,
    column_name text NOT NULL,
    relid regclass NOT NULL,
    key_columns text[] NOT NULL,
    key_kinds text NOT NULL CHECK (key_kinds ~ '^[it]{1,8}$'),
    PRIMARY KEY (table_name, column_name)
);

-- Version vector: per origin site, the highest seq applied.
CREATE TABLE atomik.vector (
    site bytea PRIMARY KEY CHECK (length(site) = 16),
    seq bigint NOT NULL CHECK (seq > 0)
);

-- Folded vector: per origin, the highest seq no longer in atomik.batches.
CREATE TABLE atomik.folded (
    site bytea PRIMARY KEY CHECK (length(site) = 16),
    seq bigint NOT NULL CHECK (seq > 0)
);

-- Batch store, per origin (never two origins merged into one record);
-- bytes is the batch encoded with the atomik wire codec.
CREATE TABLE atomik.batches (
    origin bytea NOT NULL CHECK (length(origin) = 16),
    seq bigint NOT NULL CHECK (seq > 0),
    bytes bytea NOT NULL,
    PRIMARY KEY (origin, seq)
);

-- Registered peers, for retention. vector is an encoded vector message.
CREATE TABLE atomik.peers (
    site bytea NOT NULL CHECK (length(site) = 16),
    role text NOT NULL CHECK (role IN ('downstream', 'upstream')),
    vector bytea NOT NULL,
    last_seen bigint NOT NULL,
    PRIMARY KEY (site, role)
);

-- Numeric settings (horizon_secs, pending_upstream_since).
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
-- ships even at the identity). Filled by the triggers atomik_track adds.
CREATE TABLE atomik.new_cells (
    table_name text NOT NULL,
    column_name text NOT NULL,
    key text[] NOT NULL,
    PRIMARY KEY (table_name, column_name, key)
);

SELECT pg_catalog.pg_extension_config_dump('atomik.meta', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.tracked', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.vector', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.folded', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.batches', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.peers', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.settings', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.parked', '');
SELECT pg_catalog.pg_extension_config_dump('atomik.new_cells', '');

-- Marks a tracked cell created by a local INSERT (or an UPDATE from NULL)
-- as new. Arguments: wire table name, column name, key column names.
-- Remote applies set atomik.applying for their transaction and are skipped.
CREATE FUNCTION atomik.mark_new() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
    k text[] := '{}';
BEGIN
    IF current_setting('atomik.applying', true) = 'on' THEN
        RETURN NULL;
    END IF;
    r := to_jsonb(NEW);
    FOR i IN 2 .. TG_NARGS - 1 LOOP
        k := k || (r ->> TG_ARGV[i]);
    END LOOP;
    INSERT INTO atomik.new_cells VALUES (TG_ARGV[0], TG_ARGV[1], k)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

-- Any role may write tracked tables, so any role may mark new cells and
-- see what is parked. Everything else needs an explicit GRANT (README).
GRANT USAGE ON SCHEMA atomik TO PUBLIC;
GRANT INSERT ON atomik.new_cells TO PUBLIC;
GRANT SELECT ON atomik.parked, atomik.tracked TO PUBLIC;
