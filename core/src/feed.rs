//! The changefeed: a hub's log read as rows after a cursor —
//! `atomik_feed(after)` and `atomik_log_position()` in both engines.
//!
//! A hub appends every batch it applies — each device's uploads, and its
//! own writes when it seals them — to its log at consecutive positions
//! ([`LogStore`]). The feed reads the entries after a position, up to the
//! watermark (every entry at or below it has committed, so a later read
//! never finds an entry behind a position it already passed), each entry
//! with its origin, seq and cells.
//!
//! A consumer that stores the position of the last entry it read in the
//! same transaction as its own effects sees every delta exactly once: a
//! crash rolls both back together, and the next read resumes from the
//! stored position. The feed is read in whole entries (`max_entries`
//! bounds how many), so the last row's position is always a cursor to
//! resume from.
//!
//! A cursor behind the trimmed part of the log (older than the retention
//! horizon) or past its end (from another hub, or a database restored
//! from an older backup) is refused, never answered with a silent gap.

use crate::changes::ColumnId;
use crate::error::{ProtocolError, Result};
use crate::key::Key;
use crate::log_store::{LogEntry, LogStore};
use crate::protocol::v2::settings;
use crate::site::SiteId;

/// One cell of a feed entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedRow<'a> {
    /// The entry's position in the hub's log: the cursor to resume from
    /// once this entry's rows are consumed.
    pub position: u64,
    /// The site that made the change.
    pub origin: SiteId,
    /// The batch's seq at its origin.
    pub seq: u64,
    /// The cell's table, column and group.
    pub column: &'a ColumnId,
    /// The cell's key.
    pub key: &'a Key,
    /// The delta, in the column's group.
    pub delta: u64,
}

fn keeps_a_log<S: LogStore + ?Sized>(store: &mut S) -> Result<()> {
    // A replica that syncs upstream as a device and never served keeps no
    // log; one that has done neither yet (a hub before its first serve)
    // has an empty one.
    if store.setting(settings::UPSTREAM)?.is_some() && store.setting(settings::HUB)?.is_none() {
        return Err(ProtocolError::NotServing(store.site_id()?));
    }
    Ok(())
}

/// `atomik_log_position()`: the position a new consumer starts from — the
/// watermark of this hub's log (0 for an empty log).
///
/// # Errors
/// [`ProtocolError::NotServing`] on a device; store errors.
pub fn position<S: LogStore + ?Sized>(store: &mut S) -> Result<u64> {
    keeps_a_log(store)?;
    Ok(store.log_bounds()?.watermark)
}

/// `atomik_feed(after, max_entries)`: the log entries after `after`, up to
/// the watermark, at most `max_entries` of them (all when `None`), in
/// position order.
///
/// # Errors
/// [`ProtocolError::NotServing`] on a device;
/// [`ProtocolError::FeedTrimmed`] and [`ProtocolError::FeedAhead`] for a
/// cursor the log cannot answer; [`ProtocolError::BadSetting`] for a
/// `max_entries` below 1; store errors.
pub fn read<S: LogStore + ?Sized>(
    store: &mut S,
    after: u64,
    max_entries: Option<u64>,
) -> Result<Vec<LogEntry>> {
    keeps_a_log(store)?;
    let limit = match max_entries {
        Some(0) => {
            return Err(ProtocolError::BadSetting(
                "max_entries must be at least 1".to_string(),
            ))
        }
        Some(n) => n,
        None => u64::MAX,
    };
    let bounds = store.log_bounds()?;
    if after < bounds.trimmed_through {
        return Err(ProtocolError::FeedTrimmed {
            after,
            trimmed: bounds.trimmed_through,
        });
    }
    if after > bounds.watermark {
        return Err(ProtocolError::FeedAhead {
            after,
            end: bounds.watermark,
        });
    }
    store.log_read(after, bounds.watermark, limit)
}

/// The cells of `entries` as rows, in entry order, then column and key
/// order within an entry.
pub fn rows(entries: &[LogEntry]) -> impl Iterator<Item = FeedRow<'_>> {
    entries.iter().flat_map(|e| {
        e.changes.columns().flat_map(move |(column, block)| {
            block.cells.iter().map(move |(key, delta)| FeedRow {
                position: e.position,
                origin: e.origin,
                seq: e.seq,
                column,
                key,
                delta: *delta,
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::Changes;
    use crate::group::Group;
    use crate::key::KeyShape;
    use crate::log_store::LogAppend;
    use crate::memory::MemoryStore;
    use crate::Store;

    fn sale(sku: i64, n: i64) -> Changes {
        let mut c = Changes::new();
        c.add(
            &ColumnId::new("stock", "qty", Group::Add),
            &KeyShape::int(),
            Key::int(sku),
            (-n) as u64,
        )
        .unwrap();
        c
    }

    fn hub_with(entries: usize) -> MemoryStore {
        let mut hub = MemoryStore::new(SiteId([9; 16]));
        hub.set_setting(settings::HUB, Some(1)).unwrap();
        for i in 0..entries {
            hub.log_append(LogAppend {
                origin: SiteId([1 + (i % 2) as u8; 16]),
                seq: 1 + i as u64 / 2,
                via: SiteId([1; 16]),
                changes: &sale(i as i64, 1),
                now: 100 + i as u64,
            })
            .unwrap();
        }
        hub
    }

    #[test]
    fn the_feed_reads_every_origin_after_the_cursor_in_whole_entries() {
        let mut hub = hub_with(5);
        assert_eq!(position(&mut hub).unwrap(), 5);
        let all = read(&mut hub, 0, None).unwrap();
        assert_eq!(
            all.iter().map(|e| e.position).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
        let page = read(&mut hub, 1, Some(2)).unwrap();
        assert_eq!(
            page.iter()
                .map(|e| (e.position, e.origin, e.seq))
                .collect::<Vec<_>>(),
            [(2, SiteId([2; 16]), 1), (3, SiteId([1; 16]), 2)]
        );
        let rows: Vec<_> = rows(&page).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].position, rows[0].key, rows[0].delta as i64),
            (2, &Key::int(1), -1)
        );
        assert!(read(&mut hub, 5, None).unwrap().is_empty());
    }

    #[test]
    fn cursors_the_log_cannot_answer_are_refused() {
        let mut hub = hub_with(5);
        hub.log_trim(102).unwrap();
        assert_eq!(
            read(&mut hub, 1, None).unwrap_err().to_string(),
            "feed cursor 1 is behind this hub's log, which is trimmed through position 2 \
             (entries older than the retention horizon, atomik_horizon(), are dropped): \
             the deltas in between are gone; rebuild the consumer from the tables and \
             resume from atomik_log_position()"
        );
        assert_eq!(read(&mut hub, 2, None).unwrap().len(), 3);
        assert_eq!(
            read(&mut hub, 6, None).unwrap_err().to_string(),
            "feed cursor 6 is past the end of this hub's log (position 5): it comes from \
             another hub, or this database was restored from an older backup; rebuild \
             the consumer from the tables and resume from atomik_log_position()"
        );
        assert_eq!(
            read(&mut hub, 2, Some(0)).unwrap_err().to_string(),
            "max_entries must be at least 1"
        );
    }

    #[test]
    fn a_device_keeps_no_log_and_a_new_replica_an_empty_one() {
        let mut fresh = MemoryStore::new(SiteId([3; 16]));
        assert_eq!(position(&mut fresh).unwrap(), 0);
        assert!(read(&mut fresh, 0, None).unwrap().is_empty());
        fresh.set_setting(settings::UPSTREAM, Some(1)).unwrap();
        assert!(matches!(
            read(&mut fresh, 0, None),
            Err(ProtocolError::NotServing(_))
        ));
        assert!(position(&mut fresh).is_err());
    }
}
