//! Message types and their byte form.
//!
//! ```text
//! message  = magic "AK" | tag (version << 4 | kind) | sites | columns | body | crc32-LE
//! sites    = count, count × 16-byte site id            (strictly ascending)
//! columns  = count, count × (table, column, descriptor) (strictly ascending)
//! ```
//! Bodies refer to sites and columns by index, so a site id or a column name
//! appears once per message. See `ARCHITECTURE.md` for every field.

use std::collections::BTreeMap;

use super::reader::Reader;
use super::varint::{put_u64, zigzag};
use crate::auth::{DeviceKey, TAG_LEN};
use crate::changes::{Changes, ColumnDeltas, ColumnId};
use crate::codec::v2::OutboxEntry;
use crate::error::DecodeError;
use crate::group::Group;
use crate::key::{Key, KeyKind, KeyPart, KeyShape, MAX_KEY_PARTS};
use crate::site::{SiteId, VersionVector};

/// The two magic bytes that open every message.
pub const MAGIC: [u8; 2] = *b"AK";
/// The wire format version this build writes and reads.
pub const WIRE_FORMAT_VERSION: u8 = 1;

const CHECKSUM_LEN: usize = 4;
const MIN_MESSAGE_LEN: usize = MAGIC.len() + 1 + 1 + 1 + CHECKSUM_LEN;

const ENC_ZIGZAG: u64 = 0;
const ENC_FIXED: u64 = 1;
const ENC_VARINT: u64 = 2;

const PAYLOAD_COALESCED: u8 = 0;
const PAYLOAD_BATCHES: u8 = 1;
const PAYLOAD_SNAPSHOT: u8 = 2;

const FLAG_RELAYS: u8 = 1;

/// A sealed batch: every delta one origin sealed at one seq, at most one per
/// cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The site that sealed it.
    pub origin: SiteId,
    /// Its sequence number at that site (1, 2, 3, ...).
    pub seq: u64,
    /// Its deltas.
    pub changes: Changes,
}

/// A replica's version vector, as returned by `atomik_vector()` and taken by
/// `atomik_changes()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorMessage {
    /// Whose vector it is.
    pub site: SiteId,
    /// The vector.
    pub vector: VersionVector,
}

/// The first half of the one-round-trip sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    /// The asking replica.
    pub site: SiteId,
    /// True when the asker relays to others and wants per-origin batches
    /// instead of one coalesced sum (rule 8).
    pub relays: bool,
    /// The asker's vector when it made the request.
    pub vector: VersionVector,
    /// Batches the asker uploads: its outbox (a leaf) or every stored batch
    /// its upstream may lack (a relay), in (origin, seq) order.
    pub batches: Vec<Batch>,
}

/// What a response carries down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// One coalesced delta per cell: the sum of every batch the base vector
    /// lacks, minus the asker's own (for leaves).
    Coalesced(Changes),
    /// The stored batches the base vector lacks, per origin (for relays).
    Batches(Vec<Batch>),
    /// The hub's references, for a replica that must bootstrap.
    Snapshot(Changes),
}

impl Payload {
    fn name(&self) -> &'static str {
        match self {
            Payload::Coalesced(_) => "coalesced download",
            Payload::Batches(_) => "relay download",
            Payload::Snapshot(_) => "snapshot",
        }
    }
}

/// The second half of the one-round-trip sync, and the output of
/// `atomik_changes()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    /// The replica it answers (rule 6: any other rejects it).
    pub to: SiteId,
    /// The replica that computed it.
    pub from: SiteId,
    /// The asker's vector it was computed against.
    pub base: VersionVector,
    /// The responder's vector when it answered, after applying the uploads.
    /// For a coalesced payload the download covers `base.max(hub_vector)`;
    /// for a snapshot it is exactly what the snapshot covers.
    pub hub_vector: VersionVector,
    /// The part of `hub_vector` the responder can pass on: everything, for a
    /// root hub; for a replica with an upstream, what that upstream has
    /// acknowledged plus what the responder keeps as batches. Its entry for
    /// `to` acknowledges the asker's batches, and the asker keeps this as
    /// the responder's stated vector for retention.
    pub acked: VersionVector,
    /// What is carried down.
    pub payload: Payload,
}

impl SyncResponse {
    /// The highest seq of the asker's own batches the responder holds and
    /// can pass on.
    pub fn ack(&self) -> u64 {
        self.acked.get(&self.to)
    }

    /// What the asker's vector becomes after applying a coalesced payload.
    pub fn covers(&self) -> VersionVector {
        self.base.max(&self.hub_vector)
    }

    /// Short name of the payload kind, for reports.
    pub fn payload_name(&self) -> &'static str {
        self.payload.name()
    }
}

/// Any atomik message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A sealed batch.
    Batch(Batch),
    /// A version vector.
    Vector(VectorMessage),
    /// A sync request.
    Request(SyncRequest),
    /// A sync response or download.
    Response(SyncResponse),
}

/// The kind code in the low nibble of the tag byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// [`Message::Batch`]
    Batch = 1,
    /// [`Message::Vector`]
    Vector = 2,
    /// [`Message::Request`]
    Request = 3,
    /// [`Message::Response`]
    Response = 4,
}

impl MessageKind {
    /// A human name.
    pub fn name(self) -> &'static str {
        match self {
            MessageKind::Batch => "batch",
            MessageKind::Vector => "vector",
            MessageKind::Request => "sync request",
            MessageKind::Response => "sync response",
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(MessageKind::Batch),
            2 => Some(MessageKind::Vector),
            3 => Some(MessageKind::Request),
            4 => Some(MessageKind::Response),
            _ => None,
        }
    }
}

impl Message {
    /// This message's kind.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Batch(_) => MessageKind::Batch,
            Message::Vector(_) => MessageKind::Vector,
            Message::Request(_) => MessageKind::Request,
            Message::Response(_) => MessageKind::Response,
        }
    }
}

// ---------------------------------------------------------------------------
// Encoding

/// The site and column dictionaries of one message.
pub(super) struct Dictionary {
    sites: BTreeMap<SiteId, u64>,
    columns: BTreeMap<(ColumnId, KeyShape), u64>,
}

impl Dictionary {
    /// The dictionary of a message that names `sites` and carries
    /// `changes` (columns with no cells are left out).
    pub(super) fn build<'a>(
        sites: impl IntoIterator<Item = SiteId>,
        changes: impl IntoIterator<Item = &'a Changes>,
    ) -> Dictionary {
        let mut site_map: BTreeMap<SiteId, u64> = sites.into_iter().map(|s| (s, 0)).collect();
        let mut columns = BTreeMap::new();
        for c in changes {
            for (id, block) in c.columns().filter(|(_, b)| !b.cells.is_empty()) {
                columns.insert((id.clone(), block.shape.clone()), 0);
            }
        }
        for (i, v) in site_map.values_mut().enumerate() {
            *v = i as u64;
        }
        for (i, v) in columns.values_mut().enumerate() {
            *v = i as u64;
        }
        Dictionary {
            sites: std::mem::take(&mut site_map),
            columns,
        }
    }

    fn collect(msg: &Message) -> Dictionary {
        let mut sites: Vec<SiteId> = Vec::new();
        let mut changes: Vec<&Changes> = Vec::new();
        let batches = |bs: &'_ [Batch], sites: &mut Vec<SiteId>| {
            for b in bs {
                sites.push(b.origin);
            }
        };
        match msg {
            Message::Batch(b) => {
                sites.push(b.origin);
                changes.push(&b.changes);
            }
            Message::Vector(v) => {
                sites.push(v.site);
                sites.extend(v.vector.iter().map(|(s, _)| s));
            }
            Message::Request(r) => {
                sites.push(r.site);
                sites.extend(r.vector.iter().map(|(s, _)| s));
                batches(&r.batches, &mut sites);
                changes.extend(r.batches.iter().map(|b| &b.changes));
            }
            Message::Response(r) => {
                sites.extend([r.to, r.from]);
                for v in [&r.base, &r.hub_vector, &r.acked] {
                    sites.extend(v.iter().map(|(s, _)| s));
                }
                match &r.payload {
                    Payload::Coalesced(c) | Payload::Snapshot(c) => changes.push(c),
                    Payload::Batches(bs) => {
                        batches(bs, &mut sites);
                        changes.extend(bs.iter().map(|b| &b.changes));
                    }
                }
            }
        }
        Dictionary::build(sites, changes)
    }

    /// Write the site and column dictionaries.
    pub(super) fn put(&self, out: &mut Vec<u8>) {
        put_u64(out, self.sites.len() as u64);
        for s in self.sites.keys() {
            out.extend_from_slice(s.as_bytes());
        }
        put_u64(out, self.columns.len() as u64);
        for (id, shape) in self.columns.keys() {
            put_str(out, &id.table);
            put_str(out, &id.column);
            put_u64(out, descriptor(id.group, shape));
        }
    }

    pub(super) fn site(&self, s: &SiteId) -> u64 {
        self.sites[s]
    }
}

/// Pack a key shape and group into the dictionary descriptor:
/// bits 0–1 group code, bits 2–4 (parts − 1), bits 5.. one bit per part,
/// set for text.
fn descriptor(group: Group, shape: &KeyShape) -> u64 {
    let kinds = shape.kinds();
    let mut text_bits = 0u64;
    for (i, k) in kinds.iter().enumerate() {
        if *k == KeyKind::Text {
            text_bits |= 1 << i;
        }
    }
    u64::from(group.code()) | (((kinds.len() - 1) as u64) << 2) | (text_bits << 5)
}

/// Encode a message into its canonical bytes.
pub fn encode(msg: &Message) -> Vec<u8> {
    let dict = Dictionary::collect(msg);
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&MAGIC);
    out.push((WIRE_FORMAT_VERSION << 4) | msg.kind() as u8);
    dict.put(&mut out);
    match msg {
        Message::Batch(b) => {
            // The origin is the dictionary's only site.
            put_u64(&mut out, b.seq);
            put_changes(&mut out, &dict, &b.changes, Blocks::Implicit);
        }
        Message::Vector(v) => {
            put_u64(&mut out, dict.site(&v.site));
            put_vector(&mut out, &dict, &v.vector);
        }
        Message::Request(r) => {
            put_u64(&mut out, dict.site(&r.site));
            out.push(if r.relays { FLAG_RELAYS } else { 0 });
            put_vector(&mut out, &dict, &r.vector);
            put_batches(&mut out, &dict, &r.batches);
        }
        Message::Response(r) => {
            put_u64(&mut out, dict.site(&r.to));
            put_u64(&mut out, dict.site(&r.from));
            put_vector(&mut out, &dict, &r.base);
            put_vector(&mut out, &dict, &r.hub_vector);
            put_vector(&mut out, &dict, &r.acked);
            match &r.payload {
                Payload::Coalesced(c) => {
                    out.push(PAYLOAD_COALESCED);
                    put_changes(&mut out, &dict, c, Blocks::Implicit);
                }
                Payload::Batches(bs) => {
                    out.push(PAYLOAD_BATCHES);
                    put_batches(&mut out, &dict, bs);
                }
                Payload::Snapshot(c) => {
                    out.push(PAYLOAD_SNAPSHOT);
                    put_changes(&mut out, &dict, c, Blocks::Implicit);
                }
            }
        }
    }
    close_frame(&mut out);
    out
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

pub(super) fn put_vector(out: &mut Vec<u8>, dict: &Dictionary, v: &VersionVector) {
    put_u64(out, v.len() as u64);
    for (site, seq) in v.iter() {
        put_u64(out, dict.site(&site));
        put_u64(out, seq);
    }
}

/// Batches grouped into runs of consecutive seqs of one origin.
pub(super) fn put_batches(out: &mut Vec<u8>, dict: &Dictionary, batches: &[Batch]) {
    let mut sorted: Vec<&Batch> = batches.iter().collect();
    sorted.sort_by_key(|b| (b.origin, b.seq));
    let mut runs: Vec<&[&Batch]> = Vec::new();
    let mut start = 0;
    for i in 1..=sorted.len() {
        let breaks = i == sorted.len()
            || sorted[i].origin != sorted[i - 1].origin
            || sorted[i].seq != sorted[i - 1].seq.wrapping_add(1);
        if breaks {
            if i > start {
                runs.push(&sorted[start..i]);
            }
            start = i;
        }
    }
    put_u64(out, runs.len() as u64);
    for run in runs {
        put_u64(out, dict.site(&run[0].origin));
        put_u64(out, run[0].seq);
        put_u64(out, run.len() as u64);
        for b in run {
            put_changes(out, dict, &b.changes, Blocks::Explicit);
        }
    }
}

/// How a changes section names its column blocks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Blocks {
    /// The message holds one changes section and its column dictionary is
    /// exactly that section's columns: one block per dictionary entry, in
    /// order, with no count and no index.
    Implicit,
    /// A block count, then each block's dictionary index (ascending).
    Explicit,
}

pub(super) fn put_changes(out: &mut Vec<u8>, dict: &Dictionary, changes: &Changes, blocks: Blocks) {
    let used: Vec<_> = changes
        .columns()
        .filter(|(_, b)| !b.cells.is_empty())
        .collect();
    if blocks == Blocks::Explicit {
        put_u64(out, used.len() as u64);
    }
    for (id, block) in used {
        let enc = match id.group {
            Group::Add => ENC_ZIGZAG,
            Group::Xor => {
                let varint_len: usize = block
                    .cells
                    .values()
                    .map(|d| super::varint::len_u64(*d))
                    .sum();
                if varint_len < 8 * block.cells.len() {
                    ENC_VARINT
                } else {
                    ENC_FIXED
                }
            }
        };
        if blocks == Blocks::Explicit {
            put_u64(out, dict.columns[&(id.clone(), block.shape.clone())]);
        }
        put_u64(out, ((block.cells.len() as u64) << 2) | enc);
        let mut previous: i64 = 0;
        for (key, delta) in &block.cells {
            if block.shape.is_single_int() {
                let KeyPart::Int(k) = key.0[0] else {
                    unreachable!("Changes::add checks keys against the shape")
                };
                put_u64(out, zigzag(k.wrapping_sub(previous)));
                previous = k;
            } else {
                for part in &key.0 {
                    match part {
                        KeyPart::Int(v) => put_u64(out, zigzag(*v)),
                        KeyPart::Text(s) => put_str(out, s),
                    }
                }
            }
            match enc {
                ENC_ZIGZAG => put_u64(out, zigzag(*delta as i64)),
                ENC_VARINT => put_u64(out, *delta),
                _ => out.extend_from_slice(&delta.to_le_bytes()),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Decoding

pub(super) struct DecodeDictionary {
    sites: Vec<SiteId>,
    columns: Vec<(ColumnId, KeyShape)>,
}

impl DecodeDictionary {
    /// Read a site index and resolve it.
    pub(super) fn site(
        &self,
        r: &mut Reader<'_>,
        what: &'static str,
    ) -> Result<SiteId, DecodeError> {
        let i = r.varint(what)?;
        usize::try_from(i)
            .ok()
            .and_then(|i| self.sites.get(i))
            .copied()
            .ok_or_else(|| {
                DecodeError::Malformed(format!(
                    "{what} refers to site #{i} of {}",
                    self.sites.len()
                ))
            })
    }
}

/// Decode and validate a message. Nothing is trusted: lengths, counts,
/// indexes, orderings, UTF-8 and the checksum are all checked.
///
/// # Errors
/// A [`DecodeError`] saying what is wrong.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    decode_with(bytes, Ok)
}

/// Decode a version-1 message whose kind, read from the tag, `check_kind`
/// accepts before the checksum or anything of the body is read.
fn decode_with(
    bytes: &[u8],
    check_kind: impl FnOnce(MessageKind) -> Result<MessageKind, DecodeError>,
) -> Result<Message, DecodeError> {
    let (kind, mut r) = open_frame(
        bytes,
        WIRE_FORMAT_VERSION,
        "version 1 (batches, vectors, v1 sync messages)",
        |code| check_kind(MessageKind::from_code(code).ok_or(DecodeError::UnknownKind(code))?),
    )?;
    let dict = read_dictionary(&mut r)?;
    let msg = match kind {
        MessageKind::Batch => {
            let [origin] = dict.sites[..] else {
                return Err(DecodeError::Malformed(format!(
                    "a batch names exactly one site, its origin; this one names {}",
                    dict.sites.len()
                )));
            };
            let seq = read_seq(&mut r, "batch seq")?;
            let changes = read_changes(&mut r, &dict, Blocks::Implicit)?;
            Message::Batch(Batch {
                origin,
                seq,
                changes,
            })
        }
        MessageKind::Vector => {
            let site = dict.site(&mut r, "vector owner")?;
            let vector = read_vector(&mut r, &dict, "vector")?;
            Message::Vector(VectorMessage { site, vector })
        }
        MessageKind::Request => {
            let site = dict.site(&mut r, "request sender")?;
            let flags = r.u8("request flags")?;
            if flags & !FLAG_RELAYS != 0 {
                return Err(DecodeError::Malformed(format!(
                    "request flags 0x{flags:02x} has unknown bits"
                )));
            }
            let vector = read_vector(&mut r, &dict, "request vector")?;
            let batches = read_batches(&mut r, &dict)?;
            Message::Request(SyncRequest {
                site,
                relays: flags & FLAG_RELAYS != 0,
                vector,
                batches,
            })
        }
        MessageKind::Response => {
            let to = dict.site(&mut r, "response recipient")?;
            let from = dict.site(&mut r, "response sender")?;
            let base = read_vector(&mut r, &dict, "response base vector")?;
            let hub_vector = read_vector(&mut r, &dict, "response hub vector")?;
            let acked = read_vector(&mut r, &dict, "response acknowledged vector")?;
            let payload = match r.u8("payload kind")? {
                PAYLOAD_COALESCED => {
                    Payload::Coalesced(read_changes(&mut r, &dict, Blocks::Implicit)?)
                }
                PAYLOAD_BATCHES => Payload::Batches(read_batches(&mut r, &dict)?),
                PAYLOAD_SNAPSHOT => {
                    Payload::Snapshot(read_changes(&mut r, &dict, Blocks::Implicit)?)
                }
                other => {
                    return Err(DecodeError::Malformed(format!(
                        "unknown payload kind {other}"
                    )))
                }
            };
            Message::Response(SyncResponse {
                to,
                from,
                base,
                hub_vector,
                acked,
                payload,
            })
        }
    };
    if r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes(r.remaining()));
    }
    Ok(msg)
}

/// What closes a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trailer {
    /// A CRC-32, checked here.
    Checksum,
    /// A device-key tag ([`crate::auth`]), returned for the caller to check
    /// once it knows the key.
    Tag,
}

/// Check a message's frame — length, magic, wire version, checksum — and
/// return its kind code and a reader over the bytes between the tag and
/// the checksum. `check_kind` judges the kind code before the checksum or
/// anything of the body is read.
pub(super) fn open_frame<'a, K>(
    bytes: &'a [u8],
    version: u8,
    reads: &'static str,
    check_kind: impl FnOnce(u8) -> Result<K, DecodeError>,
) -> Result<(K, Reader<'a>), DecodeError> {
    let (kind, r, _) = open_tagged_frame(bytes, version, reads, |code| {
        check_kind(code).map(|k| (k, Trailer::Checksum))
    })?;
    Ok((kind, r))
}

/// [`open_frame`] for a kind that may be closed by a device-key tag:
/// `check_kind` also says which trailer the kind has. For a tagged kind
/// the third value is the tag (unchecked here: the caller verifies it
/// over every byte before it, once it knows whose key to use).
pub(super) fn open_tagged_frame<'a, K>(
    bytes: &'a [u8],
    version: u8,
    reads: &'static str,
    check_kind: impl FnOnce(u8) -> Result<(K, Trailer), DecodeError>,
) -> Result<(K, Reader<'a>, Option<&'a [u8]>), DecodeError> {
    if bytes.len() < MIN_MESSAGE_LEN {
        if bytes.len() >= 2 && bytes[..2] != MAGIC {
            return Err(DecodeError::BadMagic([bytes[0], bytes[1]]));
        }
        return Err(DecodeError::TooShort(bytes.len()));
    }
    if bytes[..2] != MAGIC {
        return Err(DecodeError::BadMagic([bytes[0], bytes[1]]));
    }
    let tag = bytes[2];
    if tag >> 4 != version {
        return Err(DecodeError::UnsupportedVersion {
            found: tag >> 4,
            reads,
        });
    }
    let (kind, trailer) = check_kind(tag & 0x0F)?;
    if trailer == Trailer::Tag {
        if bytes.len() < MIN_MESSAGE_LEN - CHECKSUM_LEN + TAG_LEN {
            return Err(DecodeError::TooShort(bytes.len()));
        }
        let (body, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        return Ok((
            kind,
            Reader::for_message(&body[3..], bytes.len()),
            Some(tag),
        ));
    }
    let (body, crc_bytes) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    let mut stored = [0u8; 4];
    stored.copy_from_slice(crc_bytes);
    let stored = u32::from_le_bytes(stored);
    let computed = crc32fast::hash(body);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    Ok((kind, Reader::for_message(&body[3..], bytes.len()), None))
}

/// Append the checksum that closes every message.
pub(super) fn close_frame(out: &mut Vec<u8>) {
    let crc = crc32fast::hash(out);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Close a message with `key`'s tag of every byte before it instead of the
/// checksum (the caller's tag byte names a tagged kind).
pub(super) fn close_tagged_frame(out: &mut Vec<u8>, key: &DeviceKey) {
    let tag = key.tag(out);
    out.extend_from_slice(&tag);
}

/// The heap a `BTreeMap` takes for its first entry, of `entry` bytes: one
/// leaf node of 11 slots (and its parent pointer, index and length).
const fn map_root_cost(entry: usize) -> usize {
    16 + 11 * entry
}

/// An upper bound on what each further entry of a `BTreeMap` costs: nodes
/// other than the root are at least 5/11 full, and internal nodes (12
/// edges each, at least 6 used) add under a fifth of that.
const fn map_entry_cost(entry: usize) -> usize {
    3 * entry + 16
}

/// What one decoded cell costs: its map slot (a `Key`, a `u64`) and the
/// key's vector of parts (text parts are charged as they are read).
fn cell_cost(parts: usize) -> usize {
    map_entry_cost(size_of::<(Key, u64)>()) + parts * size_of::<KeyPart>()
}

/// What a vector grown by doubling costs per element of `slot` bytes: at
/// most twice the slots needed, and a move briefly holds both buffers.
pub(super) const fn grown_slot_cost(slot: usize) -> usize {
    3 * slot
}

/// What a vector of batches costs per batch.
const BATCH_SLOT_COST: usize = grown_slot_cost(size_of::<Batch>());

/// What a vector of uploads costs per upload.
pub(super) const UPLOAD_SLOT_COST: usize = grown_slot_cost(size_of::<OutboxEntry>());

/// The capacity to start a vector of `declared` elements with: a declared
/// count fits the input but its elements are not read yet, so a message
/// cut short or malformed after its counts allocates little; longer
/// vectors grow as their elements arrive.
pub(super) fn initial_capacity(declared: usize) -> usize {
    declared.min(256)
}

/// The smallest batch on the wire: a block count and one block.
pub(super) const MIN_BATCH_LEN: usize = 1 + MIN_BLOCK_LEN;

/// The smallest explicit column block: its index, its header and one cell
/// (a one-byte key and a one-byte delta).
const MIN_BLOCK_LEN: usize = 4;

pub(super) fn read_seq(r: &mut Reader<'_>, what: &'static str) -> Result<u64, DecodeError> {
    let seq = read_counter(r, what)?;
    if seq == 0 {
        return Err(DecodeError::Malformed(format!(
            "{what} is 0 (seqs start at 1)"
        )));
    }
    Ok(seq)
}

/// A seq, log position or ack: at most [`super::MAX_COUNTER`].
pub(super) fn read_counter(r: &mut Reader<'_>, what: &'static str) -> Result<u64, DecodeError> {
    check_counter(r.varint(what)?, what)
}

/// `n` if it is at most [`super::MAX_COUNTER`] (what both engines store).
pub(super) fn check_counter(n: u64, what: &str) -> Result<u64, DecodeError> {
    if n > super::MAX_COUNTER {
        return Err(DecodeError::Malformed(format!(
            "{what} {n} is beyond 2^63 - 1, the largest a replica stores"
        )));
    }
    Ok(n)
}

pub(super) fn read_dictionary(r: &mut Reader<'_>) -> Result<DecodeDictionary, DecodeError> {
    let n_sites = r.count(16, "site dictionary")?;
    r.charge(n_sites * size_of::<SiteId>(), "site dictionary")?;
    let mut sites: Vec<SiteId> = Vec::with_capacity(n_sites);
    for _ in 0..n_sites {
        let s = SiteId::from_slice(r.take(16, "site id")?).expect("took exactly 16 bytes");
        if sites.last().is_some_and(|last| *last >= s) {
            return Err(DecodeError::Malformed(
                "site dictionary is not strictly ascending".to_string(),
            ));
        }
        sites.push(s);
    }
    let n_columns = r.count(3, "column dictionary")?;
    r.charge(
        n_columns * 3 * size_of::<(ColumnId, KeyShape)>(),
        "column dictionary",
    )?;
    let mut columns: Vec<(ColumnId, KeyShape)> = Vec::with_capacity(initial_capacity(n_columns));
    for _ in 0..n_columns {
        let table = r.string("table name")?;
        let column = r.string("column name")?;
        let d = r.varint("column descriptor")?;
        let group = Group::from_code((d & 3) as u8).ok_or_else(|| {
            DecodeError::Malformed(format!(
                "column {table}.{column} has unknown group code {}",
                d & 3
            ))
        })?;
        let parts = ((d >> 2) & 7) as usize + 1;
        let text_bits = d >> 5;
        if text_bits >> parts != 0 || parts > MAX_KEY_PARTS {
            return Err(DecodeError::Malformed(format!(
                "column {table}.{column} has an invalid key descriptor {d}"
            )));
        }
        r.charge(parts * size_of::<KeyKind>(), "column key shape")?;
        let kinds = (0..parts)
            .map(|i| {
                if text_bits & (1 << i) != 0 {
                    KeyKind::Text
                } else {
                    KeyKind::Int
                }
            })
            .collect();
        let shape = KeyShape::new(kinds).map_err(DecodeError::Malformed)?;
        let entry = (
            ColumnId {
                table,
                column,
                group,
            },
            shape,
        );
        if columns.last().is_some_and(|last| *last >= entry) {
            return Err(DecodeError::Malformed(
                "column dictionary is not strictly ascending".to_string(),
            ));
        }
        columns.push(entry);
    }
    Ok(DecodeDictionary { sites, columns })
}

pub(super) fn read_vector(
    r: &mut Reader<'_>,
    dict: &DecodeDictionary,
    what: &'static str,
) -> Result<VersionVector, DecodeError> {
    let n = r.count(2, what)?;
    let mut v = VersionVector::new();
    let mut last: Option<SiteId> = None;
    let entry = size_of::<(SiteId, u64)>();
    if n > 0 {
        r.charge(map_root_cost(entry), what)?;
    }
    for _ in 0..n {
        r.charge(map_entry_cost(entry), what)?;
        let site = dict.site(r, what)?;
        if last.is_some_and(|l| l >= site) {
            return Err(DecodeError::Malformed(format!(
                "{what} entries are not in ascending site order"
            )));
        }
        last = Some(site);
        let seq = read_seq(r, what)?;
        v.set(site, seq);
    }
    Ok(v)
}

pub(super) fn read_batches(
    r: &mut Reader<'_>,
    dict: &DecodeDictionary,
) -> Result<Vec<Batch>, DecodeError> {
    // A run is an origin index, a first seq, a count and a batch.
    let runs = r.count(3 + MIN_BATCH_LEN, "batch runs")?;
    let mut out: Vec<Batch> = Vec::new();
    for _ in 0..runs {
        let origin = dict.site(r, "batch origin")?;
        let first = read_seq(r, "first seq of a batch run")?;
        let count = r.count(MIN_BATCH_LEN, "batches in a run")?;
        if count == 0 {
            return Err(DecodeError::Malformed("empty batch run".to_string()));
        }
        r.charge(count * BATCH_SLOT_COST, "batches in a run")?;
        out.reserve(initial_capacity(count));
        if let Some(prev) = out.last() {
            if (prev.origin, prev.seq) >= (origin, first) {
                return Err(DecodeError::Malformed(
                    "batch runs are not in ascending (origin, seq) order".to_string(),
                ));
            }
        }
        for i in 0..count as u64 {
            let seq = check_counter(first.saturating_add(i), "batch seq")?;
            let changes = read_changes(r, dict, Blocks::Explicit)?;
            if changes.is_empty() {
                return Err(DecodeError::Malformed(format!(
                    "batch {seq} of site {origin} is empty (a batch carries at least one cell)"
                )));
            }
            out.push(Batch {
                origin,
                seq,
                changes,
            });
        }
    }
    Ok(out)
}

pub(super) fn read_changes(
    r: &mut Reader<'_>,
    dict: &DecodeDictionary,
    blocks: Blocks,
) -> Result<Changes, DecodeError> {
    let n_blocks = match blocks {
        Blocks::Implicit => dict.columns.len(),
        Blocks::Explicit => r.count(MIN_BLOCK_LEN, "column blocks")?,
    };
    let block_entry = size_of::<(ColumnId, ColumnDeltas)>();
    if n_blocks > 0 {
        r.charge(map_root_cost(block_entry), "column blocks")?;
    }
    let mut changes = Changes::new();
    let mut last_index: Option<u64> = None;
    for position in 0..n_blocks {
        let index = match blocks {
            Blocks::Implicit => position as u64,
            Blocks::Explicit => r.varint("column block index")?,
        };
        if last_index.is_some_and(|l| l >= index) {
            return Err(DecodeError::Malformed(
                "column blocks are not in ascending dictionary order".to_string(),
            ));
        }
        last_index = Some(index);
        let (id, shape) = usize::try_from(index)
            .ok()
            .and_then(|i| dict.columns.get(i))
            .ok_or_else(|| {
                DecodeError::Malformed(format!(
                    "column block refers to column #{index} of {}",
                    dict.columns.len()
                ))
            })?;
        let header = r.varint("column block header")?;
        let enc = header & 3;
        let n_cells = header >> 2;
        let enc_ok = match id.group {
            Group::Add => enc == ENC_ZIGZAG,
            Group::Xor => enc == ENC_FIXED || enc == ENC_VARINT,
        };
        if !enc_ok {
            return Err(DecodeError::Malformed(format!(
                "delta encoding {enc} is not valid for {} column {}.{}",
                id.group, id.table, id.column
            )));
        }
        if changes.column(id).is_some() {
            return Err(DecodeError::Malformed(format!(
                "column {}.{} appears twice with different key shapes",
                id.table, id.column
            )));
        }
        if n_cells == 0 {
            return Err(DecodeError::Malformed(format!(
                "column block {}.{} has no cells",
                id.table, id.column
            )));
        }
        // Every cell takes at least two bytes: refuse counts the input
        // cannot hold before allocating anything for them.
        if n_cells > (r.remaining() / 2) as u64 {
            return Err(DecodeError::Malformed(format!(
                "column block {}.{} says {n_cells} cells but only {} bytes remain",
                id.table,
                id.column,
                r.remaining()
            )));
        }
        // The block's map entry, its own copies of the column's names and
        // key shape, and the root node of its cells.
        r.charge(
            map_entry_cost(block_entry)
                + id.table.len()
                + id.column.len()
                + size_of_val(shape.kinds())
                + map_root_cost(size_of::<(Key, u64)>()),
            "column block",
        )?;
        let per_cell = cell_cost(shape.kinds().len());
        let mut cells: BTreeMap<Key, u64> = BTreeMap::new();
        let mut previous: i64 = 0;
        for _ in 0..n_cells {
            r.charge(per_cell, "cell")?;
            let key = if shape.is_single_int() {
                let k = previous.wrapping_add(r.zigzag("cell key")?);
                previous = k;
                Key::int(k)
            } else {
                let mut parts = Vec::with_capacity(shape.kinds().len());
                for kind in shape.kinds() {
                    parts.push(match kind {
                        KeyKind::Int => KeyPart::Int(r.zigzag("cell key")?),
                        KeyKind::Text => KeyPart::Text(r.string("cell key")?),
                    });
                }
                Key(parts)
            };
            if cells.last_key_value().is_some_and(|(l, _)| *l >= key) {
                return Err(DecodeError::Malformed(format!(
                    "keys of {}.{} are not strictly ascending (duplicate or out of order at {key})",
                    id.table, id.column
                )));
            }
            let delta = match enc {
                ENC_ZIGZAG => r.zigzag("cell delta")? as u64,
                ENC_VARINT => r.varint("cell delta")?,
                _ => r.u64_le("cell delta")?,
            };
            cells.insert(key, delta);
        }
        changes.insert_block(
            id.clone(),
            ColumnDeltas {
                shape: shape.clone(),
                cells,
            },
        );
    }
    Ok(changes)
}

impl Message {
    /// Decode a message that must be of one kind. The kind is judged from
    /// the tag, before the checksum or anything of the body is read.
    ///
    /// # Errors
    /// Any [`DecodeError`], or [`DecodeError::WrongKind`].
    pub fn decode_kind(bytes: &[u8], expected: MessageKind) -> Result<Message, DecodeError> {
        decode_with(bytes, |found| {
            if found == expected {
                Ok(found)
            } else {
                Err(DecodeError::WrongKind {
                    expected: expected.name(),
                    found: found.name(),
                })
            }
        })
    }
}
