//! Crash test of the deferred path: concurrent `atomik_defer` writers, manual
//! folds and seals (and the fold worker, when the server preloads
//! pg_atomik) run while the server is stopped with `pg_ctl stop -m
//! immediate` at random moments, several times. After every restart and at
//! the end, the value of each hot cell must equal the sum of the deltas of
//! committed transactions — no delta lost, none doubled.
//!
//! Each writer transaction records its delta with `atomik_defer` and a
//! unique id in `ledger` in the same transaction. The writer adds the delta
//! to its own tally only after COMMIT returns; a COMMIT cut off by the
//! crash is "in doubt" and settled by looking its id up in the ledger after
//! the restart (the ledger commits exactly when the delta does).
//!
//! Environment: `ATOMIK_PG` (connection string without dbname, as for the
//! other client programs), `ATOMIK_CRASH_STOP` and `ATOMIK_CRASH_START`
//! (shell commands that stop the server immediately and start it again),
//! `ATOMIK_CRASH_ROUNDS` (default 5), `ATOMIK_CRASH_SEED`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pg_atomik_client::connect;

const DB: &str = "atomik_crash";
const KEYS: i64 = 4;
const WRITERS: u64 = 8;

/// A small deterministic generator (xorshift64*), enough for schedules.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the clients know: committed deltas per key, and in-doubt ids.
#[derive(Default)]
struct Tally {
    committed: BTreeMap<i64, i64>,
    committed_ids: BTreeSet<i64>,
    in_doubt: BTreeMap<i64, (i64, i64)>,
}

fn shell(var: &str) {
    let cmd = std::env::var(var).unwrap_or_else(|_| panic!("set {var}"));
    let status = Command::new("sh").arg("-c").arg(&cmd).status().expect(var);
    assert!(status.success(), "{var} ({cmd}) failed: {status}");
}

async fn connect_retry(db: &str) -> tokio_postgres::Client {
    for _ in 0..100 {
        if let Some(c) = try_connect(db).await {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot reconnect to {db}");
}

/// One connection to `db` on the cluster of `ATOMIK_PG`, its connection
/// task spawned; `None` while the server is down.
async fn try_connect(db: &str) -> Option<tokio_postgres::Client> {
    let base = std::env::var("ATOMIK_PG").expect("ATOMIK_PG");
    let (c, conn) = tokio_postgres::connect(&format!("{base} dbname={db}"), tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(c)
}

async fn writer(id_base: i64, seed: u64, tally: Arc<Mutex<Tally>>, stop_at: Instant) {
    let Some(c) = try_connect(DB).await else {
        return;
    };
    let mut rng = Rng(seed | 1);
    let mut n = 0;
    while Instant::now() < stop_at {
        n += 1;
        let id = id_base + n;
        let key = rng.below(KEYS as u64) as i64 + 1;
        let delta = rng.below(1000) as i64 - 300;
        let body = format!(
            "BEGIN;
             SELECT atomik_defer('hot', 'n', {key}::bigint, {delta}::bigint);
             INSERT INTO ledger VALUES ({id}, {key}, {delta});"
        );
        if c.batch_execute(&body).await.is_err() {
            return; // the server went away before COMMIT: not committed
        }
        match c.batch_execute("COMMIT").await {
            Ok(()) => {
                let mut t = tally.lock().unwrap();
                *t.committed.entry(key).or_default() += delta;
                t.committed_ids.insert(id);
            }
            Err(_) => {
                tally.lock().unwrap().in_doubt.insert(id, (key, delta));
                return;
            }
        }
    }
}

async fn folder(stop_at: Instant, seal: bool) {
    let Some(c) = try_connect(DB).await else {
        return;
    };
    let sql = if seal {
        "SELECT atomik_seal()"
    } else {
        "SELECT atomik_fold_deferred()"
    };
    while Instant::now() < stop_at {
        match c.simple_query(sql).await {
            Ok(_) => {}
            Err(e) if e.code().is_some() => {} // deadlock etc.: retry
            Err(_) => return,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Settle in-doubt ids against the ledger, then compare every cell (live
/// value, and after a full fold, the row) with the committed deltas.
async fn check(tally: &Mutex<Tally>, round: u32) {
    let c = connect_retry(DB).await;
    let ledger: BTreeSet<i64> = c
        .query("SELECT id FROM ledger", &[])
        .await
        .expect("ledger")
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (expected, settled) = {
        let mut t = tally.lock().unwrap();
        let doubt = std::mem::take(&mut t.in_doubt);
        let mut settled = 0;
        for (id, (key, delta)) in doubt {
            if ledger.contains(&id) {
                *t.committed.entry(key).or_default() += delta;
                t.committed_ids.insert(id);
                settled += 1;
            }
        }
        let missing: Vec<_> = t.committed_ids.difference(&ledger).collect();
        assert!(
            missing.is_empty(),
            "committed ids missing from the ledger: {missing:?}"
        );
        (t.committed.clone(), settled)
    };
    for key in 1..=KEYS {
        let live: i64 = c
            .query_one("SELECT atomik_live('hot', 'n', $1::bigint)", &[&key])
            .await
            .expect("live")
            .get(0);
        let want = expected.get(&key).copied().unwrap_or(0);
        assert_eq!(live, want, "round {round}: live value of key {key}");
    }
    let buffered: i64 = c
        .query_one("SELECT count(*) FROM atomik.deferred", &[])
        .await
        .unwrap()
        .get(0);
    println!(
        "round {round}: {} committed transactions ({settled} settled from in-doubt), {buffered} deltas still buffered after restart; live values exact",
        ledger.len()
    );
}

#[tokio::main]
async fn main() {
    let rounds: u32 = std::env::var("ATOMIK_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let seed: u64 = std::env::var("ATOMIK_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash_deferred: {rounds} rounds, seed {seed}");
    let mut rng = Rng(seed | 1);
    let admin = connect("postgres").await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {DB}"))
        .await
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {DB}"))
        .await
        .unwrap();
    let c = connect(DB).await;
    c.batch_execute(&format!(
        "CREATE EXTENSION pg_atomik;
         CREATE TABLE hot (id bigint PRIMARY KEY, n atomik);
         SELECT atomik_track('hot', 'n');
         INSERT INTO hot SELECT i, atomik_add(0) FROM generate_series(1, {KEYS}) i;
         CREATE TABLE ledger (id bigint PRIMARY KEY, key bigint NOT NULL, delta bigint NOT NULL);"
    ))
    .await
    .unwrap();
    drop(c);
    drop(admin);
    let tally = Arc::new(Mutex::new(Tally::default()));
    for round in 1..=rounds {
        let run_ms = 300 + rng.below(1500);
        let stop_at = Instant::now() + Duration::from_secs(30);
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let base = (i64::from(round) * 100 + w as i64) * 1_000_000_000;
            tasks.push(tokio::spawn(writer(
                base,
                rng.next(),
                tally.clone(),
                stop_at,
            )));
        }
        tasks.push(tokio::spawn(folder(stop_at, false)));
        tasks.push(tokio::spawn(folder(stop_at, true)));
        tokio::time::sleep(Duration::from_millis(run_ms)).await;
        println!("round {round}: immediate shutdown after {run_ms} ms");
        shell("ATOMIK_CRASH_STOP");
        for t in tasks {
            let _ = t.await;
        }
        shell("ATOMIK_CRASH_START");
        check(&tally, round).await;
    }
    // Final: fold everything, then rows alone must hold the committed sums.
    let c = connect_retry(DB).await;
    c.batch_execute("SELECT atomik_fold_deferred()")
        .await
        .unwrap();
    let expected = tally.lock().unwrap().committed.clone();
    for key in 1..=KEYS {
        let (read, ledger): (i64, i64) = {
            let r = c
                .query_one(
                    "SELECT atomik_read(n), (SELECT coalesce(sum(delta), 0)::bigint FROM ledger WHERE key = $1)
                       FROM hot WHERE id = $1",
                    &[&key],
                )
                .await
                .unwrap();
            (r.get(0), r.get(1))
        };
        let want = expected.get(&key).copied().unwrap_or(0);
        assert_eq!(read, want, "final folded value of key {key}");
        assert_eq!(ledger, want, "ledger sum of key {key}");
        println!("key {key}: folded {read} = committed {want}");
    }
    let left: i64 = c
        .query_one("SELECT count(*) FROM atomik.deferred", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "buffer not empty after the final fold");
    println!("crash_deferred: passed ({rounds} immediate shutdowns, seed {seed})");
}
