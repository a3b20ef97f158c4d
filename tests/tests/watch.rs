//! Live push on a PostgreSQL hub: `LISTEN atomik_log` hears each log
//! position commit, and a device watching one `atomik serve` learns of a
//! sync made through another serve of the same hub (its `LISTEN`), then
//! syncs and converges.
//!
//! Needs the cross-engine cluster (`tests/cross-engine.sh` sets
//! `ATOMIK_PG_HOST`, `ATOMIK_PG_PORT` and `ATOMIK_BIN`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use atomik_cross_engine::node::Node;
use atomik_cross_engine::pg_node::{PgCluster, PgNode};
use atomik_cross_engine::schema::{Column, Delta};
use atomik_cross_engine::serve::ServeProcess;
use atomik_cross_engine::sqlite_node::SqliteNode;
use postgres::fallible_iterator::FallibleIterator as _;

const DB: &str = "atomik_watch";

fn sync(device: &mut SqliteNode, serve: &ServeProcess) -> u64 {
    let request = device.sync_request().unwrap();
    let response = serve.exchange(&request).unwrap();
    device.finish_sync(&response).unwrap();
    atomik_core::codec::v2::decode_response(&response)
        .unwrap()
        .position
}

fn sell(device: &mut SqliteNode, id: u64, key: i64) {
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
}

#[test]
#[ignore = "needs PostgreSQL with pg_atomik: run tests/cross-engine.sh"]
fn a_watch_on_one_serve_hears_a_sync_through_another() {
    let pg = PgCluster::from_env()
        .unwrap()
        .expect("ATOMIK_PG_HOST is not set: run tests/cross-engine.sh");
    let bin = PathBuf::from(std::env::var("ATOMIK_BIN").expect("ATOMIK_BIN (the atomik program)"));
    pg.reset_database(DB).unwrap();
    let mut listener = postgres::Client::connect(&pg.url(DB), postgres::NoTls).unwrap();
    listener.batch_execute("LISTEN atomik_log").unwrap();
    let (a, b) = (
        ServeProcess::start(&bin, &pg.url(DB), &["--pool", "2"]).unwrap(),
        ServeProcess::start(&bin, &pg.url(DB), &["--pool", "2"]).unwrap(),
    );
    let files = tempfile::tempdir().unwrap();
    let mut seller = SqliteNode::open(&files.path().join("seller.sqlite")).unwrap();
    let mut online = SqliteNode::open(&files.path().join("online.sqlite")).unwrap();
    sell(&mut seller, 1, 3);
    sync(&mut seller, &a);
    // The serve numbers the seller's batch after the sync (atomik_publish):
    // LISTEN hears its position.
    let heard = listener
        .notifications()
        .timeout_iter(Duration::from_secs(20))
        .next()
        .unwrap()
        .expect("a notification on atomik_log within 20 s");
    assert_eq!(heard.channel(), "atomik_log");
    let mut hub = PgNode::connect(&pg, DB).unwrap();
    let position: i64 = hub
        .client()
        .query_one("SELECT atomik_log_position()", &[])
        .unwrap()
        .get(0);
    assert_eq!(heard.payload(), position.to_string());
    let mut cursor = sync(&mut online, &b);
    // Drain: the online device's own first sync may be numbered too.
    while cursor < b.watch(cursor, 1).unwrap() {
        cursor = sync(&mut online, &b);
    }
    // The online device watches serve b; the seller syncs through serve a.
    let watching = std::thread::spawn(move || {
        let started = Instant::now();
        (b.watch(cursor, 30).unwrap(), started.elapsed(), b)
    });
    std::thread::sleep(Duration::from_millis(300));
    sell(&mut seller, 2, 3);
    sync(&mut seller, &a);
    let (moved, waited, b) = watching.join().unwrap();
    assert!(moved > cursor, "the log moved past the watched cursor");
    assert!(
        waited < Duration::from_secs(30),
        "answered by the other serve's sync, not by the wait running out"
    );
    sync(&mut online, &b);
    assert_eq!(online.rows().unwrap(), hub.rows().unwrap());
    assert_eq!(seller.rows().unwrap(), {
        sync(&mut seller, &a);
        hub.rows().unwrap()
    });
}
