//! Argument conversion and error construction for the SQL functions.
//!
//! Every error raised by a function starts with the function's name, so a
//! failing statement says which call and which argument were wrong.

use std::panic::{catch_unwind, AssertUnwindSafe};

use atomik_core::AtomikValue;
use rusqlite::functions::Context;
use rusqlite::types::ValueRef;

/// The error an SQL function raises: its text becomes the SQL error message.
#[derive(Debug)]
pub struct FnError(pub String);

impl std::fmt::Display for FnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FnError {}

/// An SQL error `"{function}: {message}"`.
pub fn fail(function: &str, message: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::UserFunctionError(Box::new(FnError(format!("{function}: {message}"))))
}

/// Run a function body, turning a panic into an SQL error naming the
/// function instead of letting it cross into the host.
pub fn guard<T>(function: &str, body: impl FnOnce() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(payload) => {
            let why = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(fail(
                function,
                format!("internal error (a bug in atomik, please report it): {why}"),
            ))
        }
    }
}

/// The SQL type name of a value, as used in error messages.
pub fn type_name(v: &ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "INTEGER",
        ValueRef::Real(_) => "REAL",
        ValueRef::Text(_) => "TEXT",
        ValueRef::Blob(_) => "BLOB",
    }
}

/// Argument `i` (0-based) as an atomik value; `None` for SQL NULL (the pure
/// functions are STRICT, as in PostgreSQL: NULL in, NULL out).
pub fn value_arg(
    ctx: &Context<'_>,
    i: usize,
    function: &str,
) -> rusqlite::Result<Option<AtomikValue>> {
    value_of(ctx.get_raw(i), i, function)
}

/// [`value_arg`] of an argument already read.
pub fn value_of(
    v: ValueRef<'_>,
    i: usize,
    function: &str,
) -> rusqlite::Result<Option<AtomikValue>> {
    match v {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(b) => AtomikValue::from_bytes(b)
            .map(Some)
            .map_err(|e| fail(function, format!("argument {}: {e}", i + 1))),
        other => Err(fail(
            function,
            format!(
                "argument {} must be an atomik value (a 17-byte BLOB), got {}",
                i + 1,
                type_name(&other)
            ),
        )),
    }
}

/// Argument `i` as a 64-bit integer; `None` for SQL NULL.
pub fn int_arg(ctx: &Context<'_>, i: usize, function: &str) -> rusqlite::Result<Option<i64>> {
    int_of(ctx.get_raw(i), i, function)
}

/// [`int_arg`] of an argument already read.
pub fn int_of(v: ValueRef<'_>, i: usize, function: &str) -> rusqlite::Result<Option<i64>> {
    match v {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(v) => Ok(Some(v)),
        other => Err(fail(
            function,
            format!(
                "argument {} must be an INTEGER, got {}",
                i + 1,
                type_name(&other)
            ),
        )),
    }
}

/// Argument `i` as a BLOB message; NULL and other types are errors.
pub fn message_arg<'a>(
    ctx: &'a Context<'_>,
    i: usize,
    function: &str,
) -> rusqlite::Result<&'a [u8]> {
    match ctx.get_raw(i) {
        ValueRef::Blob(b) => Ok(b),
        other => Err(fail(
            function,
            format!(
                "argument {} must be an atomik message (a BLOB), got {}",
                i + 1,
                type_name(&other)
            ),
        )),
    }
}

/// A device-key argument: a BLOB (its length is checked by the protocol)
/// or NULL (no key).
///
/// # Errors
/// Any other type.
pub fn key_arg<'a>(
    ctx: &'a Context<'_>,
    i: usize,
    function: &str,
) -> rusqlite::Result<Option<&'a [u8]>> {
    match ctx.get_raw(i) {
        ValueRef::Blob(b) => Ok(Some(b)),
        ValueRef::Null => Ok(None),
        other => Err(fail(
            function,
            format!(
                "argument {} must be a device key (a 32-byte BLOB) or NULL, got {}",
                i + 1,
                type_name(&other)
            ),
        )),
    }
}

/// Argument `i` as a name (TEXT); NULL and other types are errors.
pub fn name_arg(
    ctx: &Context<'_>,
    i: usize,
    function: &str,
    what: &str,
) -> rusqlite::Result<String> {
    match ctx.get_raw(i) {
        ValueRef::Text(t) => std::str::from_utf8(t).map(str::to_string).map_err(|_| {
            fail(
                function,
                format!("argument {} ({what}) is not valid UTF-8", i + 1),
            )
        }),
        other => Err(fail(
            function,
            format!(
                "argument {} ({what}) must be TEXT, got {}",
                i + 1,
                type_name(&other)
            ),
        )),
    }
}
