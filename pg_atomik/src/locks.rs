//! The two locks pg_atomik serializes on (0.5.0): the replication lock and
//! the fold lock. Each is the table lock of an empty table in schema
//! `atomik` that no role has privileges on (`atomik.replication_lock`,
//! `atomik.fold_lock`), taken through the lock manager by the extension's
//! own functions. Until 0.4.0 they were advisory locks on published keys,
//! which any role could take (`pg_advisory_lock`) and so stop replication
//! or folding for everyone; a table lock can be taken only by a role with
//! privileges on the table (`LOCK TABLE`), and a role that may merely read
//! a table gets `ACCESS SHARE`, which conflicts with neither mode used
//! here. Both are held until the end of the transaction, as the advisory
//! transaction locks were.

use atomik_core::error::Result;
use pgrx::pg_sys;

/// How a protocol call holds the replication lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Alone (`EXCLUSIVE`): a device-side call, a relay's serve, tracking.
    Alone,
    /// Beside other serves (`ROW EXCLUSIVE`): a root hub's serve.
    Shared,
}

/// Take the replication lock in `mode` until the end of the transaction
/// (waiting for it; a deadlock is detected and reported by PostgreSQL).
///
/// # Errors
/// The lock table is missing (an extension not yet updated to 0.5.0).
pub fn replication(mode: Mode) -> Result<()> {
    let relid = crate::internal::table(c"replication_lock")?;
    let lockmode = match mode {
        Mode::Alone => pg_sys::ExclusiveLock,
        Mode::Shared => pg_sys::RowExclusiveLock,
    };
    // SAFETY: a heavyweight lock on an existing relation, released by the
    // transaction's end (or its subtransaction's abort).
    unsafe { pg_sys::LockRelationOid(relid, lockmode as pg_sys::LOCKMODE) };
    Ok(())
}

/// [`replication`] if it can be taken without waiting: false when another
/// transaction holds it in a conflicting mode.
///
/// # Errors
/// As [`replication`].
pub fn try_replication(mode: Mode) -> Result<bool> {
    let relid = crate::internal::table(c"replication_lock")?;
    let lockmode = match mode {
        Mode::Alone => pg_sys::ExclusiveLock,
        Mode::Shared => pg_sys::RowExclusiveLock,
    };
    // SAFETY: as in `replication`.
    Ok(unsafe { pg_sys::ConditionalLockRelationOid(relid, lockmode as pg_sys::LOCKMODE) })
}

/// Take the fold lock until the end of the transaction: wait for it
/// (`wait`), or return false at once when another fold holds it.
///
/// # Errors
/// The lock table is missing (an extension not yet updated to 0.5.0).
pub fn fold(wait: bool) -> Result<bool> {
    let relid = crate::internal::table(c"fold_lock")?;
    let lockmode = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;
    // SAFETY: as in `replication`.
    Ok(unsafe {
        if wait {
            pg_sys::LockRelationOid(relid, lockmode);
            true
        } else {
            pg_sys::ConditionalLockRelationOid(relid, lockmode)
        }
    })
}
