//! Prints the wire-size figures quoted in the README:
//! `cargo run -p atomik-core --example wire_sizes`.

use atomik_core::workloads::{median, small_add_bytes_per_cell, w1_tick_sizes};

fn main() {
    let mut ticks = w1_tick_sizes(1000, 0xA70_017);
    let min = *ticks.iter().min().unwrap_or(&0);
    let max = *ticks.iter().max().unwrap_or(&0);
    let med = median(&mut ticks);
    println!("W1 (256 xor cells = 2048 B of state, 13 cells changed per tick, 1000 ticks):");
    println!("  bytes per tick: median {med}, min {min}, max {max}");
    println!(
        "  vs full state 2048 B: {:.1}% ; vs the seed's 160 B: {:.2}x",
        100.0 * med as f64 / 2048.0,
        med as f64 / 160.0
    );
    for cells in [10, 100, 1000, 5000] {
        let (bytes, per_cell) = small_add_bytes_per_cell(cells, 7);
        println!(
            "small add deltas, integer keys among 10,000 SKUs: {cells:>5} cells -> {bytes:>6} B, {per_cell:.2} B per cell"
        );
    }
}
