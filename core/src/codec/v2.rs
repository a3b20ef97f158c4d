//! Wire format version 2: the sync request and response of protocol v2
//! ([`crate::protocol::v2`]), whose metadata does not grow with the fleet.
//!
//! ```text
//! message  = "AK" | tag (2 << 4 | kind) | sites | columns | body | crc32-LE
//!          | "AK" | tag (2 << 4 | kind + 2) | sites | columns | body | device-key tag (16 B)
//! request  = sender | flags (bit 0 relays, bit 1 cursor) | [cursor hub, position]
//!            | uploads
//! uploads  = count | [first] | count × upload            (relay: first = first outbox position)
//! upload   = leaf:  explicit changes                     (origin = sender; first = first seq)
//!            relay: origin | seq | explicit changes
//! response = to | from | flags (bit 0 base) | [base hub, base position]
//!            | position | ack | payload kind | payload
//! payload  = 0 range:    implicit changes  (coalesced log range, leaves)
//!            1 entries:  batch runs        (per-origin log entries, relays)
//!            2 snapshot: implicit changes  (references, leaves)
//!            3 relay snapshot: registry vector | implicit changes
//! ```
//! Kinds 1 and 2 end in a checksum; kinds 3 and 4 are the same request and
//! response authenticated with a device key ([`crate::auth`]): they end
//! in the key's 16-byte tag of every byte before it, which the protocol
//! checks once it knows whose key applies.
//! The dictionaries, changes sections and batch runs are those of version 1
//! (see `ARCHITECTURE.md`). A leaf names no origin but its own and no
//! vector: its request is its site, one cursor and its outbox.

use super::message::{
    check_counter, close_frame, close_tagged_frame, initial_capacity, open_tagged_frame,
    put_batches, put_changes, put_vector, read_batches, read_changes, read_counter,
    read_dictionary, read_seq, read_vector, Blocks, DecodeDictionary, Dictionary, Trailer, MAGIC,
    MIN_BATCH_LEN, UPLOAD_SLOT_COST,
};
use super::reader::Reader;
use super::varint::put_u64;
use crate::auth::DeviceKey;
use crate::changes::Changes;
use crate::codec::Batch;
use crate::error::DecodeError;
use crate::site::{SiteId, VersionVector};

/// The wire format version of protocol v2 messages.
pub const WIRE_V2: u8 = 2;

const READS: &str = "version 2 (protocol v2 sync messages)";

const KIND_REQUEST: u8 = 1;
const KIND_RESPONSE: u8 = 2;
/// A kind plus this is the same message closed by a device-key tag.
const TAGGED: u8 = 2;

const FLAG_RELAYS: u8 = 1;
const FLAG_CURSOR: u8 = 2;
const FLAG_BASE: u8 = 1;

const PAYLOAD_RANGE: u8 = 0;
const PAYLOAD_ENTRIES: u8 = 1;
const PAYLOAD_SNAPSHOT: u8 = 2;
const PAYLOAD_RELAY_SNAPSHOT: u8 = 3;

/// A position in one hub's log, as a replica downstream of it holds it:
/// every log entry up to `position` is reflected in the holder's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    /// The hub whose log the position is in.
    pub hub: SiteId,
    /// The position (0: before the first entry).
    pub position: u64,
}

/// One sealed batch waiting in a replica's outbox for its upstream to
/// acknowledge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Its place in the outbox (1, 2, 3, ... without gaps). For a leaf,
    /// whose outbox holds only its own batches, it equals `seq`.
    pub position: u64,
    /// The site that sealed the batch.
    pub origin: SiteId,
    /// The batch's seq at its origin.
    pub seq: u64,
    /// Its deltas.
    pub changes: Changes,
}

/// The first half of a v2 sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The asking replica.
    pub site: SiteId,
    /// True when the asker serves others (a relay hub): it wants per-origin
    /// entries, and its uploads may be of any origin.
    pub relays: bool,
    /// The asker's cursor into its upstream's log, if it holds one.
    pub cursor: Option<Cursor>,
    /// The asker's outbox, in position order, positions consecutive. A
    /// leaf's entries are all its own, seqs consecutive (decoded with
    /// `position == seq`).
    pub uploads: Vec<OutboxEntry>,
}

/// What a v2 response carries down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// For a leaf: the group-sum of the hub's log entries after the base
    /// position up to the response's position, less the leaf's own.
    Range(Changes),
    /// For a relay: the log entries after the base position up to the
    /// response's position, per origin, less those it sent.
    Entries(Vec<Batch>),
    /// For a leaf without a usable cursor: the hub's references at the
    /// response's position (the leaf's own batches up to `ack` included).
    Snapshot(Changes),
    /// For a relay without a usable cursor: the references, and per origin
    /// the highest seq they include.
    RelaySnapshot {
        /// Per origin, the highest seq the values include.
        registry: VersionVector,
        /// The references.
        values: Changes,
    },
}

impl Payload {
    /// Short name, for reports and traces.
    pub fn name(&self) -> &'static str {
        match self {
            Payload::Range(_) => "range",
            Payload::Entries(_) => "entries",
            Payload::Snapshot(_) => "snapshot",
            Payload::RelaySnapshot { .. } => "relay snapshot",
        }
    }

    /// True for both snapshot forms.
    pub fn is_snapshot(&self) -> bool {
        matches!(self, Payload::Snapshot(_) | Payload::RelaySnapshot { .. })
    }
}

/// The second half of a v2 sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The replica it answers (any other rejects it).
    pub to: SiteId,
    /// The hub that computed it.
    pub from: SiteId,
    /// The cursor the request stated: the asker applies the payload only if
    /// that is still its cursor.
    pub base: Option<Cursor>,
    /// The asker's new position in `from`'s log.
    pub position: u64,
    /// What the asker may drop from its outbox: for a leaf, the highest own
    /// seq the hub holds; for a relay, the last outbox position it sent.
    pub ack: u64,
    /// What is carried down.
    pub payload: Payload,
}

/// The device-key tag that closes an authenticated message, and the bytes
/// it covers (every byte before it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tagged<'a> {
    /// The bytes the tag covers.
    pub covered: &'a [u8],
    /// The tag.
    pub tag: &'a [u8],
}

impl Tagged<'_> {
    /// Whether the tag verifies with `key`.
    pub fn verifies(&self, key: &DeviceKey) -> bool {
        key.verifies(self.covered, self.tag)
    }
}

/// Encode a v2 request.
///
/// A leaf's uploads are written as its consecutive seqs (their outbox
/// positions are not sent: a hub acknowledges a leaf by seq); the decoder
/// gives them `position == seq`.
///
/// # Panics
/// When a leaf request (`relays == false`) uploads an entry of another
/// origin or seqs that are not consecutive, or when a relay's upload
/// positions are not consecutive: the protocol never builds one.
pub fn encode_request(req: &Request) -> Vec<u8> {
    encode_request_with(req, None)
}

/// Encode a v2 request, authenticated with `key` if one is given (see
/// [`encode_request`]).
///
/// # Panics
/// As [`encode_request`].
pub fn encode_request_with(req: &Request, key: Option<&DeviceKey>) -> Vec<u8> {
    let mut sites = vec![req.site];
    sites.extend(req.cursor.map(|c| c.hub));
    sites.extend(req.uploads.iter().map(|u| u.origin));
    let dict = Dictionary::build(sites, req.uploads.iter().map(|u| &u.changes));
    let mut out = start(&dict, KIND_REQUEST, key.is_some());
    put_u64(&mut out, dict.site(&req.site));
    let flags = (if req.relays { FLAG_RELAYS } else { 0 })
        | (if req.cursor.is_some() { FLAG_CURSOR } else { 0 });
    out.push(flags);
    if let Some(c) = req.cursor {
        put_u64(&mut out, dict.site(&c.hub));
        put_u64(&mut out, c.position);
    }
    put_u64(&mut out, req.uploads.len() as u64);
    if let Some(first) = req.uploads.first() {
        // A leaf's uploads are its own consecutive seqs: the first seq
        // names them all. A relay's are consecutive outbox positions.
        put_u64(
            &mut out,
            if req.relays {
                first.position
            } else {
                first.seq
            },
        );
    }
    for (i, u) in req.uploads.iter().enumerate() {
        if req.relays {
            assert_eq!(
                u.position,
                req.uploads[0].position + i as u64,
                "outbox positions are consecutive"
            );
            put_u64(&mut out, dict.site(&u.origin));
            put_u64(&mut out, u.seq);
        } else {
            assert!(
                u.origin == req.site && u.seq == req.uploads[0].seq + i as u64,
                "a leaf uploads only its own batches, in seq order"
            );
        }
        put_changes(&mut out, &dict, &u.changes, Blocks::Explicit);
    }
    close(&mut out, key);
    out
}

/// Encode a v2 response.
pub fn encode_response(resp: &Response) -> Vec<u8> {
    encode_response_with(resp, None)
}

/// Encode a v2 response, authenticated with `key` (the asker's device key)
/// if one is given.
pub fn encode_response_with(resp: &Response, key: Option<&DeviceKey>) -> Vec<u8> {
    let mut sites = vec![resp.to, resp.from];
    sites.extend(resp.base.map(|c| c.hub));
    let mut changes: Vec<&Changes> = Vec::new();
    match &resp.payload {
        Payload::Range(c) | Payload::Snapshot(c) => changes.push(c),
        Payload::Entries(bs) => {
            sites.extend(bs.iter().map(|b| b.origin));
            changes.extend(bs.iter().map(|b| &b.changes));
        }
        Payload::RelaySnapshot { registry, values } => {
            sites.extend(registry.iter().map(|(s, _)| s));
            changes.push(values);
        }
    }
    let dict = Dictionary::build(sites, changes);
    let mut out = start(&dict, KIND_RESPONSE, key.is_some());
    put_u64(&mut out, dict.site(&resp.to));
    put_u64(&mut out, dict.site(&resp.from));
    out.push(if resp.base.is_some() { FLAG_BASE } else { 0 });
    if let Some(c) = resp.base {
        put_u64(&mut out, dict.site(&c.hub));
        put_u64(&mut out, c.position);
    }
    put_u64(&mut out, resp.position);
    put_u64(&mut out, resp.ack);
    match &resp.payload {
        Payload::Range(c) => {
            out.push(PAYLOAD_RANGE);
            put_changes(&mut out, &dict, c, Blocks::Implicit);
        }
        Payload::Entries(bs) => {
            out.push(PAYLOAD_ENTRIES);
            put_batches(&mut out, &dict, bs);
        }
        Payload::Snapshot(c) => {
            out.push(PAYLOAD_SNAPSHOT);
            put_changes(&mut out, &dict, c, Blocks::Implicit);
        }
        Payload::RelaySnapshot { registry, values } => {
            out.push(PAYLOAD_RELAY_SNAPSHOT);
            put_vector(&mut out, &dict, registry);
            put_changes(&mut out, &dict, values, Blocks::Implicit);
        }
    }
    close(&mut out, key);
    out
}

fn start(dict: &Dictionary, kind: u8, tagged: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&MAGIC);
    out.push((WIRE_V2 << 4) | (kind + if tagged { TAGGED } else { 0 }));
    dict.put(&mut out);
    out
}

fn close(out: &mut Vec<u8>, key: Option<&DeviceKey>) {
    match key {
        Some(key) => close_tagged_frame(out, key),
        None => close_frame(out),
    }
}

fn kind_name(code: u8) -> &'static str {
    match code {
        KIND_REQUEST => "v2 sync request",
        KIND_RESPONSE => "v2 sync response",
        c if c == KIND_REQUEST + TAGGED => "authenticated v2 sync request",
        c if c == KIND_RESPONSE + TAGGED => "authenticated v2 sync response",
        _ => "unknown",
    }
}

/// Open a v2 message that must be of kind `expected`, with a checksum or
/// a device-key tag: the kind is checked from the tag byte before the
/// checksum or any of the body is read. The tag, if any, is returned
/// unchecked (with the bytes it covers).
fn open(
    bytes: &[u8],
    expected: u8,
) -> Result<(Reader<'_>, DecodeDictionary, Option<Tagged<'_>>), DecodeError> {
    let ((), mut r, tag) = open_tagged_frame(bytes, WIRE_V2, READS, |code| {
        let base = if code > TAGGED { code - TAGGED } else { code };
        match base {
            KIND_REQUEST | KIND_RESPONSE if base == expected => Ok((
                (),
                if code == base {
                    Trailer::Checksum
                } else {
                    Trailer::Tag
                },
            )),
            KIND_REQUEST | KIND_RESPONSE => Err(DecodeError::WrongKind {
                expected: kind_name(expected),
                found: kind_name(code),
            }),
            _ => Err(DecodeError::UnknownKind(code)),
        }
    })?;
    let dict = read_dictionary(&mut r)?;
    let tagged = tag.map(|tag| Tagged {
        covered: &bytes[..bytes.len() - tag.len()],
        tag,
    });
    Ok((r, dict, tagged))
}

fn finish<T>(r: &Reader<'_>, value: T) -> Result<T, DecodeError> {
    if r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes(r.remaining()));
    }
    Ok(value)
}

fn read_cursor(
    r: &mut Reader<'_>,
    dict: &DecodeDictionary,
    what: &'static str,
) -> Result<Cursor, DecodeError> {
    let hub = dict.site(r, what)?;
    let position = read_counter(r, what)?;
    Ok(Cursor { hub, position })
}

/// Decode and validate a v2 request. Nothing is trusted.
///
/// # Errors
/// A [`DecodeError`] saying what is wrong, including a message of another
/// kind or wire version.
pub fn decode_request(bytes: &[u8]) -> Result<Request, DecodeError> {
    decode_request_tagged(bytes).map(|(req, _)| req)
}

/// [`decode_request`], and the request's device-key tag if it has one
/// (unchecked: see [`Tagged::verifies`]).
///
/// # Errors
/// As [`decode_request`].
pub fn decode_request_tagged(bytes: &[u8]) -> Result<(Request, Option<Tagged<'_>>), DecodeError> {
    let (mut r, dict, tagged) = open(bytes, KIND_REQUEST)?;
    let site = dict.site(&mut r, "request sender")?;
    let flags = r.u8("request flags")?;
    if flags & !(FLAG_RELAYS | FLAG_CURSOR) != 0 {
        return Err(DecodeError::Malformed(format!(
            "request flags 0x{flags:02x} has unknown bits"
        )));
    }
    let relays = flags & FLAG_RELAYS != 0;
    let cursor = if flags & FLAG_CURSOR != 0 {
        Some(read_cursor(&mut r, &dict, "request cursor")?)
    } else {
        None
    };
    // Every upload is at least a minimal batch, a relay's also an origin
    // index and a seq.
    let min_upload = if relays { 2 } else { 0 } + MIN_BATCH_LEN;
    let n = r.count(min_upload, "uploads")?;
    r.charge(n * UPLOAD_SLOT_COST, "uploads")?;
    let mut uploads = Vec::with_capacity(initial_capacity(n));
    if n > 0 {
        let first = read_seq(&mut r, "first upload")?;
        for i in 0..n as u64 {
            let position = check_counter(first.saturating_add(i), "upload position")?;
            let (origin, seq) = if relays {
                (
                    dict.site(&mut r, "upload origin")?,
                    read_seq(&mut r, "upload seq")?,
                )
            } else {
                (site, position)
            };
            let changes = read_changes(&mut r, &dict, Blocks::Explicit)?;
            if changes.is_empty() {
                return Err(DecodeError::Malformed(format!(
                    "upload at position {position} is an empty batch"
                )));
            }
            uploads.push(OutboxEntry {
                position,
                origin,
                seq,
                changes,
            });
        }
    }
    finish(
        &r,
        (
            Request {
                site,
                relays,
                cursor,
                uploads,
            },
            tagged,
        ),
    )
}

/// Decode and validate a v2 response. Nothing is trusted.
///
/// # Errors
/// A [`DecodeError`] saying what is wrong, including a message of another
/// kind or wire version.
pub fn decode_response(bytes: &[u8]) -> Result<Response, DecodeError> {
    decode_response_tagged(bytes).map(|(resp, _)| resp)
}

/// [`decode_response`], and the response's device-key tag if it has one
/// (unchecked: see [`Tagged::verifies`]).
///
/// # Errors
/// As [`decode_response`].
pub fn decode_response_tagged(bytes: &[u8]) -> Result<(Response, Option<Tagged<'_>>), DecodeError> {
    let (mut r, dict, tagged) = open(bytes, KIND_RESPONSE)?;
    let to = dict.site(&mut r, "response recipient")?;
    let from = dict.site(&mut r, "response sender")?;
    let flags = r.u8("response flags")?;
    if flags & !FLAG_BASE != 0 {
        return Err(DecodeError::Malformed(format!(
            "response flags 0x{flags:02x} has unknown bits"
        )));
    }
    let base = if flags & FLAG_BASE != 0 {
        Some(read_cursor(&mut r, &dict, "response base")?)
    } else {
        None
    };
    let position = read_counter(&mut r, "response position")?;
    let ack = read_counter(&mut r, "response ack")?;
    let payload = match r.u8("payload kind")? {
        PAYLOAD_RANGE => Payload::Range(read_changes(&mut r, &dict, Blocks::Implicit)?),
        PAYLOAD_ENTRIES => Payload::Entries(read_batches(&mut r, &dict)?),
        PAYLOAD_SNAPSHOT => Payload::Snapshot(read_changes(&mut r, &dict, Blocks::Implicit)?),
        PAYLOAD_RELAY_SNAPSHOT => {
            let registry = read_vector(&mut r, &dict, "snapshot registry")?;
            let values = read_changes(&mut r, &dict, Blocks::Implicit)?;
            Payload::RelaySnapshot { registry, values }
        }
        other => {
            return Err(DecodeError::Malformed(format!(
                "unknown payload kind {other}"
            )))
        }
    };
    finish(
        &r,
        (
            Response {
                to,
                from,
                base,
                position,
                ack,
                payload,
            },
            tagged,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::ColumnId;
    use crate::group::Group;
    use crate::key::{Key, KeyShape};

    fn site(b: u8) -> SiteId {
        SiteId([b; 16])
    }

    fn changes(n: i64) -> Changes {
        let mut c = Changes::new();
        let col = ColumnId::new("inv", "qty", Group::Add);
        for k in 0..n {
            c.add(&col, &KeyShape::int(), Key::int(k * 3), (-1i64) as u64)
                .unwrap();
        }
        c
    }

    #[test]
    fn requests_round_trip() {
        let leaf = Request {
            site: site(1),
            relays: false,
            cursor: Some(Cursor {
                hub: site(9),
                position: 300,
            }),
            uploads: (4..6)
                .map(|seq| OutboxEntry {
                    position: seq,
                    origin: site(1),
                    seq,
                    changes: changes(seq as i64),
                })
                .collect(),
        };
        assert_eq!(decode_request(&encode_request(&leaf)).unwrap(), leaf);
        let relay = Request {
            site: site(2),
            relays: true,
            cursor: None,
            uploads: vec![
                OutboxEntry {
                    position: 7,
                    origin: site(5),
                    seq: 3,
                    changes: changes(2),
                },
                OutboxEntry {
                    position: 8,
                    origin: site(2),
                    seq: 1,
                    changes: changes(1),
                },
            ],
        };
        assert_eq!(decode_request(&encode_request(&relay)).unwrap(), relay);
        let empty = Request {
            uploads: vec![],
            ..leaf
        };
        assert_eq!(decode_request(&encode_request(&empty)).unwrap(), empty);
    }

    #[test]
    fn responses_round_trip() {
        let payloads = [
            Payload::Range(changes(3)),
            Payload::Range(Changes::new()),
            Payload::Entries(vec![Batch {
                origin: site(4),
                seq: 2,
                changes: changes(2),
            }]),
            Payload::Snapshot(changes(5)),
            Payload::RelaySnapshot {
                registry: [(site(4), 2), (site(9), 7)].into_iter().collect(),
                values: changes(4),
            },
        ];
        for payload in payloads {
            for base in [
                None,
                Some(Cursor {
                    hub: site(9),
                    position: 12,
                }),
            ] {
                let r = Response {
                    to: site(1),
                    from: site(9),
                    base,
                    position: 40,
                    ack: 6,
                    payload: payload.clone(),
                };
                assert_eq!(decode_response(&encode_response(&r)).unwrap(), r);
            }
        }
    }

    #[test]
    fn kind_and_version_are_checked_first() {
        let req = encode_request(&Request {
            site: site(1),
            relays: false,
            cursor: None,
            uploads: vec![],
        });
        assert_eq!(
            decode_response(&req).unwrap_err().to_string(),
            "expected an atomik v2 sync response message, got a v2 sync request message"
        );
        let mut v1 = req.clone();
        v1[2] = 0x13;
        assert_eq!(
            decode_request(&v1).unwrap_err().to_string(),
            "atomik message has wire format version 1; this call reads version 2 (protocol v2 sync messages)"
        );
        let mut corrupt = req.clone();
        corrupt[5] ^= 1;
        assert!(decode_request(&corrupt)
            .unwrap_err()
            .to_string()
            .contains("checksum mismatch"));
    }

    #[test]
    fn leaf_metadata_is_small() {
        // A leaf request with a cursor and one batch of one cell: the
        // metadata is two site ids, the cursor and the frame.
        let req = Request {
            site: site(1),
            relays: false,
            cursor: Some(Cursor {
                hub: site(9),
                position: 1_000_000,
            }),
            uploads: vec![],
        };
        assert!(encode_request(&req).len() <= 48);
    }
}
