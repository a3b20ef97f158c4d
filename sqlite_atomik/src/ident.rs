//! Identifiers and tracked-column metadata. Table and column names come only
//! from `atomik_tracked` (checked against the schema when tracked) or from
//! the user's own `atomik_track` / `atomik_digest` arguments, and are always
//! quoted; names arriving in a message are only compared with them.

use atomik_core::{KeyKind, KeyShape};
use rusqlite::{Connection, OptionalExtension};

/// `name` as a quoted SQL identifier (`"` doubled inside).
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a quoted SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A table's primary key and one of its columns, as found in the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    /// The table name as spelled in its `CREATE TABLE`.
    pub table: String,
    /// The column name as spelled in its `CREATE TABLE`.
    pub column: String,
    /// Primary-key column names, in key order.
    pub key_cols: Vec<String>,
    /// Their kinds.
    pub shape: KeyShape,
}

/// Look up `table.column` in the main schema and its primary key.
///
/// # Errors
/// A sentence saying what is missing or unsupported.
pub fn resolve(conn: &Connection, table: &str, column: &str) -> Result<ColumnRef, String> {
    let canonical: Option<String> = conn
        .query_row(
            "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            [table],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| e.to_string())?;
    let Some(table_name) = canonical else {
        return Err(format!("table \"{table}\" does not exist"));
    };
    let mut stmt = conn
        .prepare("SELECT name, type, pk FROM pragma_table_info(?1, 'main') ORDER BY cid")
        .map_err(|e| e.to_string())?;
    let cols: Vec<(String, String, i64)> = stmt
        .query_map([&table_name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(Iterator::collect)
        .map_err(|e| e.to_string())?;
    let Some((col_name, _, col_pk)) = cols.iter().find(|c| c.0.eq_ignore_ascii_case(column)) else {
        return Err(format!(
            "column \"{column}\" of table \"{table_name}\" does not exist"
        ));
    };
    if *col_pk > 0 {
        return Err(format!(
            "column \"{col_name}\" is part of the primary key of \"{table_name}\"; track a value column"
        ));
    }
    let mut pk: Vec<&(String, String, i64)> = cols.iter().filter(|c| c.2 > 0).collect();
    if pk.is_empty() {
        return Err(format!(
            "table \"{table_name}\" has no primary key; atomik needs one (integer, text or composite)"
        ));
    }
    pk.sort_by_key(|c| c.2);
    let mut kinds = Vec::with_capacity(pk.len());
    for (name, decl, _) in &pk {
        kinds.push(key_kind(decl).ok_or_else(|| {
            format!(
                "primary key column \"{name}\" of \"{table_name}\" has type \"{decl}\"; atomik keys are INTEGER or TEXT columns"
            )
        })?);
    }
    let shape = KeyShape::new(kinds).map_err(|e| format!("table \"{table_name}\": {e}"))?;
    Ok(ColumnRef {
        table: table_name.clone(),
        column: col_name.clone(),
        key_cols: pk.iter().map(|c| c.0.clone()).collect(),
        shape,
    })
}

/// The key kind of a declared column type, by SQLite's affinity rules.
fn key_kind(decl: &str) -> Option<KeyKind> {
    let d = decl.to_ascii_uppercase();
    if d.contains("INT") {
        Some(KeyKind::Int)
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        Some(KeyKind::Text)
    } else {
        None
    }
}

/// Key kinds as stored in `atomik_tracked.key_kinds` (`int,text`).
pub fn shape_to_text(shape: &KeyShape) -> String {
    shape
        .kinds()
        .iter()
        .map(|k| match k {
            KeyKind::Int => "int",
            KeyKind::Text => "text",
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Inverse of [`shape_to_text`].
///
/// # Errors
/// When the text is not a stored shape.
pub fn shape_from_text(text: &str) -> Result<KeyShape, String> {
    let kinds = text
        .split(',')
        .map(|k| match k {
            "int" => Ok(KeyKind::Int),
            "text" => Ok(KeyKind::Text),
            other => Err(format!(
                "atomik_tracked holds an unknown key kind \"{other}\""
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    KeyShape::new(kinds)
}

/// Key column names as stored in `atomik_tracked.key_cols` (a unit
/// separator between names, which identifiers never contain in practice).
pub const KEY_COL_SEP: char = '\u{1f}';
