//! What a message holds, as rows a person can read: `atomik_inspect(bytes)`
//! in both engines and `atomik inspect FILE`.
//!
//! One [`Row`] per cell a message carries, each with the message's header
//! (who sent it, to whom, which cursor) repeated; a message without cells
//! (a position, an empty range) is one row whose cell fields are empty.
//! The bytes are decoded by the same checked decoders as a sync, so a
//! malformed, oversized or unknown message is refused with the decoder's
//! error. A device-key tag is shown as such but not checked (inspection
//! holds no key).

use crate::changes::Changes;
use crate::codec::v2::{
    decode_request_tagged, decode_response_tagged, Payload, Request, Response, WIRE_V2,
};
use crate::codec::{decode, Batch, Message, MAGIC, WIRE_FORMAT_VERSION};
use crate::error::DecodeError;
use crate::site::SiteId;

/// One row of an inspected message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The message: `request`, `response (range)`, `response (entries)`,
    /// `response (snapshot)`, `response (relay snapshot)`, prefixed with
    /// `authenticated ` when it ends in a device-key tag; or `v1 batch`.
    pub kind: String,
    /// A request's sender, a response's recipient.
    pub site: Option<SiteId>,
    /// A request's cursor hub, a response's sender (the hub).
    pub hub: Option<SiteId>,
    /// A request's cursor position, a response's new position.
    pub position: Option<u64>,
    /// A response's base: the cursor position it applies on top of.
    pub base: Option<u64>,
    /// A response's acknowledgement (a leaf's highest seq the hub holds, a
    /// relay's last outbox position sent).
    pub ack: Option<u64>,
    /// The batch this cell belongs to (uploads, per-origin entries, a v1
    /// batch); none for coalesced ranges and snapshots. On a relay
    /// snapshot's registry rows: the origin and its highest seq included.
    pub origin: Option<SiteId>,
    /// The batch's seq at its origin.
    pub seq: Option<u64>,
    /// The cell's table.
    pub table: Option<String>,
    /// The cell's column.
    pub column: Option<String>,
    /// The column's group, `add` or `xor`.
    pub group: Option<String>,
    /// The cell's key, as atomik prints keys (`42`, `'a'`, `(1, 'a')`).
    pub key: Option<String>,
    /// The cell's delta (a snapshot's: its value), as a signed 64-bit word.
    pub delta: Option<i64>,
}

impl Row {
    fn header(kind: String) -> Row {
        Row {
            kind,
            site: None,
            hub: None,
            position: None,
            base: None,
            ack: None,
            origin: None,
            seq: None,
            table: None,
            column: None,
            group: None,
            key: None,
            delta: None,
        }
    }
}

/// The rows of `bytes`: a v2 sync request or response, or a v1 batch.
///
/// # Errors
/// The decoder's error for malformed input; a v1 message other than a
/// batch (protocol v1 is retired: its vectors, requests and responses are
/// refused, naming the kind).
pub fn inspect(bytes: &[u8]) -> Result<Vec<Row>, DecodeError> {
    let (version, kind) = match bytes {
        [a, b, tag, ..] if [*a, *b] == MAGIC => (tag >> 4, tag & 0x0f),
        // Too short or not atomik: the decoder says which.
        _ => return decode_request_tagged(bytes).map(|_| Vec::new()),
    };
    if version == WIRE_FORMAT_VERSION {
        return match decode(bytes)? {
            Message::Batch(b) => Ok(batch_rows(&Row::header("v1 batch".into()), &b)),
            other => Err(DecodeError::Malformed(format!(
                "a v1 {} message: protocol v1 is retired; inspect reads v2 sync messages and v1 batches",
                other.kind().name()
            ))),
        };
    }
    if version != WIRE_V2 {
        // The decoder names the version it does not read.
        return decode_request_tagged(bytes).map(|_| Vec::new());
    }
    // Kinds 1 and 3 are requests (3 authenticated), 2 and 4 responses.
    if kind % 2 == 1 {
        let (req, tag) = decode_request_tagged(bytes)?;
        Ok(request_rows(&req, tag.is_some()))
    } else {
        let (resp, tag) = decode_response_tagged(bytes)?;
        Ok(response_rows(&resp, tag.is_some()))
    }
}

fn authenticated(kind: &str, tagged: bool) -> String {
    if tagged {
        format!("authenticated {kind}")
    } else {
        kind.to_string()
    }
}

fn request_rows(req: &Request, tagged: bool) -> Vec<Row> {
    let header = Row {
        site: Some(req.site),
        hub: req.cursor.map(|c| c.hub),
        position: req.cursor.map(|c| c.position),
        ..Row::header(authenticated("request", tagged))
    };
    let mut rows = Vec::new();
    for u in &req.uploads {
        rows.extend(batch_rows(
            &header,
            &Batch {
                origin: u.origin,
                seq: u.seq,
                changes: u.changes.clone(),
            },
        ));
    }
    if rows.is_empty() {
        rows.push(header);
    }
    rows
}

fn response_rows(resp: &Response, tagged: bool) -> Vec<Row> {
    let header = Row {
        site: Some(resp.to),
        hub: Some(resp.from),
        position: Some(resp.position),
        base: resp.base.map(|c| c.position),
        ack: Some(resp.ack),
        ..Row::header(authenticated(
            &format!("response ({})", resp.payload.name()),
            tagged,
        ))
    };
    let mut rows = Vec::new();
    match &resp.payload {
        Payload::Range(c) | Payload::Snapshot(c) => rows.extend(cell_rows(&header, c)),
        Payload::Entries(batches) => {
            for b in batches {
                rows.extend(batch_rows(&header, b));
            }
        }
        Payload::RelaySnapshot { registry, values } => {
            for (origin, seq) in registry.iter() {
                rows.push(Row {
                    origin: Some(origin),
                    seq: Some(seq),
                    ..header.clone()
                });
            }
            rows.extend(cell_rows(&header, values));
        }
    }
    if rows.is_empty() {
        rows.push(header);
    }
    rows
}

fn batch_rows(header: &Row, b: &Batch) -> Vec<Row> {
    let header = Row {
        origin: Some(b.origin),
        seq: Some(b.seq),
        ..header.clone()
    };
    cell_rows(&header, &b.changes)
}

fn cell_rows(header: &Row, changes: &Changes) -> Vec<Row> {
    let mut rows = Vec::new();
    for (id, block) in changes.columns() {
        for (key, delta) in &block.cells {
            rows.push(Row {
                table: Some(id.table.clone()),
                column: Some(id.column.clone()),
                group: Some(id.group.to_string()),
                key: Some(key.to_string()),
                delta: Some(*delta as i64),
                ..header.clone()
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::ColumnId;
    use crate::codec::encode;
    use crate::codec::v2::{encode_request, encode_response, Cursor, OutboxEntry};
    use crate::group::Group;
    use crate::key::{Key, KeyShape};

    fn site(b: u8) -> SiteId {
        SiteId([b; 16])
    }

    fn changes() -> Changes {
        let mut c = Changes::new();
        let col = ColumnId::new("inventory", "qty", Group::Add);
        c.add(&col, &KeyShape::int(), Key::int(7), (-2i64) as u64)
            .unwrap();
        c.add(&col, &KeyShape::int(), Key::int(9), 5).unwrap();
        c
    }

    #[test]
    fn a_request_is_one_row_per_uploaded_cell() {
        let req = Request {
            site: site(1),
            relays: false,
            cursor: Some(Cursor {
                hub: site(9),
                position: 40,
            }),
            uploads: vec![OutboxEntry {
                position: 3,
                origin: site(1),
                seq: 3,
                changes: changes(),
            }],
        };
        let rows = inspect(&encode_request(&req)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].kind, "request");
        assert_eq!(
            (rows[0].site, rows[0].hub, rows[0].position),
            (Some(site(1)), Some(site(9)), Some(40))
        );
        assert_eq!((rows[0].origin, rows[0].seq), (Some(site(1)), Some(3)));
        assert_eq!(
            (
                rows[0].table.as_deref(),
                rows[0].column.as_deref(),
                rows[0].group.as_deref(),
                rows[0].key.as_deref(),
                rows[0].delta
            ),
            (
                Some("inventory"),
                Some("qty"),
                Some("add"),
                Some("7"),
                Some(-2)
            )
        );
        assert_eq!(
            (rows[1].key.as_deref(), rows[1].delta),
            (Some("9"), Some(5))
        );
        // A position (no uploads) is one row without a cell.
        let position = inspect(&encode_request(&Request {
            uploads: vec![],
            ..req
        }))
        .unwrap();
        assert_eq!(position.len(), 1);
        assert_eq!(
            (position[0].position, position[0].key.clone()),
            (Some(40), None)
        );
    }

    #[test]
    fn a_response_names_its_payload_and_cursor() {
        let resp = Response {
            to: site(1),
            from: site(9),
            base: Some(Cursor {
                hub: site(9),
                position: 40,
            }),
            position: 44,
            ack: 3,
            payload: Payload::Range(changes()),
        };
        let rows = inspect(&encode_response(&resp)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].kind, "response (range)");
        assert_eq!(
            (rows[0].base, rows[0].position, rows[0].ack, rows[0].origin),
            (Some(40), Some(44), Some(3), None)
        );
        let empty = inspect(&encode_response(&Response {
            payload: Payload::Range(Changes::new()),
            ..resp
        }))
        .unwrap();
        assert_eq!(empty.len(), 1);
    }

    #[test]
    fn v1_batches_are_read_and_other_v1_messages_refused() {
        let batch = encode(&Message::Batch(Batch {
            origin: site(4),
            seq: 2,
            changes: changes(),
        }));
        let rows = inspect(&batch).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].kind.as_str(), rows[0].seq), ("v1 batch", Some(2)));
        let vector = encode(&Message::Vector(crate::codec::VectorMessage {
            site: site(4),
            vector: Default::default(),
        }));
        assert_eq!(
            inspect(&vector).unwrap_err().to_string(),
            "atomik message is malformed: a v1 vector message: protocol v1 is retired; inspect reads v2 sync messages and v1 batches"
        );
    }

    #[test]
    fn malformed_input_gets_the_decoders_error() {
        assert!(inspect(b"hello")
            .unwrap_err()
            .to_string()
            .contains("not an atomik message"));
        assert!(inspect(b"").is_err());
        let mut corrupt = encode_request(&Request {
            site: site(1),
            relays: false,
            cursor: None,
            uploads: vec![],
        });
        corrupt[4] ^= 1;
        assert!(inspect(&corrupt)
            .unwrap_err()
            .to_string()
            .contains("checksum mismatch"));
        let mut future = corrupt.clone();
        future[2] = 0x31;
        assert!(inspect(&future)
            .unwrap_err()
            .to_string()
            .contains("version 3"));
    }
}
