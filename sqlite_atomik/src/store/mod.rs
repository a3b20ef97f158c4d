//! [`SqliteStore`]: core's [`Store`](atomik_core::Store) over the extension's own tables and the
//! tracked columns of one SQLite connection. It behaves like core's
//! in-memory reference store (`atomik_core::memory::MemoryStore`).
//!
//! Every method runs inside the caller's savepoint (see
//! [`crate::replication`]); the store itself never commits.

mod cells;
mod log;
mod meta;

use atomik_core::error::Result;
use atomik_core::{ProtocolError, SiteId};
use rusqlite::Connection;

use crate::tracked::{self, Tracked};

/// The storage of one replica: a connection whose database holds the atomik
/// tables (see [`crate::schema::ensure`]).
#[derive(Debug)]
pub struct SqliteStore<'c> {
    conn: &'c Connection,
    site: Option<SiteId>,
    tracked: Option<Vec<Tracked>>,
}

impl<'c> SqliteStore<'c> {
    /// A store over `conn`. The atomik schema must exist
    /// ([`crate::schema::ensure`]) and the atomik functions be registered.
    pub fn new(conn: &'c Connection) -> Self {
        SqliteStore {
            conn,
            site: None,
            tracked: None,
        }
    }

    /// The connection.
    pub fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// The tracked columns (loaded once per store).
    fn tracked_cols(&mut self) -> Result<&[Tracked]> {
        if self.tracked.is_none() {
            self.tracked = Some(tracked::load(self.conn).map_err(ProtocolError::Store)?);
        }
        Ok(self.tracked.as_deref().unwrap_or_default())
    }

    /// The tracked column `table.column`.
    fn find(&mut self, table: &str, column: &str) -> Result<Tracked> {
        self.tracked_cols()?
            .iter()
            .find(|t| t.table == table && t.column == column)
            .cloned()
            .ok_or_else(|| ProtocolError::Untracked {
                table: table.to_string(),
                column: column.to_string(),
            })
    }
}

/// Wrap an SQLite error as a storage error.
pub(crate) fn se(e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::store(e)
}
