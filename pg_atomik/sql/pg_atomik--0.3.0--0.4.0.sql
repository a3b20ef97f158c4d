-- pg_atomik 0.3.0 -> 0.4.0: a root hub serves syncs of different devices
-- in parallel (no database-wide lock held for a whole sync).
--
-- * New table atomik.log_pending: serves append here, and the one
--   transaction at a time that holds the log_end settings row numbers
--   every committed pending entry into atomik.log, so that a position
--   handed out as a cursor is never passed by an entry that commits later.
-- * atomik.registry admits seq 0: a serve locks each origin's row before
--   it applies anything, creating it at 0 for an origin's first batch.
-- The functions keep their names, types and C symbols.

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
