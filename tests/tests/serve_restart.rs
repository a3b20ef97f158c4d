//! `atomik serve` in front of a PostgreSQL hub keeps a pool of
//! connections, serves several devices at once, and keeps serving after
//! the database restarts (a sync that meets a broken connection is retried
//! on a fresh one; a repeated sync request is a harmless duplicate).
//!
//! Needs the cross-engine cluster (`tests/cross-engine.sh` sets
//! `ATOMIK_PG_HOST`, `ATOMIK_PG_PORT`, `ATOMIK_PG_DIR` and `ATOMIK_BIN`).

use std::path::PathBuf;
use std::process::Command;

use atomik_cross_engine::node::Node;
use atomik_cross_engine::pg_node::{PgCluster, PgNode};
use atomik_cross_engine::schema::{Column, Delta};
use atomik_cross_engine::serve::ServeProcess;
use atomik_cross_engine::sqlite_node::SqliteNode;

const DB: &str = "atomik_serve_restart";

fn sync(device: &mut SqliteNode, serve: &ServeProcess) {
    let request = device.sync_request().unwrap();
    let response = serve.exchange(&request).unwrap();
    device.finish_sync(&response).unwrap();
}

fn restart(dir: &str, port: u16) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../pg_atomik/scripts/cluster.sh");
    for args in [vec!["stop", dir], vec!["start", dir, &port.to_string()]] {
        let status = Command::new(&script).args(&args).status().unwrap();
        assert!(status.success(), "cluster.sh {args:?}");
    }
}

#[test]
#[ignore = "needs PostgreSQL with pg_atomik: run tests/cross-engine.sh"]
fn pooled_serve_survives_a_database_restart() {
    let pg = PgCluster::from_env()
        .unwrap()
        .expect("ATOMIK_PG_HOST is not set: run tests/cross-engine.sh");
    let dir = std::env::var("ATOMIK_PG_DIR").expect("ATOMIK_PG_DIR (the cluster's directory)");
    let bin = PathBuf::from(std::env::var("ATOMIK_BIN").expect("ATOMIK_BIN (the atomik program)"));
    pg.reset_database(DB).unwrap();
    let serve = ServeProcess::start(&bin, &pg.url(DB), &["--pool", "4"]).unwrap();
    let files = tempfile::tempdir().unwrap();
    let mut devices: Vec<SqliteNode> = (0..8)
        .map(|i| SqliteNode::open(&files.path().join(format!("d{i}.sqlite"))).unwrap())
        .collect();
    let mut expected = vec![0i64; 8];
    let mut next_id = 1;
    let mut sell = |d: &mut SqliteNode, key: i64, expected: &mut Vec<i64>| {
        d.write(
            next_id,
            &[Delta {
                key,
                column: Column::N,
                delta: (-1i64) as u64,
            }],
        )
        .unwrap();
        next_id += 1;
        expected[key as usize] -= 1;
    };
    // Eight devices write and sync at the same time, twice.
    for round in 0..2 {
        for (i, d) in devices.iter_mut().enumerate() {
            sell(d, ((i + round) % 8) as i64, &mut expected);
        }
        std::thread::scope(|s| {
            for d in devices.iter_mut() {
                let serve = &serve;
                s.spawn(move || sync(d, serve));
            }
        });
    }
    // The database restarts under the running server.
    restart(&dir, pg.port);
    let mut hub = PgNode::connect(&pg, DB).unwrap();
    for (i, d) in devices.iter_mut().enumerate() {
        sell(d, (i % 8) as i64, &mut expected);
        sync(d, &serve);
    }
    for d in devices.iter_mut() {
        sync(d, &serve);
    }
    // Everyone holds the exact sums, byte for byte.
    let rows = hub.rows().unwrap();
    let sums: Vec<i64> = rows
        .iter()
        .map(|(_, n, _)| atomik_core::AtomikValue::from_bytes(n).unwrap().read_i64())
        .collect();
    assert_eq!(sums, expected);
    for d in devices.iter_mut() {
        assert_eq!(d.rows().unwrap(), rows);
    }
}
