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
use pgrx::spi::SpiHeapTupleData;
use pgrx::{FromDatum, IntoDatum};

/// Map an SPI-level error.
pub fn spi_err(e: pgrx::spi::SpiError) -> ProtocolError {
    ProtocolError::store(format!("SPI: {e}"))
}

/// Run a statement; returns the number of rows it processed.
pub fn exec(sql: &str, args: &[DatumWithOid<'_>]) -> Result<u64> {
    Spi::connect_mut(|c| c.update(sql, None, args).map(|t| t.len() as u64)).map_err(spi_err)
}

/// Run a statement and map every row it returns.
pub fn rows<T>(
    sql: &str,
    args: &[DatumWithOid<'_>],
    mut f: impl FnMut(&SpiHeapTupleData<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    Spi::connect_mut(|c| {
        let table = c.update(sql, None, args).map_err(spi_err)?;
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
