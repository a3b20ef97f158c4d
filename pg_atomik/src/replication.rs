//! The replication functions of DESIGN.md §4, over protocol v2
//! (`atomik_core::protocol::v2`). Each runs one protocol call over
//! [`PgStore`] in the caller's transaction, and raises the call's error —
//! which rolls back everything the call did. None is `SECURITY DEFINER`:
//! they read and write the application's tables as the calling role, so
//! its GRANTs and row-level security policies hold.
//!
//! **Concurrency.** The serves of a root hub (`atomik_sync`,
//! `atomik_changes`) run in parallel: they share this database's
//! replication lock, and serialize only where they must, on rows —
//! the registry entry of each origin they apply (two syncs of one device),
//! the cells they update (until commit), the own-seq row when the hub's
//! own writes are sealed — and on `atomik.log_pending` for a snapshot
//! (see `store/log.rs`: the log is numbered late, so that a cursor is
//! never passed by an entry that commits later). Every other call (seal,
//! a device's sync request and finish, apply, make-relay) and every serve
//! of a relay (whose up-outbox positions are numbered as they are
//! pushed) takes the lock exclusively.

use std::time::{SystemTime, UNIX_EPOCH};

use atomik_core::error::Result;
use atomik_core::protocol::v2;
use atomik_core::{ProtocolError, Store};
use pgrx::prelude::*;

use crate::deferred::fold::Wait;
use crate::errors::or_raise;
use crate::locks::{self, Mode};
use crate::store::PgStore;

/// Take the replication lock alone until the end of the transaction (for
/// the tracking functions, which change what the protocol calls see).
pub fn lock() -> Result<()> {
    locks::replication(Mode::Alone)
}

/// Seconds since the Unix epoch (the clock of the hub log's `appended_at`
/// and its retention horizon), read after the lock is taken.
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Run one protocol call under the lock; `cells` (a call that may seal
/// or apply) first folds committed deferred deltas (so a seal ships them;
/// a serve does this after its table lock, and skips the fold when another
/// fold runs) and applies parked deltas whose rows have appeared.
fn call<T>(cells: bool, mode: Mode, f: impl FnOnce(&mut PgStore) -> Result<T>) -> T {
    or_raise((|| {
        let relay =
            || Ok::<_, ProtocolError>(crate::store::setting(v2::settings::UPSTREAM)?.is_some());
        let mode = if mode == Mode::Shared && relay()? {
            Mode::Alone
        } else {
            mode
        };
        locks::replication(mode)?;
        if mode == Mode::Shared && relay()? {
            return Err(ProtocolError::store(
                "this replica became a relay while the serve waited; retry the sync",
            ));
        }
        let mut store = PgStore::new();
        match (cells, mode) {
            (false, _) => {}
            // A serve takes its table lock before any row lock, so it folds
            // in `begin_serve`, after that lock.
            (true, Mode::Shared) => store.prepare_cells_in_begin_serve(),
            (true, Mode::Alone) => store.prepare_cells(Wait::Block)?,
        }
        let out = f(&mut store)?;
        // Received deltas are written last: the rows they lock are then
        // held only until the commit that follows.
        store.write_received()?;
        Ok(out)
    })())
}

/// `atomik_site_id()`: this replica's site id, 32 hex digits.
#[pg_extern(requires = ["state_tables"])]
fn atomik_site_id() -> String {
    call(false, Mode::Alone, |s| s.site_id()).to_string()
}

/// `atomik_seal()`: seal pending local writes into a batch; its seq, or 0.
#[pg_extern(requires = ["state_tables"])]
fn atomik_seal() -> i64 {
    call(true, Mode::Alone, |s| v2::seal(s, now())) as i64
}

/// `atomik_vector()`: where this replica stands — its site and its cursor
/// into its upstream's log — as a v2 request without uploads (the
/// argument of a hub's `atomik_changes`).
#[pg_extern(requires = ["state_tables"])]
fn atomik_vector() -> Vec<u8> {
    call(false, Mode::Alone, v2::position_message)
}

/// `atomik_changes(vector)`: on a hub, what a replica standing at that
/// position (an `atomik_vector()` message) lacks, as a response for its
/// `atomik_apply`. Seals, applies and registers nothing.
#[pg_extern(requires = ["state_tables"])]
fn atomik_changes(vector: &[u8]) -> Vec<u8> {
    call(false, Mode::Shared, |s| v2::changes_for(s, vector))
}

/// Number the committed pending log entries, if there are any and neither
/// a numbering transaction nor one that holds the replication lock alone
/// is in the way (the fold worker's step: it never waits, and tries again
/// at its next interval).
///
/// # Errors
/// Store errors.
pub fn publish_committed() -> Result<()> {
    let pending = Spi::get_one::<bool>("SELECT EXISTS (SELECT 1 FROM atomik.log_pending)")
        .map_err(|e| ProtocolError::store(e.to_string()))?
        .unwrap_or(false);
    if !pending {
        return Ok(());
    }
    if !locks::try_replication(Mode::Shared)? {
        return Ok(());
    }
    atomik_core::log_store::LogStore::log_publish(&mut PgStore::new())
}

/// `atomik_publish()`: on a hub, number the log entries that have
/// committed but are not numbered yet (a serve numbers what committed
/// before it; the uploads of the last serves of a burst wait for the next
/// serve), so that the feed, `LISTEN atomik_log` and the next downloads
/// see them; returns the log's position. Waits for another transaction
/// that is numbering. The fold worker, when preloaded, does this every
/// `atomik.fold_interval_ms`, and `atomik serve` after syncs that others
/// watch.
#[pg_extern(requires = ["state_tables"])]
fn atomik_publish() -> i64 {
    // Positions are stored as bigint: at most 2^63 - 1.
    call(false, Mode::Shared, |s| s.publish_waiting()) as i64
}

/// `atomik_apply(batch)`: apply a response (of `atomik_sync` or
/// `atomik_changes`) exactly once; the number of deltas newly applied.
#[pg_extern(requires = ["state_tables"])]
fn atomik_apply(batch: &[u8]) -> i64 {
    call(true, Mode::Alone, |s| v2::apply_message(s, batch, now())) as i64
}

/// `atomik_sync_request()`: seal, then the request bytes for a hub.
#[pg_extern(requires = ["state_tables"])]
fn atomik_sync_request() -> Vec<u8> {
    call(true, Mode::Alone, |s| v2::sync_request(s, now()))
}

/// `atomik_sync(request)`: serve a sync request (hub role).
#[pg_extern(requires = ["state_tables"])]
fn atomik_sync(request: &[u8]) -> Vec<u8> {
    call(true, Mode::Shared, |s| v2::serve_sync(s, request, now()))
}

/// `atomik_sync_finish(response)`: apply a hub's response exactly once.
#[pg_extern(requires = ["state_tables"])]
fn atomik_sync_finish(response: &[u8]) -> i64 {
    call(true, Mode::Alone, |s| v2::finish_sync(s, response, now())) as i64
}

/// `atomik_make_relay()`: declare this replica a relay hub (it will serve
/// others and sync to an upstream hub); 1 when this call made it one, 0
/// when it already was one.
#[pg_extern(requires = ["state_tables"])]
fn atomik_make_relay() -> i64 {
    i64::from(call(false, Mode::Alone, |s| v2::make_relay(s, now())))
}

/// `atomik_set_device_key(site, key)`: store the 32-byte device key of
/// `site` (32 hex digits) — on a hub, enroll a device; on a device, its own
/// key under its own site id — or remove it (`key` NULL); 1 when something
/// changed, else 0.
#[pg_extern(requires = ["state_tables"])]
fn atomik_set_device_key(site: &str, key: Option<&[u8]>) -> i64 {
    i64::from(call(false, Mode::Alone, |s| {
        v2::set_device_key(s, site, key)
    }))
}

/// `atomik_new_device_key()`: a new random 32-byte device key.
#[pg_extern]
fn atomik_new_device_key() -> Vec<u8> {
    or_raise(atomik_core::auth::DeviceKey::generate().map(|k| k.as_bytes().to_vec()))
}

/// `atomik_require_device_keys()`: 1 when this hub serves only sites with
/// an enrolled device key, else 0.
#[pg_extern(name = "atomik_require_device_keys", requires = ["state_tables"])]
fn atomik_require_device_keys_get() -> i64 {
    i64::from(call(false, Mode::Alone, |s| {
        v2::require_device_keys(s, None)
    }))
}

/// `atomik_require_device_keys(on)`: set whether this hub serves only
/// sites with an enrolled device key; the new setting (1 or 0).
#[pg_extern(name = "atomik_require_device_keys", requires = ["state_tables"])]
fn atomik_require_device_keys_set(on: bool) -> i64 {
    i64::from(call(false, Mode::Alone, |s| {
        v2::require_device_keys(s, Some(on))
    }))
}

/// `atomik_horizon()`: the seconds this hub keeps log entries (30 days
/// unless set).
#[pg_extern(name = "atomik_horizon", requires = ["state_tables"])]
fn atomik_horizon_get() -> i64 {
    call(false, Mode::Alone, |s| v2::horizon(s, None)) as i64
}

/// `atomik_horizon(secs)`: set the log's retention horizon; the new value.
#[pg_extern(name = "atomik_horizon", requires = ["state_tables"])]
fn atomik_horizon_set(secs: i64) -> i64 {
    call(false, Mode::Alone, |s| v2::horizon(s, Some(secs))) as i64
}

/// `atomik_max_parked()`: how many cells this replica may keep parked
/// (deltas for rows it cannot create; 10,000 unless set).
#[pg_extern(name = "atomik_max_parked", requires = ["state_tables"])]
fn atomik_max_parked_get() -> i64 {
    call(false, Mode::Alone, |s| v2::max_parked(s, None)) as i64
}

/// `atomik_max_parked(n)`: set the parked-cell limit; the new value.
#[pg_extern(name = "atomik_max_parked", requires = ["state_tables"])]
fn atomik_max_parked_set(n: i64) -> i64 {
    call(false, Mode::Alone, |s| v2::max_parked(s, Some(n))) as i64
}

/// `atomik_version()`: the extension version.
#[pg_extern(immutable, parallel_safe)]
fn atomik_version() -> &'static str {
    atomik_core::VERSION
}

pgrx::extension_sql!(
    r#"
COMMENT ON FUNCTION atomik_site_id() IS 'this replica''s site id (32 hex digits)';
COMMENT ON FUNCTION atomik_seal() IS 'seal pending local writes into a batch; its seq, or 0 if nothing was pending';
COMMENT ON FUNCTION atomik_vector() IS 'where this replica stands: its site and its cursor into its hub''s log (a protocol v2 message for atomik_changes)';
COMMENT ON FUNCTION atomik_changes(bytea) IS 'hub: what a replica at that position (atomik_vector) lacks, as a response for atomik_apply';
COMMENT ON FUNCTION atomik_apply(bytea) IS 'apply a response of atomik_sync or atomik_changes exactly once; deltas newly applied';
COMMENT ON FUNCTION atomik_sync_request() IS 'device: seal, then the sync request for a hub';
COMMENT ON FUNCTION atomik_sync(bytea) IS 'hub: serve a sync request; the response';
COMMENT ON FUNCTION atomik_sync_finish(bytea) IS 'device: apply a hub''s response exactly once; deltas newly applied';
COMMENT ON FUNCTION atomik_make_relay() IS 'make this replica a relay hub (serves others, syncs to an upstream); 1, or 0 if it already was one';
COMMENT ON FUNCTION atomik_version() IS 'extension version';
COMMENT ON FUNCTION atomik_set_device_key(text, bytea) IS 'store (or with NULL remove) the 32-byte device key of a site: a hub enrolls a device, a device sets its own; 1 if something changed';
COMMENT ON FUNCTION atomik_new_device_key() IS 'a new random 32-byte device key';
COMMENT ON FUNCTION atomik_horizon() IS 'hub: seconds log entries are kept (30 days unless set)';
COMMENT ON FUNCTION atomik_horizon(bigint) IS 'hub: set the seconds log entries are kept; the new value';
COMMENT ON FUNCTION atomik_max_parked() IS 'how many cells may be kept parked (deltas for rows that cannot be created; 10000 unless set)';
COMMENT ON FUNCTION atomik_max_parked(bigint) IS 'set the parked-cell limit; a message that would park more is refused; the new value';
COMMENT ON FUNCTION atomik_require_device_keys() IS 'hub: 1 if it serves only sites with an enrolled device key';
COMMENT ON FUNCTION atomik_require_device_keys(boolean) IS 'hub: serve only sites with an enrolled device key (or not); the new setting';
COMMENT ON FUNCTION atomik_publish() IS 'hub: number the committed log entries not numbered yet (feed, LISTEN atomik_log); the log position';
"#,
    name = "replication_comments",
    requires = [
        atomik_site_id,
        atomik_seal,
        atomik_vector,
        atomik_changes,
        atomik_apply,
        atomik_sync_request,
        atomik_sync,
        atomik_sync_finish,
        atomik_make_relay,
        atomik_version,
        atomik_set_device_key,
        atomik_new_device_key,
        atomik_require_device_keys_get,
        atomik_require_device_keys_set,
        atomik_horizon_get,
        atomik_horizon_set,
        atomik_max_parked_get,
        atomik_max_parked_set,
        atomik_publish
    ]
);
