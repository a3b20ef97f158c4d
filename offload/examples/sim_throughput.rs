//! Ops per cycle per bank of the simulated engine, read from its counters,
//! for several slot patterns (`cargo run -p atomik-offload --features sim
//! --release --example sim_throughput [OPS]`).
//!
//! Patterns (all ACCUM, add group):
//! * `striped`   — slot i = i: consecutive ops hit consecutive banks;
//! * `random`    — slots uniform over the engine;
//! * `same-bank` — distinct slots that all live in bank 0;
//! * `colliding` — every op on one slot.
//!
//! Columns: issue-limited ops/cycle/bank = ops / (beats + conflict stalls) /
//! banks (the dispatcher's rate with a source that never starves it), and
//! busy ops/cycle/bank = ops / busy cycles / banks (includes pipeline fill
//! and drain of each batch).

use atomik_offload::abench::splitmix64;
use atomik_offload::sim::{self, SIM_SLOTS_PER_BANK};
use atomik_offload::{Engine, Group, OffloadError, Op, BANK_COUNTS};

/// Maps an op number to its slot.
type SlotFn = Box<dyn FnMut(u32) -> u32>;

fn main() -> Result<(), OffloadError> {
    let n: u32 = match std::env::args().nth(1) {
        Some(a) => a
            .parse()
            .map_err(|_| OffloadError::Protocol(format!("bad op count {a:?}")))?,
        None => 65_536,
    };
    println!(
        "{:<6} {:<10} {:>9} {:>9} {:>9} {:>9} {:>12} {:>12}",
        "banks", "pattern", "ops", "beats", "stalls", "forwards", "issue o/c/b", "busy o/c/b"
    );
    for banks in BANK_COUNTS {
        let mut engine = sim::open(banks)?;
        let slots = banks * SIM_SLOTS_PER_BANK;
        let mut state = 7u64;
        let patterns: [(&str, SlotFn); 4] = [
            ("striped", Box::new(move |i| i % slots)),
            (
                "random",
                Box::new(move |_| (splitmix64(&mut state) % u64::from(slots)) as u32),
            ),
            ("same-bank", Box::new(move |i| (i * banks) % slots)),
            ("colliding", Box::new(|_| 5)),
        ];
        for (name, mut slot_of) in patterns {
            let ops: Vec<Op> = (0..n)
                .map(|i| Op::Accum {
                    slot: slot_of(i),
                    group: Group::Add,
                    delta: u64::from(i),
                })
                .collect();
            engine.clear()?;
            engine.clear_counters()?;
            engine.execute(&ops, &mut Vec::new())?;
            let k = engine.counters()?;
            let issue = k.ops as f64 / (k.beats + k.conflict_stalls) as f64 / f64::from(banks);
            let busy = k.ops as f64 / k.busy_cycles as f64 / f64::from(banks);
            println!(
                "{:<6} {:<10} {:>9} {:>9} {:>9} {:>9} {:>12.3} {:>12.3}",
                banks, name, k.ops, k.beats, k.conflict_stalls, k.forwards, issue, busy
            );
        }
    }
    Ok(())
}
