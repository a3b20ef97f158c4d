//! The wire codec: golden files, round trips, and hostile input.

mod support;

use atomik_core::codec::{decode, encode, Message, MessageKind};
use atomik_core::DecodeError;
use proptest::prelude::*;
use support::{message_strategy, samples, site};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");

/// Every message kind against its golden file, byte for byte. Every later
/// version must still read these files. `ATOMIK_BLESS=1` rewrites them —
/// only ever for a new file, never to change an existing one.
#[test]
fn golden_files() {
    let bless = std::env::var_os("ATOMIK_BLESS").is_some();
    for (name, msg) in samples() {
        let path = format!("{FIXTURES}/{name}.bin");
        let bytes = encode(&msg);
        if bless && !std::path::Path::new(&path).exists() {
            std::fs::write(&path, &bytes).unwrap();
        }
        let golden = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (run once with ATOMIK_BLESS=1 to create)"));
        assert_eq!(bytes, golden, "{name}: encoding changed");
        assert_eq!(decode(&golden).unwrap(), msg, "{name}: decoding changed");
    }
}

/// The smallest batch, spelled out byte by byte (see ARCHITECTURE.md).
#[test]
fn golden_bytes_spelled_out() {
    use atomik_core::{Batch, Changes, ColumnId, Group, Key, KeyShape};
    let mut ch = Changes::new();
    let col = ColumnId::new("t", "c", Group::Add);
    ch.add(&col, &KeyShape::int(), Key::int(5), (-1i64) as u64)
        .unwrap();
    ch.add(&col, &KeyShape::int(), Key::int(7), 2).unwrap();
    let origin = site(1);
    let bytes = encode(&Message::Batch(Batch {
        origin,
        seq: 3,
        changes: ch,
    }));
    let mut expected = vec![b'A', b'K', 0x11, 1];
    expected.extend_from_slice(origin.as_bytes());
    expected.extend_from_slice(&[
        1, // one column
        1,
        b't',
        1,
        b'c',        // table "t", column "c"
        0b0000_0001, // descriptor: add, 1 key part, integer
        3,           // seq 3 (the origin is the only site)
        2 << 2,      // column #0 (implicit): two cells, encoding 0 (zigzag)
        10,
        1, // key +5 (zigzag 10), delta -1 (zigzag 1)
        4,
        4, // key +2 (zigzag 4), delta +2 (zigzag 4)
    ]);
    let crc = crc32fast::hash(&expected);
    expected.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(bytes, expected);
}

#[test]
fn errors_say_what_is_wrong() {
    let good = encode(&samples()[0].1);
    let err = |b: &[u8]| decode(b).unwrap_err().to_string();
    assert_eq!(
        err(&[]),
        "atomik message is too short (0 bytes) to be a message"
    );
    assert_eq!(
        err(b"{\"json\": true}"),
        "not an atomik message (bad magic bytes [7b, 22])"
    );
    let mut v2 = good.clone();
    v2[2] = 0x21;
    assert_eq!(
        err(&v2),
        "atomik message has wire format version 2; this call reads version 1 (batches, vectors, v1 sync messages)"
    );
    let mut kind = good.clone();
    kind[2] = 0x19;
    assert_eq!(err(&kind), "atomik message has unknown kind 9");
    let mut flipped = good.clone();
    flipped[10] ^= 0x40;
    assert!(
        err(&flipped).starts_with("atomik message checksum mismatch"),
        "{}",
        err(&flipped)
    );
    let truncated = &good[..good.len() - 3];
    assert!(err(truncated).starts_with("atomik message checksum mismatch"));
    let wrong = Message::decode_kind(&good, MessageKind::Request).unwrap_err();
    assert_eq!(
        wrong.to_string(),
        "expected an atomik sync request message, got a batch message"
    );
}

/// Re-seal a body with a correct checksum, so that mutations reach the
/// structural checks behind the checksum.
fn reseal(mut body: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

#[test]
fn structural_errors_behind_a_valid_checksum() {
    let good = encode(&samples()[0].1);
    let body = good[..good.len() - 4].to_vec();
    let mut trailing = body.clone();
    trailing.push(0);
    assert_eq!(
        decode(&reseal(trailing)).unwrap_err(),
        DecodeError::TrailingBytes(1)
    );
    let cut = body[..body.len() - 1].to_vec();
    assert_eq!(
        decode(&reseal(cut)).unwrap_err().to_string(),
        "atomik message is truncated: cell delta runs past the end"
    );
    // A count claiming more items than bytes remain is refused before any
    // allocation.
    let mut huge = body[..3].to_vec();
    huge.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
    let e = decode(&reseal(huge)).unwrap_err().to_string();
    assert!(e.contains("site dictionary says 4294967295 items"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(msg in message_strategy()) {
        let bytes = encode(&msg);
        prop_assert_eq!(decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
        let _ = decode(&reseal(bytes));
    }

    /// Mutate a valid message (flip, insert, delete, truncate), fix the
    /// checksum so the structure is what gets tested: decoding never panics,
    /// and whatever it accepts re-encodes to something that decodes equal.
    #[test]
    fn mutated_messages_never_panic(
        msg in message_strategy(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..6),
    ) {
        let good = encode(&msg);
        let mut body = good[..good.len() - 4].to_vec();
        for (at, byte, op) in edits {
            if body.is_empty() { break; }
            let i = at.index(body.len());
            match op {
                0 => body[i] ^= byte | 1,
                1 => body.insert(i, byte),
                2 => { body.remove(i); }
                _ => body.truncate(i),
            }
        }
        let sealed = reseal(body);
        prop_assert!(decode(&sealed[..sealed.len() - 1]).is_err());
        if let Ok(m) = decode(&sealed) {
            prop_assert_eq!(decode(&encode(&m)).unwrap(), m);
        }
    }
}
