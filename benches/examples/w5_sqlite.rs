//! W5 in SQLite alone: `cargo run --release -p atomik-bench --example w5_sqlite [ROWS] [REPS]`.
fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let reps = args.next().map_or(Ok(7), |a| a.parse())?;
    let r = atomik_bench::w5::run(rows, reps)?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}
