//! Criterion micro-benchmarks of `atomik-core`: accumulate (one value and a
//! batch over a bank of values), the codec (encode and decode of one
//! batch), coalescing of changes, and the column digest — each with a
//! throughput unit. `cargo bench -p atomik-bench --bench core`.

use std::hint::black_box;

use atomik_core::codec::{decode, encode, Batch, Message};
use atomik_core::digest::digest;
use atomik_core::workloads::SplitMix64;
use atomik_core::{AtomikValue, Changes, ColumnId, Group, Key, KeyShape, SiteId};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// `n` small `add` deltas over `keys` integer keys (W2-like).
fn deltas(n: usize, keys: u64, seed: u64) -> Vec<(i64, u64)> {
    let mut rng = SplitMix64::new(seed);
    (0..n)
        .map(|_| {
            let key = rng.below(keys) as i64;
            let d = if rng.below(10) == 0 {
                10 + rng.below(91) as i64
            } else {
                -1 - rng.below(3) as i64
            };
            (key, d as u64)
        })
        .collect()
}

fn changes_of(ops: &[(i64, u64)]) -> Changes {
    let column = ColumnId::new("inventory", "qty", Group::Add);
    let mut ch = Changes::new();
    for &(k, d) in ops {
        ch.add(&column, &KeyShape::int(), Key::int(k), d)
            .expect("integer key");
    }
    ch
}

fn accumulate(c: &mut Criterion) {
    let mut g = c.benchmark_group("accumulate");
    g.throughput(Throughput::Elements(1));
    g.bench_function("single", |b| {
        let mut v = AtomikValue::new_pending(Group::Add, 0);
        b.iter(|| {
            v = black_box(v).accum(black_box(3));
        });
    });
    for group in [Group::Add, Group::Xor] {
        let ops = deltas(4096, 256, 1);
        g.throughput(Throughput::Elements(ops.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("batch_4096_into_256", group.name()),
            &ops,
            |b, ops| {
                let mut bank = vec![AtomikValue::identity(group); 256];
                b.iter(|| {
                    for &(slot, d) in ops {
                        let cell = &mut bank[slot as usize];
                        *cell = cell.accum(d);
                    }
                    black_box(&bank);
                });
            },
        );
    }
    g.finish();
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    for cells in [100usize, 10_000] {
        let changes = changes_of(&deltas(cells * 4, 10_000, 2));
        let msg = Message::Batch(Batch {
            origin: SiteId([7; 16]),
            seq: 1,
            changes,
        });
        let bytes = encode(&msg);
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_with_input(BenchmarkId::new("encode_batch", cells), &msg, |b, m| {
            b.iter(|| black_box(encode(black_box(m))));
        });
        g.bench_with_input(
            BenchmarkId::new("decode_batch", cells),
            &bytes,
            |b, bytes| {
                b.iter(|| black_box(decode(black_box(bytes)).expect("valid")));
            },
        );
    }
    g.finish();
}

fn coalesce(c: &mut Criterion) {
    let mut g = c.benchmark_group("coalesce");
    let ops = deltas(10_000, 1_000, 3);
    g.throughput(Throughput::Elements(ops.len() as u64));
    g.bench_function("add_10000_deltas_to_1000_cells", |b| {
        b.iter(|| black_box(changes_of(black_box(&ops))));
    });
    let a = changes_of(&deltas(5_000, 10_000, 4));
    let other = changes_of(&deltas(5_000, 10_000, 5));
    g.throughput(Throughput::Elements(other.cell_count() as u64));
    g.bench_function("merge_two_batches", |b| {
        b.iter(|| {
            let mut m = a.clone();
            m.merge(black_box(&other)).expect("same shape");
            black_box(m)
        });
    });
    g.finish();
}

fn column_digest(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest");
    let rows: Vec<(Key, AtomikValue)> = (0..10_000i64)
        .map(|k| (Key::int(k), AtomikValue::load(Group::Add, k as u64 * 7)))
        .collect();
    g.throughput(Throughput::Elements(rows.len() as u64));
    g.bench_function("rows_10000", |b| {
        b.iter(|| black_box(digest(rows.iter().map(|(k, v)| (k, v)))));
    });
    g.finish();
}

criterion_group!(benches, accumulate, codec, coalesce, column_digest);
criterion_main!(benches);
