//! Concurrent sessions against a pg_atomik hub: no delta lost or doubled,
//! no deadlock left unhandled. Exits non-zero on any violation.
//!
//! 1. Four sessions serve the same device request at once.
//! 2. A device syncs round after round while hub sessions run local
//!    `atomik_accum` updates, deferred writes (`atomik_defer`) and folds,
//!    `atomik_seal()` and `VACUUM` concurrently.
//! 3. Three devices sync concurrently for many rounds; then the hub's log
//!    is trimmed (a one-second horizon) behind their cursors, so their
//!    next syncs bootstrap from snapshots, and a fourth device joins late
//!    (a snapshot too): all five replicas end byte-identical.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pg_atomik_client::{connect, fresh_database, retryable};

const ROWS: i64 = 100;

async fn setup(db: &str) -> tokio_postgres::Client {
    let c = fresh_database(db).await;
    c.batch_execute(
        "CREATE TABLE inv (id bigint PRIMARY KEY, c atomik);
         SELECT atomik_track('inv', 'c');",
    )
    .await
    .expect("setup");
    c
}

async fn total(c: &tokio_postgres::Client) -> i64 {
    c.query_one(
        "SELECT coalesce(sum(atomik_read(c)), 0)::bigint FROM inv",
        &[],
    )
    .await
    .expect("sum")
    .get(0)
}

async fn digest(c: &tokio_postgres::Client) -> i64 {
    c.query_one("SELECT atomik_digest('inv', 'c')", &[])
        .await
        .expect("digest")
        .get(0)
}

/// One device round trip: request, hub sync (retried on 40001/40P01), finish.
async fn round_trip(
    dev: &tokio_postgres::Client,
    hub: &tokio_postgres::Client,
    retries: &AtomicU64,
) {
    let req: Vec<u8> = dev
        .query_one("SELECT atomik_sync_request()", &[])
        .await
        .expect("request")
        .get(0);
    let resp: Vec<u8> = loop {
        match hub.query_one("SELECT atomik_sync($1)", &[&req]).await {
            Ok(r) => break r.get(0),
            Err(e) if retryable(&e) => {
                retries.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => panic!("hub sync failed: {e}"),
        }
    };
    dev.query_one("SELECT atomik_sync_finish($1)", &[&resp])
        .await
        .expect("finish");
}

/// Section 3: many devices, log retention (snapshots for cursors behind
/// the trimmed log), and a late joiner's snapshot.
async fn many_devices(retries: &Arc<AtomicU64>) -> u32 {
    let hub = setup("atomik_many_hub").await;
    hub.execute(
        "INSERT INTO inv SELECT i, atomik_add(0) FROM generate_series(1, $1::bigint) i",
        &[&ROWS],
    )
    .await
    .expect("hub rows");
    let mut tasks = Vec::new();
    for d in 0..3i64 {
        let retries = retries.clone();
        tasks.push(tokio::spawn(async move {
            let db = format!("atomik_many_dev{d}");
            let dev = setup(&db).await;
            let hub = connect("atomik_many_hub").await;
            let mut made = 0i64;
            for round in 0..15i64 {
                let id = (round * 7 + d * 13) % ROWS + 1;
                dev.execute(
                    "INSERT INTO inv VALUES ($1, atomik_add(0)) ON CONFLICT (id) DO NOTHING",
                    &[&id],
                )
                .await
                .expect("device row");
                dev.execute(
                    "UPDATE inv SET c = atomik_accum(c, $2) WHERE id = $1",
                    &[&id, &(d + 1)],
                )
                .await
                .expect("device update");
                made += d + 1;
                round_trip(&dev, &hub, &retries).await;
            }
            made
        }));
    }
    let mut made = 0;
    for t in tasks {
        made += t.await.expect("device task");
    }
    // Retention: with a one-second horizon, two hub-local seals two
    // seconds apart leave every device's cursor behind the trimmed part
    // of the log at their next sync, which then installs a snapshot.
    hub.batch_execute(
        "INSERT INTO atomik.settings VALUES ('horizon_secs', 1)
         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
    )
    .await
    .expect("horizon");
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        hub.batch_execute(
            "UPDATE inv SET c = atomik_accum(c, 1) WHERE id = 1; SELECT atomik_seal();",
        )
        .await
        .expect("hub write");
        made += 1;
    }
    // Everyone syncs twice more: uploads reach the hub, then every device
    // has every other device's deltas.
    for _ in 0..2 {
        for d in 0..3 {
            let dev = connect(&format!("atomik_many_dev{d}")).await;
            round_trip(&dev, &hub, retries).await;
        }
    }
    let trimmed: i64 = hub
        .query_one(
            "SELECT coalesce((SELECT value FROM atomik.settings WHERE name = 'log_trimmed_through'), 0)",
            &[],
        )
        .await
        .expect("trimmed")
        .get(0);
    // A late joiner: it holds no cursor, so it gets a snapshot.
    let late = setup("atomik_many_late").await;
    round_trip(&late, &hub, retries).await;
    let mut failures = 0;
    let hub_digest = digest(&hub).await;
    let hub_total = total(&hub).await;
    let mut report = Vec::new();
    for db in [
        "atomik_many_dev0",
        "atomik_many_dev1",
        "atomik_many_dev2",
        "atomik_many_late",
    ] {
        let c = connect(db).await;
        let (t, dg) = (total(&c).await, digest(&c).await);
        report.push(format!("{db}={t}"));
        if t != made || dg != hub_digest {
            failures += 1;
        }
    }
    println!(
        "many devices: hub total {hub_total}, expected {made}; {}; hub log trimmed through position {}; digests {}",
        report.join(" "),
        trimmed,
        if failures == 0 { "equal" } else { "DIFFER" }
    );
    if hub_total != made || trimmed == 0 {
        failures += 1;
    }
    if failures > 0 {
        eprintln!("FAIL: many devices did not converge (or the log was not trimmed)");
    }
    drop((hub, late));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let admin = connect("postgres").await;
    for db in [
        "atomik_many_hub",
        "atomik_many_dev0",
        "atomik_many_dev1",
        "atomik_many_dev2",
        "atomik_many_late",
    ] {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .expect("cleanup");
    }
    u32::from(failures > 0)
}

#[tokio::main]
async fn main() {
    let mut failures = 0;
    let retries = Arc::new(AtomicU64::new(0));

    // 1. The same request served by four sessions at once.
    let hub = setup("atomik_conc_hub").await;
    let dev = setup("atomik_conc_dev").await;
    dev.execute(
        "INSERT INTO inv SELECT i, atomik_add(1) FROM generate_series(1, $1::bigint) i",
        &[&ROWS],
    )
    .await
    .expect("insert");
    let req: Vec<u8> = dev
        .query_one("SELECT atomik_sync_request()", &[])
        .await
        .expect("req")
        .get(0);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            let c = connect("atomik_conc_hub").await;
            c.query_one("SELECT atomik_sync($1)", &[&req])
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("concurrent sync");
    }
    let hub_total = total(&hub).await;
    println!("same request served 4x at once: hub total {hub_total} (expected {ROWS})");
    if hub_total != ROWS {
        failures += 1;
        eprintln!("FAIL: a delta was lost or doubled");
    }
    round_trip(&dev, &hub, &retries).await;

    // 2. Device rounds racing hub-local updates, seals and VACUUM.
    let local = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut background = Vec::new();
    for w in 0..2i64 {
        let (local, stop, retries) = (local.clone(), stop.clone(), retries.clone());
        background.push(tokio::spawn(async move {
            let c = connect("atomik_conc_hub").await;
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let id = i % ROWS + 1;
                match c
                    .execute(
                        "UPDATE inv SET c = atomik_accum(c, 1) WHERE id = $1",
                        &[&id],
                    )
                    .await
                {
                    Ok(n) => {
                        local.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) if retryable(&e) => {
                        retries.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("local update failed: {e}"),
                }
            }
        }));
    }
    // Deferred writers on the hub (0.2.0): no row lock; their deltas reach
    // the device through the hub's seals, which fold first.
    for w in 0..2i64 {
        let (local, stop, retries) = (local.clone(), stop.clone(), retries.clone());
        background.push(tokio::spawn(async move {
            let c = connect("atomik_conc_hub").await;
            let mut i = w * 31;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let id = i % ROWS + 1;
                c.execute("SELECT atomik_defer('inv', 'c', $1::bigint, 1)", &[&id])
                    .await
                    .expect("deferred write");
                local.fetch_add(1, Ordering::Relaxed);
                if i % 50 == 0 {
                    match c.execute("SELECT atomik_fold_deferred()", &[]).await {
                        Ok(_) => {}
                        Err(e) if retryable(&e) => {
                            retries.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("fold failed: {e}"),
                    }
                }
            }
        }));
    }
    {
        let (stop, retries) = (stop.clone(), retries.clone());
        background.push(tokio::spawn(async move {
            let c = connect("atomik_conc_hub").await;
            while !stop.load(Ordering::Relaxed) {
                match c.query_one("SELECT atomik_seal()", &[]).await {
                    Ok(_) => {}
                    Err(e) if retryable(&e) => {
                        retries.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("seal failed: {e}"),
                }
                c.batch_execute("VACUUM inv").await.expect("vacuum");
                c.batch_execute("VACUUM atomik.log, atomik.dirty")
                    .await
                    .expect("vacuum");
            }
        }));
    }
    let mut device_increments = 0i64;
    for round in 0..30i64 {
        let n = dev
            .execute(
                "UPDATE inv SET c = atomik_accum(c, 2) WHERE id % 7 = $1",
                &[&(round % 7)],
            )
            .await
            .expect("device update");
        device_increments += 2 * n as i64;
        round_trip(&dev, &hub, &retries).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in background {
        t.await.expect("background task");
    }
    // Final exchange: the device uploads nothing new and downloads the rest.
    hub.query_one("SELECT atomik_seal()", &[])
        .await
        .expect("seal");
    round_trip(&dev, &hub, &retries).await;
    let expected = ROWS + local.load(Ordering::Relaxed) as i64 + device_increments;
    let (h, d) = (total(&hub).await, total(&dev).await);
    let (hd, dd) = (digest(&hub).await, digest(&dev).await);
    println!(
        "racing: hub total {h}, device total {d}, expected {expected} \
         ({} hub-local updates, {device_increments} device increments, {} retries); digests {}",
        local.load(Ordering::Relaxed),
        retries.load(Ordering::Relaxed),
        if hd == dd { "equal" } else { "DIFFER" }
    );
    if h != expected || d != expected || hd != dd {
        failures += 1;
        eprintln!("FAIL: replicas disagree with the sum of unique deltas");
    }
    failures += many_devices(&retries).await;

    let admin = connect("postgres").await;
    drop((hub, dev));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    for db in ["atomik_conc_hub", "atomik_conc_dev"] {
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .await
            .expect("cleanup");
    }
    if failures > 0 {
        std::process::exit(1);
    }
    println!("concurrency: ok");
}
