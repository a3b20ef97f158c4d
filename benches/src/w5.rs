//! W5 in SQLite (formerly `sqlite_atomik/benches/w5.rs`, now only here):
//! local writes (`atomik_accum` against `n = n + 1` over every row) and the
//! apply of one 100,000-delta download (`atomik_apply`) against a
//! prepared-statement `UPDATE` loop in one transaction. The two sides run
//! back to back in every repetition and the ratio is taken per pair.

use std::time::Instant;

use anyhow::{ensure, Result};
use atomik_core::codec::v2::{encode_response, Cursor, Payload, Response};
use atomik_core::{Changes, ColumnId, Group, Key, KeyShape, SiteId};
use rusqlite::Connection;
use serde::Serialize;

use crate::stats::Spread;

/// One side-by-side comparison: times of both sides and the per-pair
/// ratio atomik / baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Paired {
    /// What the baseline does.
    pub baseline: String,
    /// What atomik does.
    pub atomik: String,
    /// Baseline times (ms).
    pub baseline_ms: Spread,
    /// atomik times (ms).
    pub atomik_ms: Spread,
    /// Per-pair atomik / baseline.
    pub ratio: Spread,
}

impl Paired {
    pub(crate) fn new(baseline: &str, atomik: &str, pairs: &[(f64, f64)]) -> Self {
        let b: Vec<f64> = pairs.iter().map(|p| p.0).collect();
        let a: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        let r: Vec<f64> = pairs.iter().map(|p| p.1 / p.0).collect();
        Paired {
            baseline: baseline.to_string(),
            atomik: atomik.to_string(),
            baseline_ms: Spread::of(&b),
            atomik_ms: Spread::of(&a),
            ratio: Spread::of(&r),
        }
    }
}

/// W5 in SQLite.
#[derive(Debug, Clone, Serialize)]
pub struct W5SqliteReport {
    /// Rows (= deltas in the batch).
    pub rows: i64,
    /// Paired repetitions (after one warm-up).
    pub reps: usize,
    /// Local writes to every row, each the first to its cell since a seal
    /// (the write trigger records every cell).
    pub local_write: Paired,
    /// Local writes to every row of cells already pending (the trigger's
    /// condition is false).
    pub local_write_repeated: Paired,
    /// Apply of one batch with a delta for every row.
    pub apply: Paired,
    /// atomik_apply throughput at the median (deltas/s).
    pub apply_deltas_per_sec: f64,
    /// Loop throughput at the median (rows/s).
    pub loop_rows_per_sec: f64,
    /// Bytes of the batch.
    pub batch_bytes: usize,
}

fn conn() -> Result<Connection> {
    let c = Connection::open_in_memory()?;
    sqlite_atomik::register(&c)?;
    Ok(c)
}

fn series(rows: i64) -> String {
    format!("WITH RECURSIVE s(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM s WHERE v < {rows})")
}

fn tracked_table(c: &Connection, rows: i64) -> Result<()> {
    c.execute_batch(&format!(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, c BLOB);
         SELECT atomik_track('t', 'c');
         INSERT INTO t {} SELECT v, atomik_add(0) FROM s;
         SELECT atomik_seal();",
        series(rows)
    ))?;
    Ok(())
}

fn plain_table(c: &Connection, rows: i64) -> Result<()> {
    c.execute_batch(&format!(
        "CREATE TABLE p(id INTEGER PRIMARY KEY, n INTEGER);
         INSERT INTO p {} SELECT v, 0 FROM s;",
        series(rows)
    ))?;
    Ok(())
}

fn ms(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64() * 1e3)
}

/// `reps` back-to-back pairs (after one warm-up) of a plain `n = n + 1`
/// over every row of `p` and an `atomik_accum` over every row of `t`,
/// sealing (untimed) after each atomik write when `seal` is set.
fn paired_writes(c: &Connection, reps: usize, seal: bool) -> Result<Vec<(f64, f64)>> {
    let mut pairs = vec![];
    for rep in 0..=reps {
        let p = ms(|| {
            c.execute("UPDATE p SET n = n + 1", [])?;
            Ok(())
        })?;
        let a = ms(|| {
            c.execute("UPDATE t SET c = atomik_accum(c, 1)", [])?;
            Ok(())
        })?;
        if seal {
            c.query_row("SELECT atomik_seal()", [], |r| r.get::<_, i64>(0))?;
        }
        if rep > 0 {
            pairs.push((p, a));
        }
    }
    Ok(pairs)
}

/// Run W5 in SQLite with `rows` rows and `reps` paired repetitions.
///
/// # Errors
/// SQLite errors.
pub fn run(rows: i64, reps: usize) -> Result<W5SqliteReport> {
    let c = conn()?;
    tracked_table(&c, rows)?;
    plain_table(&c, rows)?;
    // Every timed write finds clean cells (an untimed seal after each):
    // it pays for recording them, the worst case for the write triggers.
    let writes = paired_writes(&c, reps, true)?;
    // Writes to cells that are already pending: no seal in between.
    c.execute("UPDATE t SET c = atomik_accum(c, 1)", [])?;
    let repeated = paired_writes(&c, reps, false)?;

    // One download of one delta per row, as a hub would send it.
    let dst = conn()?;
    tracked_table(&dst, rows)?;
    let site: String = dst.query_row("SELECT atomik_site_id()", [], |r| r.get(0))?;
    let site: SiteId = site.parse().map_err(anyhow::Error::msg)?;
    let column = ColumnId::new("t", "c", Group::Add);
    let mut changes = Changes::new();
    for id in 1..=rows {
        changes.add(&column, &KeyShape::int(), Key::int(id), 3)?;
    }
    let base = conn()?;
    plain_table(&base, rows)?;
    let mut applies = vec![];
    let mut batch_len = 0;
    for rep in 0..=reps {
        let batch = download(site, rep as u64, changes.clone());
        batch_len = batch.len();
        let a = ms(|| {
            let n: i64 = dst.query_row("SELECT atomik_apply(?1)", [&batch], |r| r.get(0))?;
            ensure!(
                n == rows,
                "atomik_apply applied {n} deltas, expected {rows}"
            );
            Ok(())
        })?;
        let l = ms(|| {
            base.execute_batch("BEGIN")?;
            {
                let mut s = base.prepare_cached("UPDATE p SET n = n + ?1 WHERE id = ?2")?;
                for id in 1..=rows {
                    s.execute([3, id])?;
                }
            }
            base.execute_batch("COMMIT")?;
            Ok(())
        })?;
        if rep > 0 {
            applies.push((l, a));
        }
    }
    let local_write = Paired::new(
        "UPDATE p SET n = n + 1",
        "UPDATE t SET c = atomik_accum(c, 1), first write since a seal",
        &writes,
    );
    let apply = Paired::new(
        "prepared UPDATE p SET n = n + ?1 WHERE id = ?2 loop, one transaction",
        "SELECT atomik_apply(batch)",
        &applies,
    );
    Ok(W5SqliteReport {
        rows,
        reps,
        apply_deltas_per_sec: rows as f64 / apply.atomik_ms.median * 1e3,
        loop_rows_per_sec: rows as f64 / apply.baseline_ms.median * 1e3,
        local_write,
        local_write_repeated: Paired::new(
            "UPDATE p SET n = n + 1",
            "UPDATE t SET c = atomik_accum(c, 1), cells already pending",
            &repeated,
        ),
        apply,
        batch_bytes: batch_len,
    })
}

/// The `rep`-th of a series of downloads of `changes` to replica `to`, as a
/// hub sends them (a protocol v2 range response): the first finds the
/// replica without a cursor, each next one at the position the previous
/// one left it.
pub fn download(to: SiteId, rep: u64, changes: Changes) -> Vec<u8> {
    let hub = SiteId([0xB5; 16]);
    encode_response(&Response {
        to,
        from: hub,
        base: (rep > 0).then_some(Cursor { hub, position: rep }),
        position: rep + 1,
        ack: 0,
        payload: Payload::Range(changes),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn small_run_has_every_pair() {
        let r = super::run(500, 2).unwrap();
        assert_eq!(r.apply.ratio.n, 2);
        assert_eq!(r.local_write.ratio.n, 2);
        assert!(r.batch_bytes > 500);
    }
}
