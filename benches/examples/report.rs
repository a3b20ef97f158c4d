//! Run the comparison suites and write the report:
//!
//! ```text
//! cargo run --release -p atomik-bench --features session --example report -- \
//!     [--full] [--seed N] [--out DIR] [--pg CONNINFO | --cluster PORT]
//! ```
//!
//! `--cluster PORT` starts a throwaway PostgreSQL 15 cluster on that port
//! for W3 and W5 (pg_atomik must be installed); `--pg` uses an existing one.
//! The `atomik bench` command of the CLI is the user-facing way to do this.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use atomik_bench::{cluster, run, BenchConfig};

fn main() -> Result<()> {
    let mut config = BenchConfig::default();
    let mut cluster_port: Option<u16> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--full" => config.full = true,
            "--seed" => config.seed = value()?.parse()?,
            "--out" => config.out_dir = PathBuf::from(value()?),
            "--pg" => config.pg = Some(value()?),
            "--cluster" => cluster_port = Some(value()?.parse()?),
            other => bail!("unknown argument {other}"),
        }
    }
    let report = match cluster_port {
        Some(port) => cluster::with_throwaway_cluster(port, |conninfo| {
            run(&BenchConfig {
                pg: Some(conninfo.to_string()),
                ..config.clone()
            })
        })?,
        None => run(&config)?,
    };
    println!("{}", report.markdown());
    println!("wrote {:?} in {:.0} s", report.files, report.seconds);
    Ok(())
}
