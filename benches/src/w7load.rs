//! W7 concurrency — how many syncs per second `atomik serve` with a
//! PostgreSQL hub answers when 1, 16 or 64 devices sync at once, and what
//! bounds it.
//!
//! One hub database (W7's table: 10,000 SKUs with opening stock, see
//! [`PgHub`]) behind one `atomik serve` child process on a loopback port,
//! with a pool as large as the largest concurrency. The devices are W7's
//! load clients: protocol v2 leaves on core's memory store, each with its
//! own keep-alive HTTP connection. Every client registers once (a
//! snapshot); then, in a measured run at concurrency c, c threads each loop
//! for a few seconds: 5 sales (SKU Zipf s = 1.1, −1), `sync_request`, POST
//! `/sync`, `finish_sync`.
//!
//! In the same run, at the same concurrency levels, two ceilings:
//! * `ceiling`: bare one-statement transactions against the same
//!   PostgreSQL (`UPDATE ceiling SET n = n + 1 WHERE id = $1` on a random
//!   id of 10,000, autocommit, one connection per worker): what the server
//!   commits per second with nothing of atomik or HTTP in the way;
//! * `http`: `GET /health` of the same `atomik serve` (HTTP, the pool and a
//!   read-only `SELECT atomik_site_id()`, no commit).
//!
//! Runs alternate sync and ceiling: every repeat runs each level as
//! sync, ceiling, http, levels ascending on even repeats and descending on
//! odd ones. Each run warms up (one unmeasured operation per worker, which
//! also lets a client that sat out the previous runs catch up), then every
//! worker starts at once.
//!
//! The load generator shares the machine with the server (on 2 cores that
//! matters): each run records how many cores the load clients, `atomik
//! serve`, the PostgreSQL server and anything else on the machine used,
//! from `/proc`.
//!
//! Oracle, after all runs: every client syncs until the hub has
//! acknowledged everything it sealed; the hub's values must then equal
//! opening stock plus every sale, per SKU, and the ceiling table's sum the
//! number of committed ceiling updates.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Zipf;
use serde::Serialize;

use crate::report::Machine;
use crate::stats::{percentile, ratio, Spread};
use crate::w7::{opening_stock, sale_sku, Hub, LoadClient, PgHub};

/// The hub database the measurement creates (dropped first if it exists).
const DB: &str = "atomik_w7load";
/// Rows of the ceiling table.
const CEILING_ROWS: i32 = 10_000;
/// How long one HTTP call may take before it counts as failed.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// The shape of the measurement.
#[derive(Debug, Clone, Serialize)]
pub struct W7LoadParams {
    /// SKUs in the hub's table.
    pub skus: i64,
    /// Concurrency levels (devices syncing at once).
    pub levels: Vec<usize>,
    /// Seconds of each measured run.
    pub seconds: f64,
    /// Runs of every (level, kind).
    pub repeats: usize,
    /// Sales per sync.
    pub sales: usize,
    /// Also measure the HTTP-only ceiling (`GET /health`).
    pub http_ceiling: bool,
}

impl W7LoadParams {
    /// 10,000 SKUs, 1, 16 and 64 devices, 5 sales per sync, 3 runs of each
    /// (level, kind) of 3 s each (10 s with `full`), HTTP ceiling included.
    pub fn standard(full: bool) -> Self {
        W7LoadParams {
            skus: 10_000,
            levels: vec![1, 16, 64],
            seconds: if full { 10.0 } else { 3.0 },
            repeats: 3,
            sales: 5,
            http_ceiling: true,
        }
    }
}

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Syncs through `atomik serve`.
    Sync,
    /// Bare one-statement UPDATE transactions against the same PostgreSQL.
    Ceiling,
    /// `GET /health` of the same `atomik serve`.
    Http,
}

/// Cores used during a run (CPU time over wall time), from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CpuSplit {
    /// The whole machine (busy = not idle, not waiting for I/O).
    pub busy: f64,
    /// The load clients (this process).
    pub clients: f64,
    /// The `atomik serve` child.
    pub serve: f64,
    /// The PostgreSQL server: its postmaster and every process it started
    /// (backends, WAL writer, checkpointer, autovacuum, pg_atomik's worker).
    pub postgres: f64,
    /// Everything else on the machine (0 on a quiet one).
    pub other: f64,
}

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct W7LoadRun {
    /// Which repeat (0-based).
    pub repeat: usize,
    /// Workers at once.
    pub concurrency: usize,
    /// What was measured.
    pub kind: Kind,
    /// Operations completed in the window.
    pub ops: u64,
    /// Operations that failed (retried by the next one; not in `ops`).
    pub failed: u64,
    /// The window: first worker's start to last worker's end (s).
    pub seconds: f64,
    /// `ops / seconds`.
    pub per_s: f64,
    /// Median latency (ms).
    pub p50_ms: f64,
    /// 99th-percentile latency (ms).
    pub p99_ms: f64,
    /// Cores used, if `/proc` could be read.
    pub cpu: Option<CpuSplit>,
}

/// The runs of one (level, kind), together.
#[derive(Debug, Clone, Serialize)]
pub struct KindFigures {
    /// Operations per second over the repeats.
    pub per_s: Spread,
    /// Median latency over every operation of every repeat (ms).
    pub p50_ms: f64,
    /// 99th-percentile latency over every operation of every repeat (ms).
    pub p99_ms: f64,
    /// Operations completed, all repeats.
    pub ops: u64,
    /// Operations failed, all repeats.
    pub failed: u64,
    /// Mean cores used over the repeats.
    pub cpu: Option<CpuSplit>,
}

/// One concurrency level.
#[derive(Debug, Clone, Serialize)]
pub struct W7LoadLevel {
    /// Devices (workers) at once.
    pub concurrency: usize,
    /// Syncs through `atomik serve`.
    pub sync: KindFigures,
    /// Bare UPDATE transactions.
    pub ceiling: KindFigures,
    /// `GET /health`, when measured.
    pub http: Option<KindFigures>,
    /// Median syncs/s over median ceiling transactions/s.
    pub sync_over_ceiling: f64,
    /// Median syncs/s over median `GET /health`/s.
    pub sync_over_http: Option<f64>,
    /// Mean request bytes per sync (warm-up included).
    pub bytes_up: f64,
    /// Mean response bytes per sync (warm-up included).
    pub bytes_down: f64,
}

/// The whole measurement; serialized as `w7load.json`.
#[derive(Debug, Clone, Serialize)]
pub struct W7LoadReport {
    /// The shape.
    pub params: W7LoadParams,
    /// The machine (load clients and server share it).
    pub machine: Machine,
    /// `atomik serve --pool`.
    pub serve_pool: usize,
    /// The `pg_atomik` version the hub database runs.
    pub pg_atomik_version: String,
    /// Per level, the figures.
    pub levels: Vec<W7LoadLevel>,
    /// Every run, in the order run.
    pub runs: Vec<W7LoadRun>,
    /// Syncs answered, registration and draining included.
    pub syncs: u64,
    /// Sales made by all clients.
    pub sales: u64,
    /// The hub's values equal opening stock plus every sale, and the
    /// ceiling table counts every committed update (the run fails
    /// otherwise).
    pub exact: bool,
}

/// The order of the runs: per repeat, levels ascending (descending on odd
/// repeats), each as sync, ceiling and (if `http`) http — so sync and
/// ceiling runs alternate.
pub fn schedule(levels: &[usize], repeats: usize, http: bool) -> Vec<(usize, usize, Kind)> {
    let kinds: &[Kind] = if http {
        &[Kind::Sync, Kind::Ceiling, Kind::Http]
    } else {
        &[Kind::Sync, Kind::Ceiling]
    };
    let mut out = vec![];
    for repeat in 0..repeats {
        let mut order = levels.to_vec();
        if repeat % 2 == 1 {
            order.reverse();
        }
        for level in order {
            out.extend(kinds.iter().map(|&k| (repeat, level, k)));
        }
    }
    out
}

/// The `postgresql://` URL (the form `atomik serve --hub` takes) of
/// database `db` on the server a libpq conninfo names; a Unix socket
/// directory becomes a percent-encoded host.
///
/// # Errors
/// A conninfo that does not parse.
pub fn postgres_url(conninfo: &str, db: &str) -> Result<String> {
    use postgres::config::Host;
    let config: postgres::Config = conninfo
        .parse()
        .with_context(|| format!("{conninfo} is not a libpq conninfo"))?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.to_string_lossy().into_owned(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let mut user = pct(config.get_user().unwrap_or("postgres").as_bytes());
    if let Some(password) = config.get_password() {
        user = format!("{user}:{}", pct(password));
    }
    Ok(format!(
        "postgresql://{user}@{}:{port}/{}",
        pct(host.as_bytes()),
        pct(db.as_bytes())
    ))
}

/// Percent-encode every byte but the unreserved ones of RFC 3986.
fn pct(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `atomik serve` as a child process, killed when dropped.
pub(crate) struct ServeChild {
    child: Child,
    url: String,
}

impl ServeChild {
    /// Start `atomik serve --hub HUB --listen 127.0.0.1:0 --pool POOL` and
    /// read the address it listens on from its stderr.
    pub(crate) fn start(atomik: &Path, hub: &str, pool: usize) -> Result<Self> {
        let child = Command::new(atomik)
            .args(["serve", "--hub", hub, "--listen", "127.0.0.1:0", "--pool"])
            .arg(pool.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {} serve", atomik.display()))?;
        // From here on the child is killed on every path.
        let mut serve = ServeChild {
            child,
            url: String::new(),
        };
        let stderr = serve
            .child
            .stderr
            .take()
            .ok_or_else(|| anyhow!("no stderr"))?;
        let mut lines = BufReader::new(stderr);
        let mut seen = String::new();
        while serve.url.is_empty() {
            let mut line = String::new();
            if lines.read_line(&mut line)? == 0 {
                bail!("atomik serve exited before it listened: {seen:?}");
            }
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                serve.url = url.to_string();
            }
            seen.push_str(&line);
        }
        // Keep draining its stderr so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
        Ok(serve)
    }
}

impl ServeChild {
    /// The `http://` address it listens on.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client with one keep-alive connection (a device's).
pub(crate) fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().timeout(HTTP_TIMEOUT).build()
}

/// The body of a successful answer, or the failure with its reason.
pub(crate) fn body(answer: Result<ureq::Response, ureq::Error>) -> Result<Vec<u8>> {
    match answer {
        Ok(resp) => {
            let mut bytes = Vec::new();
            resp.into_reader().read_to_end(&mut bytes)?;
            Ok(bytes)
        }
        Err(ureq::Error::Status(code, resp)) => {
            let reason = resp.into_string().unwrap_or_default();
            bail!("atomik serve answered {code}: {}", reason.trim())
        }
        Err(e) => Err(e).context("cannot reach atomik serve"),
    }
}

/// Seconds since the epoch, the clock of a request.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A device: a W7 load client, its own random stream, and what it sold.
struct Device {
    load: LoadClient,
    rng: ChaCha8Rng,
    /// Sales per SKU (negative), for the oracle.
    sold: Vec<i64>,
    syncs: u64,
    bytes_up: u64,
    bytes_down: u64,
}

impl Device {
    fn new(seed: u64, i: usize, skus: i64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (0x5700_0000 + i as u64));
        Device {
            load: LoadClient::new(&mut rng),
            rng,
            sold: vec![0; skus as usize],
            syncs: 0,
            bytes_up: 0,
            bytes_down: 0,
        }
    }

    fn sell(&mut self, zipf: &Zipf<f64>, sales: usize) -> Result<()> {
        for _ in 0..sales {
            let sku = sale_sku(zipf, &mut self.rng, self.sold.len() as i64);
            self.load.sell(sku)?;
            self.sold[sku as usize] -= 1;
        }
        Ok(())
    }

    /// One sync: request, POST, finish. A failed POST leaves the batch in
    /// the outbox for the next sync.
    fn sync(&mut self, agent: &ureq::Agent, url: &str) -> Result<()> {
        let request = self.load.request(now_secs())?;
        let response = body(
            agent
                .post(url)
                .set("Content-Type", "application/octet-stream")
                .send_bytes(&request),
        )?;
        self.load.finish(&response)?;
        self.syncs += 1;
        self.bytes_up += request.len() as u64;
        self.bytes_down += response.len() as u64;
        Ok(())
    }
}

/// The processes whose CPU a run accounts for.
#[derive(Debug, Clone, Copy)]
struct Watched {
    serve: u32,
    postmaster: Option<u32>,
}

/// CPU ticks: the machine's (total, idle), this process's, the serve
/// child's, the PostgreSQL server's.
#[derive(Clone, Copy)]
struct Ticks {
    total: u64,
    idle: u64,
    cpus: usize,
    me: u64,
    serve: u64,
    postgres: u64,
}

/// Of `/proc/<pid>/stat`: (ppid, utime + stime, cutime + cstime).
fn process_stat(pid: &str) -> Option<(u32, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state is
    // field 3, ppid 4, utime 14, stime 15, cutime 16, cstime 17.
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((u32::try_from(n(1)?).ok()?, n(11)? + n(12)?, n(13)? + n(14)?))
}

/// The CPU of a server and its children: its own, what it reaped (exited
/// backends), and the live children's.
fn server_ticks(postmaster: u32) -> Option<u64> {
    let (_, own, reaped) = process_stat(&postmaster.to_string())?;
    let mut sum = own + reaped;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some((ppid, ticks, _)) = process_stat(pid) {
            if ppid == postmaster {
                sum += ticks;
            }
        }
    }
    Some(sum)
}

impl Ticks {
    fn sample(watched: Watched) -> Option<Ticks> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        Some(Ticks {
            total: cpu.iter().sum(),
            idle: cpu.get(3)? + cpu.get(4)?,
            cpus: stat.lines().filter(|l| l.starts_with("cpu")).count() - 1,
            me: process_stat("self")?.1,
            serve: process_stat(&watched.serve.to_string())?.1,
            postgres: server_ticks(watched.postmaster?)?,
        })
    }

    /// Cores used between `self` and a later sample.
    fn split(self, later: Ticks) -> Option<CpuSplit> {
        let total = later.total.checked_sub(self.total)?;
        if total == 0 {
            return None;
        }
        let cores = |ticks: u64| ticks as f64 / total as f64 * self.cpus as f64;
        let busy = cores(total - later.idle.saturating_sub(self.idle));
        let clients = cores(later.me.saturating_sub(self.me));
        let serve = cores(later.serve.saturating_sub(self.serve));
        let postgres = cores(later.postgres.saturating_sub(self.postgres));
        Some(CpuSplit {
            busy,
            clients,
            serve,
            postgres,
            other: (busy - clients - serve - postgres).max(0.0),
        })
    }
}

/// What the workers of one run did.
struct Totals {
    ops: u64,
    failed: u64,
    /// Operations of the warm-up that succeeded.
    warm_ok: u64,
    seconds: f64,
    latencies_ms: Vec<f64>,
    cpu: Option<CpuSplit>,
    first_error: Option<String>,
}

/// What one worker of a run did (with its operation, so that a connection
/// it holds closes only after the run's CPU sample).
struct Worker<F> {
    start: Instant,
    end: Instant,
    latencies_ms: Vec<f64>,
    failed: u64,
    warm_ok: bool,
    first_error: Option<String>,
    op: F,
}

/// Run every worker's operation on its own thread: once to warm up, then,
/// all starting together, in a loop for `window`.
fn drive<F>(ops: Vec<F>, window: Duration, watched: Watched) -> Totals
where
    F: FnMut() -> Result<()> + Send,
{
    let barrier = Barrier::new(ops.len() + 1);
    std::thread::scope(|scope| {
        let threads: Vec<_> = ops
            .into_iter()
            .map(|mut op| {
                let barrier = &barrier;
                scope.spawn(move || {
                    let warm = op();
                    barrier.wait();
                    let start = Instant::now();
                    let deadline = start + window;
                    let (mut latencies_ms, mut failed) = (vec![], 0u64);
                    let mut first_error = warm.as_ref().err().map(|e| format!("{e:#}"));
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        match op() {
                            Ok(()) => latencies_ms.push(t.elapsed().as_secs_f64() * 1e3),
                            Err(e) => {
                                failed += 1;
                                first_error.get_or_insert_with(|| format!("{e:#}"));
                                // Do not spin on a hub that is down.
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                    Worker {
                        start,
                        end: Instant::now(),
                        latencies_ms,
                        failed,
                        warm_ok: warm.is_ok(),
                        first_error,
                        op,
                    }
                })
            })
            .collect();
        barrier.wait();
        let before = Ticks::sample(watched);
        let workers: Vec<Worker<F>> = threads
            .into_iter()
            .map(|t| t.join().expect("a load worker panicked"))
            .collect();
        let cpu = before
            .zip(Ticks::sample(watched))
            .and_then(|(a, b)| a.split(b));
        let first = workers.iter().map(|w| w.start).min();
        let last = workers.iter().map(|w| w.end).max();
        let mut totals = Totals {
            ops: 0,
            failed: 0,
            warm_ok: 0,
            seconds: first.zip(last).map_or(0.0, |(a, b)| (b - a).as_secs_f64()),
            latencies_ms: vec![],
            cpu,
            first_error: None,
        };
        for w in workers {
            totals.ops += w.latencies_ms.len() as u64;
            totals.latencies_ms.extend(w.latencies_ms);
            totals.failed += w.failed;
            totals.warm_ok += u64::from(w.warm_ok);
            if totals.first_error.is_none() {
                totals.first_error = w.first_error;
            }
            drop(w.op);
        }
        totals
    })
}

/// The PostgreSQL server's postmaster: the parent of this connection's
/// backend, if it runs on this machine.
fn postmaster(client: &mut postgres::Client) -> Result<Option<u32>> {
    let backend: i32 = client.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    Ok(process_stat(&backend.to_string()).map(|(ppid, _, _)| ppid))
}

/// Mean of each component of the splits measured.
fn mean_cpu(splits: &[CpuSplit]) -> Option<CpuSplit> {
    if splits.is_empty() {
        return None;
    }
    let n = splits.len() as f64;
    let mean = |f: fn(&CpuSplit) -> f64| splits.iter().map(f).sum::<f64>() / n;
    Some(CpuSplit {
        busy: mean(|c| c.busy),
        clients: mean(|c| c.clients),
        serve: mean(|c| c.serve),
        postgres: mean(|c| c.postgres),
        other: mean(|c| c.other),
    })
}

/// What every run of a measurement shares.
struct Rig<'a> {
    params: &'a W7LoadParams,
    seed: u64,
    /// libpq conninfo of the hub database (for the ceiling connections).
    db_conninfo: String,
    sync_url: String,
    health_url: String,
    zipf: Zipf<f64>,
    window: Duration,
    watched: Watched,
}

impl Rig<'_> {
    /// Syncs of `devices`, one thread each: 5 sales, then a sync.
    fn syncs(&self, devices: &mut [Device]) -> Totals {
        let (zipf, url, sales) = (&self.zipf, self.sync_url.as_str(), self.params.sales);
        let ops: Vec<_> = devices
            .iter_mut()
            .map(|d| {
                let agent = agent();
                move || {
                    d.sell(zipf, sales)?;
                    d.sync(&agent, url)
                }
            })
            .collect();
        drive(ops, self.window, self.watched)
    }

    /// Bare UPDATE transactions on `level` connections of their own. The
    /// random ids of run `n` are its own.
    fn ceiling(&self, level: usize, n: usize) -> Result<Totals> {
        let mut ops = vec![];
        for w in 0..level {
            let mut client = postgres::Client::connect(&self.db_conninfo, postgres::NoTls)?;
            let update = client.prepare("UPDATE ceiling SET n = n + 1 WHERE id = $1")?;
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ ((n as u64) << 32) ^ w as u64);
            ops.push(move || {
                let id: i32 = rng.random_range(0..CEILING_ROWS);
                let updated = client.execute(&update, &[&id])?;
                ensure!(updated == 1, "the ceiling table lost row {id}");
                Ok(())
            });
        }
        Ok(drive(ops, self.window, self.watched))
    }

    /// `GET /health` on `level` keep-alive connections.
    fn health(&self, level: usize) -> Totals {
        let url = self.health_url.as_str();
        let ops: Vec<_> = (0..level)
            .map(|_| {
                let agent = agent();
                move || body(agent.get(url).call()).map(drop)
            })
            .collect();
        drive(ops, self.window, self.watched)
    }
}

/// (syncs, bytes up, bytes down) of some devices so far.
fn traffic(devices: &[Device]) -> (u64, u64, u64) {
    devices.iter().fold((0, 0, 0), |a, d| {
        (a.0 + d.syncs, a.1 + d.bytes_up, a.2 + d.bytes_down)
    })
}

/// Every device syncs until the hub has acknowledged all it sealed (the
/// first sync also seals writes that a failed request left behind).
fn drain(devices: &mut [Device], sync_url: &str) -> Result<()> {
    let agent = agent();
    for (i, d) in devices.iter_mut().enumerate() {
        let mut tries = 0;
        loop {
            let synced = d.sync(&agent, sync_url);
            tries += 1;
            if synced.is_ok() && d.load.unacknowledged()? == 0 {
                break;
            }
            ensure!(
                tries < 5,
                "device {i} could not get its sales acknowledged: {:?}",
                synced.err()
            );
        }
    }
    Ok(())
}

/// The oracle: the hub's values are opening stock plus every device's
/// sales, per SKU.
fn check_values(hub: &mut PgHub, opening: &[i64], devices: &[Device]) -> Result<()> {
    let mut want = opening.to_vec();
    for d in devices {
        for (w, s) in want.iter_mut().zip(&d.sold) {
            *w += s;
        }
    }
    let got = hub.values()?;
    let wrong: Vec<String> = want
        .iter()
        .enumerate()
        .filter_map(|(sku, &w)| {
            let g = got.get(sku).filter(|g| g.0 == sku as i64).map(|g| g.1);
            (g != Some(w)).then(|| format!("sku {sku}: hub {g:?}, want {w}"))
        })
        .collect();
    ensure!(
        wrong.is_empty() && got.len() == want.len(),
        "W7 concurrency: the hub's values are not opening stock plus every acknowledged sale \
         ({} SKUs wrong, {} rows for {} SKUs), e.g. {}",
        wrong.len(),
        got.len(),
        want.len(),
        wrong.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
    );
    Ok(())
}

/// Every run's latencies, by (level, kind).
type Latencies = BTreeMap<(usize, Kind), Vec<f64>>;

/// The runs of one (level, kind) together, if there were any.
fn figures(
    runs: &[W7LoadRun],
    latencies: &Latencies,
    level: usize,
    kind: Kind,
) -> Option<KindFigures> {
    let of: Vec<&W7LoadRun> = runs
        .iter()
        .filter(|r| r.concurrency == level && r.kind == kind)
        .collect();
    if of.is_empty() {
        return None;
    }
    let mut all = latencies.get(&(level, kind)).cloned().unwrap_or_default();
    all.sort_by(f64::total_cmp);
    let cpu: Vec<CpuSplit> = of.iter().filter_map(|r| r.cpu).collect();
    Some(KindFigures {
        per_s: Spread::of(&of.iter().map(|r| r.per_s).collect::<Vec<_>>()),
        p50_ms: percentile(&all, 50.0),
        p99_ms: percentile(&all, 99.0),
        ops: of.iter().map(|r| r.ops).sum(),
        failed: of.iter().map(|r| r.failed).sum(),
        cpu: mean_cpu(&cpu),
    })
}

/// Run W7 concurrency against the PostgreSQL cluster at `conninfo`
/// (pg_atomik installed; enough `max_connections` for the pool and one
/// ceiling connection per worker), starting `atomik` (the `atomik`
/// binary) as `atomik serve`.
///
/// # Errors
/// Setup, a run in which every operation failed, a failed ceiling
/// transaction, or an oracle that does not hold.
pub fn run(
    params: &W7LoadParams,
    seed: u64,
    conninfo: &str,
    atomik: &Path,
) -> Result<W7LoadReport> {
    let mut levels = params.levels.clone();
    levels.sort_unstable();
    levels.dedup();
    ensure!(
        levels.first().is_some_and(|&c| c > 0),
        "W7 concurrency needs levels of at least 1"
    );
    ensure!(params.repeats > 0, "W7 concurrency needs at least 1 repeat");
    ensure!(params.skus > 0 && params.sales > 0, "no SKUs or no sales");
    let max_level = levels.last().copied().unwrap_or(1);
    let pool = max_level.max(4);

    // The hub (as W7's PostgreSQL hub) and the ceiling table.
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x57_10AD);
    let opening = opening_stock(&mut rng, params.skus);
    let mut hub = PgHub::new(conninfo, DB, &opening)?;
    let db_conninfo = format!("{conninfo} dbname={DB}");
    let mut admin = postgres::Client::connect(&db_conninfo, postgres::NoTls)?;
    admin.batch_execute(&format!(
        "CREATE TABLE ceiling(id int PRIMARY KEY, n bigint NOT NULL);
         INSERT INTO ceiling SELECT g, 0 FROM generate_series(0, {}) g;",
        CEILING_ROWS - 1
    ))?;
    admin.batch_execute("VACUUM ANALYZE ceiling")?;
    let pg_atomik_version: String = admin
        .query_one(
            "SELECT extversion FROM pg_extension WHERE extname = 'pg_atomik'",
            &[],
        )?
        .get(0);
    let max_connections: i64 = admin
        .query_one("SELECT current_setting('max_connections')::int8", &[])?
        .get(0);
    let needed = (pool + max_level + 4) as i64;
    ensure!(
        max_connections >= needed,
        "W7 concurrency needs max_connections >= {needed} (a pool of {pool}, {max_level} \
         ceiling connections, the bench's own); the server allows {max_connections}"
    );

    let serve = ServeChild::start(atomik, &postgres_url(conninfo, DB)?, pool)?;
    let rig = Rig {
        params,
        seed,
        db_conninfo,
        sync_url: format!("{}/sync", serve.url),
        health_url: format!("{}/health", serve.url),
        zipf: Zipf::new(params.skus as f64, 1.1)?,
        window: Duration::from_secs_f64(params.seconds),
        watched: Watched {
            serve: serve.child.id(),
            postmaster: postmaster(&mut admin)?,
        },
    };
    let health = body(agent().get(&rig.health_url).call())?;
    ensure!(
        health.starts_with(b"ok atomik"),
        "atomik serve is not healthy: {}",
        String::from_utf8_lossy(&health)
    );

    // Every device registers: its first sync, a snapshot.
    let mut devices: Vec<Device> = (0..max_level)
        .map(|i| Device::new(seed, i, params.skus))
        .collect();
    {
        let agent = agent();
        for d in &mut devices {
            d.sync(&agent, &rig.sync_url)
                .context("registering a device")?;
        }
    }

    let mut runs = vec![];
    let mut latencies = Latencies::new();
    let mut traffic_of: BTreeMap<usize, (u64, u64, u64)> = BTreeMap::new();
    let mut ceiling_updates = 0u64;
    let plan = schedule(&levels, params.repeats, params.http_ceiling);
    for (n, &(repeat, level, kind)) in plan.iter().enumerate() {
        eprintln!(
            "W7 concurrency: run {}/{}: {level} at once, {kind:?}",
            n + 1,
            plan.len()
        );
        let before = traffic(&devices[..level]);
        let totals = match kind {
            Kind::Sync => rig.syncs(&mut devices[..level]),
            Kind::Ceiling => {
                let totals = rig.ceiling(level, n)?;
                ceiling_updates += totals.ops + totals.warm_ok;
                ensure!(
                    totals.failed == 0,
                    "a ceiling UPDATE failed: {}",
                    totals.first_error.as_deref().unwrap_or("?")
                );
                totals
            }
            Kind::Http => rig.health(level),
        };
        if totals.ops == 0 {
            bail!(
                "W7 concurrency, {level} at once, {kind:?}: nothing succeeded: {}",
                totals
                    .first_error
                    .as_deref()
                    .unwrap_or("no operation finished")
            );
        }
        if let Some(e) = &totals.first_error {
            eprintln!(
                "warning: W7 concurrency, {level} at once, {kind:?}: {} failed: {e}",
                totals.failed
            );
        }
        if kind == Kind::Sync {
            let after = traffic(&devices[..level]);
            let t = traffic_of.entry(level).or_default();
            t.0 += after.0 - before.0;
            t.1 += after.1 - before.1;
            t.2 += after.2 - before.2;
        }
        let mut sorted = totals.latencies_ms.clone();
        sorted.sort_by(f64::total_cmp);
        runs.push(W7LoadRun {
            repeat,
            concurrency: level,
            kind,
            ops: totals.ops,
            failed: totals.failed,
            seconds: totals.seconds,
            per_s: ratio(totals.ops as f64, totals.seconds),
            p50_ms: percentile(&sorted, 50.0),
            p99_ms: percentile(&sorted, 99.0),
            cpu: totals.cpu,
        });
        latencies
            .entry((level, kind))
            .or_default()
            .extend(totals.latencies_ms);
    }

    // The oracle.
    drain(&mut devices, &rig.sync_url)?;
    drop(serve);
    check_values(&mut hub, &opening, &devices)?;
    let counted: i64 = admin
        .query_one("SELECT sum(n)::int8 FROM ceiling", &[])?
        .get(0);
    ensure!(
        counted as u64 == ceiling_updates,
        "W7 concurrency: the ceiling table counts {counted} updates, the workers committed {ceiling_updates}"
    );

    let mut per_level = vec![];
    for level in levels {
        let sync =
            figures(&runs, &latencies, level, Kind::Sync).ok_or_else(|| anyhow!("no sync run"))?;
        let ceiling = figures(&runs, &latencies, level, Kind::Ceiling)
            .ok_or_else(|| anyhow!("no ceiling run"))?;
        let http = figures(&runs, &latencies, level, Kind::Http);
        let (syncs, up, down) = traffic_of.get(&level).copied().unwrap_or_default();
        per_level.push(W7LoadLevel {
            concurrency: level,
            sync_over_ceiling: ratio(sync.per_s.median, ceiling.per_s.median),
            sync_over_http: http
                .as_ref()
                .map(|h| ratio(sync.per_s.median, h.per_s.median)),
            bytes_up: ratio(up as f64, syncs as f64),
            bytes_down: ratio(down as f64, syncs as f64),
            sync,
            ceiling,
            http,
        });
    }
    Ok(W7LoadReport {
        params: params.clone(),
        machine: Machine::detect(),
        serve_pool: pool,
        pg_atomik_version,
        levels: per_level,
        runs,
        syncs: devices.iter().map(|d| d.syncs).sum(),
        sales: devices
            .iter()
            .map(|d| d.sold.iter().map(|s| s.unsigned_abs()).sum::<u64>())
            .sum(),
        exact: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_and_ceiling_runs_alternate() {
        let plan = schedule(&[1, 16, 64], 3, true);
        assert_eq!(plan.len(), 3 * 3 * 3);
        for level in [1, 16, 64] {
            for kind in [Kind::Sync, Kind::Ceiling, Kind::Http] {
                let n = plan.iter().filter(|p| p.1 == level && p.2 == kind).count();
                assert_eq!(n, 3, "{level} {kind:?}");
            }
        }
        let kinds: Vec<Kind> = plan
            .iter()
            .map(|p| p.2)
            .filter(|&k| k != Kind::Http)
            .collect();
        assert!(kinds.windows(2).all(|w| w[0] != w[1]));
        assert_eq!(plan[3].1, 16);
        assert_eq!(plan[9].1, 64, "the second repeat runs levels descending");
    }

    #[test]
    fn conninfo_to_url() {
        let url = postgres_url(
            "host='/tmp/x y' port=5999 user=postgres dbname=postgres",
            "d",
        )
        .unwrap();
        assert_eq!(url, "postgresql://postgres@%2Ftmp%2Fx%20y:5999/d");
        let parsed: postgres::Config = url.parse().unwrap();
        assert_eq!(
            parsed.get_hosts(),
            &[postgres::config::Host::Unix("/tmp/x y".into())]
        );
        assert_eq!(parsed.get_dbname(), Some("d"));
    }
}
