//! `atomik_accum` registered through SQLite's C API directly: it runs once
//! per updated row in `UPDATE t SET c = atomik_accum(c, d)`, the hot path
//! of local writes, so it skips the generic wrapper. Its results and error
//! texts are exactly those of the other value functions.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use atomik_core::{AtomikValue, Group};
use rusqlite::ffi;
use rusqlite::types::ValueRef;

use crate::args::{int_of, value_of};

/// The value of a raw SQLite argument.
///
/// # Safety
/// `v` must be a valid protected `sqlite3_value` for the duration of `'a`.
unsafe fn value_ref<'a>(v: *mut ffi::sqlite3_value) -> ValueRef<'a> {
    // SAFETY: per the caller's contract; pointers returned by SQLite stay
    // valid until the value changes, which it does not during the call.
    unsafe {
        match ffi::sqlite3_value_type(v) {
            ffi::SQLITE_NULL => ValueRef::Null,
            ffi::SQLITE_INTEGER => ValueRef::Integer(ffi::sqlite3_value_int64(v)),
            ffi::SQLITE_FLOAT => ValueRef::Real(ffi::sqlite3_value_double(v)),
            ffi::SQLITE_TEXT => {
                let p = ffi::sqlite3_value_text(v);
                let n = ffi::sqlite3_value_bytes(v);
                ValueRef::Text(if p.is_null() || n <= 0 {
                    &[]
                } else {
                    std::slice::from_raw_parts(p, n as usize)
                })
            }
            _ => {
                let p = ffi::sqlite3_value_blob(v).cast::<u8>();
                let n = ffi::sqlite3_value_bytes(v);
                ValueRef::Blob(if p.is_null() || n <= 0 {
                    &[]
                } else {
                    std::slice::from_raw_parts(p, n as usize)
                })
            }
        }
    }
}

/// Set an error result.
///
/// # Safety
/// `ctx` must be the context of the running call.
unsafe fn error(ctx: *mut ffi::sqlite3_context, message: &str) {
    let n = c_int::try_from(message.len()).unwrap_or(c_int::MAX);
    // SAFETY: SQLite copies the message before returning.
    unsafe { ffi::sqlite3_result_error(ctx, message.as_ptr().cast(), n) };
}

/// The common case — a valid value and an integer — without building any
/// error machinery; `false` sends the call to the general path.
///
/// # Safety
/// As for [`accum`].
unsafe fn accum_fast(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) -> bool {
    if argc != 2 || argv.is_null() {
        return false;
    }
    // SAFETY: SQLite passes `argc` valid values; the blob pointer is valid
    // for `sqlite3_value_bytes` bytes until the value changes.
    unsafe {
        let (a, d) = (*argv, *argv.add(1));
        if ffi::sqlite3_value_type(a) != ffi::SQLITE_BLOB
            || ffi::sqlite3_value_type(d) != ffi::SQLITE_INTEGER
        {
            return false;
        }
        let p = ffi::sqlite3_value_blob(a).cast::<u8>();
        if p.is_null() || ffi::sqlite3_value_bytes(a) != 17 {
            return false;
        }
        let Ok(v) = AtomikValue::from_bytes(std::slice::from_raw_parts(p, 17)) else {
            return false;
        };
        let b = v.accum(ffi::sqlite3_value_int64(d) as u64).to_bytes();
        ffi::sqlite3_result_blob(
            ctx,
            b.as_ptr().cast::<c_void>(),
            17,
            ffi::SQLITE_TRANSIENT(),
        );
    }
    true
}

unsafe extern "C" fn accum(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    let f = "atomik_accum";
    // SAFETY: forwarded from SQLite unchanged; nothing in it can panic.
    if unsafe { accum_fast(ctx, argc, argv) } {
        return;
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        if argc != 2 || argv.is_null() {
            return Err(format!("{f}: expected 2 arguments"));
        }
        // SAFETY: SQLite passes `argc` valid values.
        let (a, d) = unsafe { (value_ref(*argv), value_ref(*argv.add(1))) };
        let a = value_of(a, 0, f).map_err(|e| e.to_string())?;
        let d = int_of(d, 1, f).map_err(|e| e.to_string())?;
        Ok(match (a, d) {
            (Some(a), Some(d)) => Some(a.accum(d as u64)),
            // A NULL cell counts from the identity of `add` (a column
            // without a default still counts; an xor column's group check
            // refuses the result: give it DEFAULT atomik_xor(0)).
            (None, Some(d)) => Some(AtomikValue::new_pending(Group::Add, d as u64)),
            (_, None) => None,
        })
    }));
    // SAFETY: results are set on the running call's context; the blob is
    // copied by SQLite (SQLITE_TRANSIENT).
    unsafe {
        match r {
            Ok(Ok(Some(v))) => {
                let b = v.to_bytes();
                ffi::sqlite3_result_blob(
                    ctx,
                    b.as_ptr().cast::<c_void>(),
                    17,
                    ffi::SQLITE_TRANSIENT(),
                );
            }
            Ok(Ok(None)) => ffi::sqlite3_result_null(ctx),
            Ok(Err(e)) => error(ctx, &e),
            Err(_) => error(
                ctx,
                &format!("{f}: internal error (a bug in atomik, please report it)"),
            ),
        }
    }
}

/// Register the direct functions on `conn`.
///
/// # Errors
/// When SQLite refuses a registration.
pub fn register(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    // SAFETY: the handle is the live connection; the function pointer and
    // the static name outlive it; no user data is passed.
    let rc = unsafe {
        ffi::sqlite3_create_function_v2(
            conn.handle(),
            c"atomik_accum".as_ptr(),
            2,
            crate::values::PURE.bits(),
            std::ptr::null_mut(),
            Some(accum),
            None,
            None,
            None,
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            ffi::Error::new(rc),
            Some("cannot register atomik_accum".to_string()),
        ))
    }
}
