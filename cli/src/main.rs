//! The `atomik` command.

mod demo;
mod hub;
mod inspect;
mod replica;
mod serve;
mod token;

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};

use hub::HubUrl;
use replica::{MemoryReplica, PgReplica, Replica, SqliteReplica};

/// atomik: delta-accumulated columns that converge across offline replicas.
#[derive(Debug, Parser)]
#[command(name = "atomik", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a fleet of offline field devices (each a real SQLite file)
    /// syncing inventory with a hub through a flaky link, and show that
    /// every replica converges.
    Demo(DemoArgs),
    /// Sync one device database with a hub, once.
    Sync(SyncArgs),
    /// Serve a hub database over HTTP or HTTPS (POST /sync, GET /health),
    /// with bearer-token authentication (--auth-key) and limits.
    Serve(serve::ServeArgs),
    /// Mint an HS256 device token from a shared secret (testing, dev).
    Token(token::TokenArgs),
    /// Print what a sync message holds: who sent it, which cursor, every
    /// cell and delta (a file of message bytes, or - for stdin).
    Inspect(inspect::InspectArgs),
    /// Measure atomik against full-state sync, SQLite session patchsets,
    /// Automerge counters and plain SQL (benches/README.md, W1–W5); write
    /// bench.json and SVG plots.
    Bench(BenchArgs),
    /// Workload W6: N random LOAD/ACCUM/READ operations on every offload
    /// engine backend and 1, 2, 4 and 8 banks; all final-state hashes must
    /// agree. Build with `--features sim` to include the simulated RTL.
    Abench(AbenchArgs),
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// The long version (more repetitions, 15 s per pgbench point).
    #[arg(long)]
    full: bool,
    /// Seed of every generated workload.
    #[arg(long, default_value_t = 7, value_parser = parse_u64)]
    seed: u64,
    /// Where to write bench.json and the plots.
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// libpq conninfo of an existing PostgreSQL 15 cluster with pg_atomik
    /// installed, for W3 and W5 in PostgreSQL. Default: start a throwaway
    /// cluster (as the tests do) when pg_atomik is installed.
    #[arg(long, conflicts_with = "no_pg")]
    pg: Option<String>,
    /// Skip the PostgreSQL suites.
    #[arg(long)]
    no_pg: bool,
    /// With `--only w7`: run on the PostgreSQL hub only.
    #[arg(long, requires = "only", conflicts_with = "no_pg")]
    no_sqlite: bool,
    /// Port of the throwaway cluster.
    #[arg(long, default_value_t = 55470)]
    cluster_port: u16,
    /// Run only this suite and write its JSON: `w7` (the fleet), `w7load`
    /// (W7 concurrency through `atomik serve` on PostgreSQL) or `push`
    /// (live push: GET /watch against polling, through `atomik serve`).
    #[arg(long, value_parser = ["w7", "w7load", "push"])]
    only: Option<String>,
    /// With `--only push`: changes measured each way (default 200; 1,000
    /// watched and 400 polled with --full).
    #[arg(long, requires = "only")]
    changes: Option<usize>,
    /// With `--only w7`: the fleet sizes (default 10,1000; 10,100,1000,10000 with --full).
    #[arg(long, value_delimiter = ',', requires = "only")]
    fleet: Option<Vec<usize>>,
    /// With `--only w7`: SKUs in the hub's table (default 10,000; 100,000 with --full;
    /// with `--only w7load` 10,000).
    #[arg(long, requires = "only")]
    skus: Option<i64>,
    /// With `--only w7load`: devices syncing at once (default 1,16,64).
    #[arg(long, value_delimiter = ',', requires = "only")]
    concurrency: Option<Vec<usize>>,
    /// With `--only w7load`: seconds of each run (default 3; 10 with --full).
    #[arg(long, requires = "only")]
    seconds: Option<f64>,
    /// With `--only w7load`: runs of every (concurrency, kind) (default 3).
    #[arg(long, requires = "only")]
    repeats: Option<usize>,
    /// With `--only w7load`: leave out the HTTP-only ceiling (GET /health).
    #[arg(long, requires = "only")]
    no_http_ceiling: bool,
}

#[derive(Debug, clap::Args)]
struct AbenchArgs {
    /// Number of operations.
    n: u64,
    /// Seed (decimal or 0x-hex).
    seed: String,
}

#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// Seed of every random choice (decimal or 0x-hex).
    #[arg(long, default_value = "0xA70311C", value_parser = parse_u64)]
    seed: u64,
    /// Number of field devices.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=1000))]
    devices: u64,
    /// Rounds of offline work and reconnection.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    rounds: u64,
    /// Number of SKUs.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    skus: u64,
    /// Fraction of messages the link drops.
    #[arg(long, default_value_t = 0.1)]
    drop: f64,
    /// Fraction of messages the link duplicates.
    #[arg(long, default_value_t = 0.1)]
    duplicate: f64,
    /// The hub: `sqlite` (an embedded SQLite hub file, the default) or a
    /// `postgres://` URL of a database where pg_atomik can be created.
    #[arg(long, default_value = "sqlite")]
    hub: String,
    /// Keep the device and hub databases in this folder (default: a
    /// temporary folder, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep replicas in memory (atomik-core's reference store) instead of
    /// SQLite files.
    #[arg(long)]
    memory: bool,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct SyncArgs {
    /// The device database (SQLite) to sync.
    #[arg(long)]
    db: PathBuf,
    /// The hub: an SQLite path (or sqlite:PATH), postgres://…, or the
    /// http://… or https://… address of `atomik serve`.
    #[arg(long)]
    hub: String,
    /// A file holding the device's bearer token (a JWT from the app's
    /// backend, or `atomik token`), for a hub with --auth-key.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Trust only the certificates of this PEM file for an https:// hub
    /// (a private CA or a self-signed hub); default: the public web PKI.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Stay online: after the sync, hold a watch on the hub (GET /watch of
    /// `atomik serve`) and sync again each time its log moves past this
    /// device's cursor, until interrupted.
    #[arg(long)]
    watch: bool,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("\"{s}\" is not a 64-bit number (decimal or 0x-hex)"))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => run_demo(&args),
        Command::Sync(args) => run_sync(&args),
        Command::Serve(args) => args.run(),
        Command::Token(args) => args.run(),
        Command::Inspect(args) => args.run(),
        Command::Bench(args) => run_bench(&args),
        Command::Abench(args) => run_abench(&args),
    }
}

fn run_bench(args: &BenchArgs) -> Result<()> {
    use atomik_bench::{cluster, run, BenchConfig};
    let config = BenchConfig {
        full: args.full,
        seed: args.seed,
        out_dir: args.out.clone(),
        pg: args.pg.clone(),
    };
    match args.only.as_deref() {
        Some("w7load") => return run_w7load_bench(args, &config),
        Some("push") => return run_push_bench(args, &config),
        Some(_) => return run_fleet_bench(args, &config),
        None => {}
    }
    let report = if args.no_pg || args.pg.is_some() {
        run(&config)?
    } else if let Err(why) = cluster::check_pg_atomik_installed() {
        eprintln!("atomik bench: no PostgreSQL suites ({why:#})");
        run(&config)?
    } else {
        eprintln!(
            "atomik bench: starting a throwaway PostgreSQL cluster on port {} for W3 and W5",
            args.cluster_port
        );
        cluster::with_throwaway_cluster(args.cluster_port, |conninfo| {
            run(&BenchConfig {
                pg: Some(conninfo.to_string()),
                ..config.clone()
            })
        })?
    };
    println!("{}", report.markdown());
    for file in &report.files {
        println!("wrote {}", file.display());
    }
    Ok(())
}

/// Run `suite` on `--pg`'s cluster, or on a throwaway cluster when none is
/// given and pg_atomik is installed, or without PostgreSQL (`--no-pg`, or
/// pg_atomik not installed).
fn with_pg_when_possible<T>(
    args: &BenchArgs,
    config: &atomik_bench::BenchConfig,
    suite: impl FnOnce(&atomik_bench::BenchConfig) -> Result<T>,
) -> Result<T> {
    use atomik_bench::{cluster, BenchConfig};
    if args.no_pg || args.pg.is_some() || cluster::check_pg_atomik_installed().is_err() {
        return suite(config);
    }
    cluster::with_throwaway_cluster(args.cluster_port, |conninfo| {
        suite(&BenchConfig {
            pg: Some(conninfo.to_string()),
            ..config.clone()
        })
    })
}

/// `atomik bench --only w7`: the fleet suite on SQLite and, when it can,
/// PostgreSQL; prints one line per (hub, N) and the ratios.
fn run_fleet_bench(args: &BenchArgs, config: &atomik_bench::BenchConfig) -> Result<()> {
    use atomik_bench::{cluster, run_fleet, w7::W7Params};
    let mut params = W7Params::standard(args.full);
    if let Some(fleet) = &args.fleet {
        params.fleets = fleet.clone();
    }
    if let Some(skus) = args.skus {
        params.skus = skus;
    }
    params.sqlite_hub = !args.no_sqlite;
    if args.no_sqlite && args.pg.is_none() {
        cluster::check_pg_atomik_installed()?;
    }
    let report = with_pg_when_possible(args, config, |config| run_fleet(config, &params))?;
    println!("| hub | N | syncs | bytes up | bytes down | envelope up / down | cells down | hub ms mean / p90 | hub µs per cell | device ms | log / registry |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for p in &report.points {
        println!(
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} / {:.0} | {:.0} | {:.2} / {:.2} | {:.2} | {:.2} | {} / {} |",
            p.hub,
            p.devices,
            p.syncs,
            p.bytes_up.median,
            p.bytes_down.median,
            p.envelope_up.median,
            p.envelope_down.median,
            p.cells_down.median,
            p.hub_ms_mean,
            p.hub_ms.p90,
            p.hub_us_per_cell.median,
            p.device_ms.median,
            p.log_entries,
            p.registry_entries
        );
    }
    for (hub, figure, ratio) in &report.ratios {
        println!("{hub}: {figure}: {ratio:.2}");
    }
    println!("wrote {}", config.out_dir.join("w7.json").display());
    Ok(())
}

/// `atomik bench --only push`: live push through `atomik serve` on a
/// SQLite hub and, when it can, a PostgreSQL hub (`--pg`, or a throwaway
/// cluster); prints the table and writes push.json.
fn run_push_bench(args: &BenchArgs, config: &atomik_bench::BenchConfig) -> Result<()> {
    use atomik_bench::{push::PushParams, run_push};
    let mut params = PushParams::standard(args.full);
    if let Some(n) = args.changes {
        if n == 0 {
            bail!("--changes must be at least 1");
        }
        params.changes = n;
        params.poll_changes = n;
    }
    let atomik = std::env::current_exe()?;
    let report = with_pg_when_possible(args, config, |config| run_push(config, &params, &atomik))?;
    println!("| hub | device | changes | median ms | p90 ms | p99 ms | max ms | device syncs | watches |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for h in &report.hubs {
        for l in [&h.watch, &h.poll] {
            println!(
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
                h.hub,
                l.mode,
                l.changes,
                l.median_ms,
                l.p90_ms,
                l.p99_ms,
                l.max_ms,
                l.watcher_syncs,
                l.watches
            );
        }
    }
    for h in &report.hubs {
        println!("{}: median watch / poll: {:.3}", h.hub, h.median_ratio);
    }
    println!("wrote {}", config.out_dir.join("push.json").display());
    Ok(())
}

/// `atomik bench --only w7load`: W7 concurrency on PostgreSQL (`--pg`, or
/// a throwaway cluster), this binary serving as `atomik serve`; prints the
/// table and writes w7load.json.
fn run_w7load_bench(args: &BenchArgs, config: &atomik_bench::BenchConfig) -> Result<()> {
    use atomik_bench::{cluster, run_w7load, w7load::W7LoadParams, BenchConfig};
    if args.no_pg {
        bail!("--only w7load measures a PostgreSQL hub: drop --no-pg");
    }
    let mut params = W7LoadParams::standard(args.full);
    if let Some(levels) = &args.concurrency {
        params.levels = levels.clone();
    }
    if let Some(seconds) = args.seconds {
        if !(seconds > 0.0 && seconds <= 3600.0) {
            bail!("--seconds must be in (0, 3600], got {seconds}");
        }
        params.seconds = seconds;
    }
    if let Some(repeats) = args.repeats {
        params.repeats = repeats;
    }
    if let Some(skus) = args.skus {
        params.skus = skus;
    }
    params.http_ceiling = !args.no_http_ceiling;
    let atomik = std::env::current_exe()?;
    let report = if args.pg.is_some() {
        run_w7load(config, &params, &atomik)?
    } else {
        eprintln!(
            "atomik bench: starting a throwaway PostgreSQL cluster on port {} for W7 concurrency",
            args.cluster_port
        );
        cluster::with_throwaway_cluster(args.cluster_port, |conninfo| {
            run_w7load(
                &BenchConfig {
                    pg: Some(conninfo.to_string()),
                    ..config.clone()
                },
                &params,
                &atomik,
            )
        })?
    };
    let spread = |s: &atomik_bench::Spread| format!("{:.0} ({:.0}–{:.0})", s.median, s.min, s.max);
    println!(
        "W7 concurrency: pg_atomik {}, {} s × {} runs per point, {} sales per sync, {} SKUs, pool {}, {} cores",
        report.pg_atomik_version,
        params.seconds,
        params.repeats,
        params.sales,
        params.skus,
        report.serve_pool,
        report.machine.cores
    );
    println!();
    println!(
        "| concurrency | syncs/s (median, min–max) | p50 ms | p99 ms | ceiling tx/s | ratio |"
    );
    println!("|---|---|---|---|---|---|");
    for l in &report.levels {
        println!(
            "| {} | {} | {:.2} | {:.2} | {} | {:.3} |",
            l.concurrency,
            spread(&l.sync.per_s),
            l.sync.p50_ms,
            l.sync.p99_ms,
            spread(&l.ceiling.per_s),
            l.sync_over_ceiling
        );
    }
    println!();
    println!("| concurrency | GET /health/s | syncs/s ÷ /health/s | ceiling p50 / p99 ms | bytes up / down per sync | cores during syncs: clients / serve / PostgreSQL / other | failed syncs |");
    println!("|---|---|---|---|---|---|---|");
    for l in &report.levels {
        let cpu = l.sync.cpu.map_or("?".to_string(), |c| {
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2}",
                c.clients, c.serve, c.postgres, c.other
            )
        });
        println!(
            "| {} | {} | {} | {:.2} / {:.2} | {:.0} / {:.0} | {cpu} | {} |",
            l.concurrency,
            l.http
                .as_ref()
                .map_or("-".to_string(), |h| spread(&h.per_s)),
            l.sync_over_http
                .map_or("-".to_string(), |r| format!("{r:.3}")),
            l.ceiling.p50_ms,
            l.ceiling.p99_ms,
            l.bytes_up,
            l.bytes_down,
            l.sync.failed
        );
    }
    println!(
        "\noracle: {} syncs, {} sales; hub values exact: {}",
        report.syncs, report.sales, report.exact
    );
    println!("wrote {}", config.out_dir.join("w7load.json").display());
    Ok(())
}

fn run_abench(args: &AbenchArgs) -> Result<()> {
    let seed = atomik_offload::abench::parse_seed(&args.seed)?;
    let report = atomik_offload::abench::run_all(args.n, seed);
    print!("{report}");
    if !report.is_ok() {
        bail!("abench: the backends disagree");
    }
    Ok(())
}

fn run_demo(args: &DemoArgs) -> Result<()> {
    for (name, p) in [("--drop", args.drop), ("--duplicate", args.duplicate)] {
        if !(0.0..=0.9).contains(&p) {
            bail!("{name} must be between 0 and 0.9, got {p}");
        }
    }
    let config = demo::DemoConfig {
        seed: args.seed,
        devices: args.devices as usize,
        rounds: args.rounds as usize,
        skus: args.skus as usize,
        sales: 500,
        restocks: 50,
        faults: demo::LinkFaults {
            drop: args.drop,
            duplicate: args.duplicate,
            reorder: 0.2,
        },
        progress: !args.json,
    };
    let report = if args.memory {
        demo::run(&config, "in memory (atomik-core)", |_| MemoryReplica::new())?
    } else {
        let scratch = tempfile::tempdir()?;
        let dir = match &args.dir {
            Some(d) => {
                std::fs::create_dir_all(d)?;
                d.clone()
            }
            None => scratch.path().to_path_buf(),
        };
        for i in 0..=config.devices {
            let _ = std::fs::remove_file(dir.join(db_name(i)));
        }
        let device_files = |i: usize| SqliteReplica::open(&dir.join(db_name(i)));
        if args.hub == "sqlite" {
            let hub_name = format!("embedded SQLite ({})", dir.join(db_name(0)).display());
            demo::run(&config, &hub_name, |i| {
                device_files(i).map(Box::new).map(|b| b as Box<dyn Replica>)
            })?
        } else if let HubUrl::Postgres(url) = HubUrl::parse(&args.hub)? {
            let mut hub = Some(PgReplica::connect_for_demo(&url)?);
            let hub_name = format!("PostgreSQL ({url})");
            demo::run(&config, &hub_name, |i| -> Result<Box<dyn Replica>> {
                match (i, hub.take()) {
                    (0, Some(h)) => Ok(Box::new(h)),
                    _ => Ok(Box::new(device_files(i)?)),
                }
            })?
        } else {
            bail!("--hub is `sqlite` or a postgres:// URL, got {}", args.hub);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

fn db_name(i: usize) -> String {
    if i == 0 {
        "hub.sqlite".to_string()
    } else {
        format!("device-{i:02}.sqlite")
    }
}

fn run_sync(args: &SyncArgs) -> Result<()> {
    let hub = HubUrl::parse(&args.hub)?;
    if args.watch && !matches!(hub, HubUrl::Http(_)) {
        anyhow::bail!(
            "--watch needs an atomik serve hub (http:// or https://), not {}",
            args.hub
        );
    }
    let mut device = SqliteReplica::open_existing(&args.db)?;
    let options = hub::HttpOptions {
        token: match &args.token_file {
            Some(path) => Some(hub::HttpOptions::read_token(path)?),
            None => None,
        },
        ca_file: args.ca_file.clone(),
    };
    let mut cursor = sync_once(args, &hub, &mut device, &options)?;
    if !args.watch {
        return Ok(());
    }
    loop {
        let position = hub::watch(&hub, cursor, serve::WATCH_WAIT_SECS, &options)?;
        if position > cursor {
            cursor = sync_once(args, &hub, &mut device, &options)?;
        }
    }
}

/// One sync of `device` with `hub`, reported on stdout; the device's new
/// cursor position in the hub's log.
fn sync_once(
    args: &SyncArgs,
    hub: &HubUrl,
    device: &mut SqliteReplica,
    options: &hub::HttpOptions,
) -> Result<u64> {
    let now = hub::now_secs();
    let request = device.sync_request(now)?;
    let response = hub::exchange_with(hub, &request, options)?;
    let applied = device.finish_sync(&response, now)?;
    println!(
        "synced {} with {}: {applied} deltas applied, {} bytes up, {} bytes down",
        args.db.display(),
        args.hub,
        request.len(),
        response.len()
    );
    Ok(atomik_core::codec::v2::decode_response(&response)?.position)
}
