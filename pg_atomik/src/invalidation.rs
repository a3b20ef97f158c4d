//! PostgreSQL's invalidation events, for the per-backend caches of
//! catalog-derived state (the deferred path's entries, the tracked set).
//!
//! One set of callbacks, registered once per backend: a relcache
//! invalidation records the relation's OID ([`take_stale`]; `InvalidOid`
//! means every relation) and, like a schema change (`pg_namespace`) or a
//! (sub)transaction abort, advances the [`epoch`]. A cache remembers the
//! epoch it was filled at and refills when it moved. Callbacks only set
//! thread-local values: they never run SPI or allocate plans, and never
//! panic.

use std::cell::{Cell, RefCell};

use pgrx::pg_sys::{self, Oid};

thread_local! {
    static STALE: RefCell<Vec<Oid>> = const { RefCell::new(Vec::new()) };
    static ABORTED: Cell<bool> = const { Cell::new(false) };
    static EPOCH: Cell<u64> = const { Cell::new(0) };
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

fn advance() {
    EPOCH.with(|e| e.set(e.get().wrapping_add(1)));
}

/// Relcache invalidation: remember the OID (`InvalidOid` means all).
unsafe extern "C-unwind" fn on_relcache(_arg: pg_sys::Datum, relid: Oid) {
    // try_borrow_mut: never panic inside a callback PostgreSQL calls.
    STALE.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            s.push(relid);
        }
    });
    advance();
}

/// A change of `pg_namespace` (a schema renamed or dropped): qualified
/// names of tracked tables may have changed.
unsafe extern "C-unwind" fn on_namespace(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    advance();
}

/// Transaction abort: what a cache read in it may have been rolled back.
unsafe extern "C-unwind" fn on_abort(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    if event == pg_sys::XactEvent::XACT_EVENT_ABORT {
        ABORTED.with(|a| a.set(true));
        advance();
    }
}

/// Subtransaction abort (`ROLLBACK TO SAVEPOINT`): as [`on_abort`].
unsafe extern "C-unwind" fn on_sub_abort(
    event: pg_sys::SubXactEvent::Type,
    _sub: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        ABORTED.with(|a| a.set(true));
        advance();
    }
}

/// Register the callbacks of this backend (once).
pub fn register() {
    if !REGISTERED.with(|r| r.replace(true)) {
        // SAFETY: registers callbacks that live as long as the library
        // (extensions are never unloaded) and only set thread-local values
        // of this backend.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(Some(on_relcache), pg_sys::Datum::from(0));
            pg_sys::CacheRegisterSyscacheCallback(
                pg_sys::SysCacheIdentifier::NAMESPACEOID as i32,
                Some(on_namespace),
                pg_sys::Datum::from(0),
            );
            pg_sys::RegisterXactCallback(Some(on_abort), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_sub_abort), std::ptr::null_mut());
        }
    }
}

/// The relations invalidated since the last call (`InvalidOid`: all).
pub fn take_stale() -> Vec<Oid> {
    STALE.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

/// Whether a (sub)transaction aborted since the last call.
pub fn take_aborted() -> bool {
    ABORTED.with(|a| a.replace(false))
}

/// Advances on every invalidation event; a cache filled at one epoch is
/// stale at any other. [`register`] first.
pub fn epoch() -> u64 {
    EPOCH.with(Cell::get)
}
