//! Bounded decoding: the peak heap allocation of every decoder stays within
//! a constant multiple of its input, for adversarial inputs crafted to
//! maximise that ratio (many tiny cells, columns and batches, long names
//! referred to many times, huge declared counts with short bodies) at
//! several sizes; the kind is judged before the body; degenerate elements
//! (empty batches, empty column blocks) are refused.
//!
//! The peak is measured by a counting global allocator that tracks, per
//! thread, the bytes live and the most ever live since the measurement
//! began, so tests running in parallel do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use atomik_core::codec::v2::{
    decode_request, decode_response, encode_request, encode_response, Cursor, OutboxEntry, Payload,
    Request, Response, WIRE_V2,
};
use atomik_core::codec::{
    decode, encode, Batch, Message, MessageKind, Payload as PayloadV1, SyncRequest, SyncResponse,
    MAGIC, MAX_DECODE_EXPANSION, WIRE_FORMAT_VERSION,
};
use atomik_core::{Changes, ColumnId, DecodeError, Group, Key, KeyKind, KeyPart, KeyShape, SiteId};

// ---------------------------------------------------------------------------
// The counting allocator

struct Counting;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn grow(n: usize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let live = LIVE.get() + n as isize;
            LIVE.set(live);
            if live > PEAK.get() {
                PEAK.set(live);
            }
        }
    });
}

fn shrink(n: usize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            LIVE.set(LIVE.get() - n as isize);
        }
    });
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are
// const-initialised thread-locals without destructors, so touching them
// never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grow(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Count the moment both blocks may exist.
        grow(new_size);
        shrink(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most bytes live at once while `f` ran (including what it returned,
/// which is dropped only after the measurement).
fn peak_of<T>(f: impl FnOnce() -> T) -> usize {
    LIVE.set(0);
    PEAK.set(0);
    TRACKING.set(true);
    let out = f();
    TRACKING.set(false);
    drop(out);
    PEAK.get().max(0) as usize
}

/// The bound for input that does not hold what it declares.
const JUNK_BOUND: f64 = 8.0;

#[derive(Clone, Copy, Debug)]
enum Decoder {
    V1,
    V1Request,
    V2Request,
    V2Response,
}

impl Decoder {
    fn run(self, bytes: &[u8]) -> Result<(), DecodeError> {
        match self {
            Decoder::V1 => decode(bytes).map(drop),
            Decoder::V1Request => Message::decode_kind(bytes, MessageKind::Request).map(drop),
            Decoder::V2Request => decode_request(bytes).map(drop),
            Decoder::V2Response => decode_response(bytes).map(drop),
        }
    }
}

struct Outcome {
    name: String,
    decoder: Decoder,
    len: usize,
    peak: usize,
    accepted: bool,
}

impl Outcome {
    fn ratio(&self) -> f64 {
        self.peak as f64 / self.len as f64
    }
}

fn measure(name: impl Into<String>, decoder: Decoder, bytes: &[u8]) -> Outcome {
    let mut accepted = false;
    let peak = peak_of(|| {
        accepted = decoder.run(bytes).is_ok();
    });
    Outcome {
        name: name.into(),
        decoder,
        len: bytes.len(),
        peak,
        accepted,
    }
}

// ---------------------------------------------------------------------------
// Raw message builder, for shapes no encoder writes

#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn start(version: u8, kind: u8) -> W {
        let mut w = W(MAGIC.to_vec());
        w.0.push((version << 4) | kind);
        w
    }
    fn v(&mut self, mut v: u64) -> &mut Self {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }
    fn b(&mut self, b: u8) -> &mut Self {
        self.0.push(b);
        self
    }
    fn s(&mut self, s: &str) -> &mut Self {
        self.v(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn sites(&mut self, n: usize) -> &mut Self {
        self.v(n as u64);
        for i in 0..n {
            self.0.extend_from_slice(&site(i).0);
        }
        self
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn seal(mut self) -> Vec<u8> {
        let crc = crc32fast_hash(&self.0);
        self.0.extend_from_slice(&crc.to_le_bytes());
        self.0
    }
}

/// CRC-32 (IEEE), bitwise: the test needs no extra dependency for it.
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn site(i: usize) -> SiteId {
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&(i as u64).to_be_bytes());
    s[15] = 1;
    SiteId(s)
}

/// `n` distinct names that sort in the order generated, `width` letters.
fn name(i: usize, width: usize) -> String {
    let mut out = vec![b'a'; width];
    let mut x = i;
    for c in out.iter_mut().rev() {
        *c = b'a' + (x % 26) as u8;
        x /= 26;
    }
    String::from_utf8(out).unwrap()
}

fn dense(n: usize) -> Changes {
    let mut c = Changes::new();
    let col = ColumnId::new("t", "c", Group::Add);
    for k in 0..n {
        c.add(&col, &KeyShape::int(), Key::int(k as i64 + 1), 0)
            .unwrap();
    }
    c
}

fn one_cell(col: &ColumnId) -> Changes {
    let mut c = Changes::new();
    c.add(col, &KeyShape::int(), Key::int(1), 0).unwrap();
    c
}

fn many_columns(n: usize, width: usize) -> Changes {
    let mut c = Changes::new();
    for i in 0..n {
        let col = ColumnId::new("t", name(i, width), Group::Add);
        c.add(&col, &KeyShape::int(), Key::int(0), 0).unwrap();
    }
    c
}

fn wide_keys(n: usize, parts: usize, kind: KeyKind) -> Changes {
    let shape = KeyShape::new(vec![kind; parts]).unwrap();
    let col = ColumnId::new("t", "c", Group::Add);
    let mut c = Changes::new();
    for k in 0..n {
        let part = |j: usize| match kind {
            KeyKind::Int => KeyPart::Int(if j + 1 == parts { k as i64 } else { 0 }),
            KeyKind::Text => KeyPart::Text(if j + 1 == parts {
                name(k, 4)
            } else {
                String::new()
            }),
        };
        let key = Key((0..parts).map(part).collect());
        c.add(&col, &shape, key, 0).unwrap();
    }
    c
}

fn tiny_batches(n: usize, col: &ColumnId) -> Vec<Batch> {
    (0..n)
        .map(|i| Batch {
            origin: site(0),
            seq: i as u64 + 1,
            changes: one_cell(col),
        })
        .collect()
}

fn v1_response(payload: PayloadV1) -> Vec<u8> {
    encode(&Message::Response(SyncResponse {
        to: site(0),
        from: site(1),
        base: Default::default(),
        hub_vector: Default::default(),
        acked: Default::default(),
        payload,
    }))
}

fn v2_response(payload: Payload) -> Vec<u8> {
    encode_response(&Response {
        to: site(0),
        from: site(1),
        base: Some(Cursor {
            hub: site(1),
            position: 3,
        }),
        position: 9,
        ack: 0,
        payload,
    })
}

fn leaf_request(uploads: Vec<Changes>) -> Vec<u8> {
    encode_request(&Request {
        site: site(0),
        relays: false,
        cursor: None,
        uploads: uploads
            .into_iter()
            .enumerate()
            .map(|(i, changes)| OutboxEntry {
                position: i as u64 + 1,
                origin: site(0),
                seq: i as u64 + 1,
                changes,
            })
            .collect(),
    })
}

fn relay_request(uploads: Vec<Changes>) -> Vec<u8> {
    encode_request(&Request {
        site: site(0),
        relays: true,
        cursor: None,
        uploads: uploads
            .into_iter()
            .enumerate()
            .map(|(i, changes)| OutboxEntry {
                position: i as u64 + 1,
                origin: site(i % 2),
                seq: i as u64 / 2 + 1,
                changes,
            })
            .collect(),
    })
}

/// Every adversarial input, sized to about `size` bytes.
fn cases(size: usize) -> Vec<(String, Decoder, Vec<u8>)> {
    use Decoder::*;
    let cells = size / 2;
    let col = ColumnId::new("t", "c", Group::Add);
    let mut out: Vec<(String, Decoder, Vec<u8>)> = Vec::new();
    let mut add = |name: &str, d: Decoder, bytes: Vec<u8>| out.push((name.to_string(), d, bytes));

    // Many tiny cells (2 bytes each) in one block.
    add(
        "v1 batch, dense cells",
        V1,
        encode(&Message::Batch(Batch {
            origin: site(0),
            seq: 1,
            changes: dense(cells),
        })),
    );
    add(
        "v1 snapshot, dense cells",
        V1,
        v1_response(PayloadV1::Snapshot(dense(cells))),
    );
    add(
        "v2 range, dense cells",
        V2Response,
        v2_response(Payload::Range(dense(cells))),
    );
    add(
        "v2 leaf upload, dense cells",
        V2Request,
        leaf_request(vec![dense(cells)]),
    );
    // Wide keys: 8 parts of one byte each.
    add(
        "v2 snapshot, 8-int-part keys",
        V2Response,
        v2_response(Payload::Snapshot(wide_keys(size / 10, 8, KeyKind::Int))),
    );
    add(
        "v2 snapshot, 8-text-part keys",
        V2Response,
        v2_response(Payload::Snapshot(wide_keys(size / 14, 8, KeyKind::Text))),
    );
    add(
        "v2 snapshot, short text keys",
        V2Response,
        v2_response(Payload::Snapshot(wide_keys(size / 7, 1, KeyKind::Text))),
    );
    // Many tiny columns, each one cell.
    add(
        "v1 batch, many columns",
        V1,
        encode(&Message::Batch(Batch {
            origin: site(0),
            seq: 1,
            changes: many_columns(size / 11, 4),
        })),
    );
    add(
        "v2 snapshot, many columns",
        V2Response,
        v2_response(Payload::Snapshot(many_columns(size / 11, 4))),
    );
    // Many minimal batches.
    add(
        "v1 request, many tiny batches",
        V1Request,
        encode(&Message::Request(SyncRequest {
            site: site(0),
            relays: true,
            vector: Default::default(),
            batches: tiny_batches(size / 5, &col),
        })),
    );
    add(
        "v1 response, many tiny batches",
        V1,
        v1_response(PayloadV1::Batches(tiny_batches(size / 5, &col))),
    );
    add(
        "v2 entries, many tiny batches",
        V2Response,
        v2_response(Payload::Entries(tiny_batches(size / 5, &col))),
    );
    add(
        "v2 leaf request, many tiny uploads",
        V2Request,
        leaf_request(vec![one_cell(&col); size / 5]),
    );
    add(
        "v2 relay request, many tiny uploads",
        V2Request,
        relay_request(vec![one_cell(&col); size / 7]),
    );
    // A long name, referred to by many batches (5 bytes each).
    let name_len = size / 2;
    let refs = (size - name_len) / 5;
    let mut w = W::start(WIRE_V2, 1);
    w.sites(1).v(1).s(&"x".repeat(name_len)).s("c").v(1);
    w.v(0).b(0).v(refs as u64).v(1);
    for _ in 0..refs {
        w.v(1).v(0).v(1 << 2).v(2).v(0);
    }
    add(
        "v2 leaf request, long name x many uploads",
        V2Request,
        w.seal(),
    );
    let mut w = W::start(WIRE_V2, 2);
    w.sites(2).v(1).s(&"x".repeat(name_len)).s("c").v(1);
    w.v(0)
        .v(1)
        .b(0)
        .v(1)
        .v(0)
        .b(1)
        .v(1)
        .v(0)
        .v(1)
        .v(refs as u64);
    for _ in 0..refs {
        w.v(1).v(0).v(1 << 2).v(2).v(0);
    }
    add("v2 entries, long name x many batches", V2Response, w.seal());
    let mut w = W::start(WIRE_FORMAT_VERSION, 3);
    w.sites(1).v(1).s(&"x".repeat(name_len)).s("c").v(1);
    w.v(0).b(1).v(0).v(1).v(0).v(1).v(refs as u64);
    for _ in 0..refs {
        w.v(1).v(0).v(1 << 2).v(2).v(0);
    }
    add("v1 request, long name x many batches", V1, w.seal());
    // Vectors naming many sites.
    let sites = size / 24;
    let vector: atomik_core::VersionVector = (0..sites).map(|i| (site(i), 1)).collect();
    add(
        "v1 response, three long vectors",
        V1,
        encode(&Message::Response(SyncResponse {
            to: site(0),
            from: site(1),
            base: vector.clone(),
            hub_vector: vector.clone(),
            acked: vector.clone(),
            payload: PayloadV1::Coalesced(Changes::new()),
        })),
    );
    add(
        "v2 relay snapshot, long registry",
        V2Response,
        v2_response(Payload::RelaySnapshot {
            registry: vector,
            values: one_cell(&col),
        }),
    );

    // Raw shapes no encoder writes.
    // Empty batches: one byte each (refused).
    let mut w = W::start(WIRE_FORMAT_VERSION, 3);
    w.sites(1).v(0).v(0).b(0).v(0).v(1).v(0).v(1);
    let n = size.saturating_sub(w.len() + 8);
    w.v(n as u64);
    w.0.resize(w.0.len() + n, 0);
    add("v1 request, empty batches", V1, w.seal());
    let mut w = W::start(WIRE_V2, 2);
    w.sites(2).v(0).v(0).v(1).b(0).v(1).v(0).b(1);
    w.v(1).v(0).v(1);
    let n = size.saturating_sub(w.len() + 8);
    w.v(n as u64);
    w.0.resize(w.0.len() + n, 0);
    add("v2 entries, empty batches", V2Response, w.seal());
    // Unused dictionary columns with one-byte names.
    let mut w = W::start(WIRE_V2, 1);
    w.sites(1);
    let n = size / 8;
    w.v(n as u64);
    for i in 0..n {
        w.s("t").s(&name(i, 4)).v(1);
    }
    w.v(0).b(0).v(0);
    add("v2 request, unused dictionary", V2Request, w.seal());
    // Huge declared counts with short bodies.
    let body = size.saturating_sub(16);
    let mut w = W::start(WIRE_V2, 1);
    w.sites(1).v(0).v(0).b(0).v(body as u64 / 2).v(1);
    w.0.resize(w.0.len() + body, 0);
    add("v2 request, upload count then zeros", V2Request, w.seal());
    let mut w = W::start(WIRE_V2, 1);
    w.sites(1).v((body / 3) as u64);
    w.0.resize(w.0.len() + body, 1);
    add("v2 request, column count then junk", V2Request, w.seal());
    let mut w = W::start(WIRE_FORMAT_VERSION, 1);
    w.sites(1).v(1).s("t").s("c").v(1).v(1);
    w.v(((body / 2) as u64) << 2);
    for k in 0..body / 2 - 1 {
        w.v(2).v(k as u64 & 0x3F);
    }
    w.b(0x80).b(0x80);
    add("v1 batch, cell count, cut short", V1, w.seal());
    let mut w = W::start(WIRE_FORMAT_VERSION, 3);
    w.sites(1)
        .v(1)
        .s("t")
        .s("c")
        .v(1)
        .v(0)
        .b(0)
        .v(0)
        .v(1)
        .v(0)
        .v(1);
    w.v((body / 2) as u64);
    w.0.resize(w.0.len() + body, 0);
    add("v1 request, batch count then zeros", V1, w.seal());
    out
}

/// Inputs whose bodies do not hold what their counts declare, or hold only
/// degenerate elements: refused before they allocate, within 8x.
const JUNK: [&str; 5] = [
    "v1 request, empty batches",
    "v2 entries, empty batches",
    "v2 request, upload count then zeros",
    "v2 request, column count then junk",
    "v1 request, batch count then zeros",
];

/// What legitimately-shaped input may amplify to, given the decoded types
/// (`ARCHITECTURE.md`, "Bounded decoding").
const TYPES_BOUND: f64 = MAX_DECODE_EXPANSION as f64;

#[test]
fn peak_allocation_is_bounded_by_the_input() {
    let sizes: Vec<usize> = match std::env::var("ATOMIK_ALLOC_SIZES") {
        Ok(s) => s.split(',').map(|x| x.trim().parse().unwrap()).collect(),
        Err(_) => vec![4 << 10, 64 << 10, 512 << 10, 3 << 20],
    };
    let mut worst: Vec<Outcome> = Vec::new();
    let mut over: Vec<String> = Vec::new();
    for size in sizes {
        for (name, decoder, bytes) in cases(size) {
            let o = measure(name, decoder, &bytes);
            let bound = if JUNK.contains(&o.name.as_str()) {
                assert!(!o.accepted, "{} was accepted", o.name);
                JUNK_BOUND
            } else {
                TYPES_BOUND
            };
            if o.ratio() > bound {
                over.push(format!(
                    "{} ({:?}, {} B, {}): peak {} B = {:.1}x > {bound}x",
                    o.name,
                    o.decoder,
                    o.len,
                    if o.accepted { "accepted" } else { "refused" },
                    o.peak,
                    o.ratio()
                ));
            }
            match worst.iter_mut().find(|w| w.name == o.name) {
                Some(w) if w.ratio() >= o.ratio() => {}
                Some(w) => *w = o,
                None => worst.push(o),
            }
        }
    }
    worst.sort_by(|a, b| b.ratio().total_cmp(&a.ratio()));
    println!("worst peak allocation / input, per case (sizes 4 kB .. 3 MB):");
    for o in &worst {
        println!(
            "  {:>7.2}x  {:<44} {:?}, {} B, {}",
            o.ratio(),
            o.name,
            o.decoder,
            o.len,
            if o.accepted { "accepted" } else { "refused" }
        );
    }
    for d in [
        Decoder::V1,
        Decoder::V1Request,
        Decoder::V2Request,
        Decoder::V2Response,
    ] {
        let w = worst
            .iter()
            .filter(|o| o.decoder as u8 == d as u8)
            .map(Outcome::ratio)
            .fold(0.0, f64::max);
        println!("worst ratio of {d:?}: {w:.2}x");
    }
    assert!(
        over.is_empty(),
        "peak allocation too high:\n{}",
        over.join("\n")
    );
}

/// The golden files decode as before, and what they cost.
#[test]
fn golden_files_decode_within_the_bound() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    for path in names {
        let bytes = std::fs::read(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let decoder = if file.starts_with("v2_request") {
            Decoder::V2Request
        } else if file.starts_with("v2_response") {
            Decoder::V2Response
        } else {
            Decoder::V1
        };
        let o = measure(file.clone(), decoder, &bytes);
        assert!(o.accepted, "{file} no longer decodes");
        println!("  {:>7.2}x  {file} ({} B)", o.ratio(), o.len);
        assert!(o.ratio() <= TYPES_BOUND, "{file}: {:.1}x", o.ratio());
    }
}

#[test]
fn kind_is_judged_before_the_body() {
    let col = ColumnId::new("t", "c", Group::Add);
    // A v2 response given to decode_request, its body and checksum broken.
    let mut resp = v2_response(Payload::Range(dense(50)));
    let n = resp.len();
    for b in &mut resp[3..n] {
        *b ^= 0x5A;
    }
    assert_eq!(
        decode_request(&resp).unwrap_err(),
        DecodeError::WrongKind {
            expected: "v2 sync request",
            found: "v2 sync response"
        }
    );
    let mut req = leaf_request(vec![one_cell(&col)]);
    let n = req.len();
    req[n - 1] ^= 1;
    req[6] ^= 0xFF;
    assert_eq!(
        decode_response(&req).unwrap_err(),
        DecodeError::WrongKind {
            expected: "v2 sync response",
            found: "v2 sync request"
        }
    );
    // Version 1: decode_kind judges the tag before the body too.
    let mut batch = encode(&Message::Batch(Batch {
        origin: site(0),
        seq: 1,
        changes: dense(50),
    }));
    let n = batch.len();
    for b in &mut batch[3..n] {
        *b = 0xFF;
    }
    assert_eq!(
        Message::decode_kind(&batch, MessageKind::Request).unwrap_err(),
        DecodeError::WrongKind {
            expected: "sync request",
            found: "batch"
        }
    );
    // And costs nothing to refuse.
    assert_eq!(
        peak_of(|| Message::decode_kind(&batch, MessageKind::Request).is_err()),
        0
    );
    assert_eq!(peak_of(|| decode_request(&resp).is_err()), 0);
    // The right kind with a broken body is a checksum error.
    assert!(matches!(
        Message::decode_kind(&batch, MessageKind::Batch).unwrap_err(),
        DecodeError::Checksum { .. }
    ));
}

#[test]
fn empty_batches_and_blocks_are_refused() {
    let malformed = |e: DecodeError| match e {
        DecodeError::Malformed(m) => m,
        other => panic!("expected Malformed, got {other:?}"),
    };
    // v1 request: a run of two batches, the first with no column blocks
    // (the second long enough for the count to fit).
    let mut w = W::start(WIRE_FORMAT_VERSION, 3);
    w.sites(1).v(1).s("t").s("c").v(1);
    w.v(0).b(0).v(0).v(1).v(0).v(1).v(2);
    w.v(0).v(1).v(0).v(3 << 2).v(2).v(0).v(2).v(0).v(2).v(0);
    let e = malformed(decode(&w.seal()).unwrap_err());
    assert!(
        e.starts_with("batch 1 of site ")
            && e.ends_with(" is empty (a batch carries at least one cell)"),
        "{e}"
    );
    // v2 entries: the same batches.
    let mut w = W::start(WIRE_V2, 2);
    w.sites(2).v(1).s("t").s("c").v(1);
    w.v(0).v(1).b(0).v(1).v(0).b(1).v(1).v(0).v(1).v(2);
    w.v(0).v(1).v(0).v(3 << 2).v(2).v(0).v(2).v(0).v(2).v(0);
    let e = malformed(decode_response(&w.seal()).unwrap_err());
    assert!(
        e.ends_with(" is empty (a batch carries at least one cell)"),
        "{e}"
    );
    // A lone empty batch is shorter than any batch: refused by its count.
    let mut w = W::start(WIRE_V2, 1);
    w.sites(1).v(0).v(0).b(0).v(1).v(1).v(0);
    let e = malformed(decode_request(&w.seal()).unwrap_err());
    assert_eq!(e, "uploads says 1 items but only 2 bytes remain");
    // v2 leaf upload with no blocks (and bytes after it).
    let mut w = W::start(WIRE_V2, 1);
    w.sites(1).v(0).v(0).b(0).v(1).v(1).v(0).b(0).b(0).b(0).b(0);
    let e = malformed(decode_request(&w.seal()).unwrap_err());
    assert_eq!(e, "upload at position 1 is an empty batch");
    // An explicit block with no cells.
    let mut w = W::start(WIRE_V2, 1);
    w.sites(1).v(1).s("t").s("c").v(1);
    w.v(0).b(0).v(1).v(1).v(1).v(0).v(0).b(0).b(0);
    let e = malformed(decode_request(&w.seal()).unwrap_err());
    assert_eq!(e, "column block t.c has no cells");
    // An implicit block with no cells (a v1 batch).
    let mut w = W::start(WIRE_FORMAT_VERSION, 1);
    w.sites(1).v(1).s("t").s("c").v(1).v(1).v(0);
    let e = malformed(decode(&w.seal()).unwrap_err());
    assert_eq!(e, "column block t.c has no cells");
    // Legitimately empty: a request with no uploads, an empty range.
    let req = leaf_request(vec![]);
    assert!(decode_request(&req).unwrap().uploads.is_empty());
    let resp = v2_response(Payload::Range(Changes::new()));
    assert!(decode_response(&resp).is_ok());
}

#[test]
fn amplification_past_the_budget_is_refused() {
    let size = 64 << 10;
    let (_, _, bytes) = cases(size)
        .into_iter()
        .find(|(n, _, _)| n == "v2 leaf request, long name x many uploads")
        .unwrap();
    match decode_request(&bytes).unwrap_err() {
        DecodeError::TooLarge { len, limit, what } => {
            assert_eq!(len, bytes.len());
            assert_eq!(limit, bytes.len() * MAX_DECODE_EXPANSION);
            assert_eq!(what, "column block");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}
