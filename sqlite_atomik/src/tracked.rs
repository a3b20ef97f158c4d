//! A tracked column as the store uses it: names, key shape, and the SQL it
//! runs, built once from `atomik_tracked` with every identifier quoted.

use atomik_core::{KeyShape, TrackedColumn};
use rusqlite::Connection;

use crate::ident::{quote, shape_from_text, KEY_COL_SEP};

/// One row of `atomik_tracked` and the statements over its table.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// `atomik_tracked.id`, also the `cid` of its rows in `atomik_new`.
    pub cid: i64,
    /// Table name.
    pub table: String,
    /// Column name.
    pub column: String,
    /// Primary-key column names.
    pub key_cols: Vec<String>,
    /// Primary-key kinds.
    pub shape: KeyShape,
    /// `SELECT c FROM t WHERE key = ?2..`.
    pub select_cell: String,
    /// `UPDATE t SET c = ?1 WHERE key = ?2..`.
    pub update_cell: String,
    /// `INSERT INTO t(key.., c) VALUES (?2.., ?1)`.
    pub insert_row: String,
    /// Key columns and value of every cell with a pending accumulator, at
    /// the identity and not in `atomik_known` (new), or holding something
    /// that is not an atomik value (to report it). `?1` = cid.
    pub scan_pending: String,
    /// Key columns and value of every non-NULL cell.
    pub scan_all: String,
    /// `INSERT OR IGNORE INTO atomik_known(cid, k1..) VALUES (?1, ?2..)`.
    pub note_known: String,
    /// Distinct keys marked in `atomik_new` when the column was tracked
    /// (its cells at that time ship once, as zero deltas if nothing is
    /// pending).
    pub marks: String,
    /// `UPDATE t SET c = atomik_internal_receive(c, ?1, ?2) WHERE key = ?3..`:
    /// one remote delta in one statement.
    pub receive_cell: String,
}

impl Tracked {
    /// Build from the stored row.
    ///
    /// # Errors
    /// When the stored key kinds are damaged.
    pub fn new(
        cid: i64,
        table: String,
        column: String,
        key_cols: &str,
        kinds: &str,
    ) -> Result<Self, String> {
        let key_cols: Vec<String> = key_cols.split(KEY_COL_SEP).map(str::to_string).collect();
        let shape = shape_from_text(kinds)?;
        if shape.kinds().len() != key_cols.len() {
            return Err(format!(
                "atomik_tracked row for {table}.{column} is damaged"
            ));
        }
        let t = quote(&table);
        let c = quote(&column);
        let n = key_cols.len();
        let keys: Vec<String> = key_cols.iter().map(|k| quote(k)).collect();
        let key_list = keys.join(", ");
        let where_key = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} = ?{}", i + 2))
            .collect::<Vec<_>>()
            .join(" AND ");
        let mark_cols = (1..=n)
            .map(|i| format!("k{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let where_key3 = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{k} = ?{}", i + 3))
            .collect::<Vec<_>>()
            .join(" AND ");
        // `+` strips the key column's affinity so the comparison can use
        // atomik_known's primary key (whose columns have none).
        let known_match = keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("k{} = +{t}.{k}", i + 1))
            .collect::<Vec<_>>()
            .join(" AND ");
        let params = (2..n + 2)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Tracked {
            select_cell: format!("SELECT {c} FROM {t} WHERE {where_key}"),
            update_cell: format!("UPDATE {t} SET {c} = ?1 WHERE {where_key}"),
            insert_row: format!("INSERT INTO {t}({key_list}, {c}) VALUES ({params}, ?1)"),
            scan_pending: format!(
                "SELECT {key_list}, {c} FROM {t} WHERE {c} IS NOT NULL AND \
                 (typeof({c}) <> 'blob' OR length({c}) <> 17 OR substr({c}, 10) <> zeroblob(8) \
                 OR ({c} IN (x'1100000000000000000000000000000000', x'1200000000000000000000000000000000') \
                 AND NOT EXISTS (SELECT 1 FROM atomik_known WHERE cid = ?1 AND {known_match})))"
            ),
            scan_all: format!("SELECT {key_list}, {c} FROM {t} WHERE {c} IS NOT NULL"),
            note_known: format!("INSERT OR IGNORE INTO atomik_known(cid, {mark_cols}) VALUES (?1, {params})"),
            marks: format!("SELECT DISTINCT {mark_cols} FROM atomik_new WHERE cid = ?1"),
            receive_cell: format!(
                "UPDATE {t} SET {c} = atomik_internal_receive({c}, ?1, ?2) WHERE {where_key3}"
            ),
            cid,
            table,
            column,
            key_cols,
            shape,
        })
    }

    /// As core's [`TrackedColumn`].
    pub fn as_core(&self) -> TrackedColumn {
        TrackedColumn {
            table: self.table.clone(),
            column: self.column.clone(),
            shape: self.shape.clone(),
        }
    }
}

/// Every tracked column, in id order.
///
/// # Errors
/// SQLite errors or a damaged `atomik_tracked` row.
pub fn load(conn: &Connection) -> Result<Vec<Tracked>, String> {
    let mut stmt = conn
        .prepare_cached("SELECT id, tbl, col, key_cols, key_kinds FROM atomik_tracked ORDER BY id")
        .map_err(|e| e.to_string())?;
    let rows: Vec<(i64, String, String, String, String)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .and_then(Iterator::collect)
        .map_err(|e| e.to_string())?;
    rows.into_iter()
        .map(|(id, t, c, k, s)| Tracked::new(id, t, c, &k, &s))
        .collect()
}
