//! Crash safety: a child process applying and syncing (device ↔ SQLite hub,
//! real files) is killed with SIGKILL at random points; after every batch of
//! kills the files are reopened, the sync is finished, and both must hold
//! exactly the oracle's values — nothing lost, nothing doubled.
//!
//! The child is this test binary re-executed (`crash_child`). Every local
//! write commits together with a step counter in the same transaction, so
//! the oracle knows exactly which writes survived. `ATOMIK_CRASH_POINTS`
//! sets the number of kills (default 300).

mod common;
use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const KEYS: i64 = 300;
const SCHEMA: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB);
                      CREATE TABLE progress(step INTEGER NOT NULL);
                      INSERT INTO progress VALUES (0);
                      SELECT atomik_track('t', 'n');";

/// Cells written by one step (one transaction).
const WRITES: usize = 8;

/// The deterministic writes of step `i`: which replica (true = hub), and
/// (key, delta) pairs.
fn step(i: u64) -> (bool, Vec<(i64, i64)>) {
    let mut r = ChaCha8Rng::seed_from_u64(i);
    let writes = (0..WRITES)
        .map(|_| (r.random_range(1..=KEYS), r.random_range(-1000..=1000)))
        .collect();
    (i.is_multiple_of(5), writes)
}

fn open(dir: &Path, name: &str) -> Connection {
    let c = rusqlite::Connection::open(dir.join(name)).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    // A killed process loses nothing the OS already has, so fsync only
    // costs time here; the journal still makes every call atomic.
    c.execute_batch("PRAGMA synchronous = OFF").unwrap();
    sqlite_atomik::register(&c).unwrap();
    c
}

fn progress(c: &Connection) -> u64 {
    int(c, "SELECT step FROM progress") as u64
}

/// One sync round trip; every call is its own transaction, so a kill can
/// land between any two of them.
fn sync_round(device: &Connection, hub: &Connection) {
    sync(device, hub);
}

/// The child: continue the script from the last committed step, forever.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("ATOMIK_CRASH_CHILD") else {
        return;
    };
    let dir = Path::new(&dir);
    let device = open(dir, "device.db");
    let hub = open(dir, "hub.db");
    let mut i = progress(&device).max(progress(&hub)) + 1;
    // Tell the parent the files are open: kills land in the work below.
    std::fs::write(dir.join(format!("ready-{}", std::process::id())), b"").unwrap();
    loop {
        let (on_hub, writes) = step(i);
        let c = if on_hub { &hub } else { &device };
        c.execute_batch("BEGIN").unwrap();
        for (id, d) in writes {
            c.execute(
                "INSERT INTO t(id, n) VALUES (?1, atomik_add(?2)) ON CONFLICT(id) DO UPDATE SET n = atomik_accum(n, ?2)",
                rusqlite::params![id, d],
            )
            .unwrap();
        }
        c.execute("UPDATE progress SET step = ?1", [i as i64])
            .unwrap();
        c.execute_batch("COMMIT").unwrap();
        if i.is_multiple_of(7) {
            sync_round(&device, &hub);
        }
        i += 1;
    }
}

/// Finish syncing and compare both replicas with the oracle.
fn verify(dir: &Path) {
    let device = open(dir, "device.db");
    let hub = open(dir, "hub.db");
    let (pd, ph) = (progress(&device), progress(&hub));
    let mut oracle: BTreeMap<i64, i64> = BTreeMap::new();
    for i in 1..=pd.max(ph) {
        let (on_hub, writes) = step(i);
        if (on_hub && i <= ph) || (!on_hub && i <= pd) {
            for (id, d) in writes {
                let e = oracle.entry(id).or_insert(0);
                *e = e.wrapping_add(d);
            }
        }
    }
    sync_round(&device, &hub);
    sync_round(&device, &hub);
    let want: Vec<(i64, Vec<u8>)> = oracle
        .iter()
        .map(|(id, n)| {
            (
                *id,
                atomik_core::AtomikValue::load(atomik_core::Group::Add, *n as u64)
                    .to_bytes()
                    .to_vec(),
            )
        })
        .collect();
    assert_eq!(
        cells(&hub, "SELECT id, n FROM t ORDER BY id"),
        want,
        "hub after step {pd}/{ph}"
    );
    assert_eq!(
        cells(&device, "SELECT id, n FROM t ORDER BY id"),
        want,
        "device after step {pd}/{ph}"
    );
}

#[test]
fn killed_at_random_points_loses_and_doubles_nothing() {
    let points: usize = std::env::var("ATOMIK_CRASH_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let dir = temp_dir("crash");
    for name in ["device.db", "hub.db"] {
        open(&dir, name).execute_batch(SCHEMA).unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut last = 0;
    for k in 0..points {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("ATOMIK_CRASH_CHILD", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the child has opened the files, then let it work a
        // random while.
        let ready = dir.join(format!("ready-{}", child.id()));
        let start = std::time::Instant::now();
        while !ready.exists() && child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "child never got ready"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = std::fs::remove_file(&ready);
        std::thread::sleep(Duration::from_micros(rng.random_range(0..15_000)));
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("child exited by itself ({status}): {err}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if k % 50 == 49 || k + 1 == points {
            verify(&dir);
        }
        let device = open(&dir, "device.db");
        last = progress(&device);
    }
    assert!(last > 0, "the child made progress before being killed");
    eprintln!("crash test: {points} kills, {last} steps committed");
    assert!(
        last as usize > points,
        "the kills landed in the work, not before it"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
