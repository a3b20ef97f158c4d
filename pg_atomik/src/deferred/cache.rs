//! The per-backend cache behind `atomik_defer` and `atomik_live`: for each
//! tracked (table, column) a backend has used, the column's catalog
//! description, two prepared plans (record a delta after checking the
//! row; read the live value) and the group of every cell this backend has
//! recorded a delta for. With the group known, `atomik_defer` appends the
//! buffer row directly ([`append`]): no SPI, no executor, no row read.
//! Groups are forgotten after any (sub)transaction abort of the backend,
//! since the row they were read from may have been rolled back.
//!
//! Entries are keyed by relation OID. A relcache invalidation of the table
//! (any DDL on it, including the triggers `atomik_track` and
//! `atomik_untrack` create and drop) marks its entries stale; the next call
//! rebuilds them from `atomik.tracked` (the events are
//! [`crate::invalidation`]'s; plans are freed here, outside the callback).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use atomik_core::error::Result;
use atomik_core::{KeyKind, ProtocolError};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, BuiltinOid, Oid, PgOid};
use pgrx::prelude::*;
use pgrx::spi::{quote_literal, OwnedPreparedStatement};
use pgrx::{IntoDatum, PgSqlErrorCode};

use crate::errors::raise;
use crate::invalidation;
use crate::store::spi_err;
use crate::store::tracked::{load_all, TrackedTable};

/// One tracked column as the deferred path uses it.
pub struct Entry {
    /// The column, its table and its primary key.
    pub table: TrackedTable,
    /// The column's attribute number (for privilege checks).
    pub attnum: i16,
    /// `SELECT atomik.group_code(c) FROM table WHERE key`: the group of
    /// the cell with key `$1` (`text[]`); no row when the row is missing
    /// or the cell is NULL.
    pub defer: OwnedPreparedStatement,
    /// The cell `(0, group, read)` and every visible deferred delta
    /// `(1, group, delta)` of a key, in one statement (one snapshot).
    pub live: OwnedPreparedStatement,
    /// Group code of each cell (by key texts) seen by the checked path.
    pub groups: RefCell<HashMap<Vec<String>, i32>>,
}

/// Cells whose group a backend remembers per column, before it forgets
/// them all (bounds the memory of a backend that touches many cells).
pub const MAX_CACHED_CELLS: usize = 65_536;

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

thread_local! {
    static ENTRIES: RefCell<HashMap<(Oid, String), Rc<Entry>>> = RefCell::new(HashMap::new());
    static BUFFER: std::cell::Cell<Oid> = const { std::cell::Cell::new(pg_sys::InvalidOid) };
}

fn drop_stale() {
    if invalidation::take_aborted() {
        ENTRIES.with(|e| {
            for entry in e.borrow().values() {
                entry.groups.borrow_mut().clear();
            }
        });
    }
    let stale = invalidation::take_stale();
    if stale.is_empty() {
        return;
    }
    let buffer = BUFFER.with(|b| b.get());
    if stale.contains(&pg_sys::InvalidOid) || stale.contains(&buffer) {
        BUFFER.with(|b| b.set(pg_sys::InvalidOid));
    }
    ENTRIES.with(|e| {
        let mut e = e.borrow_mut();
        if stale.contains(&pg_sys::InvalidOid) {
            e.clear();
        } else {
            e.retain(|(relid, _), _| !stale.contains(relid));
        }
    });
}

/// `to_regclass(table)`, or an error naming the missing table.
pub fn relid_of(table: &str) -> Oid {
    // SAFETY: to_regclass takes one text argument and returns NULL for a
    // name that does not resolve.
    let oid =
        unsafe { pgrx::direct_function_call::<Oid>(pg_sys::to_regclass, &[table.into_datum()]) };
    match oid {
        Some(oid) if oid != pg_sys::InvalidOid => oid,
        _ => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("table \"{table}\" does not exist"),
        ),
    }
}

/// The cached entry of `table`.`column`, building it on first use. An
/// untracked column (or a missing table or column) is an error.
pub fn entry(table: &str, column: &str) -> Result<(Oid, Rc<Entry>)> {
    invalidation::register();
    drop_stale();
    let relid = relid_of(table);
    let key = (relid, column.to_string());
    if let Some(e) = ENTRIES.with(|e| e.borrow().get(&key).cloned()) {
        return Ok((relid, e));
    }
    let tracked = tracked_column(relid, table, column)?;
    let built = Rc::new(build(relid, tracked)?);
    ENTRIES.with(|e| e.borrow_mut().insert(key, built.clone()));
    Ok((relid, built))
}

/// The tracked entry of (`relid`, `column`), or the error `atomik_untrack`
/// gives for a column that is not tracked (after the errors for a missing
/// column or one that is not atomik).
fn tracked_column(relid: Oid, table: &str, column: &str) -> Result<TrackedTable> {
    let wire = crate::store::rows(
        "SELECT table_name FROM atomik.tracked WHERE relid = $1::oid::regclass AND column_name = $2",
        &[DatumWithOid::from(relid), DatumWithOid::from(column)],
        |r| crate::store::get::<String>(r, 1),
    )?;
    let Some(wire) = wire.into_iter().next() else {
        crate::tracking::check_column(table, column)?;
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            format!("column \"{column}\" of table \"{table}\" is not tracked"),
        )
    };
    load_all()?
        .into_iter()
        .find(|t| t.table == wire && t.column == column)
        .ok_or_else(|| ProtocolError::store("tracked column vanished while reading it"))
}

/// `t.k1 = ($1)[1]::bigint AND ...`.
pub fn key_match(t: &TrackedTable) -> String {
    t.keys
        .iter()
        .zip(t.shape.kinds())
        .enumerate()
        .map(|(i, (k, kind))| {
            let ty = match kind {
                KeyKind::Int => "bigint",
                KeyKind::Text => "text",
            };
            format!("t.{k} = ($1::text[])[{}]::{ty}", i + 1)
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn build(relid: Oid, table: TrackedTable) -> Result<Entry> {
    let wire = quote_literal(&table.table);
    let col_lit = quote_literal(&table.column);
    let defer_sql = format!(
        "SELECT atomik.group_code(t.{c}) FROM {q} t WHERE {m} AND t.{c} IS NOT NULL",
        c = table.col,
        q = table.qualified,
        m = key_match(&table)
    );
    let live_sql = format!(
        "SELECT 0, atomik.group_code(t.{c}), atomik.read(t.{c})
           FROM {q} t WHERE {m} AND t.{c} IS NOT NULL
         UNION ALL
         SELECT 1, d.grp, d.delta FROM atomik.deferred d
          WHERE d.table_name = {wire} AND d.column_name = {col_lit} AND d.key = $1::text[]",
        c = table.col,
        q = table.qualified,
        m = key_match(&table)
    );
    let text_array = PgOid::BuiltIn(BuiltinOid::TEXTARRAYOID);
    let (defer, live) = Spi::connect(|c| {
        let defer = c.prepare_mut(defer_sql.as_str(), &[text_array])?.keep();
        // Read-write mode: a fresh snapshot per execution (READ COMMITTED),
        // which sees this transaction's earlier deferred deltas.
        let live = c.prepare_mut(live_sql.as_str(), &[text_array])?.keep();
        Ok::<_, pgrx::spi::SpiError>((defer, live))
    })
    .map_err(spi_err)?;
    Ok(Entry {
        attnum: super::rights::attnum(relid, &table.column),
        table,
        defer,
        live,
        groups: RefCell::new(HashMap::new()),
    })
}

/// The OID of `atomik.deferred` (cached; dropped with the extension).
pub fn buffer_oid() -> Oid {
    let cached = BUFFER.with(|b| b.get());
    if cached != pg_sys::InvalidOid {
        return cached;
    }
    let oid = relid_of("atomik.deferred");
    BUFFER.with(|b| b.set(oid));
    oid
}

/// Append one row to `atomik.deferred` with a heap insert (the table has
/// no index, trigger, rule or default, and the caller passes a group read
/// from the cell; no role but its owner has privileges on it, so the
/// caller checks the writer's rights first: [`super::rights`]).
///
/// # Errors
/// A read-only transaction, or a buffer table of another shape.
pub fn append(t: &TrackedTable, key: &[String], grp: i32, delta: i64) -> Result<()> {
    // SAFETY: reads a flag of the current transaction.
    if unsafe { pg_sys::XactReadOnly } {
        raise(
            PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            "cannot execute atomik_defer in a read-only transaction".to_string(),
        )
    }
    crate::internal::heap_append(
        buffer_oid(),
        vec![
            (t.table.as_str().into_datum(), pg_sys::TEXTOID),
            (t.column.as_str().into_datum(), pg_sys::TEXTOID),
            (key.to_vec().into_datum(), pg_sys::TEXTARRAYOID),
            (grp.into_datum(), pg_sys::INT4OID),
            (delta.into_datum(), pg_sys::INT8OID),
        ],
        "atomik.deferred",
    )
}
