//! pg_atomik's own tables in schema `atomik`: their OIDs, running a
//! statement as their owner, and appending a row to one directly.
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

/// Append one row of `values` to the relation `relid` with a heap insert
/// (no executor, no privilege check: the caller has checked the rights
/// the row stands for). For append-only tables with no index, trigger,
/// rule or default, whose checks the caller's values satisfy by
/// construction. The relation must have exactly these columns, in order,
/// of these types, none dropped.
///
/// # Errors
/// A relation of another shape (an extension not yet updated), with
/// `what` naming it; a value without a datum.
pub fn heap_append(
    relid: Oid,
    values: Vec<(Option<pg_sys::Datum>, Oid)>,
    what: &str,
) -> Result<()> {
    let mut datums = Vec::with_capacity(values.len());
    let mut types = Vec::with_capacity(values.len());
    for (datum, ty) in values {
        datums.push(
            datum
                .ok_or_else(|| ProtocolError::store(format!("a value for {what} has no datum")))?,
        );
        types.push(ty);
    }
    let mut nulls = vec![false; datums.len()];
    let lock = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
    // SAFETY: the relation is opened with RowExclusiveLock (as INSERT
    // does) and closed below; the tuple is formed from its own descriptor
    // after checking that it has exactly these columns with these types.
    let shaped = unsafe {
        let rel = pg_sys::table_open(relid, lock);
        let desc = (*rel).rd_att;
        let n = types.len();
        let shaped = usize::try_from((*desc).natts) == Ok(n)
            && (*desc)
                .attrs
                .as_slice(n)
                .iter()
                .zip(&types)
                .all(|(att, ty)| !att.attisdropped && att.atttypid == *ty);
        if shaped {
            let tuple = pg_sys::heap_form_tuple(desc, datums.as_mut_ptr(), nulls.as_mut_ptr());
            pg_sys::simple_heap_insert(rel, tuple);
            pg_sys::heap_freetuple(tuple);
        }
        pg_sys::table_close(rel, lock);
        shaped
    };
    if !shaped {
        return Err(ProtocolError::store(format!(
            "{what} does not have the columns of this pg_atomik version: run ALTER EXTENSION pg_atomik UPDATE"
        )));
    }
    Ok(())
}
