//! The `atomik` command.

mod demo;
mod hub;
mod replica;
mod serve;

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
    /// Serve a hub database over HTTP (POST /sync, GET /health).
    Serve(ServeArgs),
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
    /// Port of the throwaway cluster.
    #[arg(long, default_value_t = 55470)]
    cluster_port: u16,
    /// Run only this suite (`w7`: the fleet) and write its JSON.
    #[arg(long, value_parser = ["w7"])]
    only: Option<String>,
    /// With `--only w7`: the fleet sizes (default 10,1000; 10,100,1000,10000 with --full).
    #[arg(long, value_delimiter = ',', requires = "only")]
    fleet: Option<Vec<usize>>,
    /// With `--only w7`: SKUs in the hub's table (default 10,000; 100,000 with --full).
    #[arg(long, requires = "only")]
    skus: Option<i64>,
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
    /// http://… address of `atomik serve`.
    #[arg(long)]
    hub: String,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The hub database: an SQLite path (or sqlite:PATH) or postgres://….
    #[arg(long)]
    hub: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: String,
    /// Connections in the pool to a PostgreSQL hub (a SQLite hub is one
    /// connection).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pool: u16,
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
        Command::Serve(args) => serve::run(
            &HubUrl::parse(&args.hub)?,
            &args.listen,
            usize::from(args.pool),
        ),
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
    if args.only.is_some() {
        return run_fleet_bench(args, &config);
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

/// `atomik bench --only w7`: the fleet suite on SQLite and, when it can,
/// PostgreSQL; prints one line per (hub, N) and the ratios.
fn run_fleet_bench(args: &BenchArgs, config: &atomik_bench::BenchConfig) -> Result<()> {
    use atomik_bench::{cluster, run_fleet, w7::W7Params, BenchConfig};
    let mut params = W7Params::standard(args.full);
    if let Some(fleet) = &args.fleet {
        params.fleets = fleet.clone();
    }
    if let Some(skus) = args.skus {
        params.skus = skus;
    }
    let report = if args.no_pg || args.pg.is_some() || cluster::check_pg_atomik_installed().is_err()
    {
        run_fleet(config, &params)?
    } else {
        cluster::with_throwaway_cluster(args.cluster_port, |conninfo| {
            run_fleet(
                &BenchConfig {
                    pg: Some(conninfo.to_string()),
                    ..config.clone()
                },
                &params,
            )
        })?
    };
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
    let mut device = SqliteReplica::open_existing(&args.db)?;
    let now = hub::now_secs();
    let request = device.sync_request(now)?;
    let response = hub::exchange(&hub, &request)?;
    let applied = device.finish_sync(&response, now)?;
    println!(
        "synced {} with {}: {applied} deltas applied, {} bytes up, {} bytes down",
        args.db.display(),
        args.hub,
        request.len(),
        response.len()
    );
    Ok(())
}
