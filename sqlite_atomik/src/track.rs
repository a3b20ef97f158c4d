//! `atomik_track` / `atomik_untrack`: put a column under replication.
//!
//! New cells (rule 3) are found at seal time, not by triggers: a cell with a
//! pending accumulator always ships, and a cell at the identity ships once
//! unless it is in `atomik_known` (identity cells this replica has already
//! shipped or received). So local writes pay nothing beyond the value
//! function itself. The only trigger refuses changing a tracked row's
//! primary key; it is plain SQL, so the database stays usable by
//! connections that have not loaded the extension.

use rusqlite::{params, Connection, OptionalExtension};

use crate::ident::{literal, quote, resolve, shape_to_text, ColumnRef, KEY_COL_SEP};

/// Track `table.column`. Returns 1 when newly tracked, 0 when it already
/// was. Existing non-NULL cells are marked new, so they ship (as zero
/// deltas when nothing is pending) at the next seal.
///
/// # Errors
/// A missing table or column, a missing or unsupported primary key, a cell
/// that holds something other than an atomik value.
pub fn track(conn: &Connection, table: &str, column: &str) -> Result<i64, String> {
    let c = resolve(conn, table, column)?;
    let existing: Option<i64> = conn
        .query_row(
            "SELECT id FROM atomik_tracked WHERE tbl = ?1 AND col = ?2",
            params![c.table, c.column],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    if existing.is_some() {
        return Ok(0);
    }
    check_cells(conn, &c)?;
    let key_cols = c.key_cols.join(&KEY_COL_SEP.to_string());
    conn.execute(
        "INSERT INTO atomik_tracked(tbl, col, key_cols, key_kinds) VALUES (?1, ?2, ?3, ?4)",
        params![c.table, c.column, key_cols, shape_to_text(&c.shape)],
    )
    .map_err(|e| e.to_string())?;
    let cid = conn.last_insert_rowid();
    conn.execute_batch(&triggers(cid, &c))
        .map_err(|e| format!("cannot create the atomik triggers on \"{}\": {e}", c.table))?;
    let t = quote(&c.table);
    let col = quote(&c.column);
    let keys: Vec<String> = c.key_cols.iter().map(|k| quote(k)).collect();
    let marks: Vec<String> = (1..=keys.len()).map(|i| format!("k{i}")).collect();
    conn.execute(
        &format!(
            "INSERT INTO atomik_new(cid, {}) SELECT ?1, {} FROM {t} WHERE {col} IS NOT NULL",
            marks.join(", "),
            keys.join(", ")
        ),
        [cid],
    )
    .map_err(|e| e.to_string())?;
    Ok(1)
}

/// Every non-NULL cell must already be an atomik value.
fn check_cells(conn: &Connection, c: &ColumnRef) -> Result<(), String> {
    let col = quote(&c.column);
    let bad: Option<String> = conn
        .query_row(
            &format!(
                "SELECT typeof({col}) || ' of ' || length({col}) || ' bytes' FROM {} \
                 WHERE {col} IS NOT NULL AND (typeof({col}) <> 'blob' OR length({col}) <> 17 \
                 OR hex(substr({col}, 1, 1)) NOT IN ('11', '12')) LIMIT 1",
                quote(&c.table)
            ),
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    match bad {
        Some(what) => Err(format!(
            "column \"{}\".\"{}\" holds a {what} that is not an atomik value; store atomik_add(..) or atomik_xor(..) values",
            c.table, c.column
        )),
        None => Ok(()),
    }
}

/// The trigger that refuses a change of a tracked row's primary key.
fn triggers(cid: i64, c: &ColumnRef) -> String {
    let t = quote(&c.table);
    let key_changed: Vec<String> = c
        .key_cols
        .iter()
        .map(|k| format!("NEW.{0} IS NOT OLD.{0}", quote(k)))
        .collect();
    let key_list: Vec<String> = c.key_cols.iter().map(|k| quote(k)).collect();
    let refuse = literal(&format!(
        "atomik: the primary key of a row of tracked table \"{}\" cannot change; delete the row and insert a new one",
        c.table
    ));
    format!(
        "CREATE TRIGGER \"atomik_key_{cid}\" BEFORE UPDATE OF {} ON {t} WHEN {} BEGIN SELECT RAISE(ABORT, {refuse}); END;",
        key_list.join(", "),
        key_changed.join(" OR ")
    )
}

/// Stop tracking `table.column`: its triggers, marks and parked deltas go.
/// Returns 1 when it was tracked, 0 when it was not.
///
/// # Errors
/// SQLite errors.
pub fn untrack(conn: &Connection, table: &str, column: &str) -> Result<i64, String> {
    let row: Option<(i64, String, String)> = conn
        .query_row(
            "SELECT id, tbl, col FROM atomik_tracked WHERE tbl = ?1 COLLATE NOCASE AND col = ?2 COLLATE NOCASE",
            params![table, column],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    let Some((cid, tbl, col)) = row else {
        return Ok(0);
    };
    conn.execute_batch(&format!(
        "DROP TRIGGER IF EXISTS \"atomik_key_{cid}\";
         DELETE FROM atomik_new WHERE cid = {cid};
         DELETE FROM atomik_known WHERE cid = {cid};
         DELETE FROM atomik_tracked WHERE id = {cid};"
    ))
    .map_err(|e| e.to_string())?;
    conn.execute(
        "DELETE FROM atomik_parked WHERE tbl = ?1 AND col = ?2",
        params![tbl, col],
    )
    .map_err(|e| e.to_string())?;
    Ok(1)
}
