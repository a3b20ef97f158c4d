//! Deferred accumulation (0.2.0): lock-free hot counters.
//!
//! `atomik_defer(table, column, key, delta)` records a delta for one
//! tracked cell by appending a row to `atomik.deferred`: it reads the row
//! (for the cell's group) but neither locks nor updates it, so any number
//! of writers accumulate into one hot row concurrently. `atomik_live(table,
//! column, key)` reads the exact current value: the cell's read value
//! combined with every deferred delta visible to the caller (committed
//! ones, and the caller's own uncommitted ones; an aborted transaction's
//! never), in one statement, so one snapshot. The fold ([`fold`]) moves
//! committed deltas into the rows' accumulators exactly once; from there
//! they are sealed and shipped like any local write. Seal and the sync
//! calls fold first.
//!
//! Modules: [`cache`] (per-backend plans), [`fold`], [`rights`] (who may
//! defer and read deferred deltas), [`worker`] (settings and the
//! background worker).

pub mod cache;
pub mod fold;
pub mod rights;
pub mod worker;

use atomik_core::error::Result;
use atomik_core::{AtomikValue, KeyKind};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode;

use crate::errors::{or_raise, raise};
use crate::internal_fns::atomik::group_of;
use cache::Entry;

/// A key as the caller passed it.
enum KeyArg<'a> {
    Int(i64),
    Text(&'a str),
    Parts(Vec<Option<String>>),
}

impl KeyArg<'_> {
    fn describe(&self) -> String {
        match self {
            KeyArg::Int(_) => "a bigint".to_string(),
            KeyArg::Text(_) => "a text".to_string(),
            KeyArg::Parts(p) => format!("a text[] of {} parts", p.len()),
        }
    }
}

/// The primary key of `e` described for an error: `(id bigint)`.
fn key_description(e: &Entry) -> String {
    let parts = e
        .table
        .keys
        .iter()
        .zip(e.table.shape.kinds())
        .map(|(k, kind)| {
            let ty = match kind {
                KeyKind::Int => "integer",
                KeyKind::Text => "text",
            };
            format!("{k} {ty}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("({parts})")
}

/// The key's canonical text parts (as `atomik.new_cells` stores keys), or
/// an error when it does not fit the table's primary key.
fn key_texts(e: &Entry, table: &str, key: KeyArg<'_>) -> Vec<String> {
    let kinds = e.table.shape.kinds();
    let wrong = |why: String| -> ! {
        raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "wrong key for table \"{table}\": its primary key is {}, {why}",
                key_description(e)
            ),
        )
    };
    match (&key, kinds) {
        (KeyArg::Int(v), [KeyKind::Int]) => vec![v.to_string()],
        (KeyArg::Text(s), [KeyKind::Text]) => vec![(*s).to_string()],
        (KeyArg::Parts(parts), _) if parts.len() == kinds.len() => parts
            .iter()
            .zip(kinds)
            .zip(&e.table.keys)
            .map(|((p, kind), name)| {
                let Some(p) = p else {
                    wrong(format!("the key part for {name} is NULL"))
                };
                match kind {
                    KeyKind::Text => p.clone(),
                    KeyKind::Int => match p.trim().parse::<i64>() {
                        Ok(v) => v.to_string(),
                        Err(_) => wrong(format!("\"{p}\" is not an integer for {name}")),
                    },
                }
            })
            .collect(),
        _ => wrong(format!("the key given is {}", key.describe())),
    }
}

/// Record `delta` for the cell; errors name a missing row or NULL cell,
/// and a writer without the rights an `UPDATE` of the cell needs
/// ([`rights::check_writer`]).
///
/// The first delta a backend records for a cell takes the checked path
/// (one prepared statement that reads the row for the cell's group);
/// later ones append directly with the remembered group. A group
/// remembered from before the cell was changed to another group (or a row
/// deleted since) behaves as if the delta had been recorded then: it waits
/// in the buffer with a warning at each fold, or recreates the row.
fn defer(table: &str, column: &str, key: KeyArg<'_>, delta: i64) -> Result<()> {
    let (relid, e) = cache::entry(table, column)?;
    rights::check_writer(relid, e.attnum, table);
    let texts = key_texts(&e, table, key);
    let known = e.groups.borrow().get(&texts).copied();
    if let Some(grp) = known {
        return cache::append(&e.table, &texts, grp, delta);
    }
    let groups = Spi::connect_mut(|c| {
        let table = c.update(&e.defer, None, &[DatumWithOid::from(texts.clone())])?;
        let mut groups = Vec::new();
        for row in table {
            groups.extend(row.get::<i32>(1)?);
        }
        Ok::<_, pgrx::spi::SpiError>(groups)
    })
    .map_err(crate::store::spi_err)?;
    if let Some(grp) = groups.first() {
        cache::append(&e.table, &texts, *grp, delta)?;
        let mut remembered = e.groups.borrow_mut();
        if remembered.len() >= cache::MAX_CACHED_CELLS {
            remembered.clear();
        }
        remembered.insert(texts, *grp);
        return Ok(());
    }
    // Slow path: say why nothing was recorded.
    let null_cell = crate::store::rows(
        &format!(
            "SELECT t.{c} IS NULL FROM {q} t WHERE {m}",
            c = e.table.col,
            q = e.table.qualified,
            m = cache::key_match(&e.table)
        ),
        &[DatumWithOid::from(texts.clone())],
        |r| crate::store::get::<bool>(r, 1),
    )?;
    let key = texts.join(", ");
    if null_cell.first().copied().unwrap_or(false) {
        raise(
            PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
            format!(
                "cell \"{column}\" of the row ({key}) of table \"{table}\" is NULL; set it with atomik_add or atomik_xor before deferring deltas to it"
            ),
        )
    }
    raise(
        PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
        format!("table \"{table}\" has no row ({key}); insert it before deferring deltas to it"),
    )
}

/// The cell combined with every visible deferred delta of its group (the
/// deltas the fold would apply). With no row, the deferred deltas alone
/// (the fold would create the row from them).
fn read_live(e: &Entry, texts: &[String]) -> Result<Option<i64>> {
    let parts = crate::internal::as_owner_of(cache::buffer_oid(), || {
        Spi::connect_mut(|c| {
            let table = c.update(&e.live, None, &[DatumWithOid::from(texts.to_vec())])?;
            let mut out = Vec::new();
            for row in table {
                out.push((
                    row.get::<i32>(1)?.unwrap_or(1),
                    row.get::<i32>(2)?.unwrap_or(1),
                    row.get::<i64>(3)?.unwrap_or(0),
                ));
            }
            Ok::<_, pgrx::spi::SpiError>(out)
        })
    })
    .map_err(crate::store::spi_err)?;
    let cell = parts.iter().find(|(kind, _, _)| *kind == 0);
    let group = match (cell, parts.first()) {
        (Some((_, g, _)), _) | (None, Some((_, g, _))) => group_of(*g),
        (None, None) => return Ok(None),
    };
    let mut value = AtomikValue::identity(group);
    for (_, g, v) in &parts {
        if group_of(*g) == group {
            value = value.accum(*v as u64);
        }
    }
    Ok(Some(value.read_i64()))
}

fn live(table: &str, column: &str, key: KeyArg<'_>) -> Option<i64> {
    let (relid, e) = or_raise(cache::entry(table, column));
    rights::check_reader(relid, table);
    let texts = key_texts(&e, table, key);
    or_raise(read_live(&e, &texts))
}

/// `atomik_defer(table, column, key, delta)`: record `delta` for the cell
/// of the row with integer primary key `key`, without locking the row;
/// applied in the cell's group by the next fold.
#[pg_extern(name = "atomik_defer", requires = ["deferred_buffer"])]
fn atomik_defer_int(table: &str, column: &str, key: i64, delta: i64) {
    or_raise(defer(table, column, KeyArg::Int(key), delta))
}

/// `atomik_defer(table, column, key text, delta)`: as above, text key.
#[pg_extern(name = "atomik_defer", requires = ["deferred_buffer"])]
fn atomik_defer_text(table: &str, column: &str, key: &str, delta: i64) {
    or_raise(defer(table, column, KeyArg::Text(key), delta))
}

/// `atomik_defer(table, column, key text[], delta)`: as above, one text
/// element per primary-key column (composite keys).
#[pg_extern(name = "atomik_defer", requires = ["deferred_buffer"])]
fn atomik_defer_parts(table: &str, column: &str, key: Vec<Option<String>>, delta: i64) {
    or_raise(defer(table, column, KeyArg::Parts(key), delta))
}

/// `atomik_live(table, column, key)`: the cell's read value plus every
/// deferred delta the caller can see; NULL when there is neither.
#[pg_extern(name = "atomik_live", requires = ["deferred_buffer"])]
fn atomik_live_int(table: &str, column: &str, key: i64) -> Option<i64> {
    live(table, column, KeyArg::Int(key))
}

/// `atomik_live(table, column, key text)`.
#[pg_extern(name = "atomik_live", requires = ["deferred_buffer"])]
fn atomik_live_text(table: &str, column: &str, key: &str) -> Option<i64> {
    live(table, column, KeyArg::Text(key))
}

/// `atomik_live(table, column, key text[])`.
#[pg_extern(name = "atomik_live", requires = ["deferred_buffer"])]
fn atomik_live_parts(table: &str, column: &str, key: Vec<Option<String>>) -> Option<i64> {
    live(table, column, KeyArg::Parts(key))
}

/// `atomik_fold_deferred()`: fold every committed deferred delta into its
/// row in this transaction (waiting for a running fold); the number of
/// deltas folded.
#[pg_extern(requires = ["deferred_buffer"])]
fn atomik_fold_deferred() -> i64 {
    let n = or_raise(fold::fold(None, worker::batch(), fold::Wait::Block));
    i64::try_from(n.unwrap_or(0)).unwrap_or(i64::MAX)
}

/// Fold before a protocol call, so that sealed batches and digests include
/// every committed deferred delta.
pub fn fold_before_protocol(wait: fold::Wait) -> Result<()> {
    fold::fold(None, worker::batch(), wait).map(|_| ())
}

pgrx::extension_sql_file!(
    "buffer.sql",
    name = "deferred_buffer",
    requires = ["state_tables"]
);

pgrx::extension_sql!(
    r#"
COMMENT ON FUNCTION atomik_defer(text, text, bigint, bigint) IS 'record a delta for a tracked cell without locking its row (folded later)';
COMMENT ON FUNCTION atomik_defer(text, text, text, bigint) IS 'record a delta for a tracked cell (text key) without locking its row';
COMMENT ON FUNCTION atomik_defer(text, text, text[], bigint) IS 'record a delta for a tracked cell (composite key as text[]) without locking its row';
COMMENT ON FUNCTION atomik_live(text, text, bigint) IS 'current value of a tracked cell including deferred deltas not yet folded';
COMMENT ON FUNCTION atomik_live(text, text, text) IS 'current value of a tracked cell (text key) including deferred deltas';
COMMENT ON FUNCTION atomik_live(text, text, text[]) IS 'current value of a tracked cell (composite key) including deferred deltas';
COMMENT ON FUNCTION atomik_fold_deferred() IS 'fold committed deferred deltas into their rows; deltas folded';
"#,
    name = "deferred_comments",
    requires = [
        atomik_defer_int,
        atomik_defer_text,
        atomik_defer_parts,
        atomik_live_int,
        atomik_live_text,
        atomik_live_parts,
        atomik_fold_deferred
    ]
);
