//! Wire format version 2: golden files of every request and payload kind
//! (`core/fixtures/v2_*.bin`, read by every later version), round trips of
//! arbitrary messages, and mutated input that must never panic.

mod support;

use atomik_core::auth::DeviceKey;
use atomik_core::codec::v2::{
    decode_request, decode_request_tagged, decode_response, decode_response_tagged, encode_request,
    encode_request_with, encode_response, encode_response_with, Cursor, OutboxEntry, Payload,
    Request, Response,
};
use atomik_core::codec::MAX_COUNTER;
use atomik_core::{Batch, Changes};
use proptest::prelude::*;
use support::{batches_strategy, changes_strategy, site, vector_strategy};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

fn mixed() -> Changes {
    match &support::samples()[1].1 {
        atomik_core::Message::Batch(b) => b.changes.clone(),
        other => panic!("samples()[1] is {other:?}"),
    }
}

/// The fixed messages behind `core/fixtures/v2_*.bin`.
fn samples() -> Vec<(&'static str, Vec<u8>)> {
    let cursor = Some(Cursor {
        hub: site(9),
        position: 1234,
    });
    let leaf = Request {
        site: site(1),
        relays: false,
        cursor,
        uploads: (7..9)
            .map(|seq| OutboxEntry {
                position: seq,
                origin: site(1),
                seq,
                changes: mixed(),
            })
            .collect(),
    };
    let relay = Request {
        site: site(2),
        relays: true,
        cursor: None,
        uploads: vec![
            OutboxEntry {
                position: 40,
                origin: site(5),
                seq: 3,
                changes: mixed(),
            },
            OutboxEntry {
                position: 41,
                origin: site(2),
                seq: 11,
                changes: mixed(),
            },
        ],
    };
    let response = |payload| Response {
        to: site(1),
        from: site(9),
        base: cursor,
        position: 1300,
        ack: 8,
        payload,
    };
    vec![
        ("v2_request_leaf", encode_request(&leaf)),
        ("v2_request_relay", encode_request(&relay)),
        (
            "v2_response_range",
            encode_response(&response(Payload::Range(mixed()))),
        ),
        (
            "v2_response_entries",
            encode_response(&response(Payload::Entries(vec![Batch {
                origin: site(5),
                seq: 3,
                changes: mixed(),
            }]))),
        ),
        (
            "v2_response_snapshot",
            encode_response(&response(Payload::Snapshot(mixed()))),
        ),
        (
            "v2_response_relay_snapshot",
            encode_response(&response(Payload::RelaySnapshot {
                registry: [(site(5), 3), (site(9), 70)].into_iter().collect(),
                values: mixed(),
            })),
        ),
    ]
}

/// The bytes of every sample are pinned; `ATOMIK_BLESS=1` rewrites them.
#[test]
fn golden_files() {
    let bless = std::env::var_os("ATOMIK_BLESS").is_some();
    for (name, bytes) in samples() {
        let path = format!("{FIXTURES}/{name}.bin");
        if bless {
            std::fs::write(&path, &bytes).unwrap();
        }
        let golden = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (run once with ATOMIK_BLESS=1 to create)"));
        assert_eq!(
            bytes, golden,
            "{name} changed: a wire format change needs a new version"
        );
        if name.contains("request") {
            assert_eq!(encode_request(&decode_request(&golden).unwrap()), golden);
        } else {
            assert_eq!(encode_response(&decode_response(&golden).unwrap()), golden);
        }
    }
}

/// Version 1 fixtures are refused by the v2 decoders with an error naming
/// the version, and the other way round.
#[test]
fn versions_are_named() {
    for name in ["request_leaf", "response_coalesced", "batch_small"] {
        let v1 = std::fs::read(format!("{FIXTURES}/{name}.bin")).unwrap();
        for e in [
            decode_request(&v1).map(drop).unwrap_err(),
            decode_response(&v1).map(drop).unwrap_err(),
        ] {
            assert_eq!(
                e.to_string(),
                "atomik message has wire format version 1; this call reads version 2 (protocol v2 sync messages)"
            );
        }
    }
    for (_, v2) in samples() {
        assert_eq!(
            atomik_core::codec::decode(&v2).unwrap_err().to_string(),
            "atomik message has wire format version 2; this call reads version 1 (batches, vectors, v1 sync messages)"
        );
    }
}

/// Every single-byte change and every truncation of every sample, with
/// and without a repaired checksum, decodes or fails — never panics.
#[test]
fn mutations_never_panic() {
    for (_, bytes) in samples() {
        for i in 0..bytes.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut m = bytes.clone();
                m[i] ^= flip;
                let _ = (decode_request(&m), decode_response(&m));
                let n = m.len() - 4;
                let crc = crc32fast::hash(&m[..n]);
                m[n..].copy_from_slice(&crc.to_le_bytes());
                let _ = (decode_request(&m), decode_response(&m));
            }
            let _ = (decode_request(&bytes[..i]), decode_response(&bytes[..i]));
        }
    }
}

fn request_strategy() -> impl Strategy<Value = Request> {
    (
        0u8..6,
        any::<bool>(),
        proptest::option::of((0u8..6, 0..=MAX_COUNTER)),
        1u64..1_000_000,
        prop::collection::vec((0u8..4, 1u64..1000, changes_strategy()), 0..4),
    )
        .prop_map(|(s, relays, cursor, first, ups)| {
            let me = site(s);
            Request {
                site: me,
                relays,
                cursor: cursor.map(|(h, position)| Cursor {
                    hub: site(h),
                    position,
                }),
                uploads: ups
                    .into_iter()
                    .filter(|(_, _, c)| !c.is_empty())
                    .enumerate()
                    .map(|(i, (o, seq, changes))| OutboxEntry {
                        position: first + i as u64,
                        origin: if relays { site(o) } else { me },
                        seq: if relays { seq } else { first + i as u64 },
                        changes,
                    })
                    .collect(),
            }
        })
}

fn response_strategy() -> impl Strategy<Value = Response> {
    let payload = prop_oneof![
        changes_strategy().prop_map(Payload::Range),
        batches_strategy().prop_map(Payload::Entries),
        changes_strategy().prop_map(Payload::Snapshot),
        (vector_strategy(), changes_strategy())
            .prop_map(|(registry, values)| Payload::RelaySnapshot { registry, values }),
    ];
    (
        0u8..6,
        0u8..6,
        proptest::option::of((0u8..6, 0..=MAX_COUNTER)),
        0..=MAX_COUNTER,
        0..=MAX_COUNTER,
        payload,
    )
        .prop_map(|(to, from, base, position, ack, payload)| Response {
            to: site(to),
            from: site(from),
            base: base.map(|(h, position)| Cursor {
                hub: site(h),
                position,
            }),
            position,
            ack,
            payload,
        })
}

fn without_empty(mut r: Response) -> Response {
    if let Payload::Range(c) | Payload::Snapshot(c) = &mut r.payload {
        c.prune_empty();
    }
    if let Payload::RelaySnapshot { values, .. } = &mut r.payload {
        values.prune_empty();
    }
    if let Payload::Entries(bs) = &mut r.payload {
        for b in bs.iter_mut() {
            b.changes.prune_empty();
        }
    }
    r
}

proptest! {
    #[test]
    fn requests_round_trip(req in request_strategy()) {
        prop_assert_eq!(decode_request(&encode_request(&req)).unwrap(), req);
    }

    #[test]
    fn responses_round_trip(resp in response_strategy()) {
        let resp = without_empty(resp);
        prop_assert_eq!(decode_response(&encode_response(&resp)).unwrap(), resp);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = (decode_request(&bytes), decode_response(&bytes));
    }

    /// An authenticated message decodes to the same value, 12 bytes longer
    /// than the plain one; its tag verifies with its key only, and with no
    /// key at all once any one byte is changed (a changed byte that still
    /// decodes is caught by the tag).
    #[test]
    fn tagged_messages_round_trip_and_any_change_is_caught(
        req in request_strategy(),
        resp in response_strategy(),
        k in any::<[u8; 32]>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let key = DeviceKey::from_bytes(&k).unwrap();
        let other = DeviceKey::from_bytes(&k.map(|b| b ^ 0x5a)).unwrap();
        let resp = without_empty(resp);
        let tagged_req = encode_request_with(&req, Some(&key));
        prop_assert_eq!(tagged_req.len(), encode_request(&req).len() + 12);
        let (got, tag) = decode_request_tagged(&tagged_req).unwrap();
        prop_assert_eq!(&got, &req);
        let tag = tag.unwrap();
        prop_assert!(tag.verifies(&key) && !tag.verifies(&other));
        let tagged_resp = encode_response_with(&resp, Some(&key));
        let (got, tag) = decode_response_tagged(&tagged_resp).unwrap();
        prop_assert_eq!(&got, &resp);
        prop_assert!(tag.unwrap().verifies(&key));
        let mut changed = tagged_req.clone();
        let i = flip.index(changed.len());
        changed[i] ^= 1 << bit;
        let still_good = decode_request_tagged(&changed)
            .is_ok_and(|(_, tag)| tag.is_some_and(|t| t.verifies(&key)));
        prop_assert!(!still_good, "byte {} bit {} changed and still verifies", i, bit);
    }
}
