//! The store conformance kit: the same cases for every [`LogStore`] — the
//! memory store, SQLite and PostgreSQL run them in their own tests.
//!
//! [`log_primitives`] needs a fresh store (nothing in its outbox, log or
//! registry) whose cells it does not touch; it leaves the store dirty.

use crate::changes::{Changes, ColumnId};
use crate::codec::v2::{Cursor, OutboxEntry};
use crate::group::Group;
use crate::key::{Key, KeyShape};
use crate::site::SiteId;

use super::{LogAppend, LogBounds, LogStore};

fn delta(key: i64, d: i64) -> Changes {
    let mut c = Changes::new();
    c.add(
        &ColumnId::new("inv", "qty", Group::Add),
        &KeyShape::int(),
        Key::int(key),
        d as u64,
    )
    .expect("an int key fits an int shape");
    c
}

macro_rules! check {
    ($cond:expr, $($what:tt)+) => {
        if !$cond {
            return Err(format!($($what)+));
        }
    };
}

/// Outbox, link, log, registry and device-key primitives on a fresh store.
///
/// # Errors
/// A description of the first case the store gets wrong.
pub fn log_primitives<S: LogStore + ?Sized>(store: &mut S) -> Result<(), String> {
    let e = |e: crate::ProtocolError| e.to_string();
    let (a, b, hub) = (SiteId([0xA1; 16]), SiteId([0xB2; 16]), SiteId([0xC3; 16]));

    // Outbox: pushed in order, dropped by prefix.
    check!(
        store.outbox().map_err(e)?.is_empty(),
        "a fresh outbox is empty"
    );
    for position in 1..=3 {
        store
            .outbox_push(&OutboxEntry {
                position,
                origin: a,
                seq: position,
                changes: delta(position as i64, 10),
            })
            .map_err(e)?;
    }
    store.outbox_drop_through(1).map_err(e)?;
    let left: Vec<u64> = store
        .outbox()
        .map_err(e)?
        .iter()
        .map(|o| o.position)
        .collect();
    check!(left == [2, 3], "outbox after dropping through 1: {left:?}");
    check!(
        store.outbox().map_err(e)?[0].changes == delta(2, 10),
        "outbox entries keep their changes"
    );

    // Link.
    check!(
        store.link().map_err(e)?.is_none(),
        "a fresh store has no link"
    );
    let cursor = Cursor { hub, position: 7 };
    store.set_link(Some(cursor)).map_err(e)?;
    check!(store.link().map_err(e)? == Some(cursor), "link round trip");
    store.set_link(None).map_err(e)?;
    check!(store.link().map_err(e)?.is_none(), "link cleared");

    // Log: positions 1.., sums and entries exclude the asker's (by origin
    // and by via), bounded by `through`.
    check!(
        store.log_bounds().map_err(e)? == LogBounds::default(),
        "a fresh log is empty at 0"
    );
    let stranger = SiteId([0; 16]);
    let appends = [
        (a, 1, a, 5, 100),
        (b, 1, b, 5, 110),
        (a, 2, hub, 6, 120),
        (b, 2, a, 5, 130),
    ];
    for (i, (origin, seq, via, key, now)) in appends.iter().enumerate() {
        let changes = delta(*key, 1 << i);
        store
            .log_append(LogAppend {
                origin: *origin,
                seq: *seq,
                via: *via,
                changes: &changes,
                now: *now,
            })
            .map_err(e)?;
        check!(
            store.log_entries(0, None, stranger).map_err(e)?.len() == i + 1,
            "append {i} is an entry of this transaction"
        );
    }
    store.log_publish().map_err(e)?;
    let bounds = store.log_bounds().map_err(e)?;
    check!(
        bounds.watermark == 4 && bounds.trimmed_through == 0,
        "bounds after 4 appends: {bounds:?}"
    );
    let mut want = delta(5, 2);
    want.merge(&delta(6, 4)).expect("same shape");
    let sum = store.log_sum(0, Some(3), stranger).map_err(e)?;
    check!(
        sum == {
            let mut w = delta(5, 1);
            w.merge(&want).expect("same shape");
            w
        },
        "sum (0, 3] for a stranger: {sum:?}"
    );
    let sum = store.log_sum(0, None, a).map_err(e)?;
    check!(
        sum == delta(5, 2),
        "sum for a excludes a's entries and those via a: {sum:?}"
    );
    let sum = store.log_sum(1, Some(2), b).map_err(e)?;
    check!(sum.is_empty(), "sum (1, 2] for b is empty: {sum:?}");
    let sum = store.log_sum(0, Some(3), hub).map_err(e)?;
    check!(
        sum == delta(5, 3),
        "sum for hub excludes the entry via hub: {sum:?}"
    );
    let entries = store.log_entries(1, None, stranger).map_err(e)?;
    let ids: Vec<(SiteId, u64)> = entries.iter().map(|b| (b.origin, b.seq)).collect();
    check!(ids == [(b, 1), (a, 2), (b, 2)], "entries after 1: {ids:?}");
    check!(
        entries[1].changes == delta(6, 4),
        "entries keep their changes"
    );
    let entries = store.log_entries(0, Some(4), b).map_err(e)?;
    check!(entries.len() == 2, "entries for b: {}", entries.len());
    // The feed's read: every origin, with positions, bounded.
    let read = store.log_read(0, 4, 10).map_err(e)?;
    let got: Vec<(u64, SiteId, u64)> = read.iter().map(|r| (r.position, r.origin, r.seq)).collect();
    check!(
        got == [(1, a, 1), (2, b, 1), (3, a, 2), (4, b, 2)],
        "log_read (0, 4]: {got:?}"
    );
    check!(read[2].changes == delta(6, 4), "log_read keeps the changes");
    let got: Vec<u64> = store
        .log_read(1, 4, 2)
        .map_err(e)?
        .iter()
        .map(|r| r.position)
        .collect();
    check!(got == [2, 3], "log_read (1, 4] limit 2: {got:?}");
    let got: Vec<u64> = store
        .log_read(0, 2, 10)
        .map_err(e)?
        .iter()
        .map(|r| r.position)
        .collect();
    check!(got == [1, 2], "log_read (0, 2]: {got:?}");
    check!(
        store.log_read(4, 4, 10).map_err(e)?.is_empty(),
        "log_read (4, 4] is empty"
    );

    // Trim by age, then reset behind an empty position.
    let trimmed = store.log_trim(115).map_err(e)?;
    check!(
        trimmed == 2,
        "trimming entries before t=115 trims through 2, got {trimmed}"
    );
    check!(
        store.log_entries(0, None, stranger).map_err(e)?.len() == 2,
        "two entries remain after the trim"
    );
    let got: Vec<u64> = store
        .log_read(0, 4, 10)
        .map_err(e)?
        .iter()
        .map(|r| r.position)
        .collect();
    check!(got == [3, 4], "log_read after the trim: {got:?}");
    store.log_reset().map_err(e)?;
    let bounds = store.log_bounds().map_err(e)?;
    check!(
        bounds.watermark == 5 && bounds.trimmed_through == 5,
        "a reset leaves one empty position: {bounds:?}"
    );
    check!(
        store.log_entries(0, None, stranger).map_err(e)?.is_empty(),
        "a reset log holds nothing"
    );
    let changes = delta(1, 1);
    store
        .log_append(LogAppend {
            origin: a,
            seq: 3,
            via: a,
            changes: &changes,
            now: 200,
        })
        .map_err(e)?;
    store.log_publish().map_err(e)?;
    let bounds = store.log_bounds().map_err(e)?;
    check!(
        bounds.watermark == 6,
        "the first append after a reset is at 6: {bounds:?}"
    );
    check!(
        store.log_entries(5, Some(6), stranger).map_err(e)?.len() == 1,
        "the entry at 6 is in (5, 6]"
    );

    // Registry.
    check!(
        store.registry_seq(a).map_err(e)? == 0,
        "an unknown origin is at 0"
    );
    store.set_registry_seq(a, 4).map_err(e)?;
    store.set_registry_seq(b, 9).map_err(e)?;
    store.set_registry_seq(b, 10).map_err(e)?;
    check!(store.registry_seq(b).map_err(e)? == 10, "registry update");
    check!(
        store.registry_seq_for_update(b).map_err(e)? == 10,
        "a locked read reads the same entry"
    );
    store.set_registry_seq(a, 0).map_err(e)?;
    check!(
        store.registry_seq_for_update(stranger).map_err(e)? == 0,
        "a locked read of an unknown origin is at 0"
    );
    let reg = store.registry().map_err(e)?;
    check!(
        reg.len() == 1 && reg.get(&b) == 10,
        "zero entries are not in the registry: {reg:?}"
    );

    // Device keys: per site, replaced, removed.
    let (k1, k2) = (
        crate::auth::DeviceKey::from_bytes(&[1; 32]).map_err(e)?,
        crate::auth::DeviceKey::from_bytes(&[2; 32]).map_err(e)?,
    );
    check!(
        store.device_key(a).map_err(e)?.is_none(),
        "no device key before one is stored"
    );
    store.set_device_key(a, Some(&k1)).map_err(e)?;
    store.set_device_key(b, Some(&k1)).map_err(e)?;
    store.set_device_key(a, Some(&k2)).map_err(e)?;
    check!(
        store.device_key(a).map_err(e)? == Some(k2.clone()),
        "a stored key is replaced"
    );
    store.set_device_key(b, None).map_err(e)?;
    check!(
        store.device_key(b).map_err(e)?.is_none() && store.device_key(a).map_err(e)? == Some(k2),
        "a removed key is gone, the others stay"
    );
    store.set_device_key(a, None).map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_memory_store_conforms() {
        let mut s = crate::memory::MemoryStore::new(crate::SiteId([1; 16]));
        super::log_primitives(&mut s).unwrap();
    }
}
