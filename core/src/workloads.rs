//! Byte-size measurements of the wire format on the fixed workloads of
//! `benches/README.md` (W1, and small `add` deltas as in W2), shared by the
//! `wire_sizes` example, the size tests, and the benchmarks.

use crate::changes::{Changes, ColumnId};
use crate::codec::{encode, Batch, Message};
use crate::group::Group;
use crate::key::{Key, KeyShape};
use crate::site::SiteId;

/// A small deterministic generator (SplitMix64), so sizes are reproducible
/// without a dependency.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64-bit word.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// W1: bytes of each sealed tick of 256 xor cells (2,048 bytes of state),
/// 13 cells (~5%) changed per tick with random 64-bit deltas, shipped as one
/// batch message each. Returns the size of every tick's message.
pub fn w1_tick_sizes(ticks: u64, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed);
    let column = ColumnId::new("state", "word", Group::Xor);
    let origin = SiteId([0x5A; 16]);
    (1..=ticks)
        .map(|seq| {
            let mut changes = Changes::new();
            while changes.cell_count() < 13 {
                let cell = rng.below(256) as i64;
                let delta = rng.next_u64() | 1;
                if changes
                    .column(&column)
                    .is_some_and(|b| b.cells.contains_key(&Key::int(cell)))
                {
                    continue;
                }
                changes
                    .add(&column, &KeyShape::int(), Key::int(cell), delta)
                    .expect("integer key fits");
            }
            encode(&Message::Batch(Batch {
                origin,
                seq,
                changes,
            }))
            .len()
        })
        .collect()
}

/// Bytes per cell of small `add` deltas (−3..−1 and +10..+100) to
/// integer-keyed cells among 10,000 SKUs, inside one batch of `cells`
/// cells: (message bytes, bytes per cell excluding the fixed header).
pub fn small_add_bytes_per_cell(cells: usize, seed: u64) -> (usize, f64) {
    let mut rng = SplitMix64::new(seed);
    let column = ColumnId::new("inventory", "qty", Group::Add);
    let origin = SiteId([0xA5; 16]);
    let mut changes = Changes::new();
    while changes.cell_count() < cells {
        let sku = rng.below(10_000) as i64;
        let delta = if rng.below(10) == 0 {
            10 + rng.below(91) as i64
        } else {
            -1 - rng.below(3) as i64
        };
        changes
            .add(&column, &KeyShape::int(), Key::int(sku), delta as u64)
            .expect("integer key fits");
    }
    let full = encode(&Message::Batch(Batch {
        origin,
        seq: 1,
        changes,
    }))
    .len();
    let empty = encode(&Message::Batch(Batch {
        origin,
        seq: 1,
        changes: {
            let mut c = Changes::new();
            c.add(&column, &KeyShape::int(), Key::int(0), 0)
                .expect("integer key fits");
            c
        },
    }))
    .len()
        - 2; // one cell of a zero key and zero delta costs 2 bytes
    (full, (full - empty) as f64 / cells as f64)
}

/// Median of a list of sizes.
pub fn median(values: &mut [usize]) -> usize {
    values.sort_unstable();
    values[values.len() / 2]
}
