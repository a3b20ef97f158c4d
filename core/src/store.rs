//! The storage a replica keeps, as a trait the protocol runs over.
//!
//! The SQLite and PostgreSQL extensions implement [`Store`] over their own
//! tables; [`crate::memory::MemoryStore`] implements it in memory for tests
//! and simulations. Every protocol call in [`crate::protocol`] must run
//! inside one transaction of the store: when a call returns an error, the
//! caller rolls the transaction back, so nothing of it is applied.

use crate::changes::Changes;
use crate::codec::Batch;
use crate::error::Result;
use crate::key::KeyShape;
use crate::site::{SiteId, VersionVector};

/// A column under replication.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackedColumn {
    /// Table name.
    pub table: String,
    /// Column name.
    pub column: String,
    /// Kinds of the table's primary-key columns.
    pub shape: KeyShape,
}

/// Which way a peer relationship runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PeerRole {
    /// The peer sends sync requests to this replica (a device of this hub).
    /// Its vector is the one stated in its latest request. Unregistered
    /// after being silent longer than the horizon.
    Downstream,
    /// This replica sends sync requests to the peer (its hub). Its vector
    /// is the one the peer stated in its latest response. Never expires.
    Upstream,
}

/// A registered peer, for retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The peer's site.
    pub site: SiteId,
    /// Which way the relationship runs.
    pub role: PeerRole,
    /// The vector the peer itself last stated.
    pub vector: VersionVector,
    /// When it was last heard from (seconds, the caller's clock).
    pub last_seen: u64,
}

/// Storage of one replica: its identity, its tracked cells and a few
/// settings. All methods run inside the caller's transaction.
///
/// Every cell is a value `(group, reference, accumulator)` plus a "new"
/// mark set when a tracked cell is created locally (so it ships at the
/// next seal even at the identity, rule 3). Protocol v2 adds
/// [`crate::log_store::LogStore`]; protocol v1 adds [`VectorStore`].
pub trait Store {
    /// This replica's site id, created on first use.
    fn site_id(&mut self) -> Result<SiteId>;

    /// The tracked columns.
    fn tracked(&mut self) -> Result<Vec<TrackedColumn>>;

    /// Seal step: for every tracked cell written locally since the last
    /// seal whose accumulator is not the identity or that is marked new,
    /// move the accumulator into the reference, clear the mark, and return
    /// the moved deltas (zero deltas for new cells). Protocol v2 requires
    /// this to read a record of written cells, not to scan the tables.
    fn take_pending(&mut self) -> Result<Changes>;

    /// Fold received deltas into references, never accumulators (rule 1).
    /// A cell that is missing or NULL is created in the delta's group; a
    /// row that cannot be created is parked and applied when it appears.
    /// Returns how many deltas were applied or parked.
    ///
    /// # Errors
    /// [`crate::ProtocolError::GroupMismatch`] when a delta's group differs
    /// from its cell's.
    fn receive(&mut self, changes: &Changes) -> Result<u64>;

    /// Every tracked cell's reference, as changes from the identity (a
    /// snapshot's payload), and every parked delta. Accumulators are not
    /// included.
    fn references(&mut self) -> Result<Changes>;

    /// Replace every tracked cell's reference with the value in `values`
    /// (the identity of the cell's group where absent), creating cells as
    /// `receive` does, and clear parked deltas. Accumulators are kept.
    fn install_references(&mut self, values: &Changes) -> Result<()>;

    /// A numeric setting (see [`crate::protocol::settings`] and
    /// [`crate::protocol::v2::settings`]).
    fn setting(&mut self, name: &str) -> Result<Option<u64>>;
    /// Set or clear a numeric setting.
    fn set_setting(&mut self, name: &str, value: Option<u64>) -> Result<()>;
}

/// What protocol v1 ([`crate::protocol`]) keeps beyond [`Store`]: the
/// version vector (including this replica's own seq), the *folded* vector
/// (per origin, the highest seq whose batch is not stored here any more,
/// or was never stored), the batch store, the peer registry and the relay
/// flag. Only the memory store implements it: the engines run protocol v2.
pub trait VectorStore: Store {
    /// True once this replica relays to others (stores every applied batch
    /// per origin). Set by the protocol when the replica first serves a sync.
    fn is_relay(&mut self) -> Result<bool>;
    /// Mark this replica as a relay.
    fn set_relay(&mut self, relay: bool) -> Result<()>;

    /// The version vector (including this replica's own seq).
    fn vector(&mut self) -> Result<VersionVector>;
    /// Set one entry of the version vector.
    fn set_vector_entry(&mut self, site: SiteId, seq: u64) -> Result<()>;
    /// Replace the whole version vector.
    fn replace_vector(&mut self, vector: &VersionVector) -> Result<()>;

    /// Per origin, the highest seq not available from the batch store.
    fn folded(&mut self) -> Result<VersionVector>;
    /// Set one entry of the folded vector.
    fn set_folded_entry(&mut self, site: SiteId, seq: u64) -> Result<()>;

    /// Keep a batch in the batch store.
    fn store_batch(&mut self, batch: &Batch) -> Result<()>;
    /// Stored batches `(origin, seq)` with `seq > after[origin]`, excluding
    /// `exclude`'s, in (origin, seq) order.
    fn stored_batches(
        &mut self,
        after: &VersionVector,
        exclude: Option<SiteId>,
    ) -> Result<Vec<Batch>>;
    /// Per origin, the highest stored seq (origins with nothing stored are
    /// absent).
    fn stored_heads(&mut self) -> Result<VersionVector>;
    /// True when the batch `(origin, seq)` is in the batch store.
    fn has_batch(&mut self, origin: SiteId, seq: u64) -> Result<bool>;
    /// Delete stored batches of `origin` with `seq <= through`.
    fn drop_batches_through(&mut self, origin: SiteId, through: u64) -> Result<()>;

    /// The registered peers.
    fn peers(&mut self) -> Result<Vec<Peer>>;
    /// Register or update a peer (keyed by site and role).
    fn put_peer(&mut self, peer: &Peer) -> Result<()>;
    /// Unregister a peer.
    fn remove_peer(&mut self, site: SiteId, role: PeerRole) -> Result<()>;
}
