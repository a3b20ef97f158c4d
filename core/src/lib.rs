//! # atomik-core
//!
//! The algebra, wire codec and replication state machine of atomik —
//! delta-accumulated columns that converge across offline replicas. No FFI:
//! the SQLite and PostgreSQL extensions are thin layers over this crate.
//!
//! * [`group`] — the two abelian groups, `add` (wrapping 64-bit) and `xor`.
//! * [`value`] — `(group, reference, accumulator)` and its 17-byte form.
//! * [`codec`] — batches, vectors, sync requests and responses on the wire.
//! * [`protocol`] — seal, exactly-once apply, sync, retention, snapshots,
//!   over the [`store::Store`] trait.
//! * [`memory`] — an in-memory store; [`digest`] — the column digest;
//!   [`inspect`] — a message as readable rows.
//!
//! ```
//! use atomik_core::{AtomikValue, Group};
//!
//! let stock = AtomikValue::new_pending(Group::Add, 10); // atomik_add(10)
//! let stock = stock.accum((-3i64) as u64);               // a sale of 3
//! assert_eq!(stock.read_i64(), 7);
//! assert_eq!(stock.to_bytes().len(), 17);
//! assert_eq!(AtomikValue::from_bytes(&stock.to_bytes()).unwrap(), stock);
//! ```
//!
//! Honest limits: xor is not a counter; a delta delivered twice is applied
//! twice by the algebra (exactly-once is the protocol's job); two concurrent
//! `set`s merge as two deltas, giving neither value.
#![warn(missing_docs)]

pub mod auth;
pub mod changes;
pub mod codec;
pub mod digest;
pub mod error;
pub mod feed;
pub mod group;
pub mod inspect;
pub mod key;
pub mod log_store;
pub mod memory;
pub mod protocol;
pub mod site;
pub mod store;
pub mod value;
pub mod workloads;

pub use changes::{Changes, ColumnId};
pub use codec::{Batch, Message};
pub use error::{DecodeError, ProtocolError, ValueError};
pub use group::Group;
pub use key::{Key, KeyKind, KeyPart, KeyShape};
pub use site::{SiteId, VersionVector};
pub use store::{Store, TrackedColumn};
pub use value::AtomikValue;

/// The version of this crate (and of the extensions built on it).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
