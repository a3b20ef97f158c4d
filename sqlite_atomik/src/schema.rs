//! The extension's own tables, created on first use, and the schema version
//! that lets a newer extension open an older database and refuse one it
//! cannot read.

use atomik_core::SiteId;
use rusqlite::{Connection, OptionalExtension};

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: i64 = 5;

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

/// What version 2 (protocol v2) adds: the outbox, the hub's log and
/// registry, and the record of locally written cells that a seal reads.
const CREATE_V2: &str = "
CREATE TABLE atomik_outbox(
    position INTEGER PRIMARY KEY,
    origin BLOB NOT NULL,
    seq INTEGER NOT NULL,
    bytes BLOB NOT NULL);
CREATE TABLE atomik_log(
    position INTEGER PRIMARY KEY,
    origin BLOB NOT NULL,
    seq INTEGER NOT NULL,
    via BLOB NOT NULL,
    appended_at INTEGER NOT NULL,
    bytes BLOB NOT NULL);
CREATE INDEX atomik_log_appended ON atomik_log(appended_at);
CREATE TABLE atomik_registry(site BLOB PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE atomik_dirty(
    cid INTEGER NOT NULL,
    k1 NOT NULL, k2 NOT NULL DEFAULT 0, k3 NOT NULL DEFAULT 0, k4 NOT NULL DEFAULT 0,
    k5 NOT NULL DEFAULT 0, k6 NOT NULL DEFAULT 0, k7 NOT NULL DEFAULT 0, k8 NOT NULL DEFAULT 0,
    new INTEGER NOT NULL DEFAULT 0,
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
        Some(1) => {
            migrate_1_to_2(conn)?;
            migrate_2_to_3(conn)?;
            migrate_3_to_4(conn)?;
            migrate_4_to_5(conn)
        }
        Some(2) => {
            migrate_2_to_3(conn)?;
            migrate_3_to_4(conn)?;
            migrate_4_to_5(conn)
        }
        Some(3) => {
            migrate_3_to_4(conn)?;
            migrate_4_to_5(conn)
        }
        Some(4) => migrate_4_to_5(conn),
        Some(_) => Ok(()),
    }
}

/// Whether the atomik tables exist at this build's schema version, for a
/// reader that must not write (a table-valued function): `false` for a
/// database without them.
///
/// # Errors
/// A schema of another version (an older one is upgraded by the first
/// call of any atomik function), SQLite errors.
pub fn readable(conn: &Connection) -> Result<bool, String> {
    if !table_exists(conn, "atomik_meta")? {
        return Ok(false);
    }
    let version: Option<i64> = conn
        .prepare_cached("SELECT value FROM atomik_meta WHERE key = 'schema_version'")
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(|e| format!("cannot read atomik_meta: {e}"))?;
    match version {
        Some(SCHEMA_VERSION) => Ok(true),
        Some(v) if v < SCHEMA_VERSION => Err(format!(
            "this database's atomik tables are at schema version {v}: upgrade them to {SCHEMA_VERSION} first by calling any atomik function (SELECT atomik_site_id())"
        )),
        _ => ensure(conn).map(|()| true),
    }
}

fn create(conn: &Connection) -> Result<(), String> {
    let site = SiteId::random()?;
    conn.execute_batch(CREATE_V1)
        .map_err(|e| format!("cannot create the atomik tables: {e}"))?;
    conn.execute(
        "INSERT INTO atomik_meta(key, value) VALUES ('schema_version', ?1), ('site_id', ?2), ('relay', 0)",
        rusqlite::params![1, site.as_bytes().as_slice()],
    )
    .map_err(|e| format!("cannot initialise atomik_meta: {e}"))?;
    migrate_1_to_2(conn)?;
    migrate_2_to_3(conn)?;
    migrate_3_to_4(conn)?;
    migrate_4_to_5(conn)
}

/// Version 4 to 5, in the caller's savepoint: the write triggers are
/// re-created so that a plain value written into a tracked column is
/// refused at its statement (before, the seal refused it, and every sync
/// of the file failed until it was fixed by hand).
fn migrate_4_to_5(conn: &Connection) -> Result<(), String> {
    let fail =
        |e: rusqlite::Error| format!("cannot upgrade the atomik tables to schema version 5: {e}");
    recreate_write_triggers(conn, &fail)?;
    conn.execute(
        "UPDATE atomik_meta SET value = 5 WHERE key = 'schema_version'",
        [],
    )
    .map_err(fail)?;
    Ok(())
}

/// Drop and create again the write triggers of every tracked column whose
/// table exists.
fn recreate_write_triggers(
    conn: &Connection,
    fail: &dyn Fn(rusqlite::Error) -> String,
) -> Result<(), String> {
    for t in crate::tracked::load(conn)? {
        if !table_exists(conn, &t.table)? {
            continue;
        }
        conn.execute_batch(&format!(
            "DROP TRIGGER IF EXISTS \"atomik_written_{0}\"; DROP TRIGGER IF EXISTS \"atomik_rewritten_{0}\";",
            t.cid
        ))
        .map_err(fail)?;
        conn.execute_batch(&t.write_triggers).map_err(fail)?;
    }
    Ok(())
}

/// What version 4 adds: device keys (`atomik_core::auth`), per site — a
/// hub's enrolled devices, a device's own key under its own site id.
const CREATE_V4: &str = "
CREATE TABLE IF NOT EXISTS atomik_device_keys(site BLOB PRIMARY KEY, key BLOB NOT NULL);
";

/// Version 3 to 4, in the caller's savepoint: the device-key table.
fn migrate_3_to_4(conn: &Connection) -> Result<(), String> {
    let fail =
        |e: rusqlite::Error| format!("cannot upgrade the atomik tables to schema version 4: {e}");
    conn.execute_batch(CREATE_V4).map_err(fail)?;
    conn.execute(
        "UPDATE atomik_meta SET value = 4 WHERE key = 'schema_version'",
        [],
    )
    .map_err(fail)?;
    Ok(())
}

/// Version 1 (protocol v1) to 2 (protocol v2), in the caller's savepoint:
/// the v2 tables; the registry is the v1 vector (per origin, the highest
/// seq applied); this replica's own stored batches become its outbox;
/// a v1 hub stays a hub (a relay if it had an upstream, else a root);
/// every cell a v1 seal would have shipped is recorded as written; the
/// tracked columns get their write triggers. Cursors start empty, so every
/// device's first v2 sync takes a snapshot. The v1 tables are emptied.
fn migrate_1_to_2(conn: &Connection) -> Result<(), String> {
    let fail =
        |e: rusqlite::Error| format!("cannot upgrade the atomik tables to schema version 2: {e}");
    conn.execute_batch(CREATE_V2).map_err(fail)?;
    conn.execute_batch(
        "INSERT INTO atomik_registry(site, seq) SELECT site, seq FROM atomik_vector;
         INSERT INTO atomik_settings(name, value)
             SELECT 'v2_own_seq', v.seq FROM atomik_vector v, atomik_meta m
             WHERE m.key = 'site_id' AND v.site = m.value;
         INSERT INTO atomik_outbox(position, origin, seq, bytes)
             SELECT b.seq, b.origin, b.seq, b.bytes FROM atomik_batches b, atomik_meta m
             WHERE m.key = 'site_id' AND b.origin = m.value;
         INSERT INTO atomik_settings(name, value)
             SELECT 'v2_outbox_end', max(position) FROM atomik_outbox HAVING count(*) > 0;
         INSERT INTO atomik_settings(name, value)
             SELECT 'v2_upstream', 1 WHERE EXISTS (SELECT 1 FROM atomik_peers WHERE role = 'upstream')
                 OR EXISTS (SELECT 1 FROM atomik_settings WHERE name = 'pending_upstream_since');
         INSERT INTO atomik_settings(name, value)
             SELECT 'v2_hub', 1 FROM atomik_meta WHERE key = 'relay' AND value = 1;
         INSERT INTO atomik_settings(name, value)
             SELECT 'v2_root', 1 FROM atomik_meta WHERE key = 'relay' AND value = 1
             AND NOT EXISTS (SELECT 1 FROM atomik_settings WHERE name = 'v2_upstream');
         DELETE FROM atomik_outbox WHERE EXISTS (SELECT 1 FROM atomik_settings WHERE name = 'v2_root');
         DELETE FROM atomik_settings WHERE name IN ('pending_upstream_since', 'root_hub');",
    )
    .map_err(fail)?;
    add_groups(conn)?;
    for t in crate::tracked::load(conn)? {
        conn.execute(&t.mark_unshipped_v1, [t.cid]).map_err(fail)?;
        conn.execute_batch(&t.write_triggers).map_err(fail)?;
    }
    conn.execute_batch(
        "DELETE FROM atomik_vector; DELETE FROM atomik_folded; DELETE FROM atomik_batches;
         DELETE FROM atomik_peers; DELETE FROM atomik_new; DELETE FROM atomik_known;
         UPDATE atomik_meta SET value = 2 WHERE key = 'schema_version';",
    )
    .map_err(fail)?;
    Ok(())
}

/// Version 3 fixes each tracked column's group (`atomik_track`).
const GROUP_COLUMN: &str =
    "ALTER TABLE atomik_tracked ADD COLUMN grp TEXT NOT NULL DEFAULT 'add' CHECK (grp IN ('add', 'xor'));";

/// Version 2 to 3, in the caller's savepoint: every tracked column gets a
/// fixed group ([`add_groups`]) and its write triggers are re-created with
/// the group check.
fn migrate_2_to_3(conn: &Connection) -> Result<(), String> {
    let fail =
        |e: rusqlite::Error| format!("cannot upgrade the atomik tables to schema version 3: {e}");
    if add_groups(conn)? {
        recreate_write_triggers(conn, &fail)?;
    }
    conn.execute(
        "UPDATE atomik_meta SET value = 3 WHERE key = 'schema_version'",
        [],
    )
    .map_err(fail)?;
    Ok(())
}

/// Add `atomik_tracked.grp` unless it is there; each tracked column's group
/// is the group of its first non-NULL cell, else `add`. Whether it added it.
fn add_groups(conn: &Connection) -> Result<bool, String> {
    let fail = |e: rusqlite::Error| format!("cannot fix the groups of the tracked columns: {e}");
    let has_group: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM pragma_table_info('atomik_tracked') WHERE name = 'grp')",
            [],
            |r| r.get(0),
        )
        .map_err(fail)?;
    if has_group {
        return Ok(false);
    }
    conn.execute_batch(GROUP_COLUMN).map_err(fail)?;
    let columns: Vec<(i64, String, String)> = conn
        .prepare("SELECT id, tbl, col FROM atomik_tracked")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect()
        })
        .map_err(fail)?;
    for (cid, table, column) in columns {
        if !table_exists(conn, &table)? {
            continue;
        }
        let c = crate::ident::quote(&column);
        conn.execute(
            &format!(
                "UPDATE atomik_tracked SET grp = coalesce((SELECT CASE hex(substr({c}, 1, 1)) \
                 WHEN '12' THEN 'xor' ELSE 'add' END FROM {t} WHERE {c} IS NOT NULL LIMIT 1), 'add') \
                 WHERE id = ?1",
                t = crate::ident::quote(&table)
            ),
            [cid],
        )
        .map_err(fail)?;
    }
    Ok(true)
}

fn table_exists(conn: &Connection, table: &str) -> Result<bool, String> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = ?1)",
        [table],
        |r| r.get(0),
    )
    .map_err(|e| e.to_string())
}
