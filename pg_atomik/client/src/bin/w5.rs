//! W5 (benches/README.md) in PostgreSQL, side by side in one run:
//! * apply of one download of 100,000 `add` deltas (`atomik_apply` of a
//!   protocol v2 response: a hub's log range) against a plain
//!   `UPDATE ... FROM unnest(...)` of the same new values;
//! * `UPDATE t SET c = atomik_accum(c, 1)` against `UPDATE p SET n = n + 1`,
//!   twice: as the first write to each cell since a seal (every row's
//!   trigger records the cell as dirty), and as a repeated write (cells
//!   already dirty: the triggers' `WHEN` clauses are false);
//! * the seal of 100,000 written cells, and of one written cell.
//!
//! Each timing is the median of 5 runs, each table vacuumed before each run.
//! Usage: `ATOMIK_PG=... w5 [SEED]`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use atomik_core::codec::v2::{decode_response, encode_response, Cursor, Payload, Response};
use atomik_core::{Changes, ColumnId, Group, Key, KeyShape, SiteId};
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
    // The hub the downloads come from (a made-up site), and this replica.
    let hub = SiteId([7; 16]);
    let site: String = c
        .query_one("SELECT atomik_site_id()", &[])
        .await
        .expect("site id")
        .get(0);
    let site: SiteId = site.parse().expect("a site id");
    // Download `run` moves this replica's cursor from position `run` (none
    // for the first) to `run + 1` of the hub's log.
    let download = |run: u64, changes: Changes| {
        encode_response(&Response {
            to: site,
            from: hub,
            base: (run > 0).then_some(Cursor { hub, position: run }),
            position: run + 1,
            ack: 0,
            payload: Payload::Range(changes),
        })
    };
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
        let bytes = download(run as u64, changes.clone());
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

    // First writes since a seal (the seal before each run is not timed,
    // but is itself measured: it reads the 100,000 recorded cells), then
    // repeated writes to cells that are already dirty.
    let mut first = Vec::new();
    let mut accum = Vec::new();
    let mut plus = Vec::new();
    let mut seal_all = Vec::new();
    for run in 0..2 * RUNS {
        if run < RUNS {
            let t0 = Instant::now();
            let seq: i64 = c
                .query_one("SELECT atomik_seal()", &[])
                .await
                .expect("seal")
                .get(0);
            if run > 0 {
                seal_all.push(t0.elapsed());
                assert!(seq > 0, "the written cells were sealed");
            }
        }
        c.batch_execute("VACUUM t, atomik.dirty")
            .await
            .expect("vacuum");
        let t0 = Instant::now();
        c.execute("UPDATE t SET c = atomik_accum(c, 1)", &[])
            .await
            .expect("accum");
        if run < RUNS {
            first.push(t0.elapsed());
        } else {
            accum.push(t0.elapsed());
        }
        c.batch_execute("VACUUM p").await.expect("vacuum");
        let t0 = Instant::now();
        c.execute("UPDATE p SET n = n + 1", &[])
            .await
            .expect("plus");
        plus.push(t0.elapsed());
    }
    let recorded: i64 = c
        .query_one("SELECT count(*) FROM atomik.dirty", &[])
        .await
        .expect("dirty")
        .get(0);
    assert_eq!(
        recorded, N,
        "one record per written cell, however often written"
    );
    seal_all.push({
        let t0 = Instant::now();
        c.query_one("SELECT atomik_seal()", &[])
            .await
            .expect("seal");
        t0.elapsed()
    });
    // A seal costs what was written, not the size of the table.
    let mut seal_one = Vec::new();
    for _ in 0..RUNS {
        c.execute("UPDATE t SET c = atomik_accum(c, 1) WHERE id = 5", &[])
            .await
            .expect("one write");
        let t0 = Instant::now();
        c.query_one("SELECT atomik_seal()", &[])
            .await
            .expect("seal");
        seal_one.push(t0.elapsed());
    }
    // How much of the apply is the core codec (decode happens inside the
    // extension too), measured here on the client.
    let bytes = download(0, changes);
    let decode_time = median(
        (0..RUNS)
            .map(|_| {
                let t0 = Instant::now();
                decode_response(&bytes).expect("decode");
                t0.elapsed()
            })
            .collect(),
    );
    let (a, p, u, q) = (median(apply), median(plain), median(accum), median(plus));
    let (f, sa, so) = (median(first), median(seal_all), median(seal_one));
    println!("W5 PostgreSQL, {N} rows, seed {seed}, median of {RUNS} runs");
    println!("  download size on the wire       {batch_bytes} bytes");
    println!(
        "  atomik_apply(download)          {:>8.1} ms",
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
        "  UPDATE SET c = atomik_accum(c,1){:>8.1} ms (cells already dirty)",
        u.as_secs_f64() * 1e3
    );
    println!(
        "    the same, first write since a seal {:>8.1} ms (every row recorded)",
        f.as_secs_f64() * 1e3
    );
    println!(
        "  UPDATE SET n = n + 1            {:>8.1} ms",
        q.as_secs_f64() * 1e3
    );
    println!(
        "  ratio accum / plus              {:>8.2}x (target <= 1.3x)",
        u.as_secs_f64() / q.as_secs_f64()
    );
    println!(
        "  ratio first write / plus        {:>8.2}x",
        f.as_secs_f64() / q.as_secs_f64()
    );
    println!(
        "  atomik_seal() of {N} written cells {:>8.1} ms",
        sa.as_secs_f64() * 1e3
    );
    println!(
        "  atomik_seal() of 1 written cell {:>8.1} ms",
        so.as_secs_f64() * 1e3
    );
    drop(c);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let admin = pg_atomik_client::connect("postgres").await;
    admin
        .batch_execute("DROP DATABASE IF EXISTS atomik_w5 WITH (FORCE)")
        .await
        .expect("cleanup");
}
