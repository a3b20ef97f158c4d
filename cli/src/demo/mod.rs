//! `atomik demo`: a fleet of field devices keeping inventory offline and
//! converging with a hub through a flaky link (workload W2 of benches/README.md).

mod link;
mod report;

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};

use crate::replica::Replica;
pub use link::LinkFaults;
use link::{FlakyLink, Traffic};
pub use report::Report;

/// The demo's knobs.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Seed of every random choice: the same seed gives the same run.
    pub seed: u64,
    /// Number of field devices.
    pub devices: usize,
    /// Rounds of offline work followed by a sync, per device.
    pub rounds: usize,
    /// Number of SKUs (one `add` counter each).
    pub skus: usize,
    /// Sales per device per round (delta −1..−3, SKU drawn Zipf s = 1.1).
    pub sales: usize,
    /// Restocks per device per round (delta +10..+100).
    pub restocks: usize,
    /// Faults of the link between devices and the hub.
    pub faults: LinkFaults,
    /// Show progress bars.
    pub progress: bool,
}

/// Run the demo on replicas made by `make` (the hub is made first).
///
/// # Errors
/// Any replica error, or a failure to converge (which is a bug).
pub fn run<R: Replica>(
    config: &DemoConfig,
    hub_name: &str,
    mut make: impl FnMut(usize) -> Result<R>,
) -> Result<Report> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut hub = make(0)?;
    let mut devices: Vec<R> = (1..=config.devices).map(&mut make).collect::<Result<_>>()?;
    let zipf = Zipf::new(config.skus as f64, 1.1)?;
    let mut oracle: BTreeMap<i64, i64> = BTreeMap::new();
    let mut changes = 0u64;
    let mut record = |oracle: &mut BTreeMap<i64, i64>, sku: i64, delta: i64| {
        let e = oracle.entry(sku).or_insert(0);
        *e = e.wrapping_add(delta);
        changes += 1;
    };
    // The warehouse loads opening stock at the hub, as server-side writes.
    hub.begin()?;
    for sku in 0..config.skus as i64 {
        let opening = rng.random_range(50..500);
        hub.accum(sku, opening)?;
        record(&mut oracle, sku, opening);
    }
    hub.commit()?;
    let mut link = FlakyLink::new(config.faults, rng.random());
    let mut traffic: Vec<Traffic> = vec![Traffic::default(); config.devices];
    let mut now = 1_000u64;
    let bar = progress_bar(config, (config.rounds * config.devices) as u64);
    for round in 0..config.rounds {
        let mut order: Vec<usize> = (0..config.devices).collect();
        order.shuffle(&mut rng);
        for d in order {
            // Offline: sales and restocks land in local accumulators.
            devices[d].begin()?;
            for _ in 0..config.sales {
                let sku = zipf.sample(&mut rng) as i64 - 1;
                let delta = -rng.random_range(1..=3);
                devices[d].accum(sku, delta)?;
                record(&mut oracle, sku, delta);
            }
            for _ in 0..config.restocks {
                let sku = rng.random_range(0..config.skus as i64);
                let delta = rng.random_range(10..=100);
                devices[d].accum(sku, delta)?;
                record(&mut oracle, sku, delta);
            }
            devices[d].commit()?;
            // Reconnect through the flaky link.
            now += 60;
            link.sync(&mut devices[d], &mut hub, now, &mut traffic[d])?;
            bar.inc(1);
            bar.set_message(format!("round {}", round + 1));
        }
        // A server-side writer at the hub: a few corrections per round.
        hub.begin()?;
        for _ in 0..10 {
            let sku = rng.random_range(0..config.skus as i64);
            let delta = rng.random_range(-5..=5);
            hub.accum(sku, delta)?;
            record(&mut oracle, sku, delta);
        }
        hub.commit()?;
    }
    // Everyone comes back online once more, twice round: the first pass
    // uploads what is left, the second brings every device everything.
    for _ in 0..2 {
        for (d, device) in devices.iter_mut().enumerate() {
            now += 60;
            link.sync(device, &mut hub, now, &mut traffic[d])?;
        }
    }
    bar.finish_and_clear();
    let expected: Vec<(i64, [u8; 17])> = oracle
        .iter()
        .map(|(sku, sum)| {
            (
                *sku,
                atomik_core::AtomikValue::load(atomik_core::Group::Add, *sum as u64).to_bytes(),
            )
        })
        .collect();
    let hub_values = hub.values()?;
    let hub_digest = hub.digest()?;
    let mut rows = Vec::new();
    for (d, device) in devices.iter_mut().enumerate() {
        let values = device.values()?;
        let digest = device.digest()?;
        rows.push(report::DeviceRow {
            name: format!("device-{:02}", d + 1),
            syncs: traffic[d].syncs,
            retries: traffic[d].retries,
            bytes_up: traffic[d].bytes_up,
            bytes_down: traffic[d].bytes_down,
            digest,
            identical_to_hub: values == hub_values,
        });
    }
    let all_identical = rows
        .iter()
        .all(|r| r.identical_to_hub && r.digest == hub_digest);
    let matches_oracle = hub_values == expected;
    if !all_identical || !matches_oracle {
        bail!(
            "replicas did not converge (identical: {all_identical}, equal to the exact sums: {matches_oracle}); seed {:#x}",
            config.seed
        );
    }
    let syncs: u64 = traffic.iter().map(|t| t.syncs).sum();
    Ok(Report {
        seed: config.seed,
        devices: config.devices,
        rounds: config.rounds,
        skus: config.skus,
        changes,
        hub: hub_name.to_string(),
        faults: link.faults_seen(),
        rows,
        hub_digest,
        converged: true,
        atomik_bytes: traffic.iter().map(|t| t.bytes_up + t.bytes_down).sum(),
        // Full-state sync: every completed sync sends every SKU up and
        // down, 16 bytes each (8-byte key, 8-byte value).
        full_state_bytes: syncs * 2 * 16 * config.skus as u64,
    })
}

fn progress_bar(config: &DemoConfig, len: u64) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:>9} [{bar:30}] {pos}/{len} device syncs")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}
