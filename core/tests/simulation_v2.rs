//! Chaos simulation of protocol v2 (hub logs, cursors, relays).
//!
//! Per schedule: a root hub, two relay hubs under it, and 5–8 leaves (or a
//! fleet of 1,000+ in `fleet_schedules_converge`), each homed at one hub
//! and roaming to another 10% of the time; random `add` and `xor` deltas
//! over integer, text and composite keys (one table cannot create rows
//! from a delta alone, so deltas park); random partitions; every message
//! dropped, duplicated (up to 3 deliveries), delayed, reordered or
//! misrouted; transactions that fail after doing all their work (a crash
//! before commit); short log horizons (cursors fall behind the retained
//! log, so replicas bootstrap from snapshots); leaves that join late. At
//! the end everything is delivered and every replica syncs until quiet.
//!
//! Oracle: every cell on every replica equals the group-sum of all unique
//! deltas ever made to it, values are byte-identical (nothing pending), and
//! digests are equal. Agreeing on a wrong value fails.
//!
//! `ATOMIK_SIM_SCHEDULES=N` sets the number of schedules (default 2000;
//! the fleet test runs N / 500 + 2 schedules), `ATOMIK_SIM_SEED=S` replays
//! one schedule, `ATOMIK_SIM_TRACE=1` prints every delivery.

use atomik_core::auth::DeviceKey;
use std::collections::BTreeMap;

use atomik_core::codec::v2::{decode_request, decode_response};
use atomik_core::log_store::LogStore;
use atomik_core::memory::MemoryStore;
use atomik_core::protocol::v2::{self, settings};
use atomik_core::{
    AtomikValue, Group, Key, KeyKind, KeyPart, KeyShape, ProtocolError, SiteId, Store,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type CellId = (&'static str, &'static str, Key);

/// The tracked columns: (table, column, group).
const COLUMNS: [(&str, &str, Group); 4] = [
    ("inv", "qty", Group::Add),
    ("inv", "bits", Group::Xor),
    ("bins", "count", Group::Add),
    ("parts", "mask", Group::Xor),
];

const ROOT: usize = 0;
const RELAYS: [usize; 2] = [1, 2];
const HUBS: usize = 3;

fn new_replica(site: SiteId, horizon: u64) -> MemoryStore {
    let mut s = MemoryStore::new(site);
    s.create_table("inv", KeyShape::int(), true);
    s.create_table(
        "bins",
        KeyShape::new(vec![KeyKind::Text, KeyKind::Int]).unwrap(),
        true,
    );
    // Rows of `parts` cannot be created from a delta: deltas for missing
    // rows park until the row is inserted.
    s.create_table("parts", KeyShape::text(), false);
    for (t, c, g) in COLUMNS {
        s.track(t, c, g).unwrap();
    }
    s.set_setting(settings::HORIZON_SECS, Some(horizon))
        .unwrap();
    s
}

fn random_cell(rng: &mut ChaCha8Rng) -> (usize, Key) {
    let col = rng.random_range(0..COLUMNS.len());
    let key = match COLUMNS[col].0 {
        "inv" => Key::int(rng.random_range(-20..140)),
        "bins" => Key(vec![
            KeyPart::Text(["north", "south", "é", "中"][rng.random_range(0..4)].to_string()),
            KeyPart::Int(rng.random_range(0..8)),
        ]),
        _ => Key::text(format!("part-{}", rng.random_range(0..25))),
    };
    (col, key)
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
    deliveries: u8,
}

#[derive(Debug, Default)]
struct Stats {
    writes: u64,
    messages: u64,
    dropped: u64,
    duplicated: u64,
    reordered: u64,
    misrouted: u64,
    crashes: u64,
    snapshots: u64,
    relay_snapshots: u64,
    transient_errors: u64,
    stale_responses: u64,
    roams: u64,
    /// Largest leaf request / response metadata seen (bytes beyond the
    /// changes they carry are not separated here: the fleet test reports
    /// whole empty-sync sizes instead).
    leaves: u64,
}

struct World {
    rng: ChaCha8Rng,
    nodes: Vec<MemoryStore>,
    /// Home hub of each leaf (hubs: unused).
    home: Vec<usize>,
    leaves: Vec<usize>,
    max_leaves: usize,
    oracle: BTreeMap<CellId, (Group, u64)>,
    net: Vec<Envelope>,
    partitioned: Vec<bool>,
    now: u64,
    stats: Stats,
    horizon: u64,
    /// Every replica has a device key enrolled at every hub
    /// (`atomik_core::auth`): all sync messages are authenticated.
    keyed: bool,
}

fn site_for(rng: &mut ChaCha8Rng) -> SiteId {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    SiteId(b)
}

impl World {
    fn new(seed: u64, fleet: Option<usize>) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let horizon = if rng.random_bool(0.5) {
            1_000_000
        } else {
            rng.random_range(30..200)
        };
        let n_leaves = fleet.unwrap_or_else(|| rng.random_range(5..=6));
        let mut nodes = Vec::new();
        let mut home = Vec::new();
        for i in 0..HUBS + n_leaves {
            let site = site_for(&mut rng);
            nodes.push(new_replica(site, horizon));
            home.push(if i < HUBS {
                ROOT
            } else {
                rng.random_range(0..HUBS)
            });
        }
        let leaves = (HUBS..HUBS + n_leaves).collect();
        let n = nodes.len();
        // Relays are declared before they serve anyone.
        for r in RELAYS {
            v2::make_relay(&mut nodes[r], 0).unwrap();
        }
        let keyed = rng.random_bool(0.5);
        let mut world = World {
            rng,
            nodes,
            home,
            leaves,
            max_leaves: n_leaves + 2,
            oracle: BTreeMap::new(),
            net: Vec::new(),
            partitioned: vec![false; n + 4],
            now: 1,
            stats: Stats {
                leaves: n_leaves as u64,
                ..Stats::default()
            },
            horizon,
            keyed,
        };
        if keyed {
            for node in RELAYS.into_iter().chain(HUBS..n) {
                world.enroll(node);
            }
        }
        world
    }

    /// Give `node` a device key of its own and enroll it at every hub (a
    /// leaf roams among them; a relay syncs to the root).
    fn enroll(&mut self, node: usize) {
        let mut bytes = [0u8; 32];
        self.rng.fill(&mut bytes);
        let key = DeviceKey::from_bytes(&bytes).unwrap();
        let site = self.nodes[node].site_id().unwrap();
        self.nodes[node].set_device_key(site, Some(&key)).unwrap();
        for hub in 0..HUBS {
            if hub != node {
                self.nodes[hub].set_device_key(site, Some(&key)).unwrap();
            }
        }
    }

    fn local_write(&mut self, node: usize) {
        let (col, key) = random_cell(&mut self.rng);
        let (t, c, g) = COLUMNS[col];
        let delta: u64 = match (g, self.rng.random_range(0..4)) {
            (_, 0) => 0,
            (Group::Add, 1) => self.rng.random_range(1..4u64).wrapping_neg(),
            (Group::Add, 2) => self.rng.random_range(10..100),
            _ => self.rng.random(),
        };
        self.nodes[node]
            .accum(t, c, &key, g, delta)
            .expect("local write");
        let e = self.oracle.entry((t, c, key)).or_insert((g, 0));
        e.1 = g.combine(e.1, delta);
        self.stats.writes += 1;
    }

    /// Run a protocol call as one transaction that may crash before commit.
    fn transact<R>(
        &mut self,
        node: usize,
        f: impl FnOnce(&mut MemoryStore) -> Result<R, ProtocolError>,
    ) -> Result<R, ProtocolError> {
        let crash = self.rng.random_bool(0.04);
        let r = self.nodes[node].atomically(|s| {
            let out = f(s)?;
            if crash {
                return Err(ProtocolError::Store("simulated crash before commit".into()));
            }
            Ok(out)
        });
        if crash {
            self.stats.crashes += 1;
        }
        r
    }

    fn start_sync(&mut self, from: usize, to: usize) {
        let now = self.now;
        if let Ok(bytes) = self.transact(from, |s| v2::sync_request(s, now)) {
            self.send(from, to, Kind::Request, bytes);
        }
    }

    fn send(&mut self, from: usize, to: usize, kind: Kind, bytes: Vec<u8>) {
        self.stats.messages += 1;
        self.net.push(Envelope {
            from,
            to,
            kind,
            bytes,
            deliveries: 0,
        });
    }

    fn link_down(&self, a: usize, b: usize) -> bool {
        self.partitioned[a.min(self.partitioned.len() - 1)]
            || self.partitioned[b.min(self.partitioned.len() - 1)]
    }

    /// Deliver one in-flight message, chosen at random (reordering).
    fn deliver_one(&mut self, lossy: bool) {
        if self.net.is_empty() {
            return;
        }
        let i = self.rng.random_range(0..self.net.len());
        if i + 1 != self.net.len() {
            self.stats.reordered += 1;
        }
        if lossy && self.link_down(self.net[i].from, self.net[i].to) {
            return; // delayed behind the partition
        }
        let keep_copy = lossy && self.net[i].deliveries < 2 && self.rng.random_bool(0.15);
        let env = if keep_copy {
            self.stats.duplicated += 1;
            self.net[i].deliveries += 1;
            self.net[i].clone()
        } else {
            self.net.swap_remove(i)
        };
        if lossy && self.rng.random_bool(0.15) {
            self.stats.dropped += 1;
            return;
        }
        // Responses may reach the wrong replica (they are refused there).
        let misroute = lossy && env.kind == Kind::Response && self.rng.random_bool(0.03);
        let to = if misroute {
            self.stats.misrouted += 1;
            self.rng.random_range(0..self.nodes.len())
        } else {
            env.to
        };
        self.receive(env, to);
    }

    fn receive(&mut self, env: Envelope, to: usize) {
        let now = self.now;
        trace(|| describe(&env, to, now));
        let before = state_of(&mut self.nodes[to]);
        match env.kind {
            Kind::Request => match self.transact(to, |s| v2::serve_sync(s, &env.bytes, now)) {
                Ok(resp) => {
                    match decode_response(&resp).map(|r| r.payload) {
                        Ok(atomik_core::codec::v2::Payload::Snapshot(_)) => {
                            self.stats.snapshots += 1
                        }
                        Ok(atomik_core::codec::v2::Payload::RelaySnapshot { .. }) => {
                            self.stats.relay_snapshots += 1
                        }
                        _ => {}
                    }
                    self.send(to, env.from, Kind::Response, resp);
                }
                Err(e) => self.expect_rejection(e, to, env.to, &before),
            },
            Kind::Response => match self.transact(to, |s| v2::finish_sync(s, &env.bytes, now)) {
                Ok(0) if state_of(&mut self.nodes[to]).0 == before.0 => {
                    self.stats.stale_responses += 1
                }
                Ok(_) => {}
                Err(e) => self.expect_rejection(e, to, env.to, &before),
            },
        }
        trace(|| format!("    after at {to}: {:?}", state_of(&mut self.nodes[to])));
    }

    /// Only these rejections are legitimate here; every other error fails
    /// the schedule. A rejected message changes nothing.
    fn expect_rejection(&mut self, e: ProtocolError, at: usize, addressed: usize, before: &State) {
        trace(|| format!("t={} node {at} rejected: {e}", self.now));
        match &e {
            ProtocolError::Store(m) if m.contains("simulated crash") => {}
            ProtocolError::NotAddressedHere { .. } | ProtocolError::OwnRequest(_)
                if at != addressed => {}
            // A leaf that roamed: its upload reaches this hub before the
            // earlier batches that went through another hub, or this hub's
            // snapshot lacks batches another hub acknowledged.
            ProtocolError::Gap { .. } | ProtocolError::StaleSnapshot { .. } => {
                self.stats.transient_errors += 1
            }
            _ if at != addressed => {}
            _ => panic!("unexpected error at node {at}: {e}"),
        }
        assert_eq!(
            &state_of(&mut self.nodes[at]),
            before,
            "a rejected message must change nothing"
        );
    }

    fn random_hub(&mut self) -> usize {
        self.rng.random_range(0..HUBS)
    }

    fn step(&mut self) {
        self.now += self.rng.random_range(0..6);
        let r = self.rng.random_range(0..100);
        match r {
            0..=34 => {
                let node = if self.rng.random_bool(0.85) {
                    self.leaves[self.rng.random_range(0..self.leaves.len())]
                } else {
                    self.random_hub()
                };
                self.local_write(node);
            }
            35..=49 => {
                let leaf = self.leaves[self.rng.random_range(0..self.leaves.len())];
                let hub = if self.rng.random_bool(0.9) {
                    self.home[leaf]
                } else {
                    self.stats.roams += 1;
                    self.random_hub()
                };
                self.start_sync(leaf, hub);
            }
            50..=55 => {
                let relay = RELAYS[self.rng.random_range(0..RELAYS.len())];
                self.start_sync(relay, ROOT);
            }
            56..=59 => {
                let node = self.rng.random_range(0..self.nodes.len());
                let now = self.now;
                let _ = self.transact(node, |s| v2::seal(s, now));
            }
            60..=62 => {
                let node = self.rng.random_range(0..self.partitioned.len());
                self.partitioned[node] = !self.partitioned[node];
            }
            63 if self.leaves.len() < self.max_leaves => {
                let site = site_for(&mut self.rng);
                self.nodes.push(new_replica(site, self.horizon));
                let hub = self.random_hub();
                self.home.push(hub);
                self.leaves.push(self.nodes.len() - 1);
                if self.keyed {
                    self.enroll(self.nodes.len() - 1);
                }
            }
            _ => self.deliver_one(true),
        }
    }

    /// A direct, lossless sync (the end phase).
    fn sync_now(&mut self, from: usize, to: usize) {
        let now = self.now;
        let req = v2::sync_request(&mut self.nodes[from], now).unwrap();
        let resp = match self.nodes[to].atomically(|s| v2::serve_sync(s, &req, now)) {
            Ok(r) => r,
            Err(e @ ProtocolError::Gap { .. }) => {
                // Earlier batches still travel via another hub.
                trace(|| format!("end phase: {from}->{to}: {e}"));
                return;
            }
            Err(e) => panic!("end phase: serve_sync at {to}: {e}"),
        };
        match self.nodes[from].atomically(|s| v2::finish_sync(s, &resp, now)) {
            Ok(n) => trace(|| format!("end phase: {from}<-{to}: applied {n}")),
            Err(e @ ProtocolError::StaleSnapshot { .. }) => {
                trace(|| format!("end phase: {from}<-{to}: {e}"))
            }
            Err(e) => panic!("end phase: finish_sync at {from}: {e}"),
        }
    }

    fn converged(&mut self) -> Result<(), String> {
        for (i, node) in self.nodes.iter().enumerate() {
            for (t, c, g) in COLUMNS {
                let cells = node.cells(t, c);
                let expected: Vec<(Key, u64)> = self
                    .oracle
                    .iter()
                    .filter(|((tt, cc, _), _)| *tt == t && *cc == c)
                    .map(|((_, _, k), (_, v))| (k.clone(), *v))
                    .collect();
                if cells.len() != expected.len() {
                    return Err(format!(
                        "node {i} {t}.{c}: {} cells, oracle has {}",
                        cells.len(),
                        expected.len()
                    ));
                }
                for ((k, v), (ek, ev)) in cells.iter().zip(&expected) {
                    let want = AtomikValue::load(g, *ev);
                    if k != ek || v.to_bytes() != want.to_bytes() {
                        return Err(format!(
                            "node {i} {t}.{c} key {k}: {v} (oracle key {ek}: {want})"
                        ));
                    }
                }
            }
            if !node.parked().is_empty() {
                return Err(format!("node {i} still has parked deltas"));
            }
        }
        for (t, c, _) in COLUMNS {
            let d0 = self.nodes[0].digest(t, c);
            if let Some(i) = (1..self.nodes.len()).find(|&i| self.nodes[i].digest(t, c) != d0) {
                return Err(format!("digest of {t}.{c} differs at node {i}"));
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        self.partitioned.iter_mut().for_each(|p| *p = false);
        while !self.net.is_empty() {
            self.deliver_one(false);
        }
        // Rows of `parts` that deltas were made for are inserted everywhere
        // (as an application would), which applies their parked deltas.
        let part_keys: Vec<Key> = self
            .oracle
            .keys()
            .filter(|(t, _, _)| *t == "parts")
            .map(|(_, _, k)| k.clone())
            .collect();
        for round in 0..10 {
            for leaf in self.leaves.clone() {
                self.now += 1;
                let hub = self.home[leaf];
                self.sync_now(leaf, hub);
            }
            for relay in RELAYS {
                self.sync_now(relay, ROOT);
                self.sync_now(relay, ROOT);
            }
            if round >= 2 {
                for node in &mut self.nodes {
                    for k in &part_keys {
                        node.insert_row("parts", k.clone()).unwrap();
                    }
                }
                if self.converged().is_ok() {
                    return Ok(());
                }
            }
        }
        self.converged()
    }
}

/// What a rejected message must leave as it was: cursor, own seq, storage
/// sizes, and every cell.
type State = (String, Vec<(Key, AtomikValue)>);

fn state_of(s: &mut MemoryStore) -> State {
    let link = s.link().unwrap();
    let own = s.setting(settings::OWN_SEQ).unwrap();
    let cells = COLUMNS.iter().flat_map(|(t, c, _)| s.cells(t, c)).collect();
    (
        format!("{link:?} own {own:?} sizes {:?}", s.log_sizes()),
        cells,
    )
}

fn describe(env: &Envelope, to: usize, now: u64) -> String {
    let what = match env.kind {
        Kind::Request => match decode_request(&env.bytes) {
            Ok(r) => format!(
                "request relays={} cursor {:?} uploads {:?}",
                r.relays,
                r.cursor.map(|c| (c.hub.0[0], c.position)),
                r.uploads
                    .iter()
                    .map(|u| (u.position, u.origin.0[0], u.seq))
                    .collect::<Vec<_>>()
            ),
            Err(e) => e.to_string(),
        },
        Kind::Response => match decode_response(&env.bytes) {
            Ok(r) => format!(
                "response {} base {:?} position {} ack {}",
                r.payload.name(),
                r.base.map(|c| (c.hub.0[0], c.position)),
                r.position,
                r.ack
            ),
            Err(e) => e.to_string(),
        },
    };
    format!("t={now} {} -> {to}: {what}", env.from)
}

fn trace(line: impl FnOnce() -> String) {
    if std::env::var_os("ATOMIK_SIM_TRACE").is_some() {
        eprintln!("{}", line());
    }
}

fn run_schedule(seed: u64, fleet: Option<usize>) -> Stats {
    let mut w = World::new(seed, fleet);
    let steps = match fleet {
        Some(n) => 4 * n as u64,
        None => 150 + (seed % 200),
    };
    for _ in 0..steps {
        w.step();
    }
    if let Err(e) = w.finish() {
        panic!("schedule seed {seed} did not converge: {e}\nreplay with ATOMIK_SIM_SEED={seed}");
    }
    w.stats
}

fn env(k: &str) -> Option<u64> {
    std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok())
}

fn run_all(seeds: &[u64], fleet: Option<usize>) -> Stats {
    let mut total = Stats::default();
    for seed in seeds {
        let s = std::panic::catch_unwind(|| run_schedule(*seed, fleet)).unwrap_or_else(|e| {
            eprintln!("FAILED schedule seed {seed}: replay with ATOMIK_SIM_SEED={seed}");
            std::panic::resume_unwind(e)
        });
        total.writes += s.writes;
        total.messages += s.messages;
        total.dropped += s.dropped;
        total.duplicated += s.duplicated;
        total.reordered += s.reordered;
        total.misrouted += s.misrouted;
        total.crashes += s.crashes;
        total.snapshots += s.snapshots;
        total.relay_snapshots += s.relay_snapshots;
        total.transient_errors += s.transient_errors;
        total.stale_responses += s.stale_responses;
        total.roams += s.roams;
        total.leaves += s.leaves;
    }
    eprintln!("{} schedules: {total:?}", seeds.len());
    total
}

#[test]
fn chaos_schedules_converge_to_the_oracle() {
    let seeds: Vec<u64> = match env("ATOMIK_SIM_SEED") {
        Some(s) => vec![s],
        None => (0..env("ATOMIK_SIM_SCHEDULES").unwrap_or(2000)).collect(),
    };
    let total = run_all(&seeds, None);
    // The faults this test exists for must actually have happened.
    if seeds.len() >= 100 {
        assert!(total.dropped > 0 && total.duplicated > 0 && total.crashes > 0);
        assert!(total.snapshots > 0, "no schedule exercised a leaf snapshot");
        assert!(
            total.relay_snapshots > 0,
            "no schedule exercised a relay snapshot"
        );
        assert!(total.stale_responses > 0 && total.roams > 0);
    }
}

#[test]
fn fleet_schedules_converge() {
    let n = env("ATOMIK_SIM_FLEET").unwrap_or(1000) as usize;
    let seeds: Vec<u64> = match env("ATOMIK_SIM_SEED") {
        Some(s) => vec![s],
        None => (0..env("ATOMIK_SIM_SCHEDULES").unwrap_or(2000) / 500 + 2)
            .map(|i| 1_000_000 + i)
            .collect(),
    };
    let total = run_all(&seeds, Some(n));
    assert!(total.leaves >= 1000 * seeds.len() as u64 || n < 1000);
    assert!(total.roams > 0 && total.snapshots > 0);
}
