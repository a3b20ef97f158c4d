//! [`PgStore`]: the storage of `atomik-core` over SPI, in the caller's
//! transaction. It implements [`LogStore`] (protocol v2: outbox, link,
//! hub log, registry — see [`log`]) on top of [`Store`] (the cells, the
//! site id, the settings), and behaves as `atomik_core::memory::MemoryStore`
//! does; the tables it keeps are described in `state_tables.sql`.
//!
//! Since 0.3.0 pg_atomik runs protocol v2 only and keeps none of the state
//! of protocol v1 (version vector, folded vector, per-origin batch store,
//! peer registry): the [`Store`] methods that only v1 calls return an error.

mod cells;
mod log;
pub mod spi;
mod state;
pub mod tracked;

use std::collections::HashMap;

use atomik_core::error::Result;
use atomik_core::protocol::v2::settings;
use atomik_core::store::{Store, TrackedColumn};
use atomik_core::{Changes, ProtocolError, SiteId};

use crate::deferred::fold::Wait;

pub use cells::flush_parked;
pub use spi::{exec, get, rows, spi_err};
pub use state::setting;
use tracked::TrackedTable;

/// The replica store of this database, for one protocol call.
///
/// It caches, for the length of the call, the tracked set (itself kept
/// per backend between calls until an invalidation event:
/// [`tracked::cached_all`]), the site id and every setting it read or
/// wrote. Device-side calls hold the
/// replication lock exclusively (`crate::replication`), under which
/// nothing else writes them; serves run in parallel and write only the
/// settings they hold a row lock on (the log's bounds while numbering,
/// the own seq while sealing), re-read under that lock.
#[derive(Debug, Default)]
pub struct PgStore {
    tracked: Option<Vec<TrackedTable>>,
    site: Option<SiteId>,
    settings: HashMap<String, Option<u64>>,
    /// Whether this transaction numbers the log (`None`: not asked yet).
    numbering: Option<bool>,
    /// Fold deferred deltas and flush parked ones in `begin_serve`.
    cells_at_begin_serve: bool,
    /// Whether `settings` holds every setting as of the call's first read.
    settings_read: bool,
    /// Received deltas not yet written to their rows (see
    /// [`PgStore::write_received`]).
    received: Changes,
}

impl PgStore {
    /// A store for one call (the tracked set is read once, lazily).
    pub fn new() -> Self {
        Self::default()
    }

    /// The tracked columns with their SQL names.
    pub fn tracked_tables(&mut self) -> Result<&[TrackedTable]> {
        if self.tracked.is_none() {
            self.tracked = Some(tracked::cached_all()?);
        }
        Ok(self.tracked.as_deref().unwrap_or_default())
    }

    /// Before a call that may seal or apply: fold committed deferred
    /// deltas (so that a seal ships them; `wait` says whether to wait for
    /// another fold), then apply parked deltas whose rows have appeared.
    pub fn prepare_cells(&mut self, wait: Wait) -> Result<()> {
        crate::deferred::fold_before_protocol(wait)?;
        let tracked = self.tracked_tables()?.to_vec();
        flush_parked(&tracked)?;
        Ok(())
    }

    /// Do [`Self::prepare_cells`] (not waiting for another fold) in
    /// `begin_serve`, once the serve holds its table lock.
    pub fn prepare_cells_in_begin_serve(&mut self) {
        self.cells_at_begin_serve = true;
    }

    /// Write the received deltas held back by [`Store::receive`] into
    /// their rows; the call runs this last (`crate::replication`), and
    /// before anything that reads or writes cells.
    ///
    /// A serve receives into cells that other serves update too (a hot
    /// SKU): the row locks its `UPDATE` takes are held until commit, so
    /// writing the cells last — after the log, the registry, the trim and
    /// the answer — keeps every other serve of those rows waiting only
    /// for the commit.
    ///
    /// # Errors
    /// As [`cells::receive`]: a row hidden from the caller's `UPDATE`
    /// ([`atomik_core::ProtocolError::WriteRefused`]), a full parked set.
    pub fn write_received(&mut self) -> Result<()> {
        if self.received.is_empty() {
            return Ok(());
        }
        let received = std::mem::take(&mut self.received);
        let tracked = self.tracked_tables()?.to_vec();
        cells::receive(&tracked, &received)?;
        Ok(())
    }

    /// A numeric setting, 0 when unset.
    fn number(&mut self, name: &str) -> Result<u64> {
        Ok(self.setting(name)?.unwrap_or(0))
    }
}

impl Store for PgStore {
    fn site_id(&mut self) -> Result<SiteId> {
        if let Some(site) = self.site {
            return Ok(site);
        }
        let site = state::site_id()?;
        self.site = Some(site);
        Ok(site)
    }

    fn tracked(&mut self) -> Result<Vec<TrackedColumn>> {
        Ok(self
            .tracked_tables()?
            .iter()
            .map(TrackedTable::tracked_column)
            .collect())
    }

    /// Nothing recorded: nothing to seal, and no lock taken (a hub's
    /// serves all seal first). Otherwise the own-seq settings row is locked
    /// before the record is taken, so that two serves never seal the same
    /// seq: the second waits, then finds the record empty or newer.
    fn take_pending(&mut self) -> Result<Changes> {
        self.write_received()?;
        if !cells::anything_recorded()? {
            return Ok(Changes::new());
        }
        let own = state::lock_setting(settings::OWN_SEQ)?;
        self.settings
            .insert(settings::OWN_SEQ.to_string(), Some(own));
        let tracked = self.tracked_tables()?.to_vec();
        cells::take_pending(&tracked)
    }

    /// Held back until [`PgStore::write_received`] (the end of the call,
    /// or the next read or write of cells): it counts every delta, as
    /// writing it would.
    fn receive(&mut self, changes: &Changes) -> Result<u64> {
        // A column this replica does not track is refused now, as writing
        // would.
        let tracked = self.tracked_tables()?;
        for (id, _) in changes.columns() {
            cells::find(tracked, id)?;
        }
        self.received.merge(changes).map_err(ProtocolError::store)?;
        Ok(changes
            .columns()
            .map(|(_, block)| block.cells.len() as u64)
            .sum())
    }

    fn references(&mut self) -> Result<Changes> {
        self.write_received()?;
        let tracked = self.tracked_tables()?.to_vec();
        cells::references(&tracked)
    }

    fn install_references(&mut self, values: &Changes) -> Result<()> {
        self.write_received()?;
        let tracked = self.tracked_tables()?.to_vec();
        cells::install_references(&tracked, values)
    }

    /// The first read of a call reads every setting (one statement, not
    /// one per name); values the call read under a row lock or wrote are
    /// kept.
    fn setting(&mut self, name: &str) -> Result<Option<u64>> {
        if let Some(v) = self.settings.get(name) {
            return Ok(*v);
        }
        if !self.settings_read {
            for (n, v) in state::all_settings()? {
                self.settings.entry(n).or_insert(Some(v));
            }
            self.settings_read = true;
        }
        let v = self.settings.get(name).copied().flatten();
        self.settings.insert(name.to_string(), v);
        Ok(v)
    }

    fn set_setting(&mut self, name: &str, value: Option<u64>) -> Result<()> {
        if self.settings.get(name) == Some(&value) {
            return Ok(());
        }
        state::set_setting(name, value)?;
        self.settings.insert(name.to_string(), value);
        Ok(())
    }
}
