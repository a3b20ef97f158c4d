//! Retention: unregister silent peers, fold away batches every peer has.

use crate::error::Result;
use crate::store::{PeerRole, Store};

use super::settings;

/// What one retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FoldReport {
    /// Downstream peers unregistered for being silent past the horizon.
    pub peers_expired: u64,
    /// Origins whose stored batches were (partly) folded away.
    pub origins_folded: u64,
}

/// Unregister downstream peers silent for longer than the horizon, then
/// fold away every stored batch that every registered peer's own stated
/// vector covers. This replica's own batches are kept until at least one
/// peer has them; other origins' batches are kept while a relay request
/// awaits its first upstream.
///
/// # Errors
/// Store errors.
pub fn fold_covered<S: Store + ?Sized>(store: &mut S, now: u64) -> Result<FoldReport> {
    let horizon = store
        .setting(settings::HORIZON_SECS)?
        .unwrap_or(settings::DEFAULT_HORIZON_SECS);
    let mut report = FoldReport::default();
    let mut peers = Vec::new();
    for p in store.peers()? {
        if p.role == PeerRole::Downstream && p.last_seen.saturating_add(horizon) < now {
            store.remove_peer(p.site, p.role)?;
            report.peers_expired += 1;
        } else {
            peers.push(p);
        }
    }
    let site = store.site_id()?;
    let awaiting_upstream = store.setting(settings::PENDING_UPSTREAM)?.is_some();
    let folded = store.folded()?;
    for (origin, head) in store.stored_heads()?.iter() {
        let limit = if peers.is_empty() {
            if origin == site || awaiting_upstream {
                0
            } else {
                head
            }
        } else if origin != site && awaiting_upstream {
            0
        } else {
            peers
                .iter()
                .map(|p| p.vector.get(&origin))
                .min()
                .unwrap_or(0)
                .min(head)
        };
        if limit > folded.get(&origin) {
            store.drop_batches_through(origin, limit)?;
            store.set_folded_entry(origin, limit)?;
            report.origins_folded += 1;
        }
    }
    Ok(report)
}
