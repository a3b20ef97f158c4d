//! The SQLite store behaves like core's in-memory reference store: the same
//! random sequence of local writes, seals and lossy, duplicated syncs (a
//! hub and three devices) is run in both worlds, and after every step every
//! replica holds the same cells, byte for byte (reference and accumulator),
//! and every call succeeds or fails alike.

mod common;
use atomik_core::memory::MemoryStore;
use atomik_core::protocol::v2 as protocol;
use atomik_core::{AtomikValue, Group, Key, KeyShape, SiteId};
use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::Connection;

const KEYS: i64 = 12;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct World {
    mem: Vec<MemoryStore>,
    sql: Vec<Connection>,
    snapshots: usize,
}

impl World {
    fn new(n: usize) -> Self {
        let stores = (0..n)
            .map(|_| {
                let mut m = MemoryStore::new(SiteId::random().unwrap());
                m.create_table("t", KeyShape::int(), true);
                m.track("t", "n", Group::Add).unwrap();
                m
            })
            .collect();
        let sql = (0..n)
            .map(|_| {
                let c = mem();
                c.execute_batch(
                    "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB); SELECT atomik_track('t', 'n');",
                )
                .unwrap();
                c
            })
            .collect();
        World {
            mem: stores,
            sql,
            snapshots: 0,
        }
    }

    fn accum(&mut self, r: usize, key: i64, d: i64) {
        self.mem[r]
            .accum("t", "n", &Key::int(key), Group::Add, d as u64)
            .unwrap();
        self.sql[r]
            .execute(
                "INSERT INTO t VALUES (?1, atomik_add(?2)) ON CONFLICT(id) DO UPDATE SET n = atomik_accum(n, ?2)",
                [key, d],
            )
            .unwrap();
    }

    fn seal(&mut self, r: usize) {
        let m = self.mem[r]
            .atomically(|s| protocol::seal(s, now()))
            .unwrap();
        let s = int(&self.sql[r], "SELECT atomik_seal()");
        assert_eq!(m as i64, s, "seal seq of replica {r}");
    }

    /// One sync of device `d` with the hub (replica 0); `deliver` says how
    /// many times the response arrives (0 = lost, 2 = duplicated).
    fn sync(&mut self, d: usize, deliver: usize) {
        let t = now();
        let req = self.mem[d]
            .atomically(|s| protocol::sync_request(s, t))
            .unwrap();
        let resp = self.mem[0]
            .atomically(|s| protocol::serve_sync(s, &req, t))
            .unwrap();
        if let Ok(r) = atomik_core::codec::v2::decode_response(&resp) {
            if r.payload.is_snapshot() {
                self.snapshots += 1;
            }
        }
        let sreq = blob(&self.sql[d], "SELECT atomik_sync_request()");
        let sresp: Vec<u8> = self.sql[0]
            .query_row("SELECT atomik_sync(?1)", [&sreq], |r| r.get(0))
            .unwrap();
        for _ in 0..deliver {
            let m = self.mem[d]
                .atomically(|s| protocol::finish_sync(s, &resp, t))
                .unwrap();
            let s: i64 = self.sql[d]
                .query_row("SELECT atomik_sync_finish(?1)", [&sresp], |r| r.get(0))
                .unwrap();
            assert_eq!(
                m as i64,
                s,
                "deltas applied by device {d}: memory hub sent {:?}, SQLite hub sent {:?}",
                atomik_core::codec::v2::decode_response(&resp),
                atomik_core::codec::v2::decode_response(&sresp)
            );
        }
    }

    fn check(&self, step: usize) {
        for (r, (m, c)) in self.mem.iter().zip(&self.sql).enumerate() {
            let want: Vec<(i64, Vec<u8>)> = m
                .cells("t", "n")
                .into_iter()
                .map(|(k, v)| (key_int(&k), v.to_bytes().to_vec()))
                .collect();
            assert_eq!(
                cells(c, "SELECT id, n FROM t WHERE n IS NOT NULL ORDER BY id"),
                want,
                "replica {r} after step {step}"
            );
        }
    }
}

fn key_int(k: &Key) -> i64 {
    match k.parts() {
        [atomik_core::KeyPart::Int(v)] => *v,
        other => panic!("unexpected key {other:?}"),
    }
}

#[test]
fn sqlite_store_matches_the_memory_store() {
    for seed in 0..4 {
        // Device 4 first syncs late, after the hub has folded batches away:
        // it bootstraps from a snapshot.
        let mut w = World::new(5);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for step in 0..300 {
            match rng.random_range(0..10) {
                0..=4 => {
                    let r = rng.random_range(0..5);
                    let d = if rng.random_bool(0.2) {
                        0
                    } else {
                        rng.random_range(-9..=9)
                    };
                    w.accum(r, rng.random_range(1..=KEYS), d);
                }
                5 => w.seal(rng.random_range(0..5)),
                _ => {
                    let deliver = [0, 1, 1, 2][rng.random_range(0..4)];
                    let devices = if step < 150 { 4 } else { 5 };
                    w.sync(rng.random_range(1..devices), deliver);
                }
            }
            w.check(step);
        }
        // Everyone converges to the same values.
        for _ in 0..2 {
            for d in 1..5 {
                w.sync(d, 1);
            }
        }
        w.check(usize::MAX);
        let hub: Vec<_> = w.mem[0].cells("t", "n");
        for d in 1..5 {
            assert_eq!(w.mem[d].cells("t", "n"), hub);
        }
        assert!(w.snapshots > 0, "seed {seed} bootstrapped from a snapshot");
        assert!(hub
            .iter()
            .all(|(_, v)| v.pending() == 0 && *v == AtomikValue::load(Group::Add, v.read())));
    }
}
