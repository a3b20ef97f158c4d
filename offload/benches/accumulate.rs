//! CPU batched accumulation throughput against a memory-bandwidth baseline,
//! measured in the same run.
//!
//! `cargo bench -p atomik-offload --bench accumulate`
//!
//! * `accumulate/<slots>`: one `CpuEngine::accumulate` call of 4096 random
//!   `(slot, group, delta)` deltas over an engine of `<slots>` slots (8 banks);
//!   throughput in deltas/s. 256 slots stay in L1, 65536 (1 MiB of state) in
//!   L2/L3, 4194304 (64 MiB of state) go to DRAM.
//! * `membw/sum` and `membw/copy`: summing and copying a 64 MiB `u64`
//!   buffer; throughput in bytes/s — the ceiling any streaming pass over the
//!   deltas' 16 bytes each is bounded by.

use std::hint::black_box;
use std::time::Duration;

use atomik_offload::abench::splitmix64;
use atomik_offload::cpu::CpuEngine;
use atomik_offload::{Delta, Engine, Group};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const BATCH: usize = 4096;
const BUF_WORDS: usize = 8 << 20; // 64 MiB

fn deltas(slots: u32, seed: u64) -> Vec<Delta> {
    let mut s = seed;
    (0..BATCH)
        .map(|_| {
            let r = splitmix64(&mut s);
            Delta {
                slot: (r % u64::from(slots)) as u32,
                group: if r >> 63 == 1 { Group::Xor } else { Group::Add },
                delta: splitmix64(&mut s),
            }
        })
        .collect()
}

fn accumulate(c: &mut Criterion) {
    let mut g = c.benchmark_group("accumulate");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for slots_per_bank in [32u32, 8192, 524_288] {
        let mut engine = CpuEngine::new(8, slots_per_bank).expect("geometry");
        let batch = deltas(engine.slots(), 42);
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function(format!("{}", engine.slots()), |b| {
            b.iter(|| engine.accumulate(black_box(&batch)).expect("in range"))
        });
    }
    g.finish();
}

fn membw(c: &mut Criterion) {
    let mut g = c.benchmark_group("membw");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let src: Vec<u64> = (0..BUF_WORDS as u64).collect();
    g.throughput(Throughput::Bytes((BUF_WORDS * 8) as u64));
    g.bench_function("sum", |b| {
        b.iter(|| black_box(&src).iter().fold(0u64, |a, &x| a.wrapping_add(x)))
    });
    let mut dst = vec![0u64; BUF_WORDS];
    g.bench_function("copy", |b| {
        b.iter_batched_ref(
            || (),
            |_| dst.copy_from_slice(black_box(&src)),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, accumulate, membw);
criterion_main!(benches);
