//! Several devices and an embedded SQLite hub (real files) converge through
//! the three sync calls over a transport that loses, duplicates, delays and
//! reorders messages: byte-identical values, equal digests, exact oracle.

mod common;
use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::Connection;
use std::collections::BTreeMap;

const SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB, f BLOB);
                      SELECT atomik_track('t', 'n'); SELECT atomik_track('t', 'f', 'xor');";
const KEYS: i64 = 24;

/// A local write on `c`, recorded in the oracle.
fn write(c: &Connection, rng: &mut ChaCha8Rng, oracle: &mut BTreeMap<i64, (i64, i64)>) {
    let id = rng.random_range(1..=KEYS);
    let d: i64 = rng.random_range(-50..=50);
    let x: i64 = rng.random();
    c.execute(
        "INSERT INTO t(id, n, f) VALUES (?1, atomik_add(?2), atomik_xor(?3))
         ON CONFLICT(id) DO UPDATE SET n = atomik_accum(n, ?2), f = atomik_accum(f, ?3)",
        rusqlite::params![id, d, x],
    )
    .unwrap();
    let e = oracle.entry(id).or_insert((0, 0));
    e.0 = e.0.wrapping_add(d);
    e.1 ^= x;
}

fn rows(c: &Connection) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    let mut s = c.prepare("SELECT id, n, f FROM t ORDER BY id").unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn run(seed: u64, devices: usize, steps: usize) {
    let dir = temp_dir(&format!("conv-{seed}"));
    let hub = file(&dir.join("hub.db"));
    hub.execute_batch(SCHEMA).unwrap();
    let devs: Vec<Connection> = (0..devices)
        .map(|i| {
            let c = file(&dir.join(format!("dev{i}.db")));
            c.execute_batch(SCHEMA).unwrap();
            c
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut oracle = BTreeMap::new();
    // Messages in flight: (device, bytes) requests and responses.
    let mut requests: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut responses: Vec<(usize, Vec<u8>)> = Vec::new();
    for _ in 0..steps {
        match rng.random_range(0..10) {
            0..=3 => {
                let i = rng.random_range(0..devices);
                write(&devs[i], &mut rng, &mut oracle);
            }
            4 => write(&hub, &mut rng, &mut oracle),
            5 | 6 => {
                let i = rng.random_range(0..devices);
                let req = blob(&devs[i], "SELECT atomik_sync_request()");
                if rng.random_bool(0.8) {
                    requests.push((i, req));
                }
            }
            7 | 8 if !requests.is_empty() => {
                // Deliver a random request (maybe again later: duplicates).
                let k = rng.random_range(0..requests.len());
                let (i, req) = if rng.random_bool(0.7) {
                    requests.swap_remove(k)
                } else {
                    requests[k].clone()
                };
                let resp: Vec<u8> = hub
                    .query_row("SELECT atomik_sync(?1)", [&req], |r| r.get(0))
                    .unwrap();
                if rng.random_bool(0.8) {
                    responses.push((i, resp));
                }
            }
            _ if !responses.is_empty() => {
                let k = rng.random_range(0..responses.len());
                let (i, resp) = if rng.random_bool(0.7) {
                    responses.swap_remove(k)
                } else {
                    responses[k].clone()
                };
                let _: i64 = devs[i]
                    .query_row("SELECT atomik_sync_finish(?1)", [&resp], |r| r.get(0))
                    .unwrap();
            }
            _ => {}
        }
    }
    // Stale messages still in flight are harmless when they finally arrive.
    for (i, resp) in responses.drain(..) {
        let _: i64 = devs[i]
            .query_row("SELECT atomik_sync_finish(?1)", [&resp], |r| r.get(0))
            .unwrap();
    }
    // Then a reliable transport: two rounds reach everyone.
    for _ in 0..2 {
        for d in &devs {
            sync(d, &hub);
        }
    }
    let want: Vec<(i64, Vec<u8>, Vec<u8>)> = oracle
        .iter()
        .map(|(id, (n, f))| {
            (
                *id,
                atomik_core::AtomikValue::load(atomik_core::Group::Add, *n as u64)
                    .to_bytes()
                    .to_vec(),
                atomik_core::AtomikValue::load(atomik_core::Group::Xor, *f as u64)
                    .to_bytes()
                    .to_vec(),
            )
        })
        .collect();
    assert_eq!(
        rows(&hub),
        want,
        "hub holds the oracle's values (seed {seed})"
    );
    let digests = (
        int(&hub, "SELECT atomik_digest('t', 'n')"),
        int(&hub, "SELECT atomik_digest('t', 'f')"),
    );
    for (i, d) in devs.iter().enumerate() {
        assert_eq!(rows(d), want, "device {i} byte-identical (seed {seed})");
        assert_eq!(
            (
                int(d, "SELECT atomik_digest('t', 'n')"),
                int(d, "SELECT atomik_digest('t', 'f')")
            ),
            digests
        );
    }
    drop(devs);
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn devices_and_sqlite_hub_converge_over_a_lossy_transport() {
    let seeds: u64 = std::env::var("ATOMIK_CONVERGENCE_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    for seed in 0..seeds {
        run(seed, 3, 400);
    }
}
