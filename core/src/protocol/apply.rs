//! Exactly-once application of batches and messages.

use crate::changes::Changes;
use crate::codec::{decode, Batch, Message};
use crate::error::{ProtocolError, Result};
use crate::store::{TrackedColumn, VectorStore};

/// Check every column of `changes` against the tracked set: the table and
/// column must be tracked here and keys must have the table's key shape.
/// Names from a message are only ever compared, never spliced into SQL.
///
/// # Errors
/// [`ProtocolError::Untracked`] or [`ProtocolError::KeyShape`].
pub fn check_tracked(tracked: &[TrackedColumn], changes: &Changes) -> Result<()> {
    for (id, block) in changes.columns() {
        let Some(t) = tracked
            .iter()
            .find(|t| t.table == id.table && t.column == id.column)
        else {
            return Err(ProtocolError::Untracked {
                table: id.table.clone(),
                column: id.column.clone(),
            });
        };
        if t.shape != block.shape {
            let key = block
                .cells
                .keys()
                .next()
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(ProtocolError::KeyShape {
                table: id.table.clone(),
                key,
                why: format!(
                    "the message has key columns {:?}, the table has {:?}",
                    block.shape.kinds(),
                    t.shape.kinds()
                ),
            });
        }
    }
    Ok(())
}

/// Apply one batch exactly once: a duplicate (`seq <= vector[origin]`) is a
/// no-op, a gap is an error, the next seq is applied into references and
/// advances the vector. A relay also stores the batch for others. A batch of
/// this replica's own origin is already part of its state: a no-op.
///
/// Returns the number of deltas applied (0 for a no-op).
///
/// # Errors
/// [`ProtocolError::Gap`], tracking and group errors, store errors.
pub fn apply_batch<S: VectorStore + ?Sized>(
    store: &mut S,
    tracked: &[TrackedColumn],
    batch: &Batch,
) -> Result<u64> {
    let site = store.site_id()?;
    if batch.origin == site {
        return Ok(0);
    }
    let have = store.vector()?.get(&batch.origin);
    if batch.seq <= have {
        // A relay that holds this batch only folded into its references
        // (received coalesced before it relayed) keeps it now, so that it
        // can still pass it on; retention drops it again once covered.
        if store.is_relay()? && !store.has_batch(batch.origin, batch.seq)? {
            check_tracked(tracked, &batch.changes)?;
            store.store_batch(batch)?;
        }
        return Ok(0);
    }
    if batch.seq != have + 1 {
        return Err(ProtocolError::Gap {
            origin: batch.origin,
            have,
            got: batch.seq,
        });
    }
    check_tracked(tracked, &batch.changes)?;
    let applied = store.receive(&batch.changes)?;
    store.set_vector_entry(batch.origin, batch.seq)?;
    if store.is_relay()? {
        store.store_batch(batch)?;
    } else {
        // A leaf keeps nobody else's batches: what it applied cannot be
        // served from here again.
        store.set_folded_entry(batch.origin, batch.seq)?;
    }
    Ok(applied)
}

/// `atomik_apply(bytes)`: apply a batch, or a response / download (as
/// [`super::finish_sync`] does), exactly once. Returns deltas newly applied.
///
/// # Errors
/// Decode errors, [`ProtocolError::Gap`], tracking and group errors; a
/// vector or request is not something to apply.
pub fn apply_message<S: VectorStore + ?Sized>(
    store: &mut S,
    bytes: &[u8],
    now: u64,
) -> Result<u64> {
    match decode(bytes)? {
        Message::Batch(b) => {
            let tracked = store.tracked()?;
            apply_batch(store, &tracked, &b)
        }
        Message::Response(r) => super::sync::finish_decoded(store, &r, now),
        other => Err(ProtocolError::Decode(crate::DecodeError::WrongKind {
            expected: "batch or sync response",
            found: other.kind().name(),
        })),
    }
}
