//! Size targets of DESIGN.md §3 and benches/README.md (W1). Sizes are exact
//! functions of the input, not timings: asserting them is deterministic.

use atomik_core::workloads::{median, small_add_bytes_per_cell, w1_tick_sizes};

#[test]
fn w1_tick_beats_the_seed_adapter() {
    let mut sizes = w1_tick_sizes(500, 1);
    let med = median(&mut sizes);
    assert!(
        med < 160,
        "W1 median tick is {med} B, the seed's adapter needs 160 B"
    );
    assert!(*sizes.iter().max().unwrap() < 2048 / 8);
}

#[test]
fn small_add_deltas_cost_at_most_six_bytes_per_cell() {
    for cells in [100, 1000, 5000] {
        let (_, per_cell) = small_add_bytes_per_cell(cells, 3);
        assert!(per_cell <= 6.0, "{cells} cells: {per_cell} B per cell");
    }
}
