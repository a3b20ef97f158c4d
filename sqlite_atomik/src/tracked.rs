//! A tracked column as the store uses it: names, key shape, and the SQL it
//! runs, built once from `atomik_tracked` with every identifier quoted.

use atomik_core::{Group, KeyShape, TrackedColumn};
use rusqlite::Connection;

use crate::ident::{quote, shape_from_text, KEY_COL_SEP};

/// One row of `atomik_tracked` and the statements over its table.
#[derive(Debug, Clone)]
pub struct Tracked {
    /// `atomik_tracked.id`, also the `cid` of its rows in `atomik_dirty`.
    pub cid: i64,
    /// Table name.
    pub table: String,
    /// Column name.
    pub column: String,
    /// Primary-key column names.
    pub key_cols: Vec<String>,
    /// Primary-key kinds.
    pub shape: KeyShape,
    /// The column's group, fixed by `atomik_track`.
    pub group: Group,
    /// `SELECT c FROM t WHERE key = ?2..`.
    pub select_cell: String,
    /// `UPDATE t SET c = ?1 WHERE key = ?2..`.
    pub update_cell: String,
    /// `INSERT INTO t(key.., c) VALUES (?2.., ?1)`.
    pub insert_row: String,
    /// Key columns and value of every non-NULL cell.
    pub scan_all: String,
    /// The keys recorded in `atomik_dirty` (cells written locally since
    /// the last seal), each with its `new` mark. `?1` = cid.
    pub dirty_keys: String,
    /// `DELETE FROM atomik_dirty WHERE cid = ?1 AND k1 = ?2 ..`: forget one
    /// recorded cell (one that a remote delta created).
    pub forget_dirty: String,
    /// Forget the write record of every tracked column of the row with key
    /// `?2...` of this table (`?1` = this column's cid): a row a remote
    /// delta created was not written here, whatever its other columns'
    /// defaults.
    pub forget_row: String,
    /// Record every non-NULL cell as written (when the column is tracked:
    /// its cells ship once). `?1` = cid.
    pub mark_all: String,
    /// Record the cells a protocol v1 seal would have shipped (schema
    /// upgrade from version 1): pending accumulators, cells marked in
    /// `atomik_new`, identity cells not in `atomik_known`. `?1` = cid.
    pub mark_unshipped_v1: String,
    /// The triggers that record local writes in `atomik_dirty`: an insert
    /// of a non-NULL cell or an update from NULL (marked new: it ships even
    /// at the identity, rule 3); an update that makes a clean cell's
    /// accumulator non-zero (a cell whose accumulator is already non-zero
    /// is recorded already). A write of something that is not an atomik
    /// value, or of a value of another group, is refused at its statement.
    /// Plain SQL: connections that have not loaded the extension can still
    /// write the table.
    pub write_triggers: String,

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
        group: &str,
    ) -> Result<Self, String> {
        let group: Group = group.parse().map_err(|_| {
            format!("atomik_tracked row for {table}.{column} has a damaged group {group:?}")
        })?;
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
        // `atomik_dirty`'s key columns equal to `?2...`.
        let dirty_key = (1..=n)
            .map(|i| format!("k{i} = ?{}", i + 1))
            .collect::<Vec<_>>()
            .join(" AND ");
        Ok(Tracked {
            select_cell: format!("SELECT {c} FROM {t} WHERE {where_key}"),
            update_cell: format!("UPDATE {t} SET {c} = ?1 WHERE {where_key}"),
            insert_row: format!("INSERT INTO {t}({key_list}, {c}) VALUES ({params}, ?1)"),
            scan_all: format!("SELECT {key_list}, {c} FROM {t} WHERE {c} IS NOT NULL"),
            dirty_keys: format!("SELECT {mark_cols}, new FROM atomik_dirty WHERE cid = ?1"),
            forget_dirty: format!("DELETE FROM atomik_dirty WHERE cid = ?1 AND {dirty_key}"),
            forget_row: format!(
                "DELETE FROM atomik_dirty WHERE cid IN (SELECT id FROM atomik_tracked WHERE tbl = (SELECT tbl FROM atomik_tracked WHERE id = ?1)) AND {dirty_key}"
            ),
            mark_all: format!(
                "INSERT OR IGNORE INTO atomik_dirty(cid, {mark_cols}, new) SELECT ?1, {key_list}, 1 FROM {t} WHERE {c} IS NOT NULL"
            ),
            mark_unshipped_v1: format!(
                "INSERT OR IGNORE INTO atomik_dirty(cid, {mark_cols}, new) \
                 SELECT ?1, {key_list}, 1 FROM {t} WHERE {c} IS NOT NULL AND \
                 (typeof({c}) <> 'blob' OR length({c}) <> 17 OR substr({c}, 10) <> zeroblob(8) \
                 OR ({c} IN (x'1100000000000000000000000000000000', x'1200000000000000000000000000000000') \
                 AND NOT EXISTS (SELECT 1 FROM atomik_known WHERE cid = ?1 AND {known_match}))) \
                 UNION SELECT ?1, {mark_cols}, 1 FROM atomik_new WHERE cid = ?1"
            ),
            write_triggers: {
                let new_keys = keys
                    .iter()
                    .map(|k| format!("NEW.{k}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                // `+` strips the key column's affinity, so that the lookup
                // uses atomik_dirty's primary key (whose columns have none).
                let same_key = keys
                    .iter()
                    .enumerate()
                    .map(|(i, k)| format!("k{} = +NEW.{k}", i + 1))
                    .collect::<Vec<_>>()
                    .join(" AND ");
                // Not `INSERT OR IGNORE` / upserts: an outer statement's
                // conflict clause (an upsert, `INSERT OR REPLACE`) overrides
                // the one of a trigger's statement.
                // One trigger for every update of the column: AFTER
                // triggers make each UPDATE of the table costlier (even when
                // their WHEN is false), so there is as few of them as can be.
                let is_new = format!("OLD.{c} IS NULL");
                let not_value = |v: &str| format!("(typeof({v}) <> 'blob' OR length({v}) <> 17)");
                let insert = |new: &str| {
                    format!(
                        "INSERT INTO atomik_dirty(cid, {mark_cols}, new) SELECT {cid}, {new_keys}, {new} \
                         WHERE NOT EXISTS (SELECT 1 FROM atomik_dirty WHERE cid = {cid} AND {same_key});"
                    )
                };
                // Anything but an atomik value is refused at the statement
                // (SQLite before 3.47 takes only a literal in RAISE, so the
                // message cannot name the key).
                let refuse_plain = format!(
                    "SELECT RAISE(ABORT, {msg}) WHERE {new_bad};",
                    msg = crate::ident::literal(&format!(
                        "atomik: column \"{table}\".\"{column}\" is tracked and holds atomik values (17-byte BLOBs): write {column} = atomik_accum({column}, delta), or atomik_{group}(n) for a new row, not a plain value"
                    )),
                    new_bad = not_value(&format!("NEW.{c}")),
                );
                // A value of another group than the column's is refused
                // when the trigger fires (a new cell, or the first write
                // since a seal); any other write of one is refused by the
                // seal.
                let refuse_group = format!(
                    "SELECT RAISE(ABORT, {msg}) WHERE NOT {new_bad} AND substr(NEW.{c}, 1, 1) <> X'{tag:02X}';",
                    msg = crate::ident::literal(&format!(
                        "atomik: column \"{table}\".\"{column}\" is tracked as {group}; a value of another group cannot be written to it"
                    )),
                    new_bad = not_value(&format!("NEW.{c}")),
                    tag = 0x10 | group.code(),
                );
                format!(
                    "CREATE TRIGGER \"atomik_written_{cid}\" AFTER INSERT ON {t} WHEN NEW.{c} IS NOT NULL \
                     BEGIN {refuse_plain} {refuse_group} UPDATE atomik_dirty SET new = 1 WHERE cid = {cid} AND {same_key}; {ins_new} END; \
                     CREATE TRIGGER \"atomik_rewritten_{cid}\" AFTER UPDATE OF {c} ON {t} \
                     WHEN NEW.{c} IS NOT NULL AND ({is_new} OR {new_bad} \
                     OR (substr(NEW.{c}, 10) <> zeroblob(8) AND ({old_bad} OR substr(OLD.{c}, 10) = zeroblob(8)))) \
                     BEGIN {refuse_plain} {refuse_group} UPDATE atomik_dirty SET new = 1 WHERE {is_new} AND cid = {cid} AND {same_key}; \
                     {ins_upd} END;",
                    ins_new = insert("1"),
                    ins_upd = insert(&is_new),
                    new_bad = not_value(&format!("NEW.{c}")),
                    old_bad = not_value(&format!("OLD.{c}")),
                )
            },
            receive_cell: format!(
                "UPDATE {t} SET {c} = atomik_internal_receive({c}, ?1, ?2) WHERE {where_key3}"
            ),
            cid,
            table,
            column,
            key_cols,
            shape,
            group,
        })
    }

    /// As core's [`TrackedColumn`].
    pub fn as_core(&self) -> TrackedColumn {
        TrackedColumn {
            table: self.table.clone(),
            column: self.column.clone(),
            shape: self.shape.clone(),
            group: self.group,
        }
    }
}

/// Every tracked column, in id order.
///
/// # Errors
/// SQLite errors or a damaged `atomik_tracked` row.
pub fn load(conn: &Connection) -> Result<Vec<Tracked>, String> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, tbl, col, key_cols, key_kinds, grp FROM atomik_tracked ORDER BY id",
        )
        .map_err(|e| e.to_string())?;
    let rows: Vec<(i64, String, String, String, String, String)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .and_then(Iterator::collect)
        .map_err(|e| e.to_string())?;
    rows.into_iter()
        .map(|(id, t, c, k, s, g)| Tracked::new(id, t, c, &k, &s, &g))
        .collect()
}
