//! A stateless hub tier: several `atomik serve` processes in front of one
//! PostgreSQL hub serve one fleet, each sync going to any of them at
//! random (no sticky sessions), many at once. The hub's serves run in
//! parallel (pg_atomik 0.4.0), so this also checks what makes that safe:
//! exactly-once per origin when one request reaches two servers at once,
//! and cursors that never pass an entry committed later — every device
//! ends with the exact sums, byte for byte.
//!
//! Needs the cross-engine cluster (`tests/cross-engine.sh` sets
//! `ATOMIK_PG_HOST`, `ATOMIK_PG_PORT` and `ATOMIK_BIN`).

use std::path::PathBuf;

use atomik_cross_engine::node::Node;
use atomik_cross_engine::pg_node::{PgCluster, PgNode};
use atomik_cross_engine::schema::{Column, Delta};
use atomik_cross_engine::serve::ServeProcess;
use atomik_cross_engine::sqlite_node::SqliteNode;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DB: &str = "atomik_serve_tier";
const SERVERS: usize = 3;
const DEVICES: usize = 24;
const KEYS: i64 = 8;
const ROUNDS: usize = 4;

fn sync(device: &mut SqliteNode, serve: &ServeProcess) {
    let request = device.sync_request().unwrap();
    let response = serve.exchange(&request).unwrap();
    device.finish_sync(&response).unwrap();
}

fn sell(device: &mut SqliteNode, id: u64, key: i64, expected: &mut [i64]) {
    device
        .write(
            id,
            &[Delta {
                key,
                column: Column::N,
                delta: (-1i64) as u64,
            }],
        )
        .unwrap();
    expected[key as usize] -= 1;
}

#[test]
#[ignore = "needs PostgreSQL with pg_atomik: run tests/cross-engine.sh"]
fn several_servers_over_one_hub_serve_one_fleet_in_parallel() {
    let pg = PgCluster::from_env()
        .unwrap()
        .expect("ATOMIK_PG_HOST is not set: run tests/cross-engine.sh");
    let bin = PathBuf::from(std::env::var("ATOMIK_BIN").expect("ATOMIK_BIN (the atomik program)"));
    pg.reset_database(DB).unwrap();
    let servers: Vec<ServeProcess> = (0..SERVERS)
        .map(|_| ServeProcess::start(&bin, &pg.url(DB), &["--pool", "4"]).unwrap())
        .collect();
    let files = tempfile::tempdir().unwrap();
    let mut devices: Vec<SqliteNode> = (0..DEVICES)
        .map(|i| SqliteNode::open(&files.path().join(format!("d{i}.sqlite"))).unwrap())
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut expected = vec![0i64; KEYS as usize];
    let mut next_id = 1;
    for _ in 0..ROUNDS {
        for d in devices.iter_mut() {
            for _ in 0..rng.random_range(1..=3) {
                // Key 0 is hot: most syncs of a round update its row.
                let key = if rng.random_bool(0.5) {
                    0
                } else {
                    rng.random_range(1..KEYS)
                };
                sell(d, next_id, key, &mut expected);
                next_id += 1;
            }
        }
        let picks: Vec<usize> = (0..DEVICES).map(|_| rng.random_range(0..SERVERS)).collect();
        std::thread::scope(|s| {
            for (d, pick) in devices.iter_mut().zip(&picks) {
                let serve = &servers[*pick];
                s.spawn(move || sync(d, serve));
            }
        });
    }

    // One request reaches two servers at the same time (a client that
    // retried on another endpoint): its batch is applied exactly once, and
    // the device may finish with either answer.
    let d = &mut devices[0];
    sell(d, next_id, 1, &mut expected);
    let request = d.sync_request().unwrap();
    let answers: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = servers[..2]
            .iter()
            .map(|serve| {
                let request = &request;
                s.spawn(move || serve.exchange(request).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    d.finish_sync(&answers[1]).unwrap();

    // Two quiet rounds, one device at a time, to any server: everyone
    // catches up with whatever committed last.
    for _ in 0..2 {
        for d in devices.iter_mut() {
            let pick = rng.random_range(0..SERVERS);
            sync(d, &servers[pick]);
        }
    }
    let mut hub = PgNode::connect(&pg, DB).unwrap();
    let rows = hub.rows().unwrap();
    let sums: Vec<i64> = rows
        .iter()
        .map(|(_, n, _)| atomik_core::AtomikValue::from_bytes(n).unwrap().read_i64())
        .collect();
    assert_eq!(sums, expected, "the hub holds the exact sums");
    for (i, d) in devices.iter_mut().enumerate() {
        assert_eq!(d.rows().unwrap(), rows, "device {i} holds the hub's rows");
    }
}
