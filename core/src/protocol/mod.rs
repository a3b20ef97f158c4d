//! The replication state machine of DESIGN.md §2, as pure logic over a
//! [`Store`]. Engines call these functions inside one transaction and roll
//! back when one returns an error.
//!
//! | call | SQL surface |
//! |---|---|
//! | [`seal`] | `atomik_seal()` |
//! | [`vector_message`] | `atomik_vector()` |
//! | [`changes_for`] | `atomik_changes(vector)` |
//! | [`apply_message`] | `atomik_apply(bytes)` |
//! | [`sync_request`] | `atomik_sync_request()` |
//! | [`serve_sync`] | `atomik_sync(request)` |
//! | [`finish_sync`] | `atomik_sync_finish(response)` |

mod apply;
mod retention;
mod snapshot;
mod sync;
pub mod v2;

pub use apply::{apply_batch, apply_message, check_tracked};
pub use retention::{fold_covered, FoldReport};
pub use sync::{changes_for, finish_sync, serve_sync, sync_request};

use crate::codec::{encode, Batch, Message, VectorMessage};
use crate::error::Result;
use crate::store::VectorStore;

/// Names of the numeric settings a store keeps.
pub mod settings {
    /// Seconds a downstream peer may stay silent before it is unregistered
    /// (and must bootstrap from a snapshot if what it lacks was folded).
    pub const HORIZON_SECS: &str = "horizon_secs";
    /// Set (to the time) by the first sync request of a replica that knows
    /// no upstream yet, cleared by the first response: nothing is folded
    /// meanwhile, so the upstream can still be sent everything. A hub that
    /// will relay to an upstream hub makes one sync request to it before it
    /// serves devices (the response may be lost; the intent is recorded).
    pub const PENDING_UPSTREAM: &str = "pending_upstream_since";
    /// Set once this replica, knowing no upstream, has folded away other
    /// origins' batches: it is a root hub, and a later sync request to an
    /// upstream is refused (that upstream could never be sent them).
    pub const ROOT_HUB: &str = "root_hub";
    /// Default horizon: 30 days.
    pub const DEFAULT_HORIZON_SECS: u64 = 30 * 24 * 3600;
}

/// Seal pending local writes into one batch `(this site, seq)` kept in the
/// batch store until acknowledged. Returns the new seq, or 0 when nothing
/// was pending.
///
/// # Errors
/// Store errors.
pub fn seal<S: VectorStore + ?Sized>(store: &mut S) -> Result<u64> {
    let mut changes = store.take_pending()?;
    changes.prune_empty();
    if changes.is_empty() {
        return Ok(0);
    }
    let site = store.site_id()?;
    let seq = store
        .vector()?
        .get(&site)
        .checked_add(1)
        .ok_or_else(|| crate::ProtocolError::Store("batch seq overflow".to_string()))?;
    store.set_vector_entry(site, seq)?;
    store.store_batch(&Batch {
        origin: site,
        seq,
        changes,
    })?;
    Ok(seq)
}

/// This replica's version vector as a message (`atomik_vector()`).
///
/// # Errors
/// Store errors.
pub fn vector_message<S: VectorStore + ?Sized>(store: &mut S) -> Result<Vec<u8>> {
    Ok(encode(&Message::Vector(VectorMessage {
        site: store.site_id()?,
        vector: store.vector()?,
    })))
}
