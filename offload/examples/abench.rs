//! W6 from the command line, the way `atomik abench N SEED` runs it:
//! `cargo run -p atomik-offload --release [--features sim] --example abench -- 65537 0xDEADBEEF0BADF00D`
//!
//! Prints [`atomik_offload::abench::AbenchReport`]'s text and exits 1 when
//! the runs disagree or fail.

use atomik_offload::abench;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (n, seed) = match (args.first(), args.get(1)) {
        (Some(n), Some(s)) => match (n.parse::<u64>(), abench::parse_seed(s)) {
            (Ok(n), Ok(seed)) => (n, seed),
            (Err(e), _) => {
                eprintln!("abench: bad N {n:?}: {e}");
                std::process::exit(2);
            }
            (_, Err(e)) => {
                eprintln!("abench: {e}");
                std::process::exit(2);
            }
        },
        _ => {
            eprintln!("usage: abench N SEED");
            std::process::exit(2);
        }
    };
    let report = abench::run_all(n, seed);
    println!("{report}");
    if !report.is_ok() {
        std::process::exit(1);
    }
}
