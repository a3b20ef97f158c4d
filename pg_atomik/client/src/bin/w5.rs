//! WORKLOADS.md W5 in PostgreSQL, side by side in one run:
//! * apply of one batch of 100,000 `add` deltas (`atomik_apply`) against a
//!   plain `UPDATE ... FROM unnest(...)` of the same new values;
//! * `UPDATE t SET c = atomik_accum(c, 1)` against `UPDATE p SET n = n + 1`.
//!
//! Each timing is the median of 5 runs, each table vacuumed before each run.
//! Usage: `ATOMIK_PG=... w5 [SEED]`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atomik_core::codec::{decode, encode, Message};
use atomik_core::{Batch, Changes, ColumnId, Group, Key, KeyShape, SiteId};
use pg_atomik_client::fresh_database;

const N: i64 = 100_000;
const RUNS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Deterministic deltas from a seed (splitmix64), 1..=1000.
fn deltas(seed: u64) -> Vec<i64> {
    let mut s = seed;
    (0..N)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % 1000) as i64 + 1
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let seed: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let c = fresh_database("atomik_w5").await;
    c.batch_execute(&format!(
        "CREATE TABLE t (id bigint PRIMARY KEY, c atomik);
         CREATE TABLE p (id bigint PRIMARY KEY, n bigint);
         INSERT INTO t SELECT i, 'add:0'::atomik FROM generate_series(1, {N}) i;
         INSERT INTO p SELECT i, 0 FROM generate_series(1, {N}) i;
         SELECT atomik_track('t', 'c');
         SELECT atomik_seal();"
    ))
    .await
    .expect("setup");
    let d = deltas(seed);
    let keys: Vec<i64> = (1..=N).collect();
    let origin = SiteId([7; 16]);
    let column = ColumnId::new("t", "c", Group::Add);
    let mut changes = Changes::new();
    for (k, delta) in keys.iter().zip(&d) {
        changes
            .add(&column, &KeyShape::int(), Key::int(*k), *delta as u64)
            .expect("delta");
    }
    let mut apply = Vec::new();
    let mut plain = Vec::new();
    let mut batch_bytes = 0;
    let mut current: BTreeMap<i64, i64> = keys.iter().map(|k| (*k, 0)).collect();
    for run in 0..RUNS {
        let bytes = encode(&Message::Batch(Batch {
            origin,
            seq: run as u64 + 1,
            changes: changes.clone(),
        }));
        batch_bytes = bytes.len();
        c.batch_execute("VACUUM t").await.expect("vacuum");
        let t0 = Instant::now();
        let n: i64 = c
            .query_one("SELECT atomik_apply($1)", &[&bytes])
            .await
            .expect("apply")
            .get(0);
        apply.push(t0.elapsed());
        assert_eq!(n, N, "every delta applied");
        for (k, delta) in keys.iter().zip(&d) {
            *current.get_mut(k).expect("key") += delta;
        }
        let values: Vec<i64> = current.values().copied().collect();
        c.batch_execute("VACUUM p").await.expect("vacuum");
        let t0 = Instant::now();
        c.execute(
            "UPDATE p SET n = d.v FROM unnest($1::bigint[], $2::bigint[]) AS d(k, v) WHERE p.id = d.k",
            &[&keys, &values],
        )
        .await
        .expect("plain update");
        plain.push(t0.elapsed());
    }
    let same: bool = c
        .query_one(
            "SELECT bool_and(atomik_read(t.c) = p.n) FROM t JOIN p USING (id)",
            &[],
        )
        .await
        .expect("compare")
        .get(0);
    assert!(
        same,
        "atomik_apply and the plain UPDATE must reach the same values"
    );

    let mut accum = Vec::new();
    let mut plus = Vec::new();
    for _ in 0..RUNS {
        c.batch_execute("VACUUM t").await.expect("vacuum");
        let t0 = Instant::now();
        c.execute("UPDATE t SET c = atomik_accum(c, 1)", &[])
            .await
            .expect("accum");
        accum.push(t0.elapsed());
        c.batch_execute("VACUUM p").await.expect("vacuum");
        let t0 = Instant::now();
        c.execute("UPDATE p SET n = n + 1", &[])
            .await
            .expect("plus");
        plus.push(t0.elapsed());
    }
    // How much of the apply is the core codec (decode happens inside the
    // extension too), measured here on the client.
    let bytes = encode(&Message::Batch(Batch {
        origin,
        seq: 1,
        changes,
    }));
    let decode_time = median(
        (0..RUNS)
            .map(|_| {
                let t0 = Instant::now();
                decode(&bytes).expect("decode");
                t0.elapsed()
            })
            .collect(),
    );
    let (a, p, u, q) = (median(apply), median(plain), median(accum), median(plus));
    println!("W5 PostgreSQL, {N} rows, seed {seed}, median of {RUNS} runs");
    println!("  batch size on the wire          {batch_bytes} bytes");
    println!(
        "  atomik_apply(batch)             {:>8.1} ms",
        a.as_secs_f64() * 1e3
    );
    println!(
        "    core decode of it (client)    {:>8.1} ms",
        decode_time.as_secs_f64() * 1e3
    );
    println!(
        "  UPDATE ... FROM unnest(...)     {:>8.1} ms",
        p.as_secs_f64() * 1e3
    );
    println!(
        "  ratio apply / plain             {:>8.2}x (target <= 1.3x)",
        a.as_secs_f64() / p.as_secs_f64()
    );
    println!(
        "  UPDATE SET c = atomik_accum(c,1){:>8.1} ms",
        u.as_secs_f64() * 1e3
    );
    println!(
        "  UPDATE SET n = n + 1            {:>8.1} ms",
        q.as_secs_f64() * 1e3
    );
    println!(
        "  ratio accum / plus              {:>8.2}x (target <= 1.3x)",
        u.as_secs_f64() / q.as_secs_f64()
    );
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let admin = pg_atomik_client::connect("postgres").await;
    admin
        .batch_execute("DROP DATABASE IF EXISTS atomik_w5 WITH (FORCE)")
        .await
        .expect("cleanup");
}
