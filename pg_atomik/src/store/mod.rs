//! [`PgStore`]: the [`Store`] of `atomik-core` over SPI, in the caller's
//! transaction. It behaves as `atomik_core::memory::MemoryStore` does; the
//! tables it keeps are described in `state_tables.sql`.

mod cells;
mod spi;
mod state;
pub mod tracked;

use atomik_core::error::Result;
use atomik_core::store::{Peer, PeerRole, Store, TrackedColumn};
use atomik_core::{Batch, Changes, SiteId, VersionVector};

pub use cells::flush_parked;
pub use spi::{exec, get, rows, spi_err};
use state::VectorTable;
use tracked::TrackedTable;

/// The replica store of this database, for one protocol call.
#[derive(Debug, Default)]
pub struct PgStore {
    tracked: Option<Vec<TrackedTable>>,
}

impl PgStore {
    /// A store for one call (the tracked set is read once, lazily).
    pub fn new() -> Self {
        Self::default()
    }

    /// The tracked columns with their SQL names.
    pub fn tracked_tables(&mut self) -> Result<&[TrackedTable]> {
        if self.tracked.is_none() {
            self.tracked = Some(tracked::load_all()?);
        }
        Ok(self.tracked.as_deref().unwrap_or_default())
    }
}

impl Store for PgStore {
    fn site_id(&mut self) -> Result<SiteId> {
        state::site_id()
    }

    fn is_relay(&mut self) -> Result<bool> {
        state::is_relay()
    }

    fn set_relay(&mut self, relay: bool) -> Result<()> {
        state::set_relay(relay)
    }

    fn vector(&mut self) -> Result<VersionVector> {
        state::read_vector(VectorTable::Applied)
    }

    fn set_vector_entry(&mut self, site: SiteId, seq: u64) -> Result<()> {
        state::set_entry(VectorTable::Applied, site, seq)
    }

    fn replace_vector(&mut self, vector: &VersionVector) -> Result<()> {
        state::replace_vector(VectorTable::Applied, vector)
    }

    fn folded(&mut self) -> Result<VersionVector> {
        state::read_vector(VectorTable::Folded)
    }

    fn set_folded_entry(&mut self, site: SiteId, seq: u64) -> Result<()> {
        state::set_entry(VectorTable::Folded, site, seq)
    }

    fn tracked(&mut self) -> Result<Vec<TrackedColumn>> {
        Ok(self
            .tracked_tables()?
            .iter()
            .map(TrackedTable::tracked_column)
            .collect())
    }

    fn take_pending(&mut self) -> Result<Changes> {
        let tracked = self.tracked_tables()?.to_vec();
        cells::take_pending(&tracked)
    }

    fn receive(&mut self, changes: &Changes) -> Result<u64> {
        let tracked = self.tracked_tables()?.to_vec();
        cells::receive(&tracked, changes)
    }

    fn references(&mut self) -> Result<Changes> {
        let tracked = self.tracked_tables()?.to_vec();
        cells::references(&tracked)
    }

    fn install_references(&mut self, values: &Changes) -> Result<()> {
        let tracked = self.tracked_tables()?.to_vec();
        cells::install_references(&tracked, values)
    }

    fn store_batch(&mut self, batch: &Batch) -> Result<()> {
        state::store_batch(batch)
    }

    fn stored_batches(
        &mut self,
        after: &VersionVector,
        exclude: Option<SiteId>,
    ) -> Result<Vec<Batch>> {
        state::stored_batches(after, exclude)
    }

    fn stored_heads(&mut self) -> Result<VersionVector> {
        state::stored_heads()
    }

    fn has_batch(&mut self, origin: SiteId, seq: u64) -> Result<bool> {
        state::has_batch(origin, seq)
    }

    fn drop_batches_through(&mut self, origin: SiteId, through: u64) -> Result<()> {
        state::drop_batches_through(origin, through)
    }

    fn peers(&mut self) -> Result<Vec<Peer>> {
        state::peers()
    }

    fn put_peer(&mut self, peer: &Peer) -> Result<()> {
        state::put_peer(peer)
    }

    fn remove_peer(&mut self, site: SiteId, role: PeerRole) -> Result<()> {
        state::remove_peer(site, role)
    }

    fn setting(&mut self, name: &str) -> Result<Option<u64>> {
        state::setting(name)
    }

    fn set_setting(&mut self, name: &str, value: Option<u64>) -> Result<()> {
        state::set_setting(name, value)
    }
}
