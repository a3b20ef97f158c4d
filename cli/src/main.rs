//! The `atomik` command.

mod demo;
mod replica;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// atomik: delta-accumulated columns that converge across offline replicas.
#[derive(Debug, Parser)]
#[command(name = "atomik", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate a fleet of offline field devices syncing inventory with a
    /// hub through a flaky link, and show that every replica converges.
    Demo(DemoArgs),
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
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    json: bool,
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
    }
}

fn run_demo(args: &DemoArgs) -> Result<()> {
    for (name, p) in [("--drop", args.drop), ("--duplicate", args.duplicate)] {
        if !(0.0..=0.9).contains(&p) {
            anyhow::bail!("{name} must be between 0 and 0.9, got {p}");
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
    let report = demo::run(&config, "embedded, in memory", |_| {
        replica::MemoryReplica::new()
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}
