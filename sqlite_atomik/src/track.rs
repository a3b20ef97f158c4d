//! `atomik_track` / `atomik_untrack`: put a column under replication.
//!
//! A seal reads what was written, never the table: two triggers record a
//! tracked cell in `atomik_dirty` when a local write inserts it or makes a
//! clean cell pending (a hot cell's later increments cost nothing more),
//! so new cells ship once even at the identity (rule 3). A third trigger
//! refuses changing a tracked row's primary key. All are plain SQL, so the
//! database stays writable by connections that have not loaded the
//! extension (their writes are recorded too).

use atomik_core::Group;
use rusqlite::{params, Connection, OptionalExtension};

use crate::ident::{literal, quote, resolve, shape_to_text, ColumnRef, KEY_COL_SEP};

/// Track `table.column`, fixing its group: `group` if given, else the
/// group of its existing cells, else `add`. Returns 1 when newly tracked,
/// 0 when it already was (in that group). Existing non-NULL cells are
/// marked new, so they ship (as zero deltas when nothing is pending) at the
/// next seal.
///
/// # Errors
/// A missing table or column, a missing or unsupported primary key, a cell
/// that holds something other than an atomik value, an unknown group name,
/// cells of another group than `group` (or of both groups, with no
/// `group`), a column already tracked in another group.
pub fn track(
    conn: &Connection,
    table: &str,
    column: &str,
    group: Option<&str>,
) -> Result<i64, String> {
    let c = resolve(conn, table, column)?;
    let wanted: Option<Group> = group
        .map(|g| g.parse::<Group>().map_err(|e| e.to_string()))
        .transpose()?;
    let existing: Option<(i64, String)> = conn
        .query_row(
            "SELECT id, grp FROM atomik_tracked WHERE tbl = ?1 AND col = ?2",
            params![c.table, c.column],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    if let Some((_, tracked)) = existing {
        return match wanted {
            Some(g) if g.name() != tracked => Err(format!(
                "column \"{}\".\"{}\" is already tracked as {tracked}; a tracked column's group cannot change (atomik_untrack it first)",
                c.table, c.column
            )),
            _ => Ok(0),
        };
    }
    check_cells(conn, &c)?;
    let group = fixed_group(conn, &c, wanted)?;
    let key_cols = c.key_cols.join(&KEY_COL_SEP.to_string());
    conn.execute(
        "INSERT INTO atomik_tracked(tbl, col, key_cols, key_kinds, grp) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![c.table, c.column, key_cols, shape_to_text(&c.shape), group.name()],
    )
    .map_err(|e| e.to_string())?;
    let cid = conn.last_insert_rowid();
    let tracked = crate::tracked::Tracked::new(
        cid,
        c.table.clone(),
        c.column.clone(),
        &key_cols,
        &shape_to_text(&c.shape),
        group.name(),
    )?;
    conn.execute_batch(&format!("{}{}", triggers(cid, &c), tracked.write_triggers))
        .map_err(|e| format!("cannot create the atomik triggers on \"{}\": {e}", c.table))?;
    conn.execute(&tracked.mark_all, [cid])
        .map_err(|e| e.to_string())?;
    Ok(1)
}

/// The group a newly tracked column is fixed to: `wanted`, which every
/// existing cell must be in; else the one group its cells are in; else
/// `add`.
fn fixed_group(conn: &Connection, c: &ColumnRef, wanted: Option<Group>) -> Result<Group, String> {
    let col = quote(&c.column);
    let groups: Vec<String> = conn
        .prepare(&format!(
            "SELECT DISTINCT CASE hex(substr({col}, 1, 1)) WHEN '12' THEN 'xor' ELSE 'add' END \
             FROM {} WHERE {col} IS NOT NULL ORDER BY 1",
            quote(&c.table)
        ))
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| e.to_string())?;
    let found = groups
        .iter()
        .map(|g| g.parse::<Group>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    atomik_core::store::tracked_group(&c.table, &c.column, wanted, &found)
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

/// Stop tracking `table.column`: its triggers, records and parked deltas go.
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
         DROP TRIGGER IF EXISTS \"atomik_written_{cid}\";
         DROP TRIGGER IF EXISTS \"atomik_rewritten_{cid}\";
         DELETE FROM atomik_dirty WHERE cid = {cid};
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
