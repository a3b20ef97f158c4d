//! Protocol v2 storage ([`LogStore`]) over the tables of schema `atomik`:
//! `outbox`, `link`, `log` and `registry` (see `state_tables.sql`). Each
//! primitive is one or two indexed statements; none scans the fleet.
//!
//! Batches (outbox entries and log entries) are stored as their wire bytes
//! (a version 1 batch message, [`state::batch_bytes`]) beside the columns
//! the statements filter on.
//!
//! The log's bounds are two settings: [`LOG_END`] (the last position handed
//! out) and [`LOG_TRIMMED`] (every position at or below it is gone).

use atomik_core::codec::v2::{Cursor, OutboxEntry};
use atomik_core::error::Result;
use atomik_core::log_store::{LogAppend, LogBounds, LogStore};
use atomik_core::store::Store;
use atomik_core::{Batch, ProtocolError, SiteId, VersionVector};
use pgrx::datum::DatumWithOid;

use super::spi::{exec, get, rows, to_i64, to_u64};
use super::state::{batch_bytes, batch_of, site_arg, site_of};
use super::PgStore;

/// Setting: the position of the last log entry ever appended (0: none).
pub const LOG_END: &str = "log_end";
/// Setting: every log position at or below this one has been trimmed (or
/// discarded by a reset).
pub const LOG_TRIMMED: &str = "log_trimmed_through";

fn bigint(v: u64, what: &str) -> Result<DatumWithOid<'static>> {
    Ok(DatumWithOid::from(to_i64(v, what)?))
}

/// `(after, through]` as bound arguments; `through` `None` is every entry.
fn range_args(after: u64, through: Option<u64>) -> Result<[DatumWithOid<'static>; 2]> {
    Ok([
        bigint(after, "log position")?,
        DatumWithOid::from(match through {
            Some(t) => to_i64(t, "log position")?,
            None => i64::MAX,
        }),
    ])
}

/// The log entries in `(after, through]` whose origin and via both differ
/// from `asker`, decoded, in position order. One statement.
fn log_batches(after: u64, through: Option<u64>, asker: SiteId) -> Result<Vec<Batch>> {
    let [after, through] = range_args(after, through)?;
    rows(
        "SELECT origin, seq, bytes FROM atomik.log
          WHERE position > $1 AND position <= $2 AND origin <> $3 AND via <> $3
          ORDER BY position",
        &[after, through, site_arg(asker)],
        |r| {
            let origin = site_of(&get::<Vec<u8>>(r, 1)?)?;
            let seq = to_u64(get::<i64>(r, 2)?, "seq")?;
            let batch = batch_of(&get::<Vec<u8>>(r, 3)?, "atomik.log")?;
            if batch.origin != origin || batch.seq != seq {
                return Err(ProtocolError::store(format!(
                    "atomik.log entry ({origin}, {seq}) holds the bytes of batch ({}, {})",
                    batch.origin, batch.seq
                )));
            }
            Ok(batch)
        },
    )
}

impl LogStore for PgStore {
    fn outbox_push(&mut self, entry: &OutboxEntry) -> Result<()> {
        let bytes = batch_bytes(&Batch {
            origin: entry.origin,
            seq: entry.seq,
            changes: entry.changes.clone(),
        });
        exec(
            "INSERT INTO atomik.outbox (position, origin, seq, bytes) VALUES ($1, $2, $3, $4)",
            &[
                bigint(entry.position, "outbox position")?,
                site_arg(entry.origin),
                bigint(entry.seq, "seq")?,
                DatumWithOid::from(bytes),
            ],
        )?;
        Ok(())
    }

    fn outbox(&mut self) -> Result<Vec<OutboxEntry>> {
        rows(
            "SELECT position, bytes FROM atomik.outbox ORDER BY position",
            &[],
            |r| {
                let position = to_u64(get::<i64>(r, 1)?, "outbox position")?;
                let b = batch_of(&get::<Vec<u8>>(r, 2)?, "atomik.outbox")?;
                Ok(OutboxEntry {
                    position,
                    origin: b.origin,
                    seq: b.seq,
                    changes: b.changes,
                })
            },
        )
    }

    fn outbox_drop_through(&mut self, position: u64) -> Result<()> {
        exec(
            "DELETE FROM atomik.outbox WHERE position <= $1",
            &[DatumWithOid::from(
                i64::try_from(position).unwrap_or(i64::MAX),
            )],
        )?;
        Ok(())
    }

    fn link(&mut self) -> Result<Option<Cursor>> {
        let found = rows("SELECT hub, position FROM atomik.link", &[], |r| {
            Ok(Cursor {
                hub: site_of(&get::<Vec<u8>>(r, 1)?)?,
                position: to_u64(get::<i64>(r, 2)?, "cursor position")?,
            })
        })?;
        Ok(found.into_iter().next())
    }

    fn set_link(&mut self, link: Option<Cursor>) -> Result<()> {
        match link {
            Some(c) => exec(
                "INSERT INTO atomik.link (hub, position) VALUES ($1, $2)
                 ON CONFLICT (singleton) DO UPDATE SET hub = EXCLUDED.hub, position = EXCLUDED.position",
                &[site_arg(c.hub), bigint(c.position, "cursor position")?],
            )?,
            None => exec("DELETE FROM atomik.link", &[])?,
        };
        Ok(())
    }

    fn log_append(&mut self, entry: LogAppend<'_>) -> Result<u64> {
        let position = self
            .number(LOG_END)?
            .checked_add(1)
            .ok_or_else(|| ProtocolError::store("log position overflow"))?;
        let bytes = batch_bytes(&Batch {
            origin: entry.origin,
            seq: entry.seq,
            changes: entry.changes.clone(),
        });
        exec(
            "INSERT INTO atomik.log (position, origin, seq, via, appended_at, bytes)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                bigint(position, "log position")?,
                site_arg(entry.origin),
                bigint(entry.seq, "seq")?,
                site_arg(entry.via),
                bigint(entry.now, "time")?,
                DatumWithOid::from(bytes),
            ],
        )?;
        self.set_setting(LOG_END, Some(position))?;
        Ok(position)
    }

    /// Every protocol call holds the replication lock (one transaction at
    /// a time appends, and it commits before the next call starts), so
    /// every entry this call sees is committed or its own: the watermark
    /// is simply the last position. Concurrent serves would need the
    /// highest position below which nothing is in flight.
    fn log_bounds(&mut self) -> Result<LogBounds> {
        Ok(LogBounds {
            trimmed_through: self.number(LOG_TRIMMED)?,
            watermark: self.number(LOG_END)?,
        })
    }

    /// One statement fetches the entries' bytes in position order; they
    /// are decoded and group-summed here with `Changes::merge`. (A
    /// server-side sum of the decoded deltas would move less data out of
    /// SPI; this is fine for now.)
    fn log_entries(
        &mut self,
        after: u64,
        through: Option<u64>,
        asker: SiteId,
    ) -> Result<Vec<Batch>> {
        log_batches(after, through, asker)
    }

    /// Trims through the last entry appended before `before`: entries are
    /// appended in time order (under the replication lock, each call's
    /// clock read after the lock), so that is the prefix older than the
    /// horizon; should the clock step back, a few younger entries go too,
    /// which only sends their cursors to a snapshot.
    fn log_trim(&mut self, before: u64) -> Result<u64> {
        let trimmed = self.number(LOG_TRIMMED)?;
        let cut = rows(
            "SELECT max(position) FROM atomik.log WHERE appended_at < $1",
            &[DatumWithOid::from(
                i64::try_from(before).unwrap_or(i64::MAX),
            )],
            |r| r.get::<i64>(1).map_err(super::spi_err),
        )?;
        let Some(cut) = cut.into_iter().flatten().next() else {
            return Ok(trimmed);
        };
        exec(
            "DELETE FROM atomik.log WHERE position <= $1",
            &[DatumWithOid::from(cut)],
        )?;
        let cut = to_u64(cut, "log position")?;
        if cut <= trimmed {
            return Ok(trimmed);
        }
        self.set_setting(LOG_TRIMMED, Some(cut))?;
        Ok(cut)
    }

    fn log_reset(&mut self) -> Result<()> {
        exec("DELETE FROM atomik.log", &[])?;
        let end = self
            .number(LOG_END)?
            .checked_add(1)
            .ok_or_else(|| ProtocolError::store("log position overflow"))?;
        self.set_setting(LOG_END, Some(end))?;
        self.set_setting(LOG_TRIMMED, Some(end))
    }

    fn registry_seq(&mut self, origin: SiteId) -> Result<u64> {
        let found = rows(
            "SELECT seq FROM atomik.registry WHERE site = $1",
            &[site_arg(origin)],
            |r| to_u64(get::<i64>(r, 1)?, "seq"),
        )?;
        Ok(found.first().copied().unwrap_or(0))
    }

    fn set_registry_seq(&mut self, origin: SiteId, seq: u64) -> Result<()> {
        if seq == 0 {
            exec(
                "DELETE FROM atomik.registry WHERE site = $1",
                &[site_arg(origin)],
            )?;
        } else {
            exec(
                "INSERT INTO atomik.registry (site, seq) VALUES ($1, $2)
                 ON CONFLICT (site) DO UPDATE SET seq = EXCLUDED.seq",
                &[site_arg(origin), bigint(seq, "seq")?],
            )?;
        }
        Ok(())
    }

    fn registry(&mut self) -> Result<VersionVector> {
        let entries = rows("SELECT site, seq FROM atomik.registry", &[], |r| {
            Ok((
                site_of(&get::<Vec<u8>>(r, 1)?)?,
                to_u64(get::<i64>(r, 2)?, "seq")?,
            ))
        })?;
        Ok(entries.into_iter().collect())
    }
}
