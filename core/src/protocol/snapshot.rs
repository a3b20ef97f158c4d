//! Bootstrap from a snapshot: the hub's references and the vector they
//! cover, with this replica's own newer batches re-applied on top.

use crate::changes::Changes;
use crate::error::{ProtocolError, Result};
use crate::site::{SiteId, VersionVector};
use crate::store::VectorStore;

use super::apply::check_tracked;

/// Install a snapshot. References become the snapshot's values plus every
/// stored batch the snapshot does not cover and that follows it without a
/// gap (always this replica's own unacknowledged batches; for a relay also
/// batches of others that arrived meanwhile). Accumulators are kept.
/// Knowledge of other origins beyond the snapshot that is not stored here
/// is given up (the vector moves back for them; it is fetched again later).
///
/// # Errors
/// [`ProtocolError::StaleSnapshot`] when the snapshot lacks own batches
/// this replica no longer holds; tracking and store errors.
pub(super) fn install<S: VectorStore + ?Sized>(
    store: &mut S,
    hub: SiteId,
    covered: &VersionVector,
    values: &Changes,
) -> Result<u64> {
    let site = store.site_id()?;
    let folded = store.folded()?;
    if folded.get(&site) > covered.get(&site) {
        return Err(ProtocolError::StaleSnapshot {
            hub,
            covered: covered.get(&site),
            dropped: folded.get(&site),
        });
    }
    check_tracked(&store.tracked()?, values)?;
    let current = store.vector()?;
    let heads = store.stored_heads()?;
    let mut total = values.clone();
    let mut new_vector = covered.clone();
    let mut applied = values.cell_count() as u64;
    // Stored batches beyond the snapshot, usable only where they follow it
    // without a gap.
    let contiguous: VersionVector = heads
        .iter()
        .filter(|(o, head)| *head > covered.get(o) && folded.get(o) <= covered.get(o))
        .collect();
    for batch in store.stored_batches(covered, None)? {
        if contiguous.get(&batch.origin) >= batch.seq {
            total
                .merge(&batch.changes)
                .map_err(|e| ProtocolError::Store(e.to_string()))?;
            applied += batch.changes.cell_count() as u64;
            new_vector.set(batch.origin, batch.seq.max(new_vector.get(&batch.origin)));
        }
    }
    // This replica's own seq never moves back.
    new_vector.set(site, current.get(&site).max(new_vector.get(&site)));
    store.install_references(&total)?;
    store.replace_vector(&new_vector)?;
    for (origin, head) in heads.iter() {
        let keep_from = if contiguous.get(&origin) > 0 {
            covered.get(&origin)
        } else {
            head
        };
        store.drop_batches_through(origin, keep_from)?;
    }
    // Nothing up to the snapshot's vector is stored here any more.
    let mut origins: Vec<SiteId> = folded.iter().map(|(o, _)| o).collect();
    origins.extend(covered.iter().map(|(o, _)| o));
    for origin in origins {
        store.set_folded_entry(origin, covered.get(&origin))?;
    }
    Ok(applied)
}
