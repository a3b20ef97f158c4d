//! `atomik_digest(table, column)`: core's order-independent digest of
//! (primary key, read value) over every non-NULL cell — the same number
//! PostgreSQL computes for the same content.

use atomik_core::digest::Digest;
use atomik_core::AtomikValue;
use rusqlite::types::ValueRef;
use rusqlite::Connection;

use crate::ident::{quote, resolve};
use crate::keys::key_from_row;

/// The digest of `table.column` (tracked or not; the table needs an integer,
/// text or composite primary key).
///
/// # Errors
/// A missing table or column, an unsupported key, a cell that is not an
/// atomik value.
pub fn digest(conn: &Connection, table: &str, column: &str) -> Result<i64, String> {
    let c = resolve(conn, table, column)?;
    let keys: Vec<String> = c.key_cols.iter().map(|k| quote(k)).collect();
    let n = keys.len();
    let col = quote(&c.column);
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {}, {col} FROM {} WHERE {col} IS NOT NULL",
            keys.join(", "),
            quote(&c.table)
        ))
        .map_err(|e| e.to_string())?;
    let mut rows = stmt.query([]).map_err(|e| e.to_string())?;
    let mut d = Digest::new();
    while let Some(row) = rows.next().map_err(|e| e.to_string())? {
        let key = key_from_row(row, 0, &c.shape, &c.table)?;
        let v = match row.get_ref(n).map_err(|e| e.to_string())? {
            ValueRef::Blob(b) => AtomikValue::from_bytes(b)
                .map_err(|e| format!("\"{}\".\"{}\" key {key}: {e}", c.table, c.column))?,
            other => {
                return Err(format!(
                    "\"{}\".\"{}\" key {key} holds {}, not an atomik value (a 17-byte BLOB)",
                    c.table,
                    c.column,
                    crate::args::type_name(&other)
                ))
            }
        };
        d.add(&key, &v);
    }
    Ok(d.value())
}
