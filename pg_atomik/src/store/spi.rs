//! Thin helpers over pgrx SPI for the store: every statement runs in
//! read-write mode (a fresh snapshot per statement under READ COMMITTED,
//! so a call that waited on the advisory lock sees what the previous
//! holder committed), and SPI failures become [`ProtocolError::Store`].
//!
//! An SQL `ERROR` raised inside a statement (a permission check, a
//! constraint, a row-level security policy) is not turned into a `Result`:
//! it propagates as that very error, with its own SQLSTATE, and aborts the
//! caller's transaction.

use atomik_core::error::Result;
use atomik_core::ProtocolError;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::spi::{OwnedPreparedStatement, SpiClient, SpiHeapTupleData};
use pgrx::{FromDatum, IntoDatum, PgOid};

/// Map an SPI-level error.
pub fn spi_err(e: pgrx::spi::SpiError) -> ProtocolError {
    ProtocolError::store(format!("SPI: {e}"))
}

/// Saved plans of this backend, by statement text and argument types.
type PlanCache = HashMap<(String, Vec<pg_sys::Oid>), Rc<OwnedPreparedStatement>>;

/// The most plans kept; past it the cache starts again (statements are
/// per table and per kind, so a replica that tracks a few tables stays
/// far below it).
const MAX_PLANS: usize = 512;

thread_local! {
    static PLANS: RefCell<PlanCache> = RefCell::new(HashMap::new());
}

/// The saved plan of `sql` for `args`' types, prepared on first use.
///
/// Every statement pg_atomik runs is repeated (the same text per table and
/// call), so parsing and analysis are paid once per backend; PostgreSQL's
/// plan cache revalidates a saved plan after DDL or a `search_path`
/// change, and keeps choosing custom plans where a generic one would cost
/// more (an `unnest` of a few keys against a large table).
fn plan(
    c: &SpiClient<'_>,
    sql: &str,
    args: &[DatumWithOid<'_>],
) -> Result<Rc<OwnedPreparedStatement>> {
    let key = (
        sql.to_string(),
        args.iter().map(DatumWithOid::oid).collect::<Vec<_>>(),
    );
    if let Some(p) = PLANS.with(|plans| plans.borrow().get(&key).cloned()) {
        return Ok(p);
    }
    let types: Vec<PgOid> = key.1.iter().map(|o| PgOid::from(*o)).collect();
    let prepared = Rc::new(c.prepare_mut(sql, &types).map_err(spi_err)?.keep());
    PLANS.with(|plans| {
        let mut plans = plans.borrow_mut();
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        plans.insert(key, Rc::clone(&prepared));
    });
    Ok(prepared)
}

/// Run a statement; returns the number of rows it processed.
pub fn exec(sql: &str, args: &[DatumWithOid<'_>]) -> Result<u64> {
    Spi::connect_mut(|c| {
        let p = plan(c, sql, args)?;
        c.update(&*p, None, args)
            .map(|t| t.len() as u64)
            .map_err(spi_err)
    })
}

/// Run a statement and map every row it returns.
pub fn rows<T>(
    sql: &str,
    args: &[DatumWithOid<'_>],
    mut f: impl FnMut(&SpiHeapTupleData<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    Spi::connect_mut(|c| {
        let p = plan(c, sql, args)?;
        let table = c.update(&*p, None, args).map_err(spi_err)?;
        let mut out = Vec::with_capacity(table.len());
        for row in table {
            out.push(f(&row)?);
        }
        Ok(out)
    })
}

/// Column `n` (1-based) of `row`, which must not be NULL.
pub fn get<T: FromDatum + IntoDatum>(row: &SpiHeapTupleData<'_>, n: usize) -> Result<T> {
    row.get::<T>(n)
        .map_err(spi_err)?
        .ok_or_else(|| ProtocolError::store(format!("unexpected NULL in result column {n}")))
}

/// A seq or time as stored (`bigint`).
pub fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| ProtocolError::store(format!("{what} {v} does not fit a bigint")))
}

/// A stored `bigint` seq or time.
pub fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| ProtocolError::store(format!("stored {what} {v} is negative")))
}
