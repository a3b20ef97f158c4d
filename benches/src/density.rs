//! Bytes per sync against change density: a client holding 10,000 `add`
//! counters changes a fraction of them (one small delta each) and ships
//! the change, through each system.

use anyhow::Result;
use atomik_core::memory::MemoryStore;
use atomik_core::protocol::v2 as protocol;
use atomik_core::{Group, Key, KeyShape, SiteId};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::stats::ratio;
use crate::w2::Op;

/// Fractions of cells changed in the quick sweep.
pub const FRACTIONS: [f64; 6] = [0.001, 0.01, 0.05, 0.2, 0.5, 1.0];

/// One point of the sweep.
#[derive(Debug, Clone, Serialize)]
pub struct DensityPoint {
    /// Fraction of the cells changed.
    pub fraction: f64,
    /// Cells changed.
    pub cells: usize,
    /// atomik: the sync request carrying the batch (vector + batch).
    pub atomik: u64,
    /// Full state: every cell as (key, value, timestamp), 24 bytes.
    pub full_state: u64,
    /// SQLite session patchset of the updates (`None` without the
    /// `session` feature).
    pub session: Option<u64>,
    /// Automerge: heads + the change of the increments.
    pub automerge: u64,
    /// full_state / atomik.
    pub full_state_over_atomik: f64,
    /// session / atomik.
    pub session_over_atomik: Option<f64>,
    /// automerge / atomik.
    pub automerge_over_atomik: f64,
}

/// The sweep.
#[derive(Debug, Clone, Serialize)]
pub struct DensityReport {
    /// Cells held by the client.
    pub cells: usize,
    /// Points in increasing density.
    pub points: Vec<DensityPoint>,
}

fn ops_for(cells: usize, changed: usize, rng: &mut ChaCha8Rng) -> Vec<Op> {
    let mut ops: Vec<Op> = sample(rng, cells, changed)
        .into_iter()
        .map(|sku| {
            let d = if rng.random_bool(0.1) {
                rng.random_range(10..=100)
            } else {
                -rng.random_range(1..=3)
            };
            (sku as i64, d)
        })
        .collect();
    ops.sort_unstable();
    ops
}

fn store(site: u8) -> Result<MemoryStore> {
    let mut s = MemoryStore::new(SiteId([site; 16]));
    s.create_table("inventory", KeyShape::int(), true);
    s.track("inventory", "qty", Group::Add)?;
    Ok(s)
}

/// The device's sync request after the change: its vector and the batch.
/// The device first bootstraps the opening stock from a hub (unmeasured).
fn atomik_bytes(opening: &[i64], ops: &[Op]) -> Result<u64> {
    let mut hub = store(0x01)?;
    for (sku, &v) in opening.iter().enumerate() {
        hub.accum(
            "inventory",
            "qty",
            &Key::int(sku as i64),
            Group::Add,
            v as u64,
        )?;
    }
    let mut dev = store(0x02)?;
    let req = protocol::sync_request(&mut dev, 1)?;
    let resp = protocol::serve_sync(&mut hub, &req, 1)?;
    protocol::finish_sync(&mut dev, &resp, 1)?;
    for &(sku, d) in ops {
        dev.accum("inventory", "qty", &Key::int(sku), Group::Add, d as u64)?;
    }
    Ok(protocol::sync_request(&mut dev, 2)?.len() as u64)
}

fn automerge_bytes(opening: &[i64], ops: &[Op]) -> Result<u64> {
    let (mut doc, inv) = crate::w2::crdt_base(opening)?;
    let before = doc.get_heads();
    crate::w2::crdt_increment(&mut doc, &inv, ops)?;
    let change = doc.save_after(&before);
    Ok(crate::w2::crdt_frame(&doc.get_heads(), &change).len() as u64)
}

#[cfg(feature = "session")]
fn session_bytes(opening: &[i64], ops: &[Op]) -> Result<Option<u64>> {
    let c = rusqlite::Connection::open_in_memory()?;
    c.execute_batch("CREATE TABLE inventory(sku INTEGER PRIMARY KEY, qty INTEGER NOT NULL)")?;
    c.execute_batch("BEGIN")?;
    {
        let mut st = c.prepare("INSERT INTO inventory VALUES (?1, ?2)")?;
        for (sku, &v) in opening.iter().enumerate() {
            st.execute([sku as i64, v])?;
        }
    }
    c.execute_batch("COMMIT")?;
    Ok(Some(crate::w2::session_patchset(&c, ops)?.len() as u64))
}

#[cfg(not(feature = "session"))]
fn session_bytes(_opening: &[i64], _ops: &[Op]) -> Result<Option<u64>> {
    Ok(None)
}

/// Sweep `fractions` of `cells` cells.
///
/// # Errors
/// Engine errors.
pub fn run(cells: usize, fractions: &[f64], seed: u64) -> Result<DensityReport> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let opening: Vec<i64> = (0..cells).map(|_| rng.random_range(50..500)).collect();
    let mut points = vec![];
    for &fraction in fractions {
        let changed = ((cells as f64 * fraction).round() as usize).clamp(1, cells);
        let ops = ops_for(cells, changed, &mut rng);
        let atomik = atomik_bytes(&opening, &ops)?;
        let full_state = 24 * cells as u64;
        let session = session_bytes(&opening, &ops)?;
        let automerge = automerge_bytes(&opening, &ops)?;
        let over = |b: u64| ratio(b as f64, atomik as f64);
        points.push(DensityPoint {
            fraction,
            cells: changed,
            atomik,
            full_state,
            session,
            automerge,
            full_state_over_atomik: over(full_state),
            session_over_atomik: session.map(over),
            automerge_over_atomik: over(automerge),
        });
    }
    Ok(DensityReport { cells, points })
}

#[cfg(test)]
mod tests {
    #[test]
    fn atomik_grows_with_density_full_state_does_not() {
        let r = super::run(1000, &[0.01, 0.5], 3).unwrap();
        assert!(r.points[0].atomik < r.points[1].atomik);
        assert_eq!(r.points[0].full_state, r.points[1].full_state);
        assert!(r.points[0].full_state_over_atomik > 1.0);
    }
}
