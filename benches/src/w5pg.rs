//! W5 in PostgreSQL: `atomik_apply` of one batch of 100,000 `add` deltas to
//! a tracked table of 100,000 rows, against the same change as a plain
//! `UPDATE ... FROM` of the new values (shipped as two arrays in one
//! statement). Paired repetitions, ratio per pair; tables vacuumed between
//! repetitions (untimed).

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use atomik_core::{Changes, ColumnId, Group, Key, KeyShape, SiteId};
use serde::Serialize;

use crate::w5::Paired;

/// W5 in PostgreSQL.
#[derive(Debug, Clone, Serialize)]
pub struct W5PgReport {
    /// Rows (= deltas in the batch).
    pub rows: i64,
    /// Paired repetitions (after one warm-up).
    pub reps: usize,
    /// The comparison.
    pub apply: Paired,
    /// atomik_apply throughput at the median (deltas/s).
    pub apply_deltas_per_sec: f64,
    /// Bytes of the batch.
    pub batch_bytes: usize,
    /// Bytes of the two arrays of the baseline (8 + 8 per row).
    pub baseline_payload_bytes: usize,
}

/// Untrack `w5_t.c` if the table exists (a tracked table dropped without
/// untracking would leave its registration behind).
const UNTRACK: &str = "SELECT atomik_untrack(t.table_name, t.column_name) FROM atomik.tracked t
     WHERE t.table_name = 'w5_t' AND to_regclass('w5_t') IS NOT NULL;";

/// Deltas `delta` for every row of `w5_t.c`.
fn changes(rows: i64, delta: i64) -> Result<Changes> {
    let column = ColumnId::new("w5_t", "c", Group::Add);
    let mut changes = Changes::new();
    for id in 1..=rows {
        changes.add(&column, &KeyShape::int(), Key::int(id), delta as u64)?;
    }
    Ok(changes)
}

/// Run W5 against `conninfo` with `rows` rows and `reps` paired
/// repetitions. Creates (and drops) tables `w5_t` and `w5_p`.
///
/// # Errors
/// Connection or SQL errors (`pg_atomik` must be installable).
pub fn run(conninfo: &str, rows: i64, reps: usize) -> Result<W5PgReport> {
    let mut c = postgres::Client::connect(conninfo, postgres::NoTls)
        .with_context(|| format!("cannot connect to {conninfo}"))?;
    c.batch_execute(&format!(
        "CREATE EXTENSION IF NOT EXISTS pg_atomik;
         {UNTRACK}
         DROP TABLE IF EXISTS w5_t, w5_p;
         CREATE TABLE w5_t(id bigint PRIMARY KEY, c atomik);
         SELECT atomik_track('w5_t', 'c');
         INSERT INTO w5_t SELECT g, atomik_add(0) FROM generate_series(1, {rows}) g;
         SELECT atomik_seal();
         CREATE TABLE w5_p(id bigint PRIMARY KEY, n bigint NOT NULL);
         INSERT INTO w5_p SELECT g, 0 FROM generate_series(1, {rows}) g;"
    ))?;
    // One statement per call: VACUUM refuses to run in the implicit
    // transaction of a multi-statement simple query.
    c.batch_execute("VACUUM ANALYZE w5_t")?;
    c.batch_execute("VACUUM ANALYZE w5_p")?;
    let ids: Vec<i64> = (1..=rows).collect();
    let site: String = c.query_one("SELECT atomik_site_id()", &[])?.get(0);
    let site: SiteId = site.parse().map_err(anyhow::Error::msg)?;
    let deltas = changes(rows, 3)?;
    let mut pairs = vec![];
    let mut batch_bytes = 0;
    for rep in 0..=reps {
        let b = crate::w5::download(site, rep as u64, deltas.clone());
        batch_bytes = b.len();
        let values: Vec<i64> = vec![3 * (rep as i64 + 1); rows as usize];
        let t = Instant::now();
        let n: i64 = c.query_one("SELECT atomik_apply($1)", &[&b])?.get(0);
        let a = t.elapsed().as_secs_f64() * 1e3;
        ensure!(
            n == rows,
            "atomik_apply applied {n} deltas, expected {rows}"
        );
        let t = Instant::now();
        let m = c.execute(
            "UPDATE w5_p SET n = u.n FROM unnest($1::bigint[], $2::bigint[]) AS u(id, n)
             WHERE w5_p.id = u.id",
            &[&ids, &values],
        )?;
        let l = t.elapsed().as_secs_f64() * 1e3;
        ensure!(m == rows as u64, "UPDATE changed {m} rows, expected {rows}");
        c.batch_execute("VACUUM w5_t")?;
        c.batch_execute("VACUUM w5_p")?;
        if rep > 0 {
            pairs.push((l, a));
        }
    }
    let check: i64 = c
        .query_one(
            "SELECT count(*) FROM w5_t t JOIN w5_p p USING (id) WHERE atomik_read(t.c) <> p.n",
            &[],
        )?
        .get(0);
    ensure!(
        check == 0,
        "{check} rows differ between atomik and the baseline"
    );
    c.batch_execute(&format!("{UNTRACK} DROP TABLE w5_t, w5_p;"))?;
    let apply = Paired::new(
        "UPDATE w5_p SET n = u.n FROM unnest($1::bigint[], $2::bigint[]) u",
        "SELECT atomik_apply($1)",
        &pairs,
    );
    Ok(W5PgReport {
        rows,
        reps,
        apply_deltas_per_sec: rows as f64 / apply.atomik_ms.median * 1e3,
        apply,
        batch_bytes,
        baseline_payload_bytes: 16 * rows as usize,
    })
}
