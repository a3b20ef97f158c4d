//! W3 — the hot counter in PostgreSQL, driven by pgbench: one row
//! incremented by N concurrent clients, with the baselines of benches/README.md
//! in the same run, synchronous commit on and off; tps, latency
//! percentiles from pgbench's per-transaction log, the time to read the
//! counter, and a check that the counter equals the committed transactions.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::stats::{percentile, ratio, Spread};

/// One way of keeping the hot counter: how to set it up, the pgbench
/// script of one increment, and the query that reads the counter.
/// Add a variant by adding an entry to [`variants`].
#[derive(Debug, Clone)]
pub struct Variant {
    /// Name in the report.
    pub name: &'static str,
    /// SQL that (re)creates the table, run before every measured point.
    pub setup: &'static str,
    /// The pgbench script of one transaction.
    pub script: &'static str,
    /// SQL returning the counter's value as `bigint`.
    pub read: &'static str,
}

/// The W3 variants: plain `UPDATE` of one row, 64 slotted rows, an
/// append-only delta table, and `atomik_accum` on one tracked row.
pub fn variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "plain-update",
            setup: "DROP TABLE IF EXISTS w3_plain;
                    CREATE TABLE w3_plain(id int PRIMARY KEY, n bigint NOT NULL);
                    INSERT INTO w3_plain VALUES (1, 0);",
            script: "UPDATE w3_plain SET n = n + 1 WHERE id = 1;\n",
            read: "SELECT n FROM w3_plain WHERE id = 1",
        },
        Variant {
            name: "slotted-64",
            setup: "DROP TABLE IF EXISTS w3_slots;
                    CREATE TABLE w3_slots(id int PRIMARY KEY, n bigint NOT NULL);
                    INSERT INTO w3_slots SELECT g, 0 FROM generate_series(1, 64) g;",
            script: "\\set slot random(1, 64)\nUPDATE w3_slots SET n = n + 1 WHERE id = :slot;\n",
            read: "SELECT sum(n)::bigint FROM w3_slots",
        },
        Variant {
            name: "append-delta",
            setup: "DROP TABLE IF EXISTS w3_deltas;
                    CREATE TABLE w3_deltas(d bigint NOT NULL);",
            script: "INSERT INTO w3_deltas(d) VALUES (1);\n",
            read: "SELECT coalesce(sum(d), 0)::bigint FROM w3_deltas",
        },
        Variant {
            name: "atomik-accum",
            setup: "CREATE EXTENSION IF NOT EXISTS pg_atomik;
                    SELECT atomik_untrack(t.table_name, t.column_name) FROM atomik.tracked t
                     WHERE t.table_name = 'w3_atomik' AND to_regclass('w3_atomik') IS NOT NULL;
                    DROP TABLE IF EXISTS w3_atomik;
                    CREATE TABLE w3_atomik(id int PRIMARY KEY, c atomik NOT NULL);
                    SELECT atomik_track('w3_atomik', 'c');
                    INSERT INTO w3_atomik VALUES (1, atomik_add(0));",
            script: "UPDATE w3_atomik SET c = atomik_accum(c, 1) WHERE id = 1;\n",
            read: "SELECT atomik_read(c) FROM w3_atomik WHERE id = 1",
        },
        // pg_atomik 0.2.0's lock-free path: the delta goes to the deferred
        // buffer, the background worker folds it (the throwaway cluster
        // preloads pg_atomik so that the worker runs), reads add what is
        // pending.
        Variant {
            name: "atomik-deferred",
            setup: "CREATE EXTENSION IF NOT EXISTS pg_atomik;
                    SELECT atomik_untrack(t.table_name, t.column_name) FROM atomik.tracked t
                     WHERE t.table_name = 'w3_deferred' AND to_regclass('w3_deferred') IS NOT NULL;
                    DROP TABLE IF EXISTS w3_deferred;
                    CREATE TABLE w3_deferred(id int PRIMARY KEY, c atomik NOT NULL);
                    SELECT atomik_track('w3_deferred', 'c');
                    INSERT INTO w3_deferred VALUES (1, atomik_add(0));
                    SELECT atomik_seal();",
            script: "SELECT atomik_defer('w3_deferred', 'c', 1, 1);\n",
            read: "SELECT atomik_live('w3_deferred', 'c', 1)",
        },
        // The physical ceiling: one bare row INSERT per transaction into an
        // unindexed table; its count is the counter.
        Variant {
            name: "bare-insert",
            setup: "DROP TABLE IF EXISTS w3_bare;
                    CREATE TABLE w3_bare(v int);",
            script: "INSERT INTO w3_bare VALUES (1);\n",
            read: "SELECT count(*) FROM w3_bare",
        },
    ]
}

/// What one W3 run measures.
#[derive(Debug, Clone)]
pub struct W3Params {
    /// pgbench client counts.
    pub clients: Vec<u32>,
    /// Seconds per point.
    pub seconds: u32,
    /// Runs of every point, interleaved (all points, then all again).
    pub reps: u32,
    /// Variants to run.
    pub variants: Vec<Variant>,
}

impl W3Params {
    /// 1, 4, 16, 64, 128 clients, every variant, `seconds` per point,
    /// `reps` runs of each.
    pub fn standard(seconds: u32, reps: u32) -> Self {
        W3Params {
            clients: vec![1, 4, 16, 64, 128],
            seconds,
            reps: reps.max(1),
            variants: variants(),
        }
    }
}

/// One measured point.
#[derive(Debug, Clone, Serialize)]
pub struct W3Point {
    /// Variant name.
    pub variant: String,
    /// `on` or `off`.
    pub synchronous_commit: String,
    /// pgbench clients.
    pub clients: u32,
    /// Transactions per second (pgbench, without connection time): the
    /// median over the repetitions.
    pub tps: Option<f64>,
    /// Transactions per second of every repetition.
    pub tps_spread: Option<Spread>,
    /// Median latency (ms) from the per-transaction logs of every
    /// repetition.
    pub p50_ms: Option<f64>,
    /// 99th-percentile latency (ms), likewise.
    pub p99_ms: Option<f64>,
    /// Transactions committed (log lines with a latency).
    pub transactions: u64,
    /// Time to read the counter afterwards (ms, over 5 reads).
    pub read_ms: Option<Spread>,
    /// The counter equals the committed transactions (every repetition).
    pub counter_matches: Option<bool>,
    /// What went wrong, if a repetition could not be measured.
    pub error: Option<String>,
}

/// What one pgbench run of one point gave.
#[derive(Debug, Clone)]
struct Raw {
    tps: Option<f64>,
    latencies_ms: Vec<f64>,
    reads_ms: Vec<f64>,
    counter_matches: bool,
}

impl W3Point {
    fn aggregate(v: &Variant, sync: &str, clients: u32, runs: &[Result<Raw, String>]) -> Self {
        let ok: Vec<&Raw> = runs.iter().filter_map(|r| r.as_ref().ok()).collect();
        let tps: Vec<f64> = ok.iter().filter_map(|r| r.tps).collect();
        let mut lat: Vec<f64> = ok
            .iter()
            .flat_map(|r| r.latencies_ms.iter().copied())
            .collect();
        lat.sort_by(f64::total_cmp);
        let reads: Vec<f64> = ok.iter().flat_map(|r| r.reads_ms.iter().copied()).collect();
        let errors: Vec<&str> = runs
            .iter()
            .filter_map(|r| r.as_ref().err().map(String::as_str))
            .collect();
        W3Point {
            variant: v.name.to_string(),
            synchronous_commit: sync.to_string(),
            clients,
            tps: (!tps.is_empty()).then(|| Spread::of(&tps).median),
            tps_spread: (!tps.is_empty()).then(|| Spread::of(&tps)),
            p50_ms: (!lat.is_empty()).then(|| percentile(&lat, 50.0)),
            p99_ms: (!lat.is_empty()).then(|| percentile(&lat, 99.0)),
            transactions: lat.len() as u64,
            read_ms: (!reads.is_empty()).then(|| Spread::of(&reads)),
            counter_matches: (!ok.is_empty()).then(|| ok.iter().all(|r| r.counter_matches)),
            error: (!errors.is_empty()).then(|| errors.join("; ")),
        }
    }
}

/// W3 results.
#[derive(Debug, Clone, Serialize)]
pub struct W3Report {
    /// Seconds per point.
    pub seconds: u32,
    /// Every point.
    pub points: Vec<W3Point>,
    /// Per (synchronous_commit, clients): atomik-accum tps / plain-update tps.
    pub atomik_over_plain_tps: Vec<(String, u32, f64)>,
    /// Per (synchronous_commit, clients): atomik-accum p99 / plain-update p99.
    pub atomik_over_plain_p99: Vec<(String, u32, f64)>,
}

/// Latencies (ms) of the successful transactions in pgbench `--log` files:
/// the third field of each line is the latency in microseconds (failed or
/// skipped transactions say otherwise and are left out).
pub fn log_latencies_ms(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(2)?.parse::<f64>().ok())
        .map(|us| us / 1000.0)
        .collect()
}

/// The `tps = ...` figure of pgbench's summary.
pub fn parse_tps(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .find(|l| l.starts_with("tps = "))?
        .trim_start_matches("tps = ")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn pgbench() -> PathBuf {
    crate::cluster::pg_config_value("bindir")
        .map(|b| b.join("pgbench"))
        .ok()
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("pgbench"))
}

fn run_point(
    conninfo: &str,
    v: &Variant,
    sync: &str,
    clients: u32,
    seconds: u32,
    dir: &Path,
) -> Result<Raw> {
    // A fresh session per point: a point whose server session died (or a
    // server restarted after a crash) does not take the next ones with it.
    let mut client = postgres::Client::connect(conninfo, postgres::NoTls)
        .with_context(|| format!("cannot connect to {conninfo}"))?;
    client.batch_execute(v.setup)?;
    client.batch_execute("CHECKPOINT")?;
    let script = dir.join(format!("{}.sql", v.name));
    std::fs::write(&script, v.script)?;
    let prefix = dir.join(format!("log_{}_{sync}_{clients}", v.name));
    let threads = clients.min(4);
    let out = Command::new(pgbench())
        .env("PGOPTIONS", format!("-c synchronous_commit={sync}"))
        .args(["-n", "-M", "prepared"])
        .arg(format!("-c{clients}"))
        .arg(format!("-j{threads}"))
        .arg(format!("-T{seconds}"))
        .arg("-f")
        .arg(&script)
        .arg("--log")
        .arg(format!("--log-prefix={}", prefix.display()))
        .arg(conninfo)
        .output()
        .context("cannot run pgbench")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut lat = vec![];
    let stem = prefix
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_name()
            .to_string_lossy()
            .starts_with(&format!("{stem}."))
        {
            lat.extend(log_latencies_ms(&std::fs::read_to_string(e.path())?));
            std::fs::remove_file(e.path())?;
        }
    }
    let mut reads = vec![];
    let mut value = 0i64;
    for _ in 0..5 {
        let t = Instant::now();
        value = client.query_one(v.read, &[])?.get(0);
        reads.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Raw {
        tps: parse_tps(&stdout),
        counter_matches: value == lat.len() as i64,
        latencies_ms: lat,
        reads_ms: reads,
    })
}

/// Run W3 against the cluster at `conninfo` (which must allow
/// `max(clients) + 2` connections and have `pg_atomik` installable). A
/// point that fails is reported with its error; the others still run.
///
/// # Errors
/// When the database cannot be reached at all.
pub fn run(conninfo: &str, params: &W3Params) -> Result<W3Report> {
    // Fail early when the database cannot be reached at all.
    postgres::Client::connect(conninfo, postgres::NoTls)
        .with_context(|| format!("cannot connect to {conninfo}"))?;
    let dir = tempfile::tempdir()?;
    let mut keys = vec![];
    for sync in ["on", "off"] {
        for &clients in &params.clients {
            for v in &params.variants {
                keys.push((sync, clients, v));
            }
        }
    }
    let mut raws: Vec<Vec<Result<Raw, String>>> = vec![vec![]; keys.len()];
    for rep in 0..params.reps {
        for (i, &(sync, clients, v)) in keys.iter().enumerate() {
            let r = run_point(conninfo, v, sync, clients, params.seconds, dir.path())
                .map_err(|e| format!("{e:#}"));
            eprintln!(
                "  W3 {:13} sync={sync:3} clients={clients:3} run {}/{}: {}",
                v.name,
                rep + 1,
                params.reps,
                match &r {
                    Ok(raw) => format!("tps {}", raw.tps.map_or("-".into(), |t| format!("{t:.0}"))),
                    Err(e) => format!("failed ({e})"),
                }
            );
            raws[i].push(r);
        }
    }
    let points: Vec<W3Point> = keys
        .iter()
        .zip(&raws)
        .map(|(&(sync, clients, v), runs)| W3Point::aggregate(v, sync, clients, runs))
        .collect();
    let point = |name: &str, sync: &str, c: u32| {
        points
            .iter()
            .find(|p| p.variant == name && p.synchronous_commit == sync && p.clients == c)
    };
    let (mut atomik_over_plain_tps, mut atomik_over_plain_p99) = (vec![], vec![]);
    for sync in ["on", "off"] {
        for &c in &params.clients {
            let (Some(a), Some(p)) = (
                point("atomik-accum", sync, c),
                point("plain-update", sync, c),
            ) else {
                continue;
            };
            if let (Some(a), Some(p)) = (a.tps, p.tps) {
                atomik_over_plain_tps.push((sync.to_string(), c, ratio(a, p)));
            }
            if let (Some(a), Some(p)) = (a.p99_ms, p.p99_ms) {
                atomik_over_plain_p99.push((sync.to_string(), c, ratio(a, p)));
            }
        }
    }
    Ok(W3Report {
        seconds: params.seconds,
        points,
        atomik_over_plain_tps,
        atomik_over_plain_p99,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p99_from_a_pgbench_log() {
        // client_id transaction_no time(us) script_no time_epoch time_us
        let mut log = String::new();
        for i in 1..=200u32 {
            log.push_str(&format!("{} {} {} 0 1700000000 {}\n", i % 4, i, i * 100, i));
        }
        log.push_str("3 201 failed 0 1700000001 5\n");
        let mut lat = log_latencies_ms(&log);
        assert_eq!(lat.len(), 200);
        lat.sort_by(f64::total_cmp);
        // 99% of 200 = rank 198: 198 × 100 µs.
        assert_eq!(percentile(&lat, 99.0), 19.8);
        assert_eq!(percentile(&lat, 50.0), 10.0);
    }

    #[test]
    fn tps_from_pgbench_summary() {
        let out = "latency average = 1.2 ms\ninitial connection time = 3.1 ms\n\
                   tps = 812.345678 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(812.345678));
        assert_eq!(parse_tps("nothing"), None);
    }

    #[test]
    fn repetitions_are_pooled() {
        let v = &variants()[0];
        let raw = |tps: f64, lat: &[f64]| Raw {
            tps: Some(tps),
            latencies_ms: lat.to_vec(),
            reads_ms: vec![0.1],
            counter_matches: true,
        };
        let runs = vec![
            Ok(raw(100.0, &[1.0, 2.0])),
            Ok(raw(300.0, &[3.0, 4.0])),
            Ok(raw(200.0, &[5.0])),
            Err("pgbench failed".to_string()),
        ];
        let p = W3Point::aggregate(v, "on", 4, &runs);
        assert_eq!(p.tps, Some(200.0));
        assert_eq!(p.tps_spread.unwrap().n, 3);
        assert_eq!(p.transactions, 5);
        assert_eq!(p.p99_ms, Some(5.0));
        assert_eq!(p.p50_ms, Some(3.0));
        assert_eq!(p.counter_matches, Some(true));
        assert_eq!(p.error.as_deref(), Some("pgbench failed"));
    }

    #[test]
    fn variants_are_complete() {
        let names: Vec<_> = variants().iter().map(|v| v.name).collect();
        assert_eq!(
            names,
            [
                "plain-update",
                "slotted-64",
                "append-delta",
                "atomik-accum",
                "atomik-deferred",
                "bare-insert"
            ]
        );
    }
}
