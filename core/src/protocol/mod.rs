//! The replication state machine, as pure logic over a store. Engines
//! call these functions inside one transaction and roll back when one
//! returns an error.
//!
//! [`v2`] is the protocol both engines run (`ARCHITECTURE.md`, "Protocol
//! v2"). Protocol v1 (version vectors in every message) was retired with
//! it; its wire format still decodes ([`crate::codec::decode`]), so its
//! messages are refused by v2 calls with an error that names the version.

mod apply;
pub mod v2;

pub use apply::check_tracked;
