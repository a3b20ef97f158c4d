//! Shared builders for the codec tests: proptest strategies for every
//! message kind, and the fixed sample messages behind the golden files.
#![allow(dead_code)]

use atomik_core::codec::{Batch, Message, Payload, SyncRequest, SyncResponse, VectorMessage};
use atomik_core::{
    Changes, ColumnId, Group, Key, KeyKind, KeyPart, KeyShape, SiteId, VersionVector,
};
use proptest::prelude::*;

pub fn site(b: u8) -> SiteId {
    let mut s = [0u8; 16];
    for (i, x) in s.iter_mut().enumerate() {
        *x = b.wrapping_mul(17).wrapping_add(i as u8);
    }
    SiteId(s)
}

fn shape_strategy() -> impl Strategy<Value = KeyShape> {
    prop_oneof![
        3 => Just(KeyShape::int()),
        1 => Just(KeyShape::text()),
        1 => prop::collection::vec(prop_oneof![Just(KeyKind::Int), Just(KeyKind::Text)], 1..4)
            .prop_map(|k| KeyShape::new(k).unwrap()),
    ]
}

fn key_for(shape: &KeyShape) -> BoxedStrategy<Key> {
    let parts: Vec<BoxedStrategy<KeyPart>> = shape
        .kinds()
        .iter()
        .map(|k| match k {
            KeyKind::Int => prop_oneof![any::<i64>(), -50i64..50]
                .prop_map(KeyPart::Int)
                .boxed(),
            KeyKind::Text => "[a-z\\u{e9}\\u{4e2d}]{0,6}".prop_map(KeyPart::Text).boxed(),
        })
        .collect();
    parts.prop_map(Key).boxed()
}

pub fn changes_strategy() -> impl Strategy<Value = Changes> {
    prop::collection::vec(
        (
            prop_oneof![Just("t"), Just("inventory"), Just("flags")],
            prop_oneof![Just("c"), Just("qty")],
            prop_oneof![Just(Group::Add), Just(Group::Xor)],
            shape_strategy(),
        ),
        0..4,
    )
    .prop_flat_map(|cols| {
        let blocks: Vec<_> = cols
            .into_iter()
            .map(|(t, c, g, shape)| {
                let keys = prop::collection::vec(
                    (
                        key_for(&shape),
                        prop_oneof![any::<u64>(), 0u64..300, Just(u64::MAX)],
                    ),
                    1..6,
                );
                (Just(ColumnId::new(t, c, g)), Just(shape), keys)
            })
            .collect();
        blocks
    })
    .prop_map(|blocks| {
        let mut ch = Changes::new();
        for (id, shape, cells) in blocks {
            if ch.column(&id).is_some() {
                continue;
            }
            for (k, d) in cells {
                ch.add(&id, &shape, k, d).unwrap();
            }
        }
        ch
    })
}

pub fn vector_strategy() -> impl Strategy<Value = VersionVector> {
    prop::collection::vec((0u8..6, 1u64..=atomik_core::codec::MAX_COUNTER), 0..5)
        .prop_map(|e| e.into_iter().map(|(s, n)| (site(s), n)).collect())
}

pub fn batches_strategy() -> impl Strategy<Value = Vec<Batch>> {
    prop::collection::vec((0u8..4, 1u64..1000, changes_strategy()), 0..4).prop_map(|bs| {
        let mut out: Vec<Batch> = Vec::new();
        for (s, seq, changes) in bs {
            let origin = site(s);
            // Batches carry at least one cell: the decoder refuses empty ones.
            if changes.is_empty() || out.iter().any(|b| b.origin == origin && b.seq == seq) {
                continue;
            }
            out.push(Batch {
                origin,
                seq,
                changes,
            });
        }
        out.sort_by_key(|b| (b.origin, b.seq));
        out
    })
}

pub fn message_strategy() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            0u8..6,
            1u64..=atomik_core::codec::MAX_COUNTER,
            changes_strategy()
        )
            .prop_map(|(s, seq, changes)| Message::Batch(Batch {
                origin: site(s),
                seq,
                changes
            })),
        (0u8..6, vector_strategy()).prop_map(|(s, vector)| Message::Vector(VectorMessage {
            site: site(s),
            vector
        })),
        (0u8..6, any::<bool>(), vector_strategy(), batches_strategy()).prop_map(
            |(s, relays, vector, batches)| Message::Request(SyncRequest {
                site: site(s),
                relays,
                vector,
                batches
            })
        ),
        (
            0u8..6,
            0u8..6,
            vector_strategy(),
            vector_strategy(),
            vector_strategy(),
            prop_oneof![
                changes_strategy().prop_map(Payload::Coalesced),
                changes_strategy().prop_map(Payload::Snapshot),
                batches_strategy().prop_map(Payload::Batches),
            ]
        )
            .prop_map(
                |(to, from, base, hub_vector, acked, payload)| Message::Response(SyncResponse {
                    to: site(to),
                    from: site(from),
                    base,
                    hub_vector,
                    acked,
                    payload
                })
            ),
    ]
}

/// The fixed messages behind `core/fixtures/*.bin`: every kind and payload,
/// integer, text and composite keys, both groups, both xor encodings.
pub fn samples() -> Vec<(&'static str, Message)> {
    let inv = ColumnId::new("inventory", "qty", Group::Add);
    let flags = ColumnId::new("devices", "flags", Group::Xor);
    let bins = ColumnId::new("bins", "count", Group::Add);
    let composite = KeyShape::new(vec![KeyKind::Text, KeyKind::Int]).unwrap();
    let mut small = Changes::new();
    small
        .add(&inv, &KeyShape::int(), Key::int(1), (-1i64) as u64)
        .unwrap();
    small.add(&inv, &KeyShape::int(), Key::int(2), 3).unwrap();
    small.add(&inv, &KeyShape::int(), Key::int(300), 0).unwrap();
    let mut mixed = small.clone();
    mixed
        .add(
            &flags,
            &KeyShape::text(),
            Key::text("pump-7"),
            0xDEAD_BEEF_0BAD_F00D,
        )
        .unwrap();
    mixed
        .add(&flags, &KeyShape::text(), Key::text("valve"), 0b101)
        .unwrap();
    mixed
        .add(
            &bins,
            &composite,
            Key(vec![KeyPart::Text("north".into()), KeyPart::Int(-7)]),
            42,
        )
        .unwrap();
    let mut fixed_xor = Changes::new();
    fixed_xor
        .add(&flags, &KeyShape::text(), Key::text("a"), u64::MAX)
        .unwrap();
    let v: VersionVector = [(site(1), 5), (site(2), 130)].into_iter().collect();
    vec![
        (
            "batch_small",
            Message::Batch(Batch {
                origin: site(1),
                seq: 1,
                changes: small.clone(),
            }),
        ),
        (
            "batch_mixed",
            Message::Batch(Batch {
                origin: site(2),
                seq: 200,
                changes: mixed.clone(),
            }),
        ),
        (
            "batch_xor_fixed",
            Message::Batch(Batch {
                origin: site(3),
                seq: 7,
                changes: fixed_xor,
            }),
        ),
        (
            "vector",
            Message::Vector(VectorMessage {
                site: site(1),
                vector: v.clone(),
            }),
        ),
        (
            "request_leaf",
            Message::Request(SyncRequest {
                site: site(1),
                relays: false,
                vector: v.clone(),
                batches: vec![
                    Batch {
                        origin: site(1),
                        seq: 4,
                        changes: small.clone(),
                    },
                    Batch {
                        origin: site(1),
                        seq: 5,
                        changes: mixed.clone(),
                    },
                ],
            }),
        ),
        (
            "response_coalesced",
            Message::Response(SyncResponse {
                to: site(1),
                from: site(9),
                base: v.clone(),
                hub_vector: [(site(1), 5), (site(9), 3)].into_iter().collect(),
                acked: [(site(1), 4), (site(9), 3)].into_iter().collect(),
                payload: Payload::Coalesced(mixed.clone()),
            }),
        ),
        (
            "response_batches",
            Message::Response(SyncResponse {
                to: site(8),
                from: site(9),
                base: VersionVector::new(),
                hub_vector: v.clone(),
                acked: v.clone(),
                payload: Payload::Batches(vec![
                    Batch {
                        origin: site(1),
                        seq: 1,
                        changes: small.clone(),
                    },
                    Batch {
                        origin: site(2),
                        seq: 1,
                        changes: mixed.clone(),
                    },
                    Batch {
                        origin: site(2),
                        seq: 2,
                        changes: small,
                    },
                ]),
            }),
        ),
        (
            "response_snapshot",
            Message::Response(SyncResponse {
                to: site(4),
                from: site(9),
                base: VersionVector::new(),
                hub_vector: v.clone(),
                acked: v,
                payload: Payload::Snapshot(mixed),
            }),
        ),
    ]
}
