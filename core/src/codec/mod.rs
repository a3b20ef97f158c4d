//! The wire codec: one byte format for batches, vectors, sync requests and
//! sync responses, shared by both engines; [`v2`] holds the sync messages
//! of protocol v2 (wire version 2). The byte layout is documented in
//! `ARCHITECTURE.md` ("Wire format") and pinned by the golden files in
//! `core/fixtures/`.
//!
//! Decoding is bounded: every decoder refuses, before allocating, a message
//! whose decoded form would take more than [`MAX_DECODE_EXPANSION`] times
//! its length in memory, and counts the input cannot hold.

mod message;
mod reader;
pub mod v2;
pub mod varint;

pub use message::{
    decode, encode, Batch, Message, MessageKind, Payload, SyncRequest, SyncResponse, VectorMessage,
    MAGIC, WIRE_FORMAT_VERSION,
};
pub use reader::{Reader, MAX_DECODE_EXPANSION};

/// The largest seq, log position or ack a message may carry: both engines
/// store them as signed 64-bit integers, so a larger one (which no honest
/// replica can reach) is refused at decode instead of wedging a store.
pub const MAX_COUNTER: u64 = i64::MAX as u64;
