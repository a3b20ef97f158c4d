//! W1 — the seed's tick: bytes per sealed tick of 256 xor cells with 13
//! changed, against the 2,048-byte full state and the seed's 160 bytes.

use serde::Serialize;

use crate::stats::{ratio, Spread};

/// Bytes of the full W1 state (256 × 8).
pub const STATE_BYTES: f64 = 2048.0;
/// Bytes per tick the seed reports for its hardware adapter.
pub const SEED_BYTES: f64 = 160.0;

/// W1 results.
#[derive(Debug, Clone, Serialize)]
pub struct W1Report {
    /// Ticks measured.
    pub ticks: u64,
    /// Bytes of each tick's batch message.
    pub bytes_per_tick: Spread,
    /// The full state, for comparison.
    pub full_state_bytes: f64,
    /// The seed's bytes per tick, for comparison.
    pub seed_bytes: f64,
    /// Median tick bytes / full state.
    pub ratio_to_full_state: f64,
    /// Median tick bytes / the seed's 160 bytes.
    pub ratio_to_seed: f64,
}

/// Measure `ticks` W1 ticks from `seed` (through `atomik_core::workloads`).
pub fn run(ticks: u64, seed: u64) -> W1Report {
    let sizes = atomik_core::workloads::w1_tick_sizes(ticks, seed);
    let spread = Spread::of(&sizes.iter().map(|&s| s as f64).collect::<Vec<_>>());
    W1Report {
        ticks,
        bytes_per_tick: spread,
        full_state_bytes: STATE_BYTES,
        seed_bytes: SEED_BYTES,
        ratio_to_full_state: ratio(spread.median, STATE_BYTES),
        ratio_to_seed: ratio(spread.median, SEED_BYTES),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ticks_are_a_fraction_of_the_state() {
        let r = super::run(50, 7);
        assert_eq!(r.bytes_per_tick.n, 50);
        assert!(r.ratio_to_full_state < 0.2);
    }
}
