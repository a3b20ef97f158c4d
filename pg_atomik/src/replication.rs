//! The replication functions of DESIGN.md §4. Each takes this database's
//! replication lock, runs one `atomik_core::protocol` call over
//! [`PgStore`] in the caller's transaction, and raises the call's error —
//! which rolls back everything the call did. None is `SECURITY DEFINER`:
//! they read and write the application's tables as the calling role, so
//! its GRANTs and row-level security policies hold.

use std::time::{SystemTime, UNIX_EPOCH};

use atomik_core::error::Result;
use atomik_core::protocol;
use atomik_core::Store;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;

use crate::errors::or_raise;
use crate::store::{flush_parked, PgStore};

/// The advisory lock key ("atomik" in ASCII) that serializes protocol
/// calls within a database: a second sync of the same origin waits for
/// the first to commit, then sees its advanced vector and applies nothing.
pub const LOCK_KEY: i64 = 0x6174_6f6d_696b;

/// Take the replication lock until the end of the transaction.
pub fn lock() -> Result<()> {
    crate::store::exec(
        "SELECT pg_catalog.pg_advisory_xact_lock($1)",
        &[DatumWithOid::from(LOCK_KEY)],
    )?;
    Ok(())
}

/// Seconds since the Unix epoch (the peers' last-seen clock).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Run one protocol call under the lock; `mutates` first folds committed
/// deferred deltas (so a seal ships them) and applies parked deltas whose
/// rows have appeared.
fn call<T>(mutates: bool, f: impl FnOnce(&mut PgStore) -> Result<T>) -> T {
    or_raise((|| {
        lock()?;
        let mut store = PgStore::new();
        if mutates {
            crate::deferred::fold_before_protocol()?;
            let tracked = store.tracked_tables()?.to_vec();
            flush_parked(&tracked)?;
        }
        f(&mut store)
    })())
}

/// `atomik_site_id()`: this replica's site id, 32 hex digits.
#[pg_extern(requires = ["state_tables"])]
fn atomik_site_id() -> String {
    call(false, |s| s.site_id()).to_string()
}

/// `atomik_seal()`: seal pending accumulators into a batch; its seq, or 0.
#[pg_extern(requires = ["state_tables"])]
fn atomik_seal() -> i64 {
    call(true, protocol::seal) as i64
}

/// `atomik_vector()`: this replica's version vector as a message.
#[pg_extern(requires = ["state_tables"])]
fn atomik_vector() -> Vec<u8> {
    call(false, protocol::vector_message)
}

/// `atomik_changes(vector)`: what a replica with that vector lacks.
#[pg_extern(requires = ["state_tables"])]
fn atomik_changes(vector: &[u8]) -> Vec<u8> {
    call(false, |s| protocol::changes_for(s, vector))
}

/// `atomik_apply(batch)`: apply a batch or response exactly once; the
/// number of deltas newly applied.
#[pg_extern(requires = ["state_tables"])]
fn atomik_apply(batch: &[u8]) -> i64 {
    call(true, |s| protocol::apply_message(s, batch, now())) as i64
}

/// `atomik_sync_request()`: seal, then the request bytes for a hub.
#[pg_extern(requires = ["state_tables"])]
fn atomik_sync_request() -> Vec<u8> {
    call(true, |s| protocol::sync_request(s, now()))
}

/// `atomik_sync(request)`: serve a device's sync request (hub role).
#[pg_extern(requires = ["state_tables"])]
fn atomik_sync(request: &[u8]) -> Vec<u8> {
    call(true, |s| protocol::serve_sync(s, request, now()))
}

/// `atomik_sync_finish(response)`: apply a hub's response exactly once.
#[pg_extern(requires = ["state_tables"])]
fn atomik_sync_finish(response: &[u8]) -> i64 {
    call(true, |s| protocol::finish_sync(s, response, now())) as i64
}

/// `atomik_version()`: the extension version.
#[pg_extern(immutable, parallel_safe)]
fn atomik_version() -> &'static str {
    atomik_core::VERSION
}

pgrx::extension_sql!(
    r#"
COMMENT ON FUNCTION atomik_site_id() IS 'this replica''s site id (32 hex digits)';
COMMENT ON FUNCTION atomik_seal() IS 'seal pending accumulators into a batch; its seq, or 0 if nothing was pending';
COMMENT ON FUNCTION atomik_vector() IS 'this replica''s version vector (wire message)';
COMMENT ON FUNCTION atomik_changes(bytea) IS 'what a replica with that vector lacks, coalesced';
COMMENT ON FUNCTION atomik_apply(bytea) IS 'apply a batch or download exactly once; deltas newly applied';
COMMENT ON FUNCTION atomik_sync_request() IS 'device: seal, then the sync request for a hub';
COMMENT ON FUNCTION atomik_sync(bytea) IS 'hub: serve a sync request; the response';
COMMENT ON FUNCTION atomik_sync_finish(bytea) IS 'device: apply a hub''s response exactly once; deltas newly applied';
COMMENT ON FUNCTION atomik_version() IS 'extension version';
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
        atomik_version
    ]
);
