//! The demo's summary: a table for people, JSON for scripts.

use serde::Serialize;

use super::link::FaultsSeen;

/// One device's line.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceRow {
    /// Device name.
    pub name: String,
    /// Completed syncs.
    pub syncs: u64,
    /// Retried attempts.
    pub retries: u64,
    /// Bytes device → hub.
    pub bytes_up: u64,
    /// Bytes hub → device.
    pub bytes_down: u64,
    /// `atomik_digest` of the inventory.
    pub digest: i64,
    /// Every value byte-identical to the hub's.
    pub identical_to_hub: bool,
}

/// The outcome of a demo run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Seed of the run.
    pub seed: u64,
    /// Devices.
    pub devices: usize,
    /// Rounds.
    pub rounds: usize,
    /// SKUs.
    pub skus: usize,
    /// Changes made in total (hub and devices).
    pub changes: u64,
    /// What kept the hub.
    pub hub: String,
    /// Faults that happened on the link.
    pub faults: FaultsSeen,
    /// Per device.
    pub rows: Vec<DeviceRow>,
    /// The hub's digest.
    pub hub_digest: i64,
    /// Every replica byte-identical, equal digests, equal to the exact sums.
    pub converged: bool,
    /// Bytes moved by atomik.
    pub atomik_bytes: u64,
    /// Bytes full-state sync would have moved for the same syncs.
    pub full_state_bytes: u64,
}

impl Report {
    /// The human-readable summary.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "atomik demo: {} devices, {} rounds, {} SKUs, seed {:#x}, hub: {}\n",
            self.devices, self.rounds, self.skus, self.seed, self.hub
        ));
        out.push_str(&format!(
            "link faults: {} dropped, {} duplicated, {} late out-of-order responses\n\n",
            self.faults.dropped, self.faults.duplicated, self.faults.reordered
        ));
        out.push_str(&format!(
            "{:<10} {:>6} {:>8} {:>10} {:>10}  {:<20} {}\n",
            "replica", "syncs", "retries", "bytes up", "bytes down", "digest", "same as hub"
        ));
        for r in &self.rows {
            out.push_str(&format!(
                "{:<10} {:>6} {:>8} {:>10} {:>10}  {:<20} {}\n",
                r.name,
                r.syncs,
                r.retries,
                r.bytes_up,
                r.bytes_down,
                format!("{:016x}", r.digest),
                if r.identical_to_hub {
                    "yes, byte for byte"
                } else {
                    "NO"
                }
            ));
        }
        out.push_str(&format!(
            "{:<10} {:>6} {:>8} {:>10} {:>10}  {:<20}\n\n",
            "hub",
            "",
            "",
            "",
            "",
            format!("{:016x}", self.hub_digest)
        ));
        out.push_str(&format!(
            "converged: {} — every replica holds byte-identical values, equal digests, equal to the exact sum of all {} changes\n",
            if self.converged { "yes" } else { "NO" },
            self.changes
        ));
        let ratio = self.atomik_bytes as f64 / self.full_state_bytes.max(1) as f64;
        out.push_str(&format!(
            "bytes moved: atomik {} vs full-state sync {} ({:.1}% of it, {:.0}x less)\n",
            human(self.atomik_bytes),
            human(self.full_state_bytes),
            100.0 * ratio,
            1.0 / ratio.max(f64::MIN_POSITIVE)
        ));
        out
    }
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.2} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else if bytes >= 1 << 10 {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    } else {
        format!("{bytes} B")
    }
}
