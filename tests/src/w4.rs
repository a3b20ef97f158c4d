//! Workload W4 of benches/README.md across engines: chaos convergence.
//!
//! One schedule: 5–8 SQLite devices, each a real file in its own process;
//! hub A (PostgreSQL when a cluster is given, else SQLite) and hub B
//! (alternately PostgreSQL and SQLite), hub B syncing upstream to hub A.
//! Random `add` and `xor` deltas over 1,000 cells are written everywhere,
//! devices sync with their home hub (sometimes the other one), and every
//! message travels a network that drops, duplicates, delays and reorders
//! it, and loses everything across a partition. Device processes are killed
//! (SIGKILL) in the middle of local writes, sync requests and applies, and
//! restarted. Some devices reach hub A through `atomik serve` over loopback
//! HTTP. In half the schedules with a PostgreSQL hub A, its server-side
//! writers use pg_atomik's deferred path (`atomik_defer`). At the end the
//! network heals and everything is delivered.
//!
//! Oracle: every replica's every cell equals the group-sum of all unique
//! deltas ever committed to it (a killed write counts exactly when its
//! ledger row committed), the digests are equal, the values are
//! byte-identical, and nothing is parked.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use atomik_core::AtomikValue;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::device::{encode_deltas, DeviceProcess};
use crate::node::{is_transient, Node, Row};
use crate::pg_node::{PgCluster, PgNode};
use crate::schema::{Column, Delta};
use crate::serve::ServeProcess;
use crate::sqlite_node::SqliteNode;

/// Hub A, the root.
const HUB_A: usize = 0;
/// Hub B, a relay whose upstream is hub A.
const HUB_B: usize = 1;
/// Probability that the network loses a message.
const DROP: f64 = 0.15;
/// Probability that the network delivers a message twice.
const DUPLICATE: f64 = 0.15;
/// Probability that a device is killed during a local write, request or
/// apply.
const KILL: f64 = 0.08;

/// What a run of schedules needs.
#[derive(Debug, Clone)]
pub struct W4Config {
    /// The `w4-device` program.
    pub device_program: PathBuf,
    /// The `atomik` program, to put `atomik serve` in front of hub A.
    pub serve_program: Option<PathBuf>,
    /// A PostgreSQL cluster for the hubs; without one both hubs are SQLite.
    pub pg: Option<PgCluster>,
    /// Cells per column.
    pub cells: i64,
    /// Random steps per schedule before the network heals.
    pub steps: usize,
    /// Folder for the SQLite files (one sub-folder per schedule).
    pub work_dir: PathBuf,
}

/// What the schedules did: every fault injected, counted.
#[derive(Debug, Clone, Default)]
pub struct W4Stats {
    /// Schedules run.
    pub schedules: u64,
    /// Schedules whose hub A wrote through pg_atomik's deferred path.
    pub deferred_hub: u64,
    /// Schedules whose hub A was PostgreSQL / whose hub B was.
    pub pg_hub_a: u64,
    /// See `pg_hub_a`.
    pub pg_hub_b: u64,
    /// Devices started (one process each, before restarts).
    pub devices: u64,
    /// Local write transactions committed, and the deltas in them.
    pub writes: u64,
    /// See `writes`.
    pub deltas: u64,
    /// Syncs started (device or hub B).
    pub syncs: u64,
    /// Messages sent.
    pub messages: u64,
    /// Messages lost by the network.
    pub dropped: u64,
    /// Messages lost to a partition.
    pub partitioned: u64,
    /// Messages delivered twice.
    pub duplicated: u64,
    /// Messages delivered after a later one.
    pub reordered: u64,
    /// Device processes killed during a local write (and how many of
    /// those writes had committed anyway).
    pub kills_in_write: u64,
    /// See `kills_in_write`.
    pub killed_writes_committed: u64,
    /// Device processes killed during `atomik_sync_request()`.
    pub kills_in_request: u64,
    /// Device processes killed during `atomik_sync_finish()`.
    pub kills_in_finish: u64,
    /// Device processes killed while idle.
    pub kills_idle: u64,
    /// Sync requests served over HTTP by `atomik serve`.
    pub http_requests: u64,
    /// Legitimate refusals (gap after roaming, stale snapshot).
    pub transient_refusals: u64,
    /// Lossless rounds the end phase needed, summed.
    pub heal_rounds: u64,
}

impl W4Stats {
    /// Add another run's counts.
    pub fn merge(&mut self, o: &W4Stats) {
        let pairs: [(&mut u64, u64); 21] = [
            (&mut self.schedules, o.schedules),
            (&mut self.pg_hub_a, o.pg_hub_a),
            (&mut self.deferred_hub, o.deferred_hub),
            (&mut self.pg_hub_b, o.pg_hub_b),
            (&mut self.devices, o.devices),
            (&mut self.writes, o.writes),
            (&mut self.deltas, o.deltas),
            (&mut self.syncs, o.syncs),
            (&mut self.messages, o.messages),
            (&mut self.dropped, o.dropped),
            (&mut self.partitioned, o.partitioned),
            (&mut self.duplicated, o.duplicated),
            (&mut self.reordered, o.reordered),
            (&mut self.kills_in_write, o.kills_in_write),
            (&mut self.killed_writes_committed, o.killed_writes_committed),
            (&mut self.kills_in_request, o.kills_in_request),
            (&mut self.kills_in_finish, o.kills_in_finish),
            (&mut self.kills_idle, o.kills_idle),
            (&mut self.http_requests, o.http_requests),
            (&mut self.transient_refusals, o.transient_refusals),
            (&mut self.heal_rounds, o.heal_rounds),
        ];
        for (mine, theirs) in pairs {
            *mine += theirs;
        }
    }
}

impl fmt::Display for W4Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} schedules converged (hub A PostgreSQL in {}, with deferred writers in {}; hub B PostgreSQL in {}), {} device processes",
            self.schedules, self.pg_hub_a, self.deferred_hub, self.pg_hub_b, self.devices
        )?;
        writeln!(
            f,
            "  {} write transactions ({} deltas), {} syncs, {} messages ({} over HTTP via atomik serve)",
            self.writes, self.deltas, self.syncs, self.messages, self.http_requests
        )?;
        writeln!(
            f,
            "  network: {} dropped, {} lost to partitions, {} duplicated, {} reordered",
            self.dropped, self.partitioned, self.duplicated, self.reordered
        )?;
        writeln!(
            f,
            "  SIGKILLs: {} in local writes ({} had committed), {} in sync requests, {} in applies, {} idle",
            self.kills_in_write,
            self.killed_writes_committed,
            self.kills_in_request,
            self.kills_in_finish,
            self.kills_idle
        )?;
        write!(
            f,
            "  {} legitimate refusals (gap after roaming, stale snapshot); {} lossless heal rounds",
            self.transient_refusals, self.heal_rounds
        )
    }
}

/// The seed of schedule `i` of a run with base seed `base` (splitmix64,
/// so neighbouring schedules differ in every bit).
pub fn schedule_seed(base: u64, i: u64) -> u64 {
    let mut z = base.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Request,
    Response,
}

#[derive(Debug, Clone)]
struct Envelope {
    from: usize,
    to: usize,
    kind: Kind,
    bytes: Vec<u8>,
}

/// The exact expected content: group-sums of every committed delta.
#[derive(Debug, Default)]
struct Oracle {
    sums: BTreeMap<(i64, Column), u64>,
}

impl Oracle {
    fn record(&mut self, deltas: &[Delta]) {
        for d in deltas {
            let sum = self.sums.entry((d.key, d.column)).or_insert(0);
            *sum = d.column.group().combine(*sum, d.delta);
        }
    }

    fn rows(&self) -> Vec<Row> {
        let mut rows: BTreeMap<i64, Row> = BTreeMap::new();
        for (&(key, column), &sum) in &self.sums {
            let row = rows.entry(key).or_insert_with(|| {
                (
                    key,
                    AtomikValue::load(Column::N.group(), 0).to_bytes(),
                    AtomikValue::load(Column::F.group(), 0).to_bytes(),
                )
            });
            let bytes = AtomikValue::load(column.group(), sum).to_bytes();
            match column {
                Column::N => row.1 = bytes,
                Column::F => row.2 = bytes,
            }
        }
        rows.into_values().collect()
    }
}

/// One schedule's replicas and network.
struct Schedule<'a> {
    config: &'a W4Config,
    rng: ChaCha8Rng,
    hubs: Vec<Box<dyn Node>>,
    devices: Vec<DeviceProcess>,
    /// Per device: its home hub, and whether it reaches hub A over HTTP.
    home: Vec<usize>,
    http: Vec<bool>,
    serve: Option<ServeProcess>,
    partitioned: Vec<bool>,
    network: Vec<Envelope>,
    oracle: Oracle,
    next_write: u64,
    stats: W4Stats,
    faults: bool,
}

/// Node index of device `d`.
fn device_node(d: usize) -> usize {
    d + 2
}

/// Run one schedule.
///
/// # Errors
/// A replica error that the protocol does not allow, or a failure to
/// converge to the oracle — each a bug; the message names the seed.
pub fn run_schedule(config: &W4Config, seed: u64) -> Result<W4Stats> {
    let dir = tempfile::Builder::new()
        .prefix("w4-")
        .tempdir_in(&config.work_dir)?;
    run_schedule_in(config, seed, dir.path())
        .with_context(|| format!("W4 schedule with seed {seed:#018x}"))
}

fn run_schedule_in(config: &W4Config, seed: u64, dir: &Path) -> Result<W4Stats> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut stats = W4Stats {
        schedules: 1,
        ..W4Stats::default()
    };
    let hub_b_on_pg = config.pg.is_some() && seed.is_multiple_of(2);
    let (hub_a, hub_a_url): (Box<dyn Node>, String) = match &config.pg {
        Some(pg) => {
            pg.reset_database("atomik_w4_a")?;
            stats.pg_hub_a += 1;
            // Server-side writers on the root hub use the deferred path in
            // every other schedule.
            let mut node = PgNode::connect(pg, "atomik_w4_a")?;
            if seed % 4 < 2 {
                node = node.with_deferred_writes();
                stats.deferred_hub += 1;
            }
            (Box::new(node), pg.url("atomik_w4_a"))
        }
        None => {
            let path = dir.join("hub-a.sqlite");
            let node = SqliteNode::open(&path)?;
            (Box::new(node), format!("sqlite:{}", path.display()))
        }
    };
    let hub_b: Box<dyn Node> = match (&config.pg, hub_b_on_pg) {
        (Some(pg), true) => {
            pg.reset_database("atomik_w4_b")?;
            stats.pg_hub_b += 1;
            Box::new(PgNode::connect(pg, "atomik_w4_b")?)
        }
        _ => Box::new(SqliteNode::open(&dir.join("hub-b.sqlite"))?),
    };
    let serve = match &config.serve_program {
        Some(program) => Some(ServeProcess::start(program, &hub_a_url, &[])?),
        None => None,
    };
    let n_devices = rng.random_range(5..=8);
    stats.devices = n_devices as u64;
    let devices = (0..n_devices)
        .map(|d| {
            DeviceProcess::start(
                &config.device_program,
                &dir.join(format!("device-{d}.sqlite")),
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let home = (0..n_devices)
        .map(|_| if rng.random_bool(0.5) { HUB_A } else { HUB_B })
        .collect();
    let http = (0..n_devices)
        .map(|_| serve.is_some() && rng.random_bool(0.5))
        .collect();
    let mut s = Schedule {
        config,
        rng,
        hubs: vec![hub_a, hub_b],
        devices,
        home,
        http,
        serve,
        partitioned: vec![false; n_devices + 2],
        network: Vec::new(),
        oracle: Oracle::default(),
        next_write: 1,
        stats,
        faults: true,
    };
    // A relay is declared before it serves anyone (atomik_make_relay); its
    // first request then bootstraps it from hub A.
    s.node(HUB_B).make_relay()?;
    s.start_sync(HUB_B, HUB_A)?;
    for _ in 0..config.steps {
        s.step()?;
    }
    s.heal()?;
    Ok(s.stats)
}

impl Schedule<'_> {
    fn node(&mut self, i: usize) -> &mut dyn Node {
        if i < 2 {
            self.hubs[i].as_mut()
        } else {
            &mut self.devices[i - 2]
        }
    }

    fn step(&mut self) -> Result<()> {
        match self.rng.random_range(0..100) {
            0..=29 => self.local_write(),
            30..=47 => {
                let d = self.rng.random_range(0..self.devices.len());
                let hub = if self.rng.random_bool(0.9) {
                    self.home[d]
                } else {
                    1 - self.home[d]
                };
                self.start_sync(device_node(d), hub)
            }
            48..=53 => self.start_sync(HUB_B, HUB_A),
            54..=56 => {
                let i = self.rng.random_range(0..self.partitioned.len());
                self.partitioned[i] = !self.partitioned[i];
                Ok(())
            }
            57..=58 => {
                let d = self.rng.random_range(0..self.devices.len());
                self.stats.kills_idle += 1;
                self.devices[d].restart()
            }
            _ => self.deliver_one(),
        }
    }

    fn random_deltas(&mut self) -> Vec<Delta> {
        let n = self.rng.random_range(1..=20);
        (0..n)
            .map(|_| {
                let column = if self.rng.random_bool(0.6) {
                    Column::N
                } else {
                    Column::F
                };
                let delta = match column {
                    Column::N => self.rng.random_range(-1000i64..=1000) as u64,
                    Column::F => self.rng.random(),
                };
                Delta {
                    key: self.rng.random_range(0..self.config.cells),
                    column,
                    delta,
                }
            })
            .collect()
    }

    fn local_write(&mut self) -> Result<()> {
        let deltas = self.random_deltas();
        let id = self.next_write;
        self.next_write += 1;
        let at_hub = self.rng.random_bool(0.15);
        let committed = if at_hub {
            let h = self.rng.random_range(0..2);
            self.hubs[h].write(id, &deltas)?;
            true
        } else {
            let d = self.rng.random_range(0..self.devices.len());
            if self.faults && self.rng.random_bool(KILL) {
                let after = self.kill_delay();
                let line = format!("W {id} {}", encode_deltas(&deltas));
                self.devices[d].kill_during(&line, after)?;
                self.stats.kills_in_write += 1;
                let committed = self.devices[d].has_written(id)?;
                self.stats.killed_writes_committed += u64::from(committed);
                committed
            } else {
                self.devices[d].write(id, &deltas)?;
                true
            }
        };
        if committed {
            self.stats.writes += 1;
            self.stats.deltas += deltas.len() as u64;
            self.oracle.record(&deltas);
        }
        Ok(())
    }

    /// How long a doomed call runs before its process is killed: often
    /// before it has even read its command, often mid-transaction, and
    /// sometimes after it has finished.
    fn kill_delay(&mut self) -> Duration {
        let micros = match self.rng.random_range(0..10) {
            0..=3 => self.rng.random_range(0..200),
            4..=7 => self.rng.random_range(200..1000),
            _ => self.rng.random_range(1000..3000),
        };
        Duration::from_micros(micros)
    }

    fn start_sync(&mut self, from: usize, to: usize) -> Result<()> {
        self.stats.syncs += 1;
        if from >= 2 && self.faults && self.rng.random_bool(KILL / 2.0) {
            // Killed while sealing and encoding: the seal may or may not
            // have committed; no request leaves.
            let after = self.kill_delay();
            self.stats.kills_in_request += 1;
            return self.devices[from - 2].kill_during("Q", after);
        }
        let request = self.node(from).sync_request()?;
        self.send(Envelope {
            from,
            to,
            kind: Kind::Request,
            bytes: request,
        });
        Ok(())
    }

    fn send(&mut self, envelope: Envelope) {
        self.stats.messages += 1;
        if self.faults {
            if self.partitioned[envelope.from] || self.partitioned[envelope.to] {
                self.stats.partitioned += 1;
                return;
            }
            if self.rng.random_bool(DROP) {
                self.stats.dropped += 1;
                return;
            }
            if self.rng.random_bool(DUPLICATE) {
                self.stats.duplicated += 1;
                self.network.push(envelope.clone());
            }
        }
        self.network.push(envelope);
    }

    fn deliver_one(&mut self) -> Result<()> {
        if self.network.is_empty() {
            return Ok(());
        }
        let i = if self.faults {
            self.rng.random_range(0..self.network.len())
        } else {
            0
        };
        if i > 0 {
            self.stats.reordered += 1;
        }
        let envelope = self.network.remove(i);
        if self.faults && (self.partitioned[envelope.from] || self.partitioned[envelope.to]) {
            self.stats.partitioned += 1;
            return Ok(());
        }
        match envelope.kind {
            Kind::Request => self.serve(envelope),
            Kind::Response => self.finish(envelope),
        }
    }

    fn serve(&mut self, envelope: Envelope) -> Result<()> {
        let Envelope {
            from, to, bytes, ..
        } = envelope;
        let over_http = from >= 2 && to == HUB_A && self.http[from - 2];
        let answer = match (&self.serve, over_http) {
            (Some(serve), true) => {
                self.stats.http_requests += 1;
                serve.exchange(&bytes)
            }
            _ => self.hubs[to].serve_sync(&bytes),
        };
        match answer {
            Ok(response) => {
                self.send(Envelope {
                    from: to,
                    to: from,
                    kind: Kind::Response,
                    bytes: response,
                });
                Ok(())
            }
            Err(e) if is_transient(&e) => {
                self.stats.transient_refusals += 1;
                Ok(())
            }
            Err(e) => Err(e.context(format!("hub {to} serving node {from}"))),
        }
    }

    fn finish(&mut self, envelope: Envelope) -> Result<()> {
        let to = envelope.to;
        if to >= 2 && self.faults && self.rng.random_bool(KILL) {
            let after = self.kill_delay();
            self.stats.kills_in_finish += 1;
            let line = format!("F {}", hex::encode(&envelope.bytes));
            return self.devices[to - 2].kill_during(&line, after);
        }
        match self.node(to).finish_sync(&envelope.bytes) {
            Ok(_) => Ok(()),
            Err(e) if is_transient(&e) => {
                self.stats.transient_refusals += 1;
                Ok(())
            }
            Err(e) => Err(e.context(format!(
                "node {to} applying a response of {}",
                envelope.from
            ))),
        }
    }

    /// One lossless sync, straight through.
    fn sync_now(&mut self, from: usize, to: usize) -> Result<()> {
        self.start_sync(from, to)?;
        while !self.network.is_empty() {
            self.deliver_one()?;
        }
        Ok(())
    }

    /// Heal the network, deliver everything, then run lossless rounds until
    /// every replica holds the oracle's values.
    fn heal(&mut self) -> Result<()> {
        self.faults = false;
        self.partitioned.iter_mut().for_each(|p| *p = false);
        while !self.network.is_empty() {
            self.deliver_one()?;
        }
        let expected = self.oracle.rows();
        const MAX_ROUNDS: u64 = 8;
        for round in 1..=MAX_ROUNDS {
            for d in 0..self.devices.len() {
                self.sync_now(device_node(d), self.home[d])?;
            }
            self.sync_now(HUB_B, HUB_A)?;
            self.sync_now(HUB_B, HUB_A)?;
            for d in 0..self.devices.len() {
                self.sync_now(device_node(d), self.home[d])?;
            }
            self.stats.heal_rounds += 1;
            match self.check(&expected) {
                Ok(()) => return Ok(()),
                Err(e) if round == MAX_ROUNDS => {
                    return Err(
                        e.context(format!("not converged after {MAX_ROUNDS} lossless rounds"))
                    )
                }
                Err(_) => {}
            }
        }
        unreachable!("the last round returns")
    }

    fn check(&mut self, expected: &[Row]) -> Result<()> {
        let mut digests = None;
        for i in 0..self.devices.len() + 2 {
            let rows = self.node(i).rows()?;
            if let Some(diff) = first_difference(&rows, expected) {
                bail!("node {i} differs from the exact sums: {diff}");
            }
            let d = self.node(i).digests()?;
            match digests {
                None => digests = Some(d),
                Some(first) if first != d => {
                    bail!("node {i} has digests {d:?}, node 0 has {first:?}")
                }
                Some(_) => {}
            }
            let parked = self.node(i).parked()?;
            if parked != 0 {
                bail!("node {i} still has {parked} parked deltas");
            }
        }
        Ok(())
    }
}

/// The first row where `rows` and `expected` differ, described.
fn first_difference(rows: &[Row], expected: &[Row]) -> Option<String> {
    for (i, e) in expected.iter().enumerate() {
        match rows.get(i) {
            Some(r) if r == e => {}
            Some(r) => {
                return Some(format!(
                    "row {} is n={} f={}, expected key {} n={} f={}",
                    r.0,
                    hex::encode(r.1),
                    hex::encode(r.2),
                    e.0,
                    hex::encode(e.1),
                    hex::encode(e.2)
                ))
            }
            None => return Some(format!("row {} is missing ({} rows)", e.0, rows.len())),
        }
    }
    (rows.len() > expected.len()).then(|| format!("extra row {}", rows[expected.len()].0))
}
