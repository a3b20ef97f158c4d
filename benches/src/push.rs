//! Live push — how long after a device's sync commits at the hub another,
//! online device has applied it: through `atomik serve` over loopback, a
//! device that holds `GET /watch` open against one that polls every
//! second.
//!
//! One hub (a SQLite file, and a PostgreSQL database when the bench has a
//! cluster) behind one `atomik serve` child process. Two devices, each a
//! SQLite file driven through the atomik SQL functions over its own
//! keep-alive HTTP connection:
//! * the **seller** makes `changes` changes, one every 20–80 ms (uniform,
//!   seeded): +1 on one counter, then a sync; the change counts as
//!   committed when the sync's answer arrives (the hub commits before it
//!   answers, so this is the latest the commit can have been);
//! * the **watcher** either watches (`GET /watch?after=<its cursor>`, then
//!   a sync whenever the answer is past its cursor) or polls (a sync every
//!   `poll_interval`, at a phase unrelated to the seller's). After each of
//!   its syncs it reads the counter: change `i` was applied when the
//!   counter first reads `i` or more.
//!
//! Latency of change `i` = applied − committed, clamped at 0 (a watcher
//! sync that overtakes the seller's answer). Push and poll run one after
//! the other on the same hub; the report gives median, p90, p99 and max
//! of each, and push's median over poll's.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::stats::{percentile, ratio};
use crate::w7load::{agent, body, postgres_url, ServeChild};

/// The hub database the PostgreSQL measurement creates (dropped first).
const DB: &str = "atomik_push";
/// The table both devices and the hub track.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS inventory(sku INTEGER PRIMARY KEY, qty BLOB);
                      SELECT atomik_track('inventory', 'qty');";
/// How long one watch waits at most.
const WATCH_SECS: u64 = 25;

/// The shape of the measurement.
#[derive(Debug, Clone, Serialize)]
pub struct PushParams {
    /// Changes the seller makes with the watcher watching.
    pub changes: usize,
    /// Changes the seller makes with the watcher polling.
    pub poll_changes: usize,
    /// The polling watcher's period.
    pub poll_interval_ms: u64,
    /// The seller's pause between changes: uniform in this range (ms).
    pub gap_ms: (u64, u64),
}

impl PushParams {
    /// 200 changes each way (1,000 pushed with `full`), polling every
    /// second, a change every 20–80 ms.
    pub fn standard(full: bool) -> Self {
        PushParams {
            changes: if full { 1000 } else { 200 },
            poll_changes: if full { 400 } else { 200 },
            poll_interval_ms: 1000,
            gap_ms: (20, 80),
        }
    }
}

/// The latencies of one mode.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// `watch` or `poll 1000 ms`.
    pub mode: String,
    /// Changes measured.
    pub changes: usize,
    /// Median, 90th, 99th percentile and maximum, in ms.
    pub median_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The slowest change.
    pub max_ms: f64,
    /// Syncs the watcher made.
    pub watcher_syncs: usize,
    /// `GET /watch` requests the watcher made (0 when polling).
    pub watches: usize,
}

/// Push against polling on one hub.
#[derive(Debug, Clone, Serialize)]
pub struct HubPush {
    /// `sqlite` or `postgres`.
    pub hub: String,
    /// The watching device.
    pub watch: Latency,
    /// The polling device.
    pub poll: Latency,
    /// Median latency of watching over polling.
    pub median_ratio: f64,
}

/// The whole measurement.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// Its shape.
    pub params: PushParams,
    /// One entry per hub measured.
    pub hubs: Vec<HubPush>,
}

/// A device: a SQLite file with atomik, and its HTTP connection.
struct Device {
    conn: rusqlite::Connection,
    http: ureq::Agent,
    url: String,
}

impl Device {
    fn open(path: &Path, url: &str) -> Result<Self> {
        let conn = rusqlite::Connection::open(path)?;
        sqlite_atomik::register(&conn)?;
        conn.execute_batch(SCHEMA)?;
        Ok(Device {
            conn,
            http: agent(),
            url: url.to_string(),
        })
    }

    /// One sync; the device's new cursor position.
    fn sync(&mut self) -> Result<u64> {
        let request: Vec<u8> = self
            .conn
            .query_row("SELECT atomik_sync_request()", [], |r| r.get(0))?;
        let response = body(
            self.http
                .post(&format!("{}/sync", self.url))
                .send_bytes(&request),
        )?;
        self.conn
            .query_row("SELECT atomik_sync_finish(?1)", [&response], |r| {
                r.get::<_, i64>(0)
            })?;
        Ok(atomik_core::codec::v2::decode_response(&response)?.position)
    }

    /// `GET /watch?after=N`: the hub log's position.
    fn watch(&self, after: u64) -> Result<u64> {
        let answer = self
            .http
            .get(&format!(
                "{}/watch?after={after}&wait={WATCH_SECS}",
                self.url
            ))
            .call()
            .context("GET /watch")?
            .into_string()?;
        let json: serde_json::Value = serde_json::from_str(&answer)?;
        json["position"]
            .as_u64()
            .with_context(|| format!("GET /watch answered {answer:?}"))
    }

    fn sell(&mut self) -> Result<()> {
        self.conn.execute(
            "INSERT INTO inventory VALUES (0, atomik_add(1)) \
             ON CONFLICT(sku) DO UPDATE SET qty = atomik_accum(qty, 1)",
            [],
        )?;
        Ok(())
    }

    fn counter(&self) -> Result<u64> {
        let v: Option<i64> = self
            .conn
            .query_row(
                "SELECT atomik_read(qty) FROM inventory WHERE sku = 0",
                [],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
        Ok(v.unwrap_or(0).max(0) as u64)
    }
}

/// How the watcher learns of news.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Watch,
    Poll(Duration),
}

/// What the watcher saw: when its counter reached which value, and how
/// many syncs and watches it made.
#[derive(Debug, Default)]
struct Seen {
    applied: Vec<(Instant, u64)>,
    syncs: usize,
    watches: usize,
}

fn watcher(mut device: Device, mode: Mode, until: u64, seen: Arc<Mutex<Seen>>) -> Result<()> {
    let mut cursor = device.sync()?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut next_poll = Instant::now();
    while device.counter()? < until {
        if Instant::now() > deadline {
            bail!("the watcher did not see all {until} changes within 10 minutes");
        }
        match mode {
            Mode::Watch => {
                let position = device.watch(cursor)?;
                seen.lock().expect("not poisoned").watches += 1;
                if position <= cursor {
                    continue;
                }
            }
            Mode::Poll(every) => {
                next_poll += every;
                if let Some(wait) = next_poll.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }
        cursor = device.sync()?;
        let value = device.counter()?;
        let mut s = seen.lock().expect("not poisoned");
        s.applied.push((Instant::now(), value));
        s.syncs += 1;
    }
    Ok(())
}

/// One mode: the seller's `changes` changes, with the watcher in `mode`.
fn measure(
    url: &str,
    dir: &Path,
    mode: Mode,
    changes: usize,
    gap_ms: (u64, u64),
    rng: &mut ChaCha8Rng,
) -> Result<Latency> {
    let tag = match mode {
        Mode::Watch => "watch".to_string(),
        Mode::Poll(d) => format!("poll {} ms", d.as_millis()),
    };
    let file = tag.replace(' ', "-");
    let mut seller = Device::open(&dir.join(format!("seller-{file}.sqlite")), url)?;
    seller.sync()?;
    let start = seller.counter()?;
    let watching = Device::open(&dir.join(format!("watcher-{file}.sqlite")), url)?;
    let until = start + changes as u64;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let thread = {
        let seen = Arc::clone(&seen);
        std::thread::spawn(move || watcher(watching, mode, until, seen))
    };
    // Let the watcher make its first sync (and, watching, hold its watch).
    std::thread::sleep(Duration::from_millis(300));
    let mut committed = Vec::with_capacity(changes);
    for _ in 0..changes {
        std::thread::sleep(Duration::from_millis(rng.random_range(gap_ms.0..=gap_ms.1)));
        seller.sell()?;
        seller.sync()?;
        committed.push(Instant::now());
    }
    thread
        .join()
        .map_err(|_| anyhow::anyhow!("the watcher panicked"))??;
    let seen = seen.lock().expect("not poisoned");
    let mut ms: Vec<f64> = Vec::with_capacity(changes);
    for (i, at) in committed.iter().enumerate() {
        let want = start + i as u64 + 1;
        let Some((applied, _)) = seen.applied.iter().find(|(_, v)| *v >= want) else {
            bail!("the watcher never applied change {want}");
        };
        ms.push(applied.saturating_duration_since(*at).as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    Ok(Latency {
        mode: tag,
        changes,
        median_ms: percentile(&ms, 50.0),
        p90_ms: percentile(&ms, 90.0),
        p99_ms: percentile(&ms, 99.0),
        max_ms: percentile(&ms, 100.0),
        watcher_syncs: seen.syncs,
        watches: seen.watches,
    })
}

fn measure_hub(
    name: &str,
    url: &str,
    params: &PushParams,
    rng: &mut ChaCha8Rng,
) -> Result<HubPush> {
    let dir = tempfile::tempdir()?;
    eprintln!("live push on {name}: {} changes watched", params.changes);
    let watch = measure(
        url,
        dir.path(),
        Mode::Watch,
        params.changes,
        params.gap_ms,
        rng,
    )?;
    eprintln!(
        "live push on {name}: {} changes polled every {} ms",
        params.poll_changes, params.poll_interval_ms
    );
    let poll = measure(
        url,
        dir.path(),
        Mode::Poll(Duration::from_millis(params.poll_interval_ms)),
        params.poll_changes,
        params.gap_ms,
        rng,
    )?;
    Ok(HubPush {
        hub: name.to_string(),
        median_ratio: ratio(watch.median_ms, poll.median_ms),
        watch,
        poll,
    })
}

/// Measure on a SQLite hub and, with `conninfo`, a PostgreSQL hub, with
/// `atomik` (the `atomik` binary) as `atomik serve`.
///
/// # Errors
/// A hub that cannot be set up or served; a change the watcher never
/// applied.
pub fn run(
    params: &PushParams,
    seed: u64,
    conninfo: Option<&str>,
    atomik: &Path,
) -> Result<PushReport> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut hubs = Vec::new();
    let files = tempfile::tempdir()?;
    let hub_path = files.path().join("hub.sqlite");
    {
        let hub = rusqlite::Connection::open(&hub_path)?;
        sqlite_atomik::register(&hub)?;
        hub.execute_batch(SCHEMA)?;
    }
    let serve = ServeChild::start(atomik, &hub_path.display().to_string(), 1)?;
    hubs.push(measure_hub("sqlite", serve.url(), params, &mut rng)?);
    drop(serve);
    if let Some(conninfo) = conninfo {
        let mut admin = postgres::Client::connect(conninfo, postgres::NoTls)
            .with_context(|| format!("cannot connect to {conninfo}"))?;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {DB}"))?;
        admin.batch_execute(&format!("CREATE DATABASE {DB}"))?;
        let mut client =
            postgres::Client::connect(&format!("{conninfo} dbname={DB}"), postgres::NoTls)?;
        client.batch_execute(
            "CREATE EXTENSION pg_atomik;
             CREATE TABLE inventory(sku bigint PRIMARY KEY, qty atomik);
             SELECT atomik_track('inventory', 'qty');",
        )?;
        let serve = ServeChild::start(atomik, &postgres_url(conninfo, DB)?, 4)?;
        hubs.push(measure_hub("postgres", serve.url(), params, &mut rng)?);
    }
    Ok(PushReport {
        params: params.clone(),
        hubs,
    })
}
