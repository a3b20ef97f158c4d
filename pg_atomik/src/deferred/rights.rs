//! Who may defer and read deferred deltas (0.5.0).
//!
//! `atomik.deferred` has no privileges for PUBLIC: a forged buffer row
//! would be folded into its table by a role (the background worker, a
//! superuser) that may write it, past the GRANTs and row-level security
//! of the role that forged it. So only `atomik_defer` writes the buffer,
//! and only after checking what an `UPDATE` of the cell would check:
//!
//! * `UPDATE` on the column (or the table) and `SELECT` on the table (the
//!   checked path reads the row for the cell's group);
//! * no row-level security applying to the caller: the fold applies the
//!   delta later, without the caller's policies, so a table whose policies
//!   bind the caller is written through `UPDATE … atomik_accum` instead.
//!
//! `atomik_live` reads the buffer as its owner
//! ([`crate::internal::as_owner_of`]), after
//! checking that the caller may read the table (and is not bound by its
//! policies), so it shows a caller only deltas of cells it may read.

use std::ffi::CString;

use pgrx::pg_sys::{self, Oid};
use pgrx::PgSqlErrorCode;

use crate::errors::raise;

/// The attribute number of `column` in `relid` (0 when there is none).
pub fn attnum(relid: Oid, column: &str) -> i16 {
    let Ok(name) = CString::new(column) else {
        return 0;
    };
    // SAFETY: a syscache lookup by name; InvalidAttrNumber when missing.
    unsafe { pg_sys::get_attnum(relid, name.as_ptr()) }
}

/// The current user's name, for errors.
fn user_name() -> String {
    // SAFETY: a syscache lookup; `true` gives NULL for a dropped role.
    unsafe {
        let p = pg_sys::GetUserNameFromId(pg_sys::GetUserId(), true);
        if p.is_null() {
            "?".to_string()
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Raise PostgreSQL's own permission error for `relid`.
fn denied(result: pg_sys::AclResult::Type, relid: Oid) -> ! {
    // SAFETY: aclcheck_error raises an ERROR for a failed check.
    unsafe {
        pg_sys::aclcheck_error(
            result,
            pg_sys::ObjectType::OBJECT_TABLE,
            pg_sys::get_rel_name(relid),
        );
    }
    unreachable!("aclcheck_error returned")
}

/// Whether the current user holds `mode` on the table, or on column
/// `attnum` (0: on every column).
fn holds(relid: Oid, attnum: i16, mode: u32) -> pg_sys::AclResult::Type {
    let mode = mode as pg_sys::AclMode;
    // SAFETY: catalog privilege lookups for the current user.
    unsafe {
        let user = pg_sys::GetUserId();
        let table = pg_sys::pg_class_aclcheck(relid, user, mode);
        if table == pg_sys::AclResult::ACLCHECK_OK {
            return table;
        }
        let column = if attnum > 0 {
            pg_sys::pg_attribute_aclcheck(relid, attnum, user, mode)
        } else {
            pg_sys::pg_attribute_aclcheck_all(relid, user, mode, pg_sys::AclMaskHow::ACLMASK_ALL)
        };
        if column == pg_sys::AclResult::ACLCHECK_OK {
            column
        } else {
            table
        }
    }
}

/// Refuse a caller bound by row-level security on `relid`: `what` is the
/// function, `instead` what to do.
fn refuse_row_security(relid: Oid, table: &str, what: &str, instead: &str) {
    // SAFETY: reads the relation's RLS flags and the current role's
    // attributes; `false` makes a forbidden `row_security = off` an ERROR.
    let rls = unsafe { pg_sys::check_enable_rls(relid, pg_sys::InvalidOid, false) };
    if rls == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32 {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "{what}: row-level security of table \"{table}\" applies to role \"{}\", and deferred deltas are kept and folded without it; {instead}",
                user_name()
            ),
        )
    }
}

/// Check that the current user may defer a delta to column `attnum` of
/// `relid` (PostgreSQL's permission error, or 42501 under row-level
/// security).
pub fn check_writer(relid: Oid, attnum: i16, table: &str) {
    for mode in [pg_sys::ACL_SELECT, pg_sys::ACL_UPDATE] {
        let r = holds(
            relid,
            if mode == pg_sys::ACL_SELECT {
                0
            } else {
                attnum
            },
            mode,
        );
        if r != pg_sys::AclResult::ACLCHECK_OK {
            denied(r, relid)
        }
    }
    refuse_row_security(
        relid,
        table,
        "atomik_defer",
        "write with UPDATE ... SET c = atomik_accum(c, delta) instead",
    );
}

/// Check that the current user may read every column of `relid` and is
/// not bound by its row-level security.
pub fn check_reader(relid: Oid, table: &str) {
    let r = holds(relid, 0, pg_sys::ACL_SELECT);
    if r != pg_sys::AclResult::ACLCHECK_OK {
        denied(r, relid)
    }
    refuse_row_security(
        relid,
        table,
        "atomik_live",
        "read the cell with SELECT instead",
    );
}
