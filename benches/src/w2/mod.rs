//! W2 — retail inventory: the same generated operations synced through
//! atomik, full-state sync, SQLite session patchsets and Automerge
//! counters, measuring bytes, apply time, and whether each ends at the
//! exact sums — once with clean delivery and once with messages duplicated
//! and delivered late (reordered).

mod atomik;
mod crdt;
mod full;
#[cfg(feature = "session")]
mod session;

use std::time::Instant;

use anyhow::Result;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};
use serde::Serialize;

use crate::stats::{ratio, Spread};

pub use self::atomik::AtomikSystem;
pub use self::crdt::AutomergeSystem;
pub use self::full::FullStateSystem;
#[cfg(feature = "session")]
pub use self::session::SessionSystem;

pub(crate) use self::crdt::{
    base_doc as crdt_base, frame as crdt_frame, increment as crdt_increment,
};
#[cfg(feature = "session")]
pub(crate) use self::session::recorded_updates as session_patchset;

/// One local change: (SKU, delta).
pub type Op = (i64, i64);

/// The shape of a W2 run (benches/README.md: 10,000 SKUs, 8 clients, 500 sales
/// and 50 restocks per client per round, 5 rounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct W2Params {
    /// SKUs, one `add` counter each.
    pub skus: usize,
    /// Field clients.
    pub clients: usize,
    /// Rounds of offline work and a sync per client.
    pub rounds: usize,
    /// Sales per client per round (SKU Zipf s = 1.1, delta −1..−3).
    pub sales: usize,
    /// Restocks per client per round (uniform SKU, delta +10..+100).
    pub restocks: usize,
}

impl W2Params {
    /// The parameters of benches/README.md.
    pub fn standard() -> Self {
        W2Params {
            skus: 10_000,
            clients: 8,
            rounds: 5,
            sales: 500,
            restocks: 50,
        }
    }
}

/// The generated operations of one W2 run.
#[derive(Debug, Clone)]
pub struct W2Ops {
    /// The parameters.
    pub params: W2Params,
    /// Opening stock per SKU, known to every replica before round 1.
    pub opening: Vec<i64>,
    /// Per round, the clients in their (random) reconnection order with
    /// the operations each made offline before that sync.
    pub rounds: Vec<Vec<(usize, Vec<Op>)>>,
}

impl W2Ops {
    /// Generate the operations for `seed`.
    ///
    /// # Errors
    /// Invalid parameters (zero SKUs).
    pub fn generate(params: W2Params, seed: u64) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let zipf = Zipf::new(params.skus as f64, 1.1)?;
        let opening = (0..params.skus)
            .map(|_| rng.random_range(50..500))
            .collect();
        let mut rounds = Vec::with_capacity(params.rounds);
        for _ in 0..params.rounds {
            let mut order: Vec<usize> = (0..params.clients).collect();
            order.shuffle(&mut rng);
            let round = order
                .into_iter()
                .map(|c| {
                    let mut ops = Vec::with_capacity(params.sales + params.restocks);
                    for _ in 0..params.sales {
                        let sku =
                            (zipf.sample(&mut rng) as i64 - 1).clamp(0, params.skus as i64 - 1);
                        ops.push((sku, -rng.random_range(1..=3)));
                    }
                    for _ in 0..params.restocks {
                        ops.push((
                            rng.random_range(0..params.skus as i64),
                            rng.random_range(10..=100),
                        ));
                    }
                    (c, ops)
                })
                .collect();
            rounds.push(round);
        }
        Ok(W2Ops {
            params,
            opening,
            rounds,
        })
    }

    /// The exact final value of every SKU: opening stock plus every delta.
    pub fn exact_sums(&self) -> Vec<i64> {
        let mut v = self.opening.clone();
        for round in &self.rounds {
            for (_, ops) in round {
                for &(sku, d) in ops {
                    v[sku as usize] += d;
                }
            }
        }
        v
    }
}

/// A way of syncing inventory between clients and a hub, driven message by
/// message so that the harness can count, duplicate and delay messages.
pub trait SyncSystem {
    /// Short name used in the report.
    fn name(&self) -> &'static str;
    /// Offline local changes on a client.
    ///
    /// # Errors
    /// Engine errors.
    fn local(&mut self, client: usize, ops: &[Op]) -> Result<()>;
    /// The client's upload at reconnection.
    ///
    /// # Errors
    /// Engine errors.
    fn upload(&mut self, client: usize) -> Result<Vec<u8>>;
    /// The hub applies an upload and answers with the client's download.
    ///
    /// # Errors
    /// Engine errors, or a message the system rejects.
    fn hub_receive(&mut self, client: usize, upload: &[u8]) -> Result<Vec<u8>>;
    /// The client applies a download.
    ///
    /// # Errors
    /// Engine errors, or a message the system rejects.
    fn client_receive(&mut self, client: usize, download: &[u8]) -> Result<()>;
    /// Every SKU's value at the hub, by SKU.
    ///
    /// # Errors
    /// Engine errors.
    fn hub_values(&mut self) -> Result<Vec<i64>>;
    /// Every SKU's value at a client, by SKU.
    ///
    /// # Errors
    /// Engine errors.
    fn client_values(&mut self, client: usize) -> Result<Vec<i64>>;
}

/// How messages are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Delivery {
    /// Every message once, in order.
    Once,
    /// Some uploads and downloads delivered twice, the second copy
    /// immediately or a few syncs later (after newer messages).
    Duplicated {
        /// Seed of the choice of messages.
        seed: u64,
    },
}

/// What one system did on one W2 run.
#[derive(Debug, Clone, Serialize)]
pub struct SystemRun {
    /// The system.
    pub system: String,
    /// The delivery.
    pub delivery: Delivery,
    /// Upload bytes per client per round.
    pub bytes_up: Spread,
    /// Download bytes per client per round.
    pub bytes_down: Spread,
    /// Total bytes of the rounds (up + down; duplicates not counted).
    pub total_bytes: u64,
    /// Hub time per sync: apply the upload and build the download (ms).
    pub hub_ms: Spread,
    /// Client time per sync: apply the download (ms).
    pub client_ms: Spread,
    /// Duplicate deliveries made.
    pub duplicates_delivered: u64,
    /// Messages the system refused (an error on a duplicate).
    pub rejected: u64,
    /// Hub and every client hold the exact sums at the end.
    pub exact: bool,
    /// Every replica holds the same values (whether exact or not).
    pub replicas_identical: bool,
    /// SKUs whose hub value differs from the exact sum.
    pub wrong_skus: usize,
    /// Sum over SKUs of |hub value − exact sum|.
    pub abs_error: i64,
}

/// Run one system on the operations.
///
/// # Errors
/// Engine errors on clean delivery (on duplicated delivery a refused
/// message is counted, not an error).
pub fn run_system(sys: &mut dyn SyncSystem, ops: &W2Ops, delivery: Delivery) -> Result<SystemRun> {
    let mut rng = ChaCha8Rng::seed_from_u64(match delivery {
        Delivery::Once => 0,
        Delivery::Duplicated { seed } => seed,
    });
    let (mut up, mut down, mut hub_ms, mut client_ms) = (vec![], vec![], vec![], vec![]);
    // (due step, client, is upload, message)
    let mut late: Vec<(usize, usize, bool, Vec<u8>)> = vec![];
    let (mut dups, mut rejected) = (0u64, 0u64);
    let mut step = 0usize;
    let redeliver =
        |sys: &mut dyn SyncSystem, client: usize, is_up: bool, msg: &[u8], dups: &mut u64| {
            *dups += 1;
            let r = if is_up {
                sys.hub_receive(client, msg).map(drop)
            } else {
                sys.client_receive(client, msg)
            };
            r.is_err() as u64
        };
    for round in &ops.rounds {
        for (client, client_ops) in round {
            let client = *client;
            // Late copies due now arrive before this sync.
            let due: Vec<_> = late.iter().filter(|m| m.0 <= step).cloned().collect();
            late.retain(|m| m.0 > step);
            for (_, c, is_up, msg) in due {
                rejected += redeliver(sys, c, is_up, &msg, &mut dups);
            }
            sys.local(client, client_ops)?;
            let u = sys.upload(client)?;
            let t = Instant::now();
            let d = sys.hub_receive(client, &u)?;
            hub_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            sys.client_receive(client, &d)?;
            client_ms.push(t.elapsed().as_secs_f64() * 1e3);
            up.push(u.len() as u64);
            down.push(d.len() as u64);
            if let Delivery::Duplicated { .. } = delivery {
                if rng.random_bool(0.3) {
                    late.push((step + rng.random_range(0..4), client, true, u.clone()));
                }
                if rng.random_bool(0.3) {
                    late.push((step + rng.random_range(0..4), client, false, d.clone()));
                }
            }
            step += 1;
        }
    }
    for (_, c, is_up, msg) in std::mem::take(&mut late) {
        rejected += redeliver(sys, c, is_up, &msg, &mut dups);
    }
    // Everyone reconnects twice more with nothing new: the first pass
    // uploads what is left, the second brings every client everything.
    for _ in 0..2 {
        for client in 0..ops.params.clients {
            let u = sys.upload(client)?;
            let d = sys.hub_receive(client, &u)?;
            sys.client_receive(client, &d)?;
        }
    }
    let exact_sums = ops.exact_sums();
    let hub = sys.hub_values()?;
    let mut identical = true;
    let mut all_exact = hub == exact_sums;
    for client in 0..ops.params.clients {
        let v = sys.client_values(client)?;
        identical &= v == hub;
        all_exact &= v == exact_sums;
    }
    let wrong_skus = hub.iter().zip(&exact_sums).filter(|(a, b)| a != b).count();
    let abs_error = hub
        .iter()
        .zip(&exact_sums)
        .map(|(a, b)| (a - b).abs())
        .sum();
    Ok(SystemRun {
        system: sys.name().to_string(),
        delivery,
        bytes_up: Spread::of_u64(&up),
        bytes_down: Spread::of_u64(&down),
        total_bytes: up.iter().chain(&down).sum(),
        hub_ms: Spread::of(&hub_ms),
        client_ms: Spread::of(&client_ms),
        duplicates_delivered: dups,
        rejected,
        exact: all_exact,
        replicas_identical: identical,
        wrong_skus,
        abs_error,
    })
}

/// W2 results: every system under clean and duplicated delivery, and the
/// byte ratios against atomik.
#[derive(Debug, Clone, Serialize)]
pub struct W2Report {
    /// The parameters.
    pub params: W2Params,
    /// Operations made in total.
    pub operations: usize,
    /// One entry per (system, delivery).
    pub runs: Vec<SystemRun>,
    /// Per other system: its total bytes / atomik's (clean delivery).
    pub bytes_vs_atomik: Vec<(String, f64)>,
    /// Per other system: its median hub time per sync / atomik's, and its
    /// median client apply time per sync / atomik's (clean delivery).
    pub apply_time_vs_atomik: Vec<(String, f64, f64)>,
    /// Systems not measured, and why.
    pub skipped: Vec<String>,
    /// What each system is and where it keeps its state (apply times are
    /// comparable only between systems that store alike).
    pub systems: Vec<(String, String)>,
}

/// The description of each system in the report.
pub fn descriptions() -> Vec<(String, String)> {
    [
        ("atomik", "sqlite_atomik in in-memory SQLite databases; real sync request/response messages"),
        ("full-state-lww", "plain Rust vectors (no database); up: every SKU as key, value, write time (24 B); down: every SKU as key, value (16 B); last writer wins per SKU"),
        ("automerge", "automerge 0.12 AutoCommit documents in memory, one Counter per SKU; up: heads + save_after(hub heads); down: hub heads + save_after(client heads)"),
        ("sqlite-session", "in-memory SQLite with the session extension; up: the client's patchset; down: Changegroup of the hub's patchsets since the client's last download; conflicts replace"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect()
}

/// The systems W2 compares, made fresh for each run.
///
/// # Errors
/// Engine set-up errors.
pub fn systems(ops: &W2Ops) -> Result<Vec<Box<dyn SyncSystem>>> {
    let p = &ops.params;
    #[cfg_attr(not(feature = "session"), allow(unused_mut))]
    let mut v: Vec<Box<dyn SyncSystem>> = vec![
        Box::new(AtomikSystem::new(p.clients, &ops.opening)?),
        Box::new(FullStateSystem::new(p.clients, &ops.opening)),
        Box::new(AutomergeSystem::new(p.clients, &ops.opening)?),
    ];
    #[cfg(feature = "session")]
    v.push(Box::new(SessionSystem::new(p.clients, &ops.opening)?));
    Ok(v)
}

/// Run W2 for every system, clean and duplicated.
///
/// # Errors
/// Engine errors.
pub fn run(params: W2Params, seed: u64) -> Result<W2Report> {
    let ops = W2Ops::generate(params, seed)?;
    let mut runs = vec![];
    for delivery in [
        Delivery::Once,
        Delivery::Duplicated {
            seed: seed ^ 0xD0D0,
        },
    ] {
        for mut sys in systems(&ops)? {
            runs.push(run_system(sys.as_mut(), &ops, delivery)?);
        }
    }
    let clean = |r: &&SystemRun| r.delivery == Delivery::Once;
    let atomik = runs.iter().filter(clean).find(|r| r.system == "atomik");
    let atomik_total = atomik.map_or(f64::NAN, |r| r.total_bytes as f64);
    let (atomik_hub, atomik_client) = atomik.map_or((f64::NAN, f64::NAN), |r| {
        (r.hub_ms.median, r.client_ms.median)
    });
    let others = || runs.iter().filter(clean).filter(|r| r.system != "atomik");
    let bytes_vs_atomik = others()
        .map(|r| (r.system.clone(), ratio(r.total_bytes as f64, atomik_total)))
        .collect();
    let apply_time_vs_atomik = others()
        .map(|r| {
            (
                r.system.clone(),
                ratio(r.hub_ms.median, atomik_hub),
                ratio(r.client_ms.median, atomik_client),
            )
        })
        .collect();
    let mut skipped = vec![];
    if cfg!(not(feature = "session")) {
        skipped.push(
            "sqlite-session: built without the `session` feature of atomik-bench (needs libclang)"
                .to_string(),
        );
    }
    Ok(W2Report {
        params,
        operations: ops.rounds.iter().flatten().map(|(_, o)| o.len()).sum(),
        runs,
        bytes_vs_atomik,
        apply_time_vs_atomik,
        skipped,
        systems: descriptions(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> W2Params {
        W2Params {
            skus: 200,
            clients: 3,
            rounds: 2,
            sales: 40,
            restocks: 5,
        }
    }

    /// With a single client nothing is concurrent: every system, clean
    /// delivery, ends at the exact sums.
    #[test]
    fn single_client_every_system_exact() {
        let params = W2Params {
            clients: 1,
            ..small()
        };
        let ops = W2Ops::generate(params, 3).unwrap();
        for mut sys in systems(&ops).unwrap() {
            let r = run_system(sys.as_mut(), &ops, Delivery::Once).unwrap();
            assert!(r.exact, "{} not exact: {r:?}", r.system);
            assert!(r.replicas_identical, "{}", r.system);
        }
    }

    /// Concurrent clients: the delta systems stay exact under duplicated,
    /// reordered delivery; last-writer-wins full state loses updates.
    #[test]
    fn concurrent_clients() {
        let ops = W2Ops::generate(small(), 5).unwrap();
        for delivery in [Delivery::Once, Delivery::Duplicated { seed: 9 }] {
            for mut sys in systems(&ops).unwrap() {
                let r = run_system(sys.as_mut(), &ops, delivery).unwrap();
                match r.system.as_str() {
                    "atomik" | "automerge" => {
                        assert!(r.exact && r.replicas_identical, "{r:?}");
                        assert_eq!(r.rejected, 0, "{r:?}");
                    }
                    // Both replicate row values, not deltas: concurrent
                    // sales of one SKU are lost (last writer wins).
                    "full-state-lww" | "sqlite-session" => {
                        assert!(!r.exact && r.wrong_skus > 0, "{r:?}")
                    }
                    _ => {}
                }
                if delivery != Delivery::Once {
                    assert!(r.duplicates_delivered > 0);
                }
            }
        }
    }

    #[test]
    fn report_json_shape() {
        let r = run(small(), 1).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert!(v["runs"].as_array().unwrap().len() >= 6);
        assert!(v["runs"][0]["bytes_up"]["median"].is_number());
        assert!(v["bytes_vs_atomik"][0][1].is_number());
    }
}
