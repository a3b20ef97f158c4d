//! Retention: unregister silent peers, fold away batches every peer has.

use crate::error::Result;
use crate::store::{PeerRole, VectorStore};

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
/// peer has them, and nothing is folded while a sync request awaits the
/// first answer of an upstream (which must still be sent everything).
///
/// # Errors
/// Store errors.
pub fn fold_covered<S: VectorStore + ?Sized>(store: &mut S, now: u64) -> Result<FoldReport> {
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
    let has_upstream = peers.iter().any(|p| p.role == PeerRole::Upstream);
    let folded = store.folded()?;
    for (origin, head) in store.stored_heads()?.iter() {
        let covered_by_all = peers
            .iter()
            .map(|p| p.vector.get(&origin))
            .min()
            .unwrap_or(head)
            .min(head);
        let limit = if awaiting_upstream || (origin == site && peers.is_empty()) {
            0
        } else {
            covered_by_all
        };
        if limit > folded.get(&origin) {
            if origin != site && !has_upstream {
                // Folding others' batches with no upstream makes this the
                // root: it can never relay those batches upward later.
                store.set_setting(settings::ROOT_HUB, Some(1))?;
            }
            store.set_folded_entry(origin, limit)?;
            report.origins_folded += 1;
        }
        if limit > 0 {
            // Also drops batches kept again below the folded mark.
            store.drop_batches_through(origin, limit)?;
        }
    }
    Ok(report)
}
