//! The storage protocol v2 needs beyond [`Store`]: an outbox, one cursor
//! upstream, and — on a hub — a log of every batch it applied and a
//! per-origin registry.
//!
//! Every method is a bulk primitive that an engine implements with a few
//! indexed statements: nothing here scans the fleet. A sync touches the
//! asker's registry entry, the outbox, and the log range it needs.

use crate::auth::DeviceKey;
use crate::changes::Changes;
use crate::codec::v2::{Cursor, OutboxEntry};
use crate::codec::Batch;
use crate::error::Result;
use crate::site::{SiteId, VersionVector};
use crate::store::Store;

/// A batch as a hub appends it to its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogAppend<'a> {
    /// The site that sealed it.
    pub origin: SiteId,
    /// Its seq at the origin.
    pub seq: u64,
    /// The peer it arrived from (the origin itself, an upstream, a relay),
    /// so that it is never sent back there.
    pub via: SiteId,
    /// Its deltas.
    pub changes: &'a Changes,
    /// When it was appended (seconds, the caller's clock), for retention.
    pub now: u64,
}

/// One entry of a hub's log at its position, as the feed reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its position in the log.
    pub position: u64,
    /// The site that sealed it.
    pub origin: SiteId,
    /// Its seq at the origin.
    pub seq: u64,
    /// Its deltas.
    pub changes: Changes,
}

/// The retained part of a hub's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogBounds {
    /// Every entry at or below this position was trimmed (or never was).
    pub trimmed_through: u64,
    /// The highest position below which every entry is committed: the
    /// cursor a serve hands out. In a store whose transactions serialize,
    /// the last position.
    pub watermark: u64,
}

/// Storage of a protocol v2 replica, in the caller's transaction.
///
/// Beside the cells of [`Store`] (whose `take_pending` must read a record
/// of written cells, not scan the tables), a replica keeps:
/// * its **outbox**: sealed batches its upstream has not acknowledged, at
///   consecutive positions (a leaf: its own batches, position = seq; a
///   relay: every batch it applied that did not come from upstream);
/// * its **link**: the cursor into its upstream's log;
/// * on a hub, its **log**: every batch it applied, at consecutive
///   positions, trimmed by age; and its **registry**: per origin, the
///   highest seq applied (exactly-once).
///
/// Numbers kept as settings (own seq, outbox ends) go through
/// [`Store::setting`].
pub trait LogStore: Store {
    /// Append an entry at the end of the outbox.
    fn outbox_push(&mut self, entry: &OutboxEntry) -> Result<()>;
    /// Every outbox entry, in position order.
    fn outbox(&mut self) -> Result<Vec<OutboxEntry>>;
    /// Drop outbox entries at or below `position`.
    fn outbox_drop_through(&mut self, position: u64) -> Result<()>;

    /// The cursor into the upstream's log, if any.
    fn link(&mut self) -> Result<Option<Cursor>>;
    /// Set or clear the cursor.
    fn set_link(&mut self, link: Option<Cursor>) -> Result<()>;

    /// Append a batch to the log. A store whose serves run in parallel
    /// may number it only at a later [`Self::log_publish`].
    fn log_append(&mut self, entry: LogAppend<'_>) -> Result<()>;
    /// Number the appended entries that are not numbered yet, where this
    /// call may (a store whose serves run in parallel numbers committed
    /// appends in one transaction at a time, so that a position is never
    /// passed by an entry that commits later). A store that numbers at
    /// append keeps the default, which does nothing.
    fn log_publish(&mut self) -> Result<()> {
        Ok(())
    }
    /// The retained part of the log.
    fn log_bounds(&mut self) -> Result<LogBounds>;
    /// The entries at positions in `(after, through]` (`through` `None`:
    /// every committed entry after `after` this transaction sees), less
    /// those whose origin or via is `asker`, each as its batch, in position
    /// order.
    fn log_entries(
        &mut self,
        after: u64,
        through: Option<u64>,
        asker: SiteId,
    ) -> Result<Vec<Batch>>;
    /// At most `limit` numbered entries at positions in `(after, through]`,
    /// of every origin, with their positions, in position order (the
    /// feed, [`crate::feed`]).
    fn log_read(&mut self, after: u64, through: u64, limit: u64) -> Result<Vec<LogEntry>>;
    /// The group-sum of [`Self::log_entries`]: what a leaf downloads. A
    /// store that keeps pre-summed ranges of its log overrides it.
    ///
    /// # Errors
    /// Store errors; a key-shape conflict between entries.
    fn log_sum(&mut self, after: u64, through: Option<u64>, asker: SiteId) -> Result<Changes> {
        let mut sum = Changes::new();
        for b in self.log_entries(after, through, asker)? {
            sum.merge(&b.changes).map_err(crate::ProtocolError::store)?;
        }
        Ok(sum)
    }
    /// Trim entries appended before `before` (seconds); entries never come
    /// back. Returns the new `trimmed_through`.
    fn log_trim(&mut self, before: u64) -> Result<u64>;
    /// Discard the whole log and leave one empty position at its end, so
    /// that every cursor handed out so far falls behind it.
    fn log_reset(&mut self) -> Result<()>;

    /// The highest seq of `origin` applied here (0: none).
    fn registry_seq(&mut self, origin: SiteId) -> Result<u64>;
    /// [`Self::registry_seq`] for a serve that may apply `origin`'s next
    /// batch: a store whose serves run in parallel locks the entry until
    /// the end of the transaction, so that two serves of one origin
    /// serialize and the second sees what the first applied. The default
    /// (a store whose transactions serialize) just reads it.
    fn registry_seq_for_update(&mut self, origin: SiteId) -> Result<u64> {
        self.registry_seq(origin)
    }
    /// Set the registry entry of `origin`.
    fn set_registry_seq(&mut self, origin: SiteId, seq: u64) -> Result<()>;
    /// The whole registry (for a relay's snapshot: O(origins), by design
    /// only on the relay path).
    fn registry(&mut self) -> Result<VersionVector>;

    /// The device key stored for `site` ([`crate::auth`]): on a hub, the
    /// key enrolled for a device; on a replica, its own key under its own
    /// site id.
    fn device_key(&mut self, site: SiteId) -> Result<Option<DeviceKey>>;
    /// Store `key` for `site`, or remove the site's key (`None`).
    fn set_device_key(&mut self, site: SiteId, key: Option<&DeviceKey>) -> Result<()>;

    /// Called once by a serve before it touches any cell, with whether it
    /// will answer with a snapshot: a store whose serves run in parallel
    /// takes its locks here, always in the same order, so that serves
    /// cannot deadlock (and a snapshot sees the references and the log as
    /// of one moment). The default does nothing.
    fn begin_serve(&mut self, snapshot: bool) -> Result<()> {
        let _ = snapshot;
        Ok(())
    }
}

pub mod conformance;
