//! # atomik-bench
//!
//! Benchmarks and side-by-side comparisons of atomik on the workloads of
//! `benches/README.md`, against what users would pick instead: full-state
//! sync, SQLite session-extension patchsets (feature `session`),
//! Automerge counters, and plain PostgreSQL counters.
//!
//! [`run`] measures every suite in one process, writes `bench.json` and
//! the plots into [`BenchConfig::out_dir`], and returns the [`BenchReport`].
//! Every figure is a side-by-side measurement or a ratio from the same run;
//! repeated timings are reported as medians with their spread. The
//! criterion micro-benchmarks of `atomik-core` are in `benches/core.rs`
//! (`cargo bench -p atomik-bench --bench core`).
//!
//! Suites: [`w1`] (bytes per tick), [`w2`] (retail inventory, four
//! systems, clean and duplicated delivery), [`density`] (bytes against the
//! fraction of cells changed), [`w5`] (SQLite bulk apply), and with a
//! PostgreSQL cluster [`w5pg`] and [`w3`] (pgbench hot counter).
//! [`cluster::with_throwaway_cluster`] starts a private cluster for them.
//! [`w7load`] (W7 concurrency: syncs per second through `atomik serve`
//! against bare-transaction and HTTP ceilings) runs only on its own
//! ([`run_w7load`]).
#![warn(missing_docs)]

pub mod cluster;
pub mod density;
pub mod plots;
pub mod push;
pub mod report;
pub mod stats;
pub mod w1;
pub mod w2;
pub mod w3;
pub mod w5;
pub mod w5pg;
pub mod w7;
pub mod w7load;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

pub use report::{Headline, Machine};
pub use stats::Spread;

/// What [`run`] measures and where it writes.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The long version (more ticks, repetitions and seconds per point);
    /// quick (the default) finishes in a few minutes.
    pub full: bool,
    /// Seed of every generated workload.
    pub seed: u64,
    /// Directory for `bench.json`, `bytes_vs_density.svg` and
    /// `tps_vs_clients.svg` (created if missing).
    pub out_dir: PathBuf,
    /// libpq conninfo of a PostgreSQL 15 cluster where `pg_atomik` can be
    /// created (and that allows 130 connections), for W3 and W5 in
    /// PostgreSQL; `None` skips them. See
    /// [`cluster::with_throwaway_cluster`].
    pub pg: Option<String>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            full: false,
            seed: 7,
            out_dir: PathBuf::from("bench-out"),
            pg: None,
        }
    }
}

/// Everything one [`run`] measured; serialized as `bench.json`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// atomik version.
    pub version: String,
    /// `quick` or `full`.
    pub mode: String,
    /// Workload seed.
    pub seed: u64,
    /// Start of the run, UTC.
    pub date: String,
    /// Commit of the working tree, if in a git checkout.
    pub commit: Option<String>,
    /// The machine.
    pub machine: Machine,
    /// Wall time of the whole run (s).
    pub seconds: f64,
    /// The headline ratios, every one from this run.
    pub headlines: Vec<Headline>,
    /// Suites not run, and why.
    pub skipped: Vec<String>,
    /// W1.
    pub w1: w1::W1Report,
    /// W2.
    pub w2: w2::W2Report,
    /// Bytes per sync against change density.
    pub density: density::DensityReport,
    /// W5 in SQLite.
    pub w5_sqlite: w5::W5SqliteReport,
    /// W5 in PostgreSQL, when measured.
    pub w5_postgres: Option<w5pg::W5PgReport>,
    /// W3, when measured.
    pub w3: Option<w3::W3Report>,
    /// W7 (the fleet), on SQLite and, when measured, PostgreSQL.
    pub w7: w7::W7Report,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// How much each suite measures.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// W1 ticks.
    pub w1_ticks: u64,
    /// W2 shape.
    pub w2: w2::W2Params,
    /// Counters of the density sweep.
    pub density_cells: usize,
    /// Fractions of the density sweep.
    pub density_fractions: Vec<f64>,
    /// W5 rows (and deltas).
    pub w5_rows: i64,
    /// W5 SQLite paired repetitions.
    pub w5_sqlite_reps: usize,
    /// W5 PostgreSQL paired repetitions.
    pub w5_pg_reps: usize,
    /// W3 seconds per pgbench point.
    pub w3_seconds: u32,
    /// W3 runs of every point.
    pub w3_reps: u32,
    /// W7 shape.
    pub w7: w7::W7Params,
}

impl Sizes {
    /// The workloads of benches/README.md; `full` repeats more and runs longer.
    pub fn standard(full: bool) -> Self {
        Sizes {
            w1_ticks: if full { 10_000 } else { 1_000 },
            w2: w2::W2Params::standard(),
            density_cells: 10_000,
            density_fractions: if full {
                vec![0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
            } else {
                density::FRACTIONS.to_vec()
            },
            w5_rows: 100_000,
            w5_sqlite_reps: if full { 15 } else { 5 },
            w5_pg_reps: if full { 9 } else { 3 },
            w3_seconds: if full { 15 } else { 3 },
            w3_reps: if full { 3 } else { 1 },
            w7: w7::W7Params::standard(full),
        }
    }
}

/// Run W7 alone (`atomik bench --only w7`): write `w7.json` into the
/// output directory and return the report.
///
/// # Errors
/// As [`w7::run`]; writing the file.
pub fn run_fleet(config: &BenchConfig, params: &w7::W7Params) -> Result<w7::W7Report> {
    std::fs::create_dir_all(&config.out_dir)
        .with_context(|| format!("cannot create {}", config.out_dir.display()))?;
    let r = w7::run(params, config.seed, config.pg.as_deref())?;
    report::write_json(&config.out_dir.join("w7.json"), &r)?;
    Ok(r)
}

/// Run W7 concurrency alone (`atomik bench --only w7load`) on the
/// PostgreSQL cluster of `config.pg`, with `atomik` (the `atomik` binary)
/// as `atomik serve`: write `w7load.json` into the output directory and
/// return the report.
///
/// # Errors
/// No PostgreSQL in `config`; as [`w7load::run`]; writing the file.
pub fn run_w7load(
    config: &BenchConfig,
    params: &w7load::W7LoadParams,
    atomik: &std::path::Path,
) -> Result<w7load::W7LoadReport> {
    let Some(conninfo) = config.pg.as_deref() else {
        anyhow::bail!("W7 concurrency needs a PostgreSQL cluster");
    };
    std::fs::create_dir_all(&config.out_dir)
        .with_context(|| format!("cannot create {}", config.out_dir.display()))?;
    let r = w7load::run(params, config.seed, conninfo, atomik)?;
    report::write_json(&config.out_dir.join("w7load.json"), &r)?;
    Ok(r)
}

/// Measure live push alone (`atomik bench --only push`): a SQLite hub and,
/// with `config.pg`, a PostgreSQL hub, behind `atomik` (the `atomik`
/// binary) as `atomik serve`; write `push.json` into the output directory
/// and return the report.
///
/// # Errors
/// As [`push::run`]; writing the file.
pub fn run_push(
    config: &BenchConfig,
    params: &push::PushParams,
    atomik: &std::path::Path,
) -> Result<push::PushReport> {
    std::fs::create_dir_all(&config.out_dir)
        .with_context(|| format!("cannot create {}", config.out_dir.display()))?;
    let r = push::run(params, config.seed, config.pg.as_deref(), atomik)?;
    report::write_json(&config.out_dir.join("push.json"), &r)?;
    Ok(r)
}

/// Run every suite, write `bench.json` and the plots, return the report.
///
/// # Errors
/// Failures of the local suites or of writing the output. A PostgreSQL
/// suite that fails is recorded in [`BenchReport::skipped`] instead.
pub fn run(config: &BenchConfig) -> Result<BenchReport> {
    run_sized(config, &Sizes::standard(config.full))
}

/// [`run`] with explicit sizes (small ones for tests).
///
/// # Errors
/// As [`run`].
pub fn run_sized(config: &BenchConfig, sizes: &Sizes) -> Result<BenchReport> {
    let start = Instant::now();
    let date = report::utc_now();
    std::fs::create_dir_all(&config.out_dir)
        .with_context(|| format!("cannot create {}", config.out_dir.display()))?;
    let seed = config.seed;
    let mut skipped = vec![];

    eprintln!("W1: bytes per tick");
    let w1 = w1::run(sizes.w1_ticks, seed);

    eprintln!("W2: retail inventory, 4 systems, clean and duplicated delivery");
    let w2 = w2::run(sizes.w2, seed)?;
    skipped.extend(w2.skipped.iter().cloned());

    eprintln!("density sweep");
    let density = density::run(sizes.density_cells, &sizes.density_fractions, seed)?;

    eprintln!("W5 SQLite: bulk apply and local writes");
    let w5_sqlite = w5::run(sizes.w5_rows, sizes.w5_sqlite_reps)?;

    let (mut w5_postgres, mut w3) = (None, None);
    match &config.pg {
        None => skipped.push("W3, W5 PostgreSQL: skipped: no PostgreSQL".to_string()),
        Some(conninfo) => {
            eprintln!("W5 PostgreSQL");
            match w5pg::run(conninfo, sizes.w5_rows, sizes.w5_pg_reps) {
                Ok(r) => w5_postgres = Some(r),
                Err(e) => skipped.push(format!("W5 PostgreSQL: failed: {e:#}")),
            }
            eprintln!("W3 PostgreSQL (pgbench)");
            match w3::run(
                conninfo,
                &w3::W3Params::standard(sizes.w3_seconds, sizes.w3_reps),
            ) {
                Ok(r) => w3 = Some(r),
                Err(e) => skipped.push(format!("W3: failed: {e:#}")),
            }
        }
    }

    eprintln!(
        "W7: the fleet (SQLite hub{})",
        if config.pg.is_some() {
            ", PostgreSQL hub"
        } else {
            ""
        }
    );
    let w7 = w7::run(&sizes.w7, seed, config.pg.as_deref())?;

    let mut files = vec![];
    let density_svg = config.out_dir.join("bytes_vs_density.svg");
    plots::bytes_vs_density(&density_svg, &density)?;
    files.push(density_svg);
    if let Some(w3) = &w3 {
        if w3.points.iter().any(|p| p.tps.is_some()) {
            let tps_svg = config.out_dir.join("tps_vs_clients.svg");
            plots::tps_vs_clients(&tps_svg, w3)?;
            files.push(tps_svg);
        } else {
            skipped.push("tps_vs_clients.svg: no W3 point was measured".to_string());
        }
    }
    let json = config.out_dir.join("bench.json");
    files.push(json.clone());
    let mut report = BenchReport {
        version: atomik_core::VERSION.to_string(),
        mode: if config.full { "full" } else { "quick" }.to_string(),
        seed,
        date,
        commit: report::git_commit(),
        machine: Machine::detect(),
        seconds: 0.0,
        headlines: vec![],
        skipped,
        w1,
        w2,
        density,
        w5_sqlite,
        w5_postgres,
        w3,
        w7,
        files,
    };
    report.headlines = headlines(&report);
    report.seconds = start.elapsed().as_secs_f64();
    report::write_json(&json, &report)?;
    Ok(report)
}

impl BenchReport {
    /// The headlines as a Markdown table, with the run's date, machine and
    /// commit above it (for a terminal summary or the README).
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "{} run of {}, commit {}, {} cores ({}), seed {}\n\n| suite | figure | value |\n|---|---|---|\n",
            self.mode,
            self.date,
            self.commit.as_deref().unwrap_or("unknown"),
            self.machine.cores,
            self.machine.cpu_model.as_deref().unwrap_or("unknown CPU"),
            self.seed,
        );
        for h in &self.headlines {
            out.push_str(&format!(
                "| {} | {} | {:.3} |\n",
                h.suite, h.figure, h.value
            ));
        }
        for s in &self.skipped {
            out.push_str(&format!("\nskipped: {s}"));
        }
        out
    }
}

/// The headline figures of a report, each a ratio from the same run.
pub fn headlines(r: &BenchReport) -> Vec<Headline> {
    let mut h = vec![
        Headline::new(
            "W1",
            "median tick bytes / 2,048 B full state",
            r.w1.ratio_to_full_state,
        ),
        Headline::new("W1", "median tick bytes / seed's 160 B", r.w1.ratio_to_seed),
    ];
    for (system, ratio) in &r.w2.bytes_vs_atomik {
        h.push(Headline::new(
            "W2",
            format!("{system} bytes / atomik bytes"),
            *ratio,
        ));
    }
    for (system, hub, client) in &r.w2.apply_time_vs_atomik {
        h.push(Headline::new(
            "W2",
            format!("{system} hub time per sync / atomik's"),
            *hub,
        ));
        h.push(Headline::new(
            "W2",
            format!("{system} client apply time per sync / atomik's"),
            *client,
        ));
    }
    for run in &r.w2.runs {
        let delivery = match run.delivery {
            w2::Delivery::Once => "clean delivery",
            w2::Delivery::Duplicated { .. } => "duplicated + late delivery",
        };
        h.push(Headline::new(
            "W2",
            format!("{} exact sums, {delivery} (1 yes, 0 no)", run.system),
            f64::from(u8::from(run.exact)),
        ));
    }
    for p in &r.density.points {
        let pct = p.fraction * 100.0;
        h.push(Headline::new(
            "density",
            format!("{pct}% changed: full-state bytes / atomik bytes"),
            p.full_state_over_atomik,
        ));
        h.push(Headline::new(
            "density",
            format!("{pct}% changed: Automerge bytes / atomik bytes"),
            p.automerge_over_atomik,
        ));
        if let Some(s) = p.session_over_atomik {
            h.push(Headline::new(
                "density",
                format!("{pct}% changed: session patchset bytes / atomik bytes"),
                s,
            ));
        }
    }
    h.push(Headline::new(
        "W5-sqlite",
        "atomik_apply time / prepared UPDATE loop time",
        r.w5_sqlite.apply.ratio.median,
    ));
    h.push(Headline::new(
        "W5-sqlite",
        "atomik_accum UPDATE time (first write since a seal) / n = n + 1 UPDATE time",
        r.w5_sqlite.local_write.ratio.median,
    ));
    h.push(Headline::new(
        "W5-sqlite",
        "atomik_accum UPDATE time (cells already pending) / n = n + 1 UPDATE time",
        r.w5_sqlite.local_write_repeated.ratio.median,
    ));
    for (hub, figure, ratio) in &r.w7.ratios {
        h.push(Headline::new(&format!("W7-{hub}"), figure.clone(), *ratio));
    }
    if let Some(pg) = &r.w5_postgres {
        h.push(Headline::new(
            "W5-pg",
            "atomik_apply time / UPDATE ... FROM time",
            pg.apply.ratio.median,
        ));
    }
    if let Some(w3) = &r.w3 {
        for (sync, clients, ratio) in &w3.atomik_over_plain_tps {
            h.push(Headline::new(
                "W3",
                format!("atomik_accum tps / plain UPDATE tps, {clients} clients, synchronous_commit {sync}"),
                *ratio,
            ));
        }
        // The time to read the counter, after the largest run: the delta
        // table must sum every row written.
        let read = |name: &str, sync: &str| {
            w3.points
                .iter()
                .filter(|p| p.variant == name && p.synchronous_commit == sync)
                .max_by_key(|p| p.clients)
                .and_then(|p| Some((p.clients, p.read_ms?.median)))
        };
        for sync in ["on", "off"] {
            for base in ["plain-update", "slotted-64", "append-delta"] {
                if let (Some((c, b)), Some((_, a))) = (read(base, sync), read("atomik-accum", sync))
                {
                    h.push(Headline::new(
                        "W3",
                        format!("{base} read time / atomik read time, after {c} clients, synchronous_commit {sync}"),
                        stats::ratio(b, a),
                    ));
                }
            }
        }
        // The lock-free deferred path against the row lock, the
        // hand-written delta table, and the physical ceiling (a bare
        // INSERT per transaction).
        let tps = |name: &str, sync: &str, c: u32| {
            w3.points
                .iter()
                .find(|p| p.variant == name && p.synchronous_commit == sync && p.clients == c)
                .and_then(|p| p.tps)
        };
        for sync in ["on", "off"] {
            let mut clients: Vec<u32> = w3.points.iter().map(|p| p.clients).collect();
            clients.sort_unstable();
            clients.dedup();
            for c in clients {
                let Some(deferred) = tps("atomik-deferred", sync, c) else {
                    continue;
                };
                for (base, label) in [
                    ("plain-update", "plain UPDATE"),
                    ("append-delta", "append-only delta table"),
                    ("bare-insert", "bare INSERT (ceiling)"),
                ] {
                    if let Some(b) = tps(base, sync, c) {
                        h.push(Headline::new(
                            "W3",
                            format!("atomik_defer tps / {label} tps, {c} clients, synchronous_commit {sync}"),
                            stats::ratio(deferred, b),
                        ));
                    }
                }
            }
        }
        for (sync, clients, ratio) in &w3.atomik_over_plain_p99 {
            h.push(Headline::new(
                "W3",
                format!("atomik_accum p99 / plain UPDATE p99, {clients} clients, synchronous_commit {sync}"),
                *ratio,
            ));
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_json_and_plot() {
        let dir = tempfile::tempdir().unwrap();
        let config = BenchConfig {
            out_dir: dir.path().join("out"),
            ..BenchConfig::default()
        };
        let sizes = Sizes {
            w1_ticks: 20,
            w2: w2::W2Params {
                skus: 100,
                clients: 2,
                rounds: 2,
                sales: 20,
                restocks: 2,
            },
            density_cells: 200,
            density_fractions: vec![0.01, 1.0],
            w5_rows: 200,
            w5_sqlite_reps: 2,
            w5_pg_reps: 1,
            w3_seconds: 1,
            w3_reps: 1,
            w7: w7::W7Params {
                skus: 100,
                fleets: vec![5, 20],
                rounds: 1,
                sales: 3,
                silent: 0.1,
                full_devices: 2,
                sqlite_hub: true,
            },
        };
        let r = run_sized(&config, &sizes).unwrap();
        assert!(r
            .skipped
            .iter()
            .any(|s| s.contains("skipped: no PostgreSQL")));
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(config.out_dir.join("bench.json")).unwrap(),
        )
        .unwrap();
        for key in [
            "w1",
            "w2",
            "density",
            "w5_sqlite",
            "w7",
            "headlines",
            "machine",
            "date",
        ] {
            assert!(!json[key].is_null(), "{key} missing");
        }
        assert!(json["w3"].is_null() && json["w5_postgres"].is_null());
        assert!(json["headlines"][0]["value"].is_number());
        assert!(r
            .markdown()
            .contains("| W1 | median tick bytes / 2,048 B full state |"));
        let svg = std::fs::read_to_string(config.out_dir.join("bytes_vs_density.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("atomik"));
    }
}
