//! The replica's identity and settings, and the [`Store`] impl that joins
//! them with the cell operations of [`super::cells`] (protocol v2's state
//! is in [`super::log`]).

use atomik_core::error::Result;
use atomik_core::store::{Store, TrackedColumn};
use atomik_core::{Changes, ProtocolError, SiteId};
use rusqlite::{params, OptionalExtension};

use super::{se, SqliteStore};

/// A site id read from `table`, which must hold exactly 16 bytes.
pub(super) fn site_from(bytes: &[u8], table: &str) -> Result<SiteId> {
    SiteId::from_slice(bytes).ok_or_else(|| {
        ProtocolError::Store(format!(
            "{table} holds a site id of {} bytes, not 16",
            bytes.len()
        ))
    })
}

impl SqliteStore<'_> {
    fn meta(&mut self, key: &str) -> Result<Option<rusqlite::types::Value>> {
        self.conn
            .prepare_cached("SELECT value FROM atomik_meta WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(se)
    }
}

impl Store for SqliteStore<'_> {
    fn site_id(&mut self) -> Result<SiteId> {
        if let Some(s) = self.site {
            return Ok(s);
        }
        let site = match self.meta("site_id")? {
            Some(rusqlite::types::Value::Blob(b)) => site_from(&b, "atomik_meta")?,
            _ => {
                return Err(ProtocolError::Store(
                    "atomik_meta has no site_id".to_string(),
                ))
            }
        };
        self.site = Some(site);
        Ok(site)
    }

    fn tracked(&mut self) -> Result<Vec<TrackedColumn>> {
        Ok(self.tracked_cols()?.iter().map(|t| t.as_core()).collect())
    }

    fn take_pending(&mut self) -> Result<Changes> {
        self.seal_cells()
    }

    fn receive(&mut self, changes: &Changes) -> Result<u64> {
        self.receive_cells(changes)
    }

    fn references(&mut self) -> Result<Changes> {
        self.reference_cells()
    }

    fn install_references(&mut self, values: &Changes) -> Result<()> {
        self.install_cells(values)
    }

    fn setting(&mut self, name: &str) -> Result<Option<u64>> {
        self.conn
            .prepare_cached("SELECT value FROM atomik_settings WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get::<_, i64>(0)).optional())
            .map(|v| v.map(|v| v as u64))
            .map_err(se)
    }

    fn set_setting(&mut self, name: &str, value: Option<u64>) -> Result<()> {
        match value {
            Some(v) => self
                .conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO atomik_settings(name, value) VALUES (?1, ?2)",
                )
                .and_then(|mut s| s.execute(params![name, v as i64])),
            None => self
                .conn
                .prepare_cached("DELETE FROM atomik_settings WHERE name = ?1")
                .and_then(|mut s| s.execute([name])),
        }
        .map_err(se)?;
        Ok(())
    }
}
