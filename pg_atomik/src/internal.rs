//! pg_atomik's own tables in schema `atomik`: their OIDs, and running a
//! statement as their owner.
//!
//! Since 0.5.0 no role but the owner has privileges on most of them, so
//! the extension's code that must write or read one on behalf of a role
//! that has none — the new-cell trigger, `atomik_live` — checks that
//! role's rights on the application table itself and then runs as the
//! internal table's owner, as PostgreSQL runs referential-integrity checks
//! as a table's owner.

use std::ffi::CStr;

use atomik_core::error::Result;
use atomik_core::ProtocolError;
use pgrx::pg_sys::{self, Oid};

/// The OID of `atomik.<name>` (looked up in the syscache at each call: it
/// changes only with the extension, and a lookup costs less than keeping
/// a cache in step with DDL).
///
/// # Errors
/// The schema or table is missing (an extension not yet updated).
pub fn table(name: &CStr) -> Result<Oid> {
    // SAFETY: catalog cache lookups by name; `true` makes a missing
    // schema InvalidOid rather than an ERROR.
    let oid = unsafe {
        let nsp = pg_sys::get_namespace_oid(c"atomik".as_ptr(), true);
        if nsp == pg_sys::InvalidOid {
            pg_sys::InvalidOid
        } else {
            pg_sys::get_relname_relid(name.as_ptr(), nsp)
        }
    };
    if oid == pg_sys::InvalidOid {
        return Err(ProtocolError::store(format!(
            "table atomik.{} does not exist: run ALTER EXTENSION pg_atomik UPDATE",
            name.to_string_lossy()
        )));
    }
    Ok(oid)
}

/// Restores the user and security context saved by [`as_owner_of`] when
/// dropped (also when unwinding; an ERROR's (sub)transaction abort
/// restores them as well).
struct Restore {
    user: Oid,
    context: i32,
}

impl Drop for Restore {
    fn drop(&mut self) {
        // SAFETY: restores what GetUserIdAndSecContext returned.
        unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.context) };
    }
}

/// Run `f` as the owner of the relation `relid`: a local user id change,
/// so `SET ROLE` and `RESET ROLE` are refused inside. The caller has
/// checked that the current user may do what `f` does on its behalf.
pub fn as_owner_of<T>(relid: Oid, f: impl FnOnce() -> T) -> T {
    let mut user = pg_sys::InvalidOid;
    let mut context = 0;
    // SAFETY: reads the current user and context, then the relation's
    // owner from its descriptor (opened and closed here).
    let owner = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let rel = pg_sys::table_open(relid, lock);
        let owner = (*(*rel).rd_rel).relowner;
        pg_sys::table_close(rel, lock);
        owner
    };
    let _restore = Restore { user, context };
    // SAFETY: a local user id change, undone by `_restore`.
    unsafe {
        pg_sys::SetUserIdAndSecContext(owner, context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32)
    };
    f()
}
