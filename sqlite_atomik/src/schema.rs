//! The extension's own tables, created on first use, and the schema version
//! that lets a newer extension open an older database and refuse one it
//! cannot read.

use atomik_core::SiteId;
use rusqlite::{Connection, OptionalExtension};

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: i64 = 1;

/// Every table of the extension's own schema (version 1).
const CREATE_V1: &str = "
CREATE TABLE atomik_meta(key TEXT PRIMARY KEY, value NOT NULL);
CREATE TABLE atomik_tracked(
    id INTEGER PRIMARY KEY,
    tbl TEXT NOT NULL,
    col TEXT NOT NULL,
    key_cols TEXT NOT NULL,
    key_kinds TEXT NOT NULL,
    UNIQUE(tbl, col));
CREATE TABLE atomik_vector(site BLOB PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE atomik_folded(site BLOB PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE atomik_batches(
    origin BLOB NOT NULL,
    seq INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    PRIMARY KEY(origin, seq));
CREATE TABLE atomik_peers(
    site BLOB NOT NULL,
    role TEXT NOT NULL,
    vector BLOB NOT NULL,
    last_seen INTEGER NOT NULL,
    PRIMARY KEY(site, role));
CREATE TABLE atomik_settings(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE atomik_parked(
    tbl TEXT NOT NULL,
    col TEXT NOT NULL,
    grp TEXT NOT NULL,
    key BLOB NOT NULL,
    key_text TEXT NOT NULL,
    delta INTEGER NOT NULL,
    PRIMARY KEY(tbl, col, key));
CREATE TABLE atomik_new(cid INTEGER NOT NULL, k1, k2, k3, k4, k5, k6, k7, k8);
CREATE INDEX atomik_new_cid ON atomik_new(cid);
CREATE TABLE atomik_known(
    cid INTEGER NOT NULL,
    k1 NOT NULL, k2 NOT NULL DEFAULT 0, k3 NOT NULL DEFAULT 0, k4 NOT NULL DEFAULT 0,
    k5 NOT NULL DEFAULT 0, k6 NOT NULL DEFAULT 0, k7 NOT NULL DEFAULT 0, k8 NOT NULL DEFAULT 0,
    PRIMARY KEY(cid, k1, k2, k3, k4, k5, k6, k7, k8)) WITHOUT ROWID;
";

/// Make sure the schema exists and is one this build reads; create it (with
/// a fresh random site id) on first use. Runs inside the caller's savepoint.
///
/// # Errors
/// A database written by a newer atomik, a damaged schema, SQLite errors.
pub fn ensure(conn: &Connection) -> Result<(), String> {
    let exists: bool = conn
        .prepare_cached(
            "SELECT EXISTS(SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'atomik_meta')",
        )
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(|e| e.to_string())?;
    if !exists {
        return create(conn);
    }
    let version: Option<i64> = conn
        .prepare_cached("SELECT value FROM atomik_meta WHERE key = 'schema_version'")
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(|e| format!("cannot read atomik_meta: {e}"))?;
    match version {
        None => Err("atomik_meta has no schema_version: the atomik tables of this database are damaged".to_string()),
        Some(v) if v > SCHEMA_VERSION => Err(format!(
            "this database was written by a newer atomik (schema version {v}); atomik {} reads schema versions up to {SCHEMA_VERSION}: upgrade the extension",
            atomik_core::VERSION
        )),
        Some(v) if v < 1 => Err(format!("atomik_meta holds an invalid schema_version {v}")),
        // Version 1 is the first; later versions migrate older ones here.
        Some(_) => Ok(()),
    }
}

fn create(conn: &Connection) -> Result<(), String> {
    let site = SiteId::random()?;
    conn.execute_batch(CREATE_V1)
        .map_err(|e| format!("cannot create the atomik tables: {e}"))?;
    conn.execute(
        "INSERT INTO atomik_meta(key, value) VALUES ('schema_version', ?1), ('site_id', ?2), ('relay', 0)",
        rusqlite::params![SCHEMA_VERSION, site.as_bytes().as_slice()],
    )
    .map_err(|e| format!("cannot initialise atomik_meta: {e}"))?;
    Ok(())
}
