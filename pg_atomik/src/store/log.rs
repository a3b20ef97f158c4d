//! Protocol v2 storage ([`LogStore`]) over the tables of schema `atomik`:
//! `outbox`, `link`, `log`, `log_pending` and `registry` (see
//! `state_tables.sql`). Each primitive is one or two indexed statements;
//! none scans the fleet.
//!
//! Batches (outbox entries and log entries) are stored as their wire bytes
//! (a version 1 batch message, [`state::batch_bytes`]) beside the columns
//! the statements filter on.
//!
//! Serves of different devices run in parallel (see
//! `crate::replication`), so the log is numbered late: an append goes to
//! `atomik.log_pending`, and [`LogStore::log_publish`] — in the one
//! transaction at a time that holds the [`LOG_END`] settings row — moves
//! every committed pending entry into `atomik.log` at the next positions.
//! Numbering transactions commit in order, so the committed [`LOG_END`]
//! is the highest position below which every entry has committed: the
//! watermark a serve hands out as a cursor. A serve that finds the row
//! taken numbers nothing (its entries go out with a later serve) and
//! answers up to the committed watermark.
//!
//! [`LOG_TRIMMED`] bounds the log from below: every position at or below
//! it is gone. Only the numbering transaction trims.

use atomik_core::auth::DeviceKey;
use atomik_core::codec::v2::{Cursor, OutboxEntry};
use atomik_core::error::Result;
use atomik_core::log_store::{LogAppend, LogBounds, LogEntry, LogStore};
use atomik_core::store::Store;
use atomik_core::{Batch, ProtocolError, SiteId, VersionVector};
use pgrx::datum::DatumWithOid;

use super::spi::{exec, get, rows, to_i64, to_u64};
use super::state::{batch_bytes, batch_of, site_arg, site_of};
use super::{state, PgStore};

/// Setting: the position of the last log entry ever appended (0: none).
pub const LOG_END: &str = "log_end";
/// Setting: every log position at or below this one has been trimmed (or
/// discarded by a reset).
pub const LOG_TRIMMED: &str = "log_trimmed_through";

/// The channel a hub notifies when log entries commit (the payload: the
/// new log position), for `LISTEN atomik_log`.
pub const NOTIFY_CHANNEL: &str = "atomik_log";

fn bigint(v: u64, what: &str) -> Result<DatumWithOid<'static>> {
    Ok(DatumWithOid::from(to_i64(v, what)?))
}

/// One log row: origin, seq and bytes, checked against each other.
fn entry_of(origin: &[u8], seq: i64, bytes: &[u8], table: &str) -> Result<Batch> {
    let origin = site_of(origin)?;
    let seq = to_u64(seq, "seq")?;
    let batch = batch_of(bytes, table)?;
    if batch.origin != origin || batch.seq != seq {
        return Err(ProtocolError::store(format!(
            "{table} entry ({origin}, {seq}) holds the bytes of batch ({}, {})",
            batch.origin, batch.seq
        )));
    }
    Ok(batch)
}

/// The numbered log entries in `(after, through]` whose origin and via
/// both differ from `asker`, decoded, in position order. One statement,
/// which also reads the trimmed bound in the same snapshot: a trim that
/// committed while this serve ran (a cursor at the horizon) would leave a
/// hole in the range, and is an error (the serve fails and can be
/// retried) rather than a silently short download.
fn numbered_batches(after: u64, through: u64, asker: SiteId) -> Result<Vec<Batch>> {
    let found = rows(
        "SELECT t.value, l.origin, l.seq, l.bytes
           FROM (SELECT coalesce(max(value), 0) AS value FROM atomik.settings
                  WHERE name = 'log_trimmed_through') t
           LEFT JOIN atomik.log l
             ON l.position > $1 AND l.position <= $2 AND l.origin <> $3 AND l.via <> $3
          ORDER BY l.position",
        &[
            bigint(after, "log position")?,
            bigint(through, "log position")?,
            site_arg(asker),
        ],
        |r| {
            let trimmed = to_u64(get::<i64>(r, 1)?, LOG_TRIMMED)?;
            let entry = match r.get::<Vec<u8>>(2).map_err(super::spi_err)? {
                Some(origin) => Some(entry_of(
                    &origin,
                    get::<i64>(r, 3)?,
                    &get::<Vec<u8>>(r, 4)?,
                    "atomik.log",
                )?),
                None => None,
            };
            Ok((trimmed, entry))
        },
    )?;
    if let Some((trimmed, _)) = found.first() {
        if *trimmed > after {
            return Err(ProtocolError::store(format!(
                "the hub log was trimmed through {trimmed} during this serve, past the cursor {after}; retry the sync"
            )));
        }
    }
    Ok(found.into_iter().filter_map(|(_, e)| e).collect())
}

/// Every entry after `after` this transaction sees — numbered, then
/// pending (committed, or this transaction's own) — whose origin and via
/// differ from `asker`.
fn all_batches_after(after: u64, asker: SiteId) -> Result<Vec<Batch>> {
    rows(
        "SELECT origin, seq, bytes, 'atomik.log' FROM
           (SELECT position AS n, origin, seq, bytes FROM atomik.log
             WHERE position > $1 AND origin <> $2 AND via <> $2 ORDER BY position) numbered
         UNION ALL
         SELECT origin, seq, bytes, 'atomik.log_pending' FROM
           (SELECT id AS n, origin, seq, bytes FROM atomik.log_pending
             WHERE origin <> $2 AND via <> $2 ORDER BY id) pending",
        &[bigint(after, "log position")?, site_arg(asker)],
        |r| {
            entry_of(
                &get::<Vec<u8>>(r, 1)?,
                get::<i64>(r, 2)?,
                &get::<Vec<u8>>(r, 3)?,
                &get::<String>(r, 4)?,
            )
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

    fn log_append(&mut self, entry: LogAppend<'_>) -> Result<()> {
        let bytes = batch_bytes(&Batch {
            origin: entry.origin,
            seq: entry.seq,
            changes: entry.changes.clone(),
        });
        exec(
            "INSERT INTO atomik.log_pending (origin, seq, via, appended_at, bytes)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                site_arg(entry.origin),
                bigint(entry.seq, "seq")?,
                site_arg(entry.via),
                bigint(entry.now, "time")?,
                DatumWithOid::from(bytes),
            ],
        )?;
        Ok(())
    }

    /// Numbers the committed pending entries (and this transaction's own)
    /// when this transaction holds, or can take without waiting, the
    /// [`LOG_END`] row; otherwise does nothing.
    fn log_publish(&mut self) -> Result<()> {
        let Some(end) = self.numbering()? else {
            return Ok(());
        };
        let moved = exec(
            "WITH taken AS (DELETE FROM atomik.log_pending RETURNING *)
             INSERT INTO atomik.log (position, origin, seq, via, appended_at, bytes)
             SELECT $1 + row_number() OVER (ORDER BY id), origin, seq, via, appended_at, bytes
               FROM taken",
            &[bigint(end, "log position")?],
        )?;
        if moved > 0 {
            let end = end
                .checked_add(moved)
                .ok_or_else(|| ProtocolError::store("log position overflow"))?;
            self.set_setting(LOG_END, Some(end))?;
            // Delivered to LISTEN atomik_log when this transaction commits.
            exec(
                "SELECT pg_catalog.pg_notify($1, $2)",
                &[
                    DatumWithOid::from(NOTIFY_CHANNEL),
                    DatumWithOid::from(end.to_string()),
                ],
            )?;
        }
        Ok(())
    }

    /// The watermark is the committed (or this transaction's own) last
    /// numbered position: every entry at or below it has committed.
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
        match through {
            Some(through) => numbered_batches(after, through, asker),
            None => all_batches_after(after, asker),
        }
    }

    /// The numbered entries only: every one at or below the committed
    /// watermark has committed.
    fn log_read(&mut self, after: u64, through: u64, limit: u64) -> Result<Vec<LogEntry>> {
        rows(
            "SELECT position, origin, seq, bytes FROM atomik.log
              WHERE position > $1 AND position <= $2 ORDER BY position LIMIT $3",
            &[
                bigint(after, "log position")?,
                bigint(through, "log position")?,
                DatumWithOid::from(i64::try_from(limit).unwrap_or(i64::MAX)),
            ],
            |r| {
                let position = to_u64(get::<i64>(r, 1)?, "log position")?;
                let b = entry_of(
                    &get::<Vec<u8>>(r, 2)?,
                    get::<i64>(r, 3)?,
                    &get::<Vec<u8>>(r, 4)?,
                    "atomik.log",
                )?;
                Ok(LogEntry {
                    position,
                    origin: b.origin,
                    seq: b.seq,
                    changes: b.changes,
                })
            },
        )
    }

    /// Trims through the last entry appended before `before` — only in the
    /// numbering transaction (any other returns the bound unchanged): the
    /// entries are numbered in about their time order, so that is the
    /// prefix older than the horizon; a few younger entries that go too
    /// (serves' clocks differ a little, or the clock stepped back) only
    /// send their cursors to a snapshot.
    fn log_trim(&mut self, before: u64) -> Result<u64> {
        if self.numbering()?.is_none() {
            return self.number(LOG_TRIMMED);
        }
        let trimmed = self.number(LOG_TRIMMED)?;
        let cut = rows(
            // One probe of the (appended_at, position) index: the entry
            // appended last before the horizon (`max(position) WHERE
            // appended_at < $1` would walk the whole log backwards when
            // nothing is that old).
            "SELECT position FROM atomik.log WHERE appended_at < $1
              ORDER BY appended_at DESC, position DESC LIMIT 1",
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
        exec("DELETE FROM atomik.log_pending", &[])?;
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

    /// Reads the entry locked (`FOR UPDATE`, until the end of the
    /// transaction): two serves of one origin serialize here, before
    /// either applies its batch, and the second sees what the first
    /// committed. An origin without an entry gets one at seq 0 to lock (a
    /// concurrent first insert of the same origin waits for the other
    /// transaction); it has a batch applied right after, so only origins
    /// that uploaded have entries.
    fn registry_seq_for_update(&mut self, origin: SiteId) -> Result<u64> {
        let locked = || {
            rows(
                "SELECT seq FROM atomik.registry WHERE site = $1 FOR UPDATE",
                &[site_arg(origin)],
                |r| to_u64(get::<i64>(r, 1)?, "seq"),
            )
        };
        if let Some(seq) = locked()?.first() {
            return Ok(*seq);
        }
        exec(
            "INSERT INTO atomik.registry (site, seq) VALUES ($1, 0) ON CONFLICT (site) DO NOTHING",
            &[site_arg(origin)],
        )?;
        Ok(locked()?.first().copied().unwrap_or(0))
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
        let entries = rows(
            "SELECT site, seq FROM atomik.registry WHERE seq > 0",
            &[],
            |r| {
                Ok((
                    site_of(&get::<Vec<u8>>(r, 1)?)?,
                    to_u64(get::<i64>(r, 2)?, "seq")?,
                ))
            },
        )?;
        Ok(entries.into_iter().collect())
    }

    fn device_key(&mut self, site: SiteId) -> Result<Option<DeviceKey>> {
        let found = rows(
            "SELECT key FROM atomik.device_keys WHERE site = $1",
            &[site_arg(site)],
            |r| get::<Vec<u8>>(r, 1),
        )?;
        found.first().map(|k| DeviceKey::from_bytes(k)).transpose()
    }

    fn set_device_key(&mut self, site: SiteId, key: Option<&DeviceKey>) -> Result<()> {
        match key {
            None => exec(
                "DELETE FROM atomik.device_keys WHERE site = $1",
                &[site_arg(site)],
            )?,
            Some(k) => exec(
                "INSERT INTO atomik.device_keys (site, key) VALUES ($1, $2)
                 ON CONFLICT (site) DO UPDATE SET key = EXCLUDED.key",
                &[site_arg(site), DatumWithOid::from(k.as_bytes().as_slice())],
            )?,
        };
        Ok(())
    }

    /// Takes the serve's table lock on `atomik.log_pending` before any row
    /// lock: `ROW EXCLUSIVE` (serves run in parallel), or for a snapshot
    /// `SHARE ROW EXCLUSIVE`, which waits for every serve that may append
    /// and keeps new ones out until this one commits, so that the
    /// references it reads and the entries it subtracts are of one moment.
    /// Then, for a serve that may apply, the deferred fold and the parked
    /// deltas (`PgStore::prepare_cells`), which lock rows.
    fn begin_serve(&mut self, snapshot: bool) -> Result<()> {
        exec(
            if snapshot {
                "LOCK TABLE atomik.log_pending IN SHARE ROW EXCLUSIVE MODE"
            } else {
                "LOCK TABLE atomik.log_pending IN ROW EXCLUSIVE MODE"
            },
            &[],
        )?;
        if self.cells_at_begin_serve {
            self.prepare_cells(crate::deferred::fold::Wait::Skip)?;
        }
        Ok(())
    }
}

impl PgStore {
    /// `Some(last position)` when this transaction numbers the log: it
    /// holds the [`LOG_END`] settings row, taken here without waiting (a
    /// transaction that finds it taken does not number, and asks once).
    /// The row is created by the first numbering.
    fn numbering(&mut self) -> Result<Option<u64>> {
        if self.numbering.is_none() {
            self.take_numbering(false)?;
        }
        if self.numbering == Some(true) {
            Ok(Some(self.number(LOG_END)?))
        } else {
            Ok(None)
        }
    }

    /// Take the [`LOG_END`] row (waiting for it when `wait`), creating it
    /// first if there is none; remember whether this transaction holds it.
    fn take_numbering(&mut self, wait: bool) -> Result<()> {
        let sql = if wait {
            "SELECT value FROM atomik.settings WHERE name = 'log_end' FOR UPDATE"
        } else {
            "SELECT value FROM atomik.settings WHERE name = 'log_end' FOR UPDATE SKIP LOCKED"
        };
        let take = || rows(sql, &[], |r| to_u64(get::<i64>(r, 1)?, LOG_END));
        let mut taken = take()?;
        if taken.is_empty() && state::setting(LOG_END)?.is_none() {
            exec(
                "INSERT INTO atomik.settings (name, value) VALUES ('log_end', 0)
                 ON CONFLICT (name) DO NOTHING",
                &[],
            )?;
            taken = take()?;
        }
        self.numbering = Some(!taken.is_empty());
        if let Some(end) = taken.first() {
            // The value as of the lock, not as first read by this call.
            self.settings.insert(LOG_END.to_string(), Some(*end));
            let trimmed = state::setting(LOG_TRIMMED)?;
            self.settings.insert(LOG_TRIMMED.to_string(), trimmed);
        }
        Ok(())
    }

    /// `atomik_publish()`: number every committed pending log entry (and
    /// this transaction's own), waiting for a numbering transaction that
    /// holds the [`LOG_END`] row to finish first; the new watermark. A
    /// serve numbers only what committed before it, so the uploads of the
    /// last serves of a burst wait for the next serve, or for this.
    ///
    /// # Errors
    /// Store errors.
    pub fn publish_waiting(&mut self) -> Result<u64> {
        if self.numbering != Some(true) {
            self.take_numbering(true)?;
        }
        self.log_publish()?;
        Ok(self.log_bounds()?.watermark)
    }
}
