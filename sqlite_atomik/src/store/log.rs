//! Protocol v2 storage: the outbox, the link (cursor upstream), the hub's
//! log and registry — core's [`LogStore`] over the `atomik_outbox`,
//! `atomik_log` and `atomik_registry` tables and two `atomik_meta` keys.
//!
//! Batches are kept as v1 batch messages (the core codec's canonical
//! bytes), decoded on read; every statement is one indexed range.

use atomik_core::auth::DeviceKey;
use atomik_core::codec::v2::{Cursor, OutboxEntry};
use atomik_core::codec::{decode, encode, Batch, Message};
use atomik_core::error::Result;
use atomik_core::log_store::{LogAppend, LogBounds, LogEntry, LogStore};
use atomik_core::{Changes, ProtocolError, SiteId, VersionVector};
use rusqlite::{params, OptionalExtension};

use super::meta::site_from;
use super::{se, SqliteStore};

/// `atomik_meta` keys of the log's bounds and of the link.
const LOG_END: &str = "log_end";
const LOG_TRIMMED: &str = "log_trimmed_through";
const LINK_HUB: &str = "link_hub";
const LINK_POSITION: &str = "link_position";

fn batch_bytes(origin: SiteId, seq: u64, changes: &Changes) -> Vec<u8> {
    encode(&Message::Batch(Batch {
        origin,
        seq,
        changes: changes.clone(),
    }))
}

fn batch_from(bytes: &[u8], table: &str) -> Result<Batch> {
    match decode(bytes) {
        Ok(Message::Batch(b)) => Ok(b),
        Ok(other) => Err(ProtocolError::Store(format!(
            "{table} holds a {} message, not a batch",
            other.kind().name()
        ))),
        Err(e) => Err(ProtocolError::Store(format!(
            "{table} holds a damaged batch: {e}"
        ))),
    }
}

impl SqliteStore<'_> {
    fn meta_u64(&mut self, key: &str) -> Result<u64> {
        let v: Option<i64> = self
            .conn
            .prepare_cached("SELECT value FROM atomik_meta WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(se)?;
        Ok(v.unwrap_or(0) as u64)
    }

    fn set_meta(&mut self, key: &str, value: &dyn rusqlite::ToSql) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO atomik_meta(key, value) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![key, value]))
            .map_err(se)?;
        Ok(())
    }

    /// Log entries in `(after, through]` not of or via `asker`, in order.
    fn log_rows(&mut self, after: u64, through: Option<u64>, asker: SiteId) -> Result<Vec<Batch>> {
        let through = through.map_or(i64::MAX, |t| t.min(i64::MAX as u64) as i64);
        let rows: Vec<Vec<u8>> = self
            .conn
            .prepare_cached(
                "SELECT bytes FROM atomik_log WHERE position > ?1 AND position <= ?2 \
                 AND origin <> ?3 AND via <> ?3 ORDER BY position",
            )
            .and_then(|mut s| {
                s.query_map(
                    params![after as i64, through, asker.as_bytes().as_slice()],
                    |r| r.get(0),
                )
                .and_then(Iterator::collect)
            })
            .map_err(se)?;
        rows.iter().map(|b| batch_from(b, "atomik_log")).collect()
    }
}

impl LogStore for SqliteStore<'_> {
    fn outbox_push(&mut self, entry: &OutboxEntry) -> Result<()> {
        let bytes = batch_bytes(entry.origin, entry.seq, &entry.changes);
        self.conn
            .prepare_cached(
                "INSERT INTO atomik_outbox(position, origin, seq, bytes) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    entry.position as i64,
                    entry.origin.as_bytes().as_slice(),
                    entry.seq as i64,
                    bytes
                ])
            })
            .map_err(se)?;
        Ok(())
    }

    fn outbox(&mut self) -> Result<Vec<OutboxEntry>> {
        let rows: Vec<(i64, Vec<u8>)> = self
            .conn
            .prepare_cached("SELECT position, bytes FROM atomik_outbox ORDER BY position")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(Iterator::collect)
            })
            .map_err(se)?;
        rows.into_iter()
            .map(|(position, bytes)| {
                let b = batch_from(&bytes, "atomik_outbox")?;
                Ok(OutboxEntry {
                    position: position as u64,
                    origin: b.origin,
                    seq: b.seq,
                    changes: b.changes,
                })
            })
            .collect()
    }

    fn outbox_drop_through(&mut self, position: u64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM atomik_outbox WHERE position <= ?1")
            .and_then(|mut s| s.execute([position.min(i64::MAX as u64) as i64]))
            .map_err(se)?;
        Ok(())
    }

    fn link(&mut self) -> Result<Option<Cursor>> {
        let hub: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT value FROM atomik_meta WHERE key = ?1")
            .and_then(|mut s| s.query_row([LINK_HUB], |r| r.get(0)).optional())
            .map_err(se)?;
        match hub {
            None => Ok(None),
            Some(h) => Ok(Some(Cursor {
                hub: site_from(&h, "atomik_meta")?,
                position: self.meta_u64(LINK_POSITION)?,
            })),
        }
    }

    fn set_link(&mut self, link: Option<Cursor>) -> Result<()> {
        match link {
            Some(c) => {
                self.set_meta(LINK_HUB, &c.hub.as_bytes().as_slice())?;
                self.set_meta(LINK_POSITION, &(c.position as i64))
            }
            None => {
                self.conn
                    .prepare_cached("DELETE FROM atomik_meta WHERE key IN (?1, ?2)")
                    .and_then(|mut s| s.execute([LINK_HUB, LINK_POSITION]))
                    .map_err(se)?;
                Ok(())
            }
        }
    }

    fn log_append(&mut self, entry: LogAppend<'_>) -> Result<()> {
        let position = self.meta_u64(LOG_END)? + 1;
        let bytes = batch_bytes(entry.origin, entry.seq, entry.changes);
        self.conn
            .prepare_cached(
                "INSERT INTO atomik_log(position, origin, seq, via, appended_at, bytes) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    position as i64,
                    entry.origin.as_bytes().as_slice(),
                    entry.seq as i64,
                    entry.via.as_bytes().as_slice(),
                    entry.now.min(i64::MAX as u64) as i64,
                    bytes
                ])
            })
            .map_err(se)?;
        self.set_meta(LOG_END, &(position as i64))
    }

    fn log_bounds(&mut self) -> Result<LogBounds> {
        // SQLite serializes writers: the last position is committed by the
        // time anyone else reads it.
        Ok(LogBounds {
            trimmed_through: self.meta_u64(LOG_TRIMMED)?,
            watermark: self.meta_u64(LOG_END)?,
        })
    }

    fn log_entries(
        &mut self,
        after: u64,
        through: Option<u64>,
        asker: SiteId,
    ) -> Result<Vec<Batch>> {
        self.log_rows(after, through, asker)
    }

    fn log_read(&mut self, after: u64, through: u64, limit: u64) -> Result<Vec<LogEntry>> {
        let clamp = |v: u64| v.min(i64::MAX as u64) as i64;
        let rows: Vec<(i64, Vec<u8>)> = self
            .conn
            .prepare_cached(
                "SELECT position, bytes FROM atomik_log WHERE position > ?1 AND position <= ?2 \
                 ORDER BY position LIMIT ?3",
            )
            .and_then(|mut s| {
                s.query_map(params![clamp(after), clamp(through), clamp(limit)], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .and_then(Iterator::collect)
            })
            .map_err(se)?;
        rows.into_iter()
            .map(|(position, bytes)| {
                let b = batch_from(&bytes, "atomik_log")?;
                Ok(LogEntry {
                    position: position as u64,
                    origin: b.origin,
                    seq: b.seq,
                    changes: b.changes,
                })
            })
            .collect()
    }

    fn log_trim(&mut self, before: u64) -> Result<u64> {
        let before = before.min(i64::MAX as u64) as i64;
        let last: Option<i64> = self
            .conn
            // One probe of the appended_at index: the entry appended last
            // before the horizon, not a walk of the whole log.
            .prepare_cached(
                "SELECT position FROM atomik_log WHERE appended_at < ?1 \
                 ORDER BY appended_at DESC, position DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row([before], |r| r.get(0)).optional())
            .map_err(se)?;
        if let Some(last) = last {
            self.conn
                .prepare_cached("DELETE FROM atomik_log WHERE position <= ?1")
                .and_then(|mut s| s.execute([last]))
                .map_err(se)?;
            if last as u64 > self.meta_u64(LOG_TRIMMED)? {
                self.set_meta(LOG_TRIMMED, &last)?;
            }
        }
        self.meta_u64(LOG_TRIMMED)
    }

    fn log_reset(&mut self) -> Result<()> {
        self.conn
            .execute("DELETE FROM atomik_log", [])
            .map_err(se)?;
        let end = self.meta_u64(LOG_END)? + 1;
        self.set_meta(LOG_END, &(end as i64))?;
        self.set_meta(LOG_TRIMMED, &(end as i64))
    }

    fn registry_seq(&mut self, origin: SiteId) -> Result<u64> {
        let v: Option<i64> = self
            .conn
            .prepare_cached("SELECT seq FROM atomik_registry WHERE site = ?1")
            .and_then(|mut s| {
                s.query_row([origin.as_bytes().as_slice()], |r| r.get(0))
                    .optional()
            })
            .map_err(se)?;
        Ok(v.unwrap_or(0) as u64)
    }

    fn set_registry_seq(&mut self, origin: SiteId, seq: u64) -> Result<()> {
        if seq == 0 {
            self.conn
                .prepare_cached("DELETE FROM atomik_registry WHERE site = ?1")
                .and_then(|mut s| s.execute([origin.as_bytes().as_slice()]))
        } else {
            self.conn
                .prepare_cached("INSERT OR REPLACE INTO atomik_registry(site, seq) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![origin.as_bytes().as_slice(), seq as i64]))
        }
        .map_err(se)?;
        Ok(())
    }

    fn registry(&mut self) -> Result<VersionVector> {
        let rows: Vec<(Vec<u8>, i64)> = self
            .conn
            .prepare_cached("SELECT site, seq FROM atomik_registry")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(Iterator::collect)
            })
            .map_err(se)?;
        let mut v = VersionVector::new();
        for (site, seq) in rows {
            v.set(site_from(&site, "atomik_registry")?, seq as u64);
        }
        Ok(v)
    }

    fn device_key(&mut self, site: SiteId) -> Result<Option<DeviceKey>> {
        let key: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT key FROM atomik_device_keys WHERE site = ?1")
            .and_then(|mut s| {
                s.query_row([site.as_bytes().as_slice()], |r| r.get(0))
                    .optional()
            })
            .map_err(se)?;
        key.map(|k| DeviceKey::from_bytes(&k)).transpose()
    }

    fn set_device_key(&mut self, site: SiteId, key: Option<&DeviceKey>) -> Result<()> {
        match key {
            None => self
                .conn
                .prepare_cached("DELETE FROM atomik_device_keys WHERE site = ?1")
                .and_then(|mut s| s.execute([site.as_bytes().as_slice()])),
            Some(k) => self
                .conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO atomik_device_keys(site, key) VALUES (?1, ?2)",
                )
                .and_then(|mut s| {
                    s.execute(params![site.as_bytes().as_slice(), k.as_bytes().as_slice()])
                }),
        }
        .map_err(se)?;
        Ok(())
    }
}
