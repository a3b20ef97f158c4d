//! What the demo needs of a replica, whatever engine keeps it.

use anyhow::Result;
use atomik_core::memory::MemoryStore;
use atomik_core::protocol;
use atomik_core::{Group, Key, KeyShape, SiteId};

/// The table and column every demo replica tracks.
pub const TABLE: &str = "inventory";
/// The tracked `add` column: stock on hand per SKU.
pub const COLUMN: &str = "qty";

/// One replica of the demo: a device or the hub.
pub trait Replica {
    /// Record a local change of stock (a sale or a restock).
    fn accum(&mut self, sku: i64, delta: i64) -> Result<()>;
    /// `atomik_sync_request()`.
    fn sync_request(&mut self, now: u64) -> Result<Vec<u8>>;
    /// `atomik_sync(request)`.
    fn serve_sync(&mut self, request: &[u8], now: u64) -> Result<Vec<u8>>;
    /// `atomik_sync_finish(response)`.
    fn finish_sync(&mut self, response: &[u8], now: u64) -> Result<u64>;
    /// Every cell's canonical 17 bytes, in key order.
    fn values(&mut self) -> Result<Vec<(i64, [u8; 17])>>;
    /// `atomik_digest('inventory', 'qty')`.
    fn digest(&mut self) -> Result<i64>;
}

/// A replica kept in memory by `atomik_core::memory::MemoryStore`.
#[derive(Debug)]
pub struct MemoryReplica(MemoryStore);

impl MemoryReplica {
    /// A new replica with a random site id and the inventory table tracked.
    pub fn new() -> Result<Self> {
        let site = SiteId::random().map_err(anyhow::Error::msg)?;
        let mut s = MemoryStore::new(site);
        s.create_table(TABLE, KeyShape::int(), true);
        s.track(TABLE, COLUMN)?;
        Ok(MemoryReplica(s))
    }
}

impl Replica for MemoryReplica {
    fn accum(&mut self, sku: i64, delta: i64) -> Result<()> {
        Ok(self
            .0
            .accum(TABLE, COLUMN, &Key::int(sku), Group::Add, delta as u64)?)
    }

    fn sync_request(&mut self, now: u64) -> Result<Vec<u8>> {
        Ok(self.0.atomically(|s| protocol::sync_request(s, now))?)
    }

    fn serve_sync(&mut self, request: &[u8], now: u64) -> Result<Vec<u8>> {
        Ok(self
            .0
            .atomically(|s| protocol::serve_sync(s, request, now))?)
    }

    fn finish_sync(&mut self, response: &[u8], now: u64) -> Result<u64> {
        Ok(self
            .0
            .atomically(|s| protocol::finish_sync(s, response, now))?)
    }

    fn values(&mut self) -> Result<Vec<(i64, [u8; 17])>> {
        self.0
            .cells(TABLE, COLUMN)
            .into_iter()
            .map(|(k, v)| match k.parts() {
                [atomik_core::KeyPart::Int(i)] => Ok((*i, v.to_bytes())),
                _ => Err(anyhow::anyhow!("unexpected key {k}")),
            })
            .collect()
    }

    fn digest(&mut self) -> Result<i64> {
        Ok(self.0.digest(TABLE, COLUMN))
    }
}
