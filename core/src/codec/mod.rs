//! The wire codec: one byte format for batches, vectors, sync requests and
//! sync responses, shared by both engines; [`v2`] holds the sync messages
//! of protocol v2 (wire version 2). The byte layout is documented in
//! `ARCHITECTURE.md` ("Wire format") and pinned by the golden files in
//! `core/fixtures/`.

mod message;
mod reader;
pub mod v2;
pub mod varint;

pub use message::{
    decode, encode, Batch, Message, MessageKind, Payload, SyncRequest, SyncResponse, VectorMessage,
    MAGIC, WIRE_FORMAT_VERSION,
};
pub use reader::Reader;
