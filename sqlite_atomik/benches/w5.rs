//! W5 (WORKLOADS.md), measured side by side in one run:
//!
//! 1. local writes: `UPDATE t SET c = atomik_accum(c, 1)` against
//!    `UPDATE p SET n = n + 1`, 100,000 rows each (target ≤ 1.3×);
//! 2. apply of one 100,000-delta batch to 100,000 existing rows with
//!    `atomik_apply`, against a prepared-statement `UPDATE` loop in one
//!    transaction (target ≥ 1 M deltas/s).
//!
//! The two sides of each comparison run back to back in every repetition
//! and the ratio is taken per pair, so load from other processes hits both
//! alike. `cargo bench -p sqlite_atomik --bench w5` prints medians, the
//! spread (min–max) and the median ratio over `ATOMIK_W5_REPS`
//! repetitions (default 15).

use std::time::Instant;

use rusqlite::Connection;

const ROWS: i64 = 100_000;
const SERIES: &str =
    "WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < 100000)";

fn conn() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    sqlite_atomik::register(&c).unwrap();
    c
}

/// Median, min and max.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn ms(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e3
}

/// A tracked table `t(id, c)` of `ROWS` rows, everything sealed.
fn tracked_table(c: &Connection) {
    c.execute_batch(&format!(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, c BLOB);
         SELECT atomik_track('t', 'c');
         INSERT INTO t {SERIES} SELECT v, atomik_add(0) FROM s;
         SELECT atomik_seal();"
    ))
    .unwrap();
}

/// A plain table `p(id, n)` of `ROWS` rows.
fn plain_table(c: &Connection) {
    c.execute_batch(&format!(
        "CREATE TABLE p(id INTEGER PRIMARY KEY, n INTEGER);
         INSERT INTO p {SERIES} SELECT v, 0 FROM s;"
    ))
    .unwrap();
}

struct Side {
    ms: Vec<f64>,
}

fn report(name: &str, s: &Side) -> f64 {
    let (m, lo, hi) = stats(s.ms.clone());
    println!("  {name:42} {m:8.2} ms  ({lo:.2}-{hi:.2})");
    m
}

fn main() {
    let reps: usize = std::env::var("ATOMIK_W5_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);

    let c = conn();
    tracked_table(&c);
    plain_table(&c);
    let (mut plain, mut atomik, mut ratios) = (Side { ms: vec![] }, Side { ms: vec![] }, vec![]);
    for rep in 0..=reps {
        let p = ms(|| {
            c.execute("UPDATE p SET n = n + 1", []).unwrap();
        });
        let a = ms(|| {
            c.execute("UPDATE t SET c = atomik_accum(c, 1)", [])
                .unwrap();
        });
        if rep > 0 {
            plain.ms.push(p);
            atomik.ms.push(a);
            ratios.push(a / p);
        }
    }
    println!("W5 local write, {ROWS} rows, {reps} paired reps (median, min-max):");
    report("UPDATE p SET n = n + 1", &plain);
    report("UPDATE t SET c = atomik_accum(c, 1)", &atomik);
    let (r, rlo, rhi) = stats(ratios);
    println!("  ratio atomik / plain: {r:.2}x  (pairs {rlo:.2}-{rhi:.2}; target <= 1.3x)");

    // A source replica seals 100k deltas into one batch.
    let src = conn();
    tracked_table(&src);
    src.execute("UPDATE t SET c = atomik_accum(c, 3)", [])
        .unwrap();
    src.query_row("SELECT atomik_seal()", [], |r| r.get::<_, i64>(0))
        .unwrap();
    let batch: Vec<u8> = src
        .query_row(
            "SELECT bytes FROM atomik_batches ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let origin: Vec<u8> = src
        .query_row(
            "SELECT value FROM atomik_meta WHERE key = 'site_id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let dst = conn();
    tracked_table(&dst);
    // dst already has the source's first batch (the inserts).
    dst.execute(
        "INSERT INTO atomik_vector(site, seq) VALUES (?1, 1)",
        [&origin],
    )
    .unwrap();
    let base = conn();
    plain_table(&base);
    let (mut apply, mut looped, mut ratios, mut decode) =
        (Side { ms: vec![] }, Side { ms: vec![] }, vec![], vec![]);
    for rep in 0..=reps {
        // Untimed: make the batch new to dst again.
        dst.execute(
            "UPDATE atomik_vector SET seq = 1 WHERE site = ?1",
            [&origin],
        )
        .unwrap();
        let a = ms(|| {
            let n: i64 = dst
                .query_row("SELECT atomik_apply(?1)", [&batch], |r| r.get(0))
                .unwrap();
            assert_eq!(n, ROWS);
        });
        let l = ms(|| {
            base.execute_batch("BEGIN").unwrap();
            {
                let mut s = base
                    .prepare_cached("UPDATE p SET n = n + ?1 WHERE id = ?2")
                    .unwrap();
                for id in 1..=ROWS {
                    s.execute([3, id]).unwrap();
                }
            }
            base.execute_batch("COMMIT").unwrap();
        });
        let d = ms(|| {
            atomik_core::codec::decode(&batch).unwrap();
        });
        if rep > 0 {
            apply.ms.push(a);
            looped.ms.push(l);
            ratios.push(a / l);
            decode.push(d);
        }
    }
    let rate = |ms: f64| ROWS as f64 / ms / 1e3;
    println!("W5 apply of one {ROWS}-delta batch, {reps} paired reps (median, min-max):");
    let l = report("prepared UPDATE loop, one transaction", &looped);
    let a = report("atomik_apply(batch)", &apply);
    let (r, rlo, rhi) = stats(ratios);
    println!(
        "  loop: {:.2} M rows/s; atomik_apply: {:.2} M deltas/s (target >= 1.0 M/s)",
        rate(l),
        rate(a)
    );
    println!("  ratio atomik / loop: {r:.2}x  (pairs {rlo:.2}-{rhi:.2})");
    println!(
        "  of which decoding the batch in atomik-core: {:.2} ms; batch size {} bytes ({:.2} bytes/delta)",
        stats(decode).0,
        batch.len(),
        batch.len() as f64 / ROWS as f64
    );
}
