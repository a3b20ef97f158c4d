//! W7 — the fleet: what one sync costs a hub as the fleet grows.
//!
//! One hub with a table of SKUs (each with opening stock), N devices. Every
//! device registers (its first sync: a snapshot), then 10% go silent. For
//! `rounds` rounds every online device makes `sales` sales (SKU Zipf
//! s = 1.1, −1) and syncs once, in random order. Per measured sync: bytes
//! up and down (whole messages, and their envelope: the message with its
//! changes left out), hub time, and for the sampled full devices their own
//! time. After the run: the hub's log and registry sizes, and the oracle —
//! the hub's values equal opening stock plus every sale, exactly.
//!
//! A full device replica holds the whole table, so N full replicas would
//! hold it N times (10,000 × 10,000 cells does not fit this machine). Of
//! the N devices, `full_devices` are real SQLite replicas (their values
//! must equal the hub's at the end); the others are *load clients*: real
//! protocol v2 replicas (core's memory store) that seal, upload and follow
//! their cursor exactly as a device does, but do not keep what they
//! download. The hub cannot tell them apart, and its work and bytes are
//! the same.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use atomik_core::codec::v2::{decode_request, decode_response, encode_request, encode_response};
use atomik_core::codec::v2::{Cursor, Payload};
use atomik_core::log_store::LogStore;
use atomik_core::memory::MemoryStore;
use atomik_core::protocol::v2;
use atomik_core::{Group, Key, KeyShape, SiteId};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};
use rusqlite::Connection;
use serde::Serialize;

use crate::stats::Spread;

const TABLE: &str = "inventory";
const COLUMN: &str = "qty";
const SCHEMA: &str = "CREATE TABLE inventory(sku INTEGER PRIMARY KEY, qty BLOB);
                      SELECT atomik_track('inventory', 'qty');";

/// The shape of W7.
#[derive(Debug, Clone, Serialize)]
pub struct W7Params {
    /// SKUs in the hub's table.
    pub skus: i64,
    /// Fleet sizes N, smallest first.
    pub fleets: Vec<usize>,
    /// Measured rounds.
    pub rounds: usize,
    /// Sales per online device per round.
    pub sales: usize,
    /// Fraction of devices that go silent after registering.
    pub silent: f64,
    /// Devices that are full SQLite replicas (the rest are load clients).
    pub full_devices: usize,
    /// Run on a SQLite hub (false: only on PostgreSQL, when one is given).
    pub sqlite_hub: bool,
}

impl W7Params {
    /// W7: quick = 10,000 SKUs and N ∈ {10, 1,000}; full = 100,000 SKUs and
    /// N ∈ {10, 100, 1,000, 10,000}.
    pub fn standard(full: bool) -> Self {
        W7Params {
            skus: if full { 100_000 } else { 10_000 },
            fleets: if full {
                vec![10, 100, 1_000, 10_000]
            } else {
                vec![10, 1_000]
            },
            rounds: 3,
            sales: 5,
            silent: 0.1,
            full_devices: 4,
            sqlite_hub: true,
        }
    }
}

/// One fleet size on one hub.
#[derive(Debug, Clone, Serialize)]
pub struct W7Point {
    /// `sqlite` or `postgres`.
    pub hub: String,
    /// N.
    pub devices: usize,
    /// Measured syncs.
    pub syncs: usize,
    /// Bytes up per sync.
    pub bytes_up: Spread,
    /// Bytes down per sync.
    pub bytes_down: Spread,
    /// Envelope bytes up per sync (the request without its changes).
    pub envelope_up: Spread,
    /// Envelope bytes down per sync (the response without its changes).
    pub envelope_down: Spread,
    /// Cells downloaded per sync (the range's distinct changed cells).
    pub cells_down: Spread,
    /// Hub time per sync (ms): the `atomik_sync` call.
    pub hub_ms: Spread,
    /// Mean hub time per sync (ms).
    pub hub_ms_mean: f64,
    /// Hub time per cell moved (µs per cell up or down).
    pub hub_us_per_cell: Spread,
    /// Device time per sync of the full devices (ms): request + finish.
    pub device_ms: Spread,
    /// Hub log entries after the run.
    pub log_entries: u64,
    /// Hub registry entries after the run (origins that ever uploaded).
    pub registry_entries: u64,
    /// Silent devices (registered, never synced again).
    pub silent_devices: usize,
    /// Hub values equal opening stock plus every sale; full devices equal.
    pub exact: bool,
}

/// W7 on every hub measured.
#[derive(Debug, Clone, Serialize)]
pub struct W7Report {
    /// The shape.
    pub params: W7Params,
    /// Every (hub, N).
    pub points: Vec<W7Point>,
    /// Per hub and figure: the value at the largest N over the value at
    /// the smallest (medians; hub time: means).
    pub ratios: Vec<(String, String, f64)>,
}

/// The hub of a W7 run.
pub trait Hub {
    /// `sqlite` or `postgres`.
    fn name(&self) -> &'static str;
    /// `atomik_sync(request)`.
    fn serve(&mut self, request: &[u8]) -> Result<Vec<u8>>;
    /// (sku, read value) of every cell.
    fn values(&mut self) -> Result<Vec<(i64, i64)>>;
    /// (log entries, registry entries).
    fn storage(&mut self) -> Result<(u64, u64)>;
}

/// A SQLite hub in a file.
#[derive(Debug)]
pub struct SqliteHub {
    conn: Connection,
    _dir: tempfile::TempDir,
}

impl SqliteHub {
    /// A fresh hub database with `skus` rows of opening stock.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn new(opening: &[i64]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let conn = Connection::open(dir.path().join("hub.sqlite"))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
        sqlite_atomik::register(&conn)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch("BEGIN")?;
        {
            let mut ins = conn.prepare("INSERT INTO inventory VALUES (?1, atomik_add(?2))")?;
            for (sku, v) in opening.iter().enumerate() {
                ins.execute([sku as i64, *v])?;
            }
        }
        conn.execute_batch("COMMIT")?;
        conn.query_row("SELECT atomik_seal()", [], |r| r.get::<_, i64>(0))?;
        Ok(SqliteHub { conn, _dir: dir })
    }
}

impl Hub for SqliteHub {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn serve(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        Ok(self
            .conn
            .query_row("SELECT atomik_sync(?1)", [request], |r| r.get(0))?)
    }

    fn values(&mut self) -> Result<Vec<(i64, i64)>> {
        let mut s = self
            .conn
            .prepare("SELECT sku, atomik_read(qty) FROM inventory ORDER BY sku")?;
        let rows = s
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn storage(&mut self) -> Result<(u64, u64)> {
        let log: i64 = self
            .conn
            .query_row("SELECT count(*) FROM atomik_log", [], |r| r.get(0))?;
        let reg: i64 = self
            .conn
            .query_row("SELECT count(*) FROM atomik_registry", [], |r| r.get(0))?;
        Ok((log as u64, reg as u64))
    }
}

/// A PostgreSQL hub: one database of a cluster where `pg_atomik` can be
/// created; W7 creates and drops its own table.
pub struct PgHub {
    client: postgres::Client,
}

impl std::fmt::Debug for PgHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgHub")
    }
}

impl PgHub {
    /// A fresh database `db` on the cluster at `conninfo` (dropped first
    /// if it exists), with the W7 table and opening stock.
    ///
    /// # Errors
    /// Connection or SQL errors.
    pub fn new(conninfo: &str, db: &str, opening: &[i64]) -> Result<Self> {
        let mut admin = postgres::Client::connect(conninfo, postgres::NoTls)
            .with_context(|| format!("cannot connect to {conninfo}"))?;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))?;
        admin.batch_execute(&format!("CREATE DATABASE {db}"))?;
        let mut client =
            postgres::Client::connect(&format!("{conninfo} dbname={db}"), postgres::NoTls)?;
        client.batch_execute(
            "CREATE EXTENSION pg_atomik;
             CREATE TABLE inventory(sku bigint PRIMARY KEY, qty atomik);
             SELECT atomik_track('inventory', 'qty');",
        )?;
        let skus: Vec<i64> = (0..opening.len() as i64).collect();
        client.execute(
            "INSERT INTO inventory SELECT s, atomik_add(v) FROM unnest($1::bigint[], $2::bigint[]) u(s, v)",
            &[&skus, &opening],
        )?;
        client.query_one("SELECT atomik_seal()", &[])?;
        Ok(PgHub { client })
    }
}

impl Hub for PgHub {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn serve(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        Ok(self
            .client
            .query_one("SELECT atomik_sync($1)", &[&request])?
            .get(0))
    }

    fn values(&mut self) -> Result<Vec<(i64, i64)>> {
        Ok(self
            .client
            .query(
                "SELECT sku, atomik_read(qty) FROM inventory ORDER BY sku",
                &[],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    fn storage(&mut self) -> Result<(u64, u64)> {
        let log: i64 = self
            .client
            .query_one("SELECT count(*) FROM atomik.log", &[])?
            .get(0);
        let reg: i64 = self
            .client
            .query_one("SELECT count(*) FROM atomik.registry", &[])?
            .get(0);
        Ok((log as u64, reg as u64))
    }
}

/// A load client: a protocol v2 leaf on core's memory store that seals,
/// uploads and follows its cursor exactly as a device does, but does not
/// keep what it downloads (see the module docs). Also the client of the
/// concurrency measurement ([`crate::w7load`]).
pub(crate) struct LoadClient(Box<MemoryStore>);

impl LoadClient {
    /// A fresh leaf with a random site id and the W7 table, tracked.
    pub(crate) fn new(rng: &mut ChaCha8Rng) -> LoadClient {
        let mut site = [0u8; 16];
        rng.fill(&mut site);
        let mut s = MemoryStore::new(SiteId(site));
        s.create_table(TABLE, KeyShape::int(), true);
        s.track(TABLE, COLUMN, Group::Add)
            .expect("the table was just created");
        LoadClient(Box::new(s))
    }

    /// One sale: −1 on `sku`.
    pub(crate) fn sell(&mut self, sku: i64) -> Result<()> {
        self.0
            .accum(TABLE, COLUMN, &Key::int(sku), Group::Add, (-1i64) as u64)?;
        Ok(())
    }

    /// Seal and make the sync request.
    pub(crate) fn request(&mut self, now: u64) -> Result<Vec<u8>> {
        Ok(self.0.atomically(|s| v2::sync_request(s, now))?)
    }

    /// Follow the cursor and drop what the hub acknowledged, as
    /// `atomik_sync_finish` does, without keeping the payload.
    pub(crate) fn finish(&mut self, response: &[u8]) -> Result<()> {
        let r = decode_response(response)?;
        self.0.atomically(|s| {
            if r.base == s.link()? {
                s.set_link(Some(Cursor {
                    hub: r.from,
                    position: r.position,
                }))?;
            }
            s.outbox_drop_through(r.ack)
        })?;
        Ok(())
    }

    /// Sealed batches the hub has not acknowledged yet.
    pub(crate) fn unacknowledged(&mut self) -> Result<usize> {
        Ok(self.0.outbox()?.len())
    }
}

/// Opening stock of `skus` SKUs: 50..500 each.
pub(crate) fn opening_stock(rng: &mut ChaCha8Rng, skus: i64) -> Vec<i64> {
    (0..skus).map(|_| rng.random_range(50..500)).collect()
}

/// The SKU of one sale: Zipf s = 1.1 over `skus` SKUs (0-based).
pub(crate) fn sale_sku(zipf: &Zipf<f64>, rng: &mut ChaCha8Rng, skus: i64) -> i64 {
    (zipf.sample(rng) as i64 - 1).clamp(0, skus - 1)
}

/// A device of the fleet.
enum Device {
    /// A real SQLite replica.
    Full(Connection),
    /// A load client.
    Load(LoadClient),
}

impl Device {
    fn full() -> Result<Device> {
        let c = Connection::open_in_memory()?;
        sqlite_atomik::register(&c)?;
        c.execute_batch(SCHEMA)?;
        Ok(Device::Full(c))
    }

    fn load(rng: &mut ChaCha8Rng) -> Device {
        Device::Load(LoadClient::new(rng))
    }

    fn sell(&mut self, sku: i64) -> Result<()> {
        match self {
            Device::Full(c) => {
                c.execute(
                    "INSERT INTO inventory VALUES (?1, atomik_add(-1))
                     ON CONFLICT(sku) DO UPDATE SET qty = atomik_accum(qty, -1)",
                    [sku],
                )?;
            }
            Device::Load(c) => c.sell(sku)?,
        }
        Ok(())
    }

    fn request(&mut self, now: u64) -> Result<Vec<u8>> {
        Ok(match self {
            Device::Full(c) => c.query_row("SELECT atomik_sync_request()", [], |r| r.get(0))?,
            Device::Load(c) => c.request(now)?,
        })
    }

    fn finish(&mut self, response: &[u8]) -> Result<()> {
        match self {
            Device::Full(c) => {
                c.query_row("SELECT atomik_sync_finish(?1)", [response], |r| {
                    r.get::<_, i64>(0)
                })?;
            }
            Device::Load(c) => c.finish(response)?,
        }
        Ok(())
    }

    fn values(&mut self) -> Result<Option<Vec<(i64, i64)>>> {
        match self {
            Device::Full(c) => {
                let mut s =
                    c.prepare("SELECT sku, atomik_read(qty) FROM inventory ORDER BY sku")?;
                let rows = s
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?;
                Ok(Some(rows))
            }
            Device::Load(_) => Ok(None),
        }
    }
}

/// The request and the response without their changes: what a sync costs
/// beyond the deltas it carries.
fn envelopes(request: &[u8], response: &[u8]) -> Result<(usize, usize, usize)> {
    let mut req = decode_request(request)?;
    req.uploads.clear();
    let mut resp = decode_response(response)?;
    let cells = match &mut resp.payload {
        Payload::Range(c) | Payload::Snapshot(c) => std::mem::take(c).cell_count(),
        Payload::Entries(b) => std::mem::take(b).len(),
        Payload::RelaySnapshot { values, .. } => std::mem::take(values).cell_count(),
    };
    Ok((
        encode_request(&req).len(),
        encode_response(&resp).len(),
        cells,
    ))
}

/// Run W7 at every fleet size on hubs made by `make_hub` (given the
/// opening stock and N).
///
/// # Errors
/// Hub or device errors; a hub whose values are not the exact sums.
pub fn run_on(
    params: &W7Params,
    seed: u64,
    mut make_hub: impl FnMut(&[i64], usize) -> Result<Box<dyn Hub>>,
) -> Result<Vec<W7Point>> {
    let mut points = vec![];
    for &n in &params.fleets {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ n as u64);
        let opening = opening_stock(&mut rng, params.skus);
        let mut hub = make_hub(&opening, n)?;
        let zipf = Zipf::new(params.skus as f64, 1.1)?;
        let mut devices: Vec<Device> = (0..n)
            .map(|i| {
                if i < params.full_devices {
                    Device::full()
                } else {
                    Ok(Device::load(&mut rng))
                }
            })
            .collect::<Result<_>>()?;
        // Registration: every device's first sync (unmeasured).
        for d in &mut devices {
            let req = d.request(0)?;
            let resp = hub.serve(&req)?;
            d.finish(&resp)?;
        }
        // 10% go silent (never a full device: they are checked at the end).
        let mut candidates: Vec<usize> = (params.full_devices.min(n)..n).collect();
        candidates.shuffle(&mut rng);
        let silent = ((n as f64 * params.silent).round() as usize).min(candidates.len());
        let silent_set: std::collections::BTreeSet<usize> =
            candidates.into_iter().take(silent).collect();
        let online: Vec<usize> = (0..n).filter(|i| !silent_set.contains(i)).collect();
        let mut expected = opening.clone();
        let (mut up, mut down, mut env_up, mut env_down, mut cells) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut hub_ms, mut per_cell, mut device_ms) = (vec![], vec![], vec![]);
        for round in 0..params.rounds {
            let mut order = online.clone();
            order.shuffle(&mut rng);
            for &i in &order {
                for _ in 0..params.sales {
                    let sku = sale_sku(&zipf, &mut rng, params.skus);
                    devices[i].sell(sku)?;
                    expected[sku as usize] -= 1;
                }
                let t = Instant::now();
                let req = devices[i].request(1 + round as u64)?;
                let d0 = t.elapsed().as_secs_f64() * 1e3;
                let t = Instant::now();
                let resp = hub.serve(&req)?;
                let h = t.elapsed().as_secs_f64() * 1e3;
                let t = Instant::now();
                devices[i].finish(&resp)?;
                let d1 = t.elapsed().as_secs_f64() * 1e3;
                if i < params.full_devices {
                    device_ms.push(d0 + d1);
                }
                let (eu, ed, c) = envelopes(&req, &resp)?;
                up.push(req.len() as u64);
                down.push(resp.len() as u64);
                env_up.push(eu as u64);
                env_down.push(ed as u64);
                cells.push(c as u64);
                hub_ms.push(h);
                per_cell.push(h * 1e3 / (c + params.sales) as f64);
            }
        }
        // The full devices catch up once more, then everyone must agree.
        for d in devices.iter_mut().take(params.full_devices) {
            let req = d.request(99)?;
            let resp = hub.serve(&req)?;
            d.finish(&resp)?;
        }
        let values = hub.values()?;
        let want: Vec<(i64, i64)> = expected
            .iter()
            .enumerate()
            .map(|(s, v)| (s as i64, *v))
            .collect();
        let mut exact = values == want;
        for d in devices.iter_mut().take(params.full_devices) {
            if let Some(v) = d.values()? {
                exact &= v == want;
            }
        }
        ensure!(
            exact,
            "W7 on the {} hub with {n} devices: values are not the exact sums",
            hub.name()
        );
        let (log_entries, registry_entries) = hub.storage()?;
        points.push(W7Point {
            hub: hub.name().to_string(),
            devices: n,
            syncs: hub_ms.len(),
            bytes_up: Spread::of_u64(&up),
            bytes_down: Spread::of_u64(&down),
            envelope_up: Spread::of_u64(&env_up),
            envelope_down: Spread::of_u64(&env_down),
            cells_down: Spread::of_u64(&cells),
            hub_ms_mean: hub_ms.iter().sum::<f64>() / hub_ms.len().max(1) as f64,
            hub_ms: Spread::of(&hub_ms),
            hub_us_per_cell: Spread::of(&per_cell),
            device_ms: Spread::of(&device_ms),
            log_entries,
            registry_entries,
            silent_devices: silent_set.len(),
            exact,
        });
    }
    Ok(points)
}

/// The largest-N / smallest-N ratio of each figure, per hub.
pub fn ratios(points: &[W7Point]) -> Vec<(String, String, f64)> {
    let mut out = vec![];
    for hub in ["sqlite", "postgres"] {
        let of_hub: Vec<&W7Point> = points.iter().filter(|p| p.hub == hub).collect();
        let (Some(small), Some(large)) = (of_hub.first(), of_hub.last()) else {
            continue;
        };
        if small.devices == large.devices {
            continue;
        }
        let label = |f: &str| format!("{f}, N={} / N={}", large.devices, small.devices);
        let figures: [(&str, f64, f64); 7] = [
            (
                "envelope bytes up (median)",
                large.envelope_up.median,
                small.envelope_up.median,
            ),
            (
                "envelope bytes down (median)",
                large.envelope_down.median,
                small.envelope_down.median,
            ),
            (
                "bytes up (median)",
                large.bytes_up.median,
                small.bytes_up.median,
            ),
            (
                "bytes down (median)",
                large.bytes_down.median,
                small.bytes_down.median,
            ),
            (
                "hub time per sync (mean)",
                large.hub_ms_mean,
                small.hub_ms_mean,
            ),
            (
                "hub time per sync (p90)",
                large.hub_ms.p90,
                small.hub_ms.p90,
            ),
            (
                "hub time per cell moved (median)",
                large.hub_us_per_cell.median,
                small.hub_us_per_cell.median,
            ),
        ];
        for (f, a, b) in figures {
            out.push((hub.to_string(), label(f), crate::stats::ratio(a, b)));
        }
    }
    out
}

/// W7 on a SQLite hub (unless `params.sqlite_hub` is false), and on
/// PostgreSQL when `pg` names a cluster.
///
/// # Errors
/// As [`run_on`]; neither hub asked for.
pub fn run(params: &W7Params, seed: u64, pg: Option<&str>) -> Result<W7Report> {
    anyhow::ensure!(
        params.sqlite_hub || pg.is_some(),
        "W7 without the SQLite hub needs a PostgreSQL cluster"
    );
    let mut points = if params.sqlite_hub {
        run_on(params, seed, |opening, _| {
            Ok(Box::new(SqliteHub::new(opening)?) as Box<dyn Hub>)
        })?
    } else {
        Vec::new()
    };
    if let Some(conninfo) = pg {
        points.extend(run_on(params, seed, |opening, n| {
            Ok(Box::new(PgHub::new(conninfo, &format!("atomik_w7_{n}"), opening)?) as Box<dyn Hub>)
        })?);
    }
    let ratios = ratios(&points);
    Ok(W7Report {
        params: params.clone(),
        points,
        ratios,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_fleet_is_exact_and_its_envelope_does_not_grow() {
        let params = W7Params {
            skus: 300,
            fleets: vec![10, 60],
            rounds: 2,
            sales: 5,
            silent: 0.1,
            full_devices: 3,
            sqlite_hub: true,
        };
        let r = run(&params, 3, None).unwrap();
        assert_eq!(r.points.len(), 2);
        assert!(r.points.iter().all(|p| p.exact));
        assert_eq!(r.points[1].silent_devices, 6);
        assert_eq!(r.points[1].syncs, 2 * 54);
        // Registered silent devices leave nothing in the registry.
        assert_eq!(r.points[1].registry_entries, 54 + 1);
        let (small, large) = (&r.points[0], &r.points[1]);
        assert!(large.envelope_up.median <= small.envelope_up.median + 2.0);
        assert!(large.envelope_down.median <= small.envelope_down.median + 4.0);
    }
}
