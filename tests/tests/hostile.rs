//! Hostile clients against a real `atomik serve --auth-key …` process over
//! loopback HTTP, with both hubs: every attack is written once and run
//! against a SQLite hub file (`sqlite_hub`) and a PostgreSQL hub
//! (`postgres_hub`), each behind its own serve process (`--max-body 16384
//! --request-timeout 3`, default rate limits). For every attack the suite
//! checks the exact HTTP status and error code, that nothing of it was
//! applied — every table of the hub's atomik state and the tracked table,
//! read from the hub's database directly, is identical before and after,
//! and `/health` still answers — and, at the end of the run, that the
//! honest devices converge exactly: the hub holds the exact sums of the
//! honest writes and no other row, every device holds the hub's rows byte
//! for byte and its digests, the registry holds each device's own seq and
//! no forged origin, the log holds exactly the honest batches (and, under
//! the hub's own origin, only zero deltas), nothing is parked.
//!
//! | # | attack | expected refusal |
//! |---|---|---|
//! | 1 | forged origin: A's token uploads a batch of victim B at B's next seq (relay form: a leaf request names no other origin); the same hidden behind A's own batch | 403 `forged_origin` (logged with the principal), nothing applied, A's own batch neither; B's real batch applies later at that seq |
//! | 2 | syncing as another site: A's token with B's real request, with a request naming B, with one naming the hub; a relay token with B's request | 403 `forbidden_site` |
//! | 2b | a token minted for the hub's own site (shown by `/health`) asking as the hub | 422 `refused` (the hub refuses its own request) |
//! | 3 | a device token asking as a relay (per-origin entries), without uploads and with its own | 403 `not_a_relay` |
//! | 4 | missing, `Basic`, empty, garbage, expired (an hour; just past the 60 s skew), wrongly signed, HS384/HS512 instead of HS256, `alg: none` (no signature; a real one), tampered claims (`atomik_relay` added), stripped signature, no / short / non-hex `atomik_site`, no `exp`, no `sub`, an SQL injection as `role` | 401 `unauthenticated`; the same request then applies with the device's token |
//! | 5 | replays of an applied request by its own principal (twice, and the device's very first request); its applied seq again with other deltas; cursors of another hub or past the log's end | 200, hub unchanged; the stale answers apply nothing on the device, whose file stays unchanged |
//! | 5b | uploads 1, 5 and 2^40 seqs ahead of the principal's next seq (burning seqs) | 200, nothing applied; the device's real batches then apply at those seqs |
//! | 6 | group poison pills: `xor` deltas on the `add` column (an existing key and fresh keys nobody wrote), `add` on the `xor` column, an honest batch then a poisoned one, one batch with a good and a poisoned column; an untracked column and table; a text key for an integer key | 422 `refused` ("tracked as add/xor", "not tracked"), nothing of the message applied; later `add`/`xor` writers of those keys, and A's next seq, work |
//! | 7 | malformed bodies: empty; not atomik; random bytes; too short; truncated (3 bytes, half); a flipped bit; a response sent as a request; wire version 1; unknown kind; an empty batch; counts claiming 2^40 sites, 2^50 uploads, a 2^40-byte name (with correct checksums); an overlong varint; trailing bytes; unknown flags; a site index out of range; seq 0; a cursor beyond 2^63 − 1; `GET /sync`; an unknown path | 400 `bad_request` (empty), 422 `refused` (the rest), 405, 404 `not_found`; `/health` 200 after every one |
//! | 8 | oversized: a real request over `--max-body`, one byte over it, one over it without a token, `Content-Length: 10^12` with more than the limit sent and with nothing sent, a chunked body over it; a body within the limit that never comes | 413 `too_large` (an announced length over the limit before any of the body is read); 401 `unauthenticated` without a token (checked before the body is read); exactly `--max-body` is read (422); the stalled one 408 `timeout` at `--request-timeout` |
//! | 9 | forged responses to a device: another device's real answer, acks beyond what it sent (range, snapshot), a position and an ack beyond 2^63 − 1, `xor` deltas for the `add` column, a request as a response, garbage | `atomik_sync_finish` fails with the reason and the device's file is unchanged; its next honest sync works |
//! | 11 | a flood of one principal | 429 `rate_limited` after the burst of 20, `Retry-After` 1–2 s; another principal is not slowed |
//! | 12 | token scopes: `cells.n` with a token that may write only `cells.f` (alone, in one batch with `f`, in a second batch), `atomik_write: []`, patterns of another case; `atomik_write` null, a bare table, an empty pattern, not a list; a relay token with a scope; a token that may read only `cells.f` | 403 `forbidden_column`, nothing applied; 401 `unauthenticated`; the read-scoped snapshot and range carry no `cells.n` cell |
//!
//! PostgreSQL only (the token's `role` claim: `SET LOCAL ROLE`):
//!
//! | # | attack | expected refusal |
//! |---|---|---|
//! | 10a | `postgres_hub_roles`: `readonly_role` (SELECT only on the tracked table) uploads a change | 403 `forbidden` (SQLSTATE 42501, "permission denied"), nothing applied; the role may still download; the batch applies once under `honest_role` |
//! | 10b | `postgres_hub_roles`: a role that does not exist | 422 `refused`, nothing applied |
//! | 10c | `postgres_hub_row_level_security`: `rls_role`, whose policies allow UPDATE and INSERT only for keys < 100, inserts key 600 | 403 `forbidden` ("row-level security"), nothing applied; keys < 100 apply |
//!
//! The roles get `USAGE` on schema atomik, `ALL` on all its tables and
//! sequences and `EXECUTE` on its functions — whatever tables the installed
//! pg_atomik has (0.5.0 grants PUBLIC nothing on them: README, Security) —
//! plus their privileges on the tracked table.
//!
//! Bugs this suite found, fixed, each kept as a test of the fixed
//! behaviour:
//!
//! * `postgres_hub_refuses_an_update_hidden_by_row_level_security` — an
//!   UPDATE that a row-level security policy hid was answered 200: the hub
//!   dropped the delta but registered and logged the batch, which every
//!   other device then applied (now 403 `forbidden`, SQLSTATE 42501,
//!   nothing applied);
//! * `applied_rows_are_not_sealed_again` — a SQLite replica re-shipped, as
//!   a batch of its own (zero deltas), the other columns of rows it created
//!   for received deltas; so a device whose token may not write could sync
//!   only once (`postgres_readonly_device_keeps_syncing`,
//!   `write_none_device_keeps_syncing`).
//!
//! Needs the `atomik` program (`ATOMIK_BIN`) and, for the PostgreSQL
//! tests, the cross-engine cluster (`ATOMIK_PG_HOST`, `ATOMIK_PG_PORT`):
//! `tests/cross-engine.sh` provides both and runs every test here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use atomik_core::codec::v2::{
    decode_request, decode_response, encode_request, encode_response, Cursor, Payload, Response,
};
use atomik_core::codec::varint::put_u64;
use atomik_core::{AtomikValue, Changes, ColumnId, Group, Key, KeyShape, Message, SiteId};
use atomik_cross_engine::hostile::{
    changes, dump_diff, leaf_request, open_reader, parse_raw_answer, raw_exchange, relay_request,
    AuthServe, Device, Dump, HubDb, Reply,
};
use atomik_cross_engine::node::Node;
use atomik_cross_engine::pg_node::PgCluster;
use atomik_cross_engine::schema::Column;
use atomik_cross_engine::sqlite_node::SqliteNode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// The hub's HS256 secret (`--auth-key`).
const SECRET: &[u8] = b"hostile suite: an HS256 secret of 32 bytes or more";
/// `--max-body` of the servers under attack.
const MAX_BODY: usize = 16 * 1024;
/// `--request-timeout` of the servers under attack: an upload that stalls
/// is answered 408 after it (honest syncs take milliseconds).
const REQUEST_TIMEOUT_SECS: u64 = 3;

fn atomik_bin() -> PathBuf {
    PathBuf::from(
        std::env::var("ATOMIK_BIN")
            .expect("ATOMIK_BIN (the atomik program) is not set: run tests/cross-engine.sh"),
    )
}

fn pg_cluster() -> PgCluster {
    PgCluster::from_env()
        .unwrap()
        .expect("ATOMIK_PG_HOST is not set: run tests/cross-engine.sh")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------- tokens

fn mint_with(secret: &[u8], alg: Algorithm, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

fn mint(claims: &Value) -> String {
    mint_with(SECRET, Algorithm::HS256, claims)
}

fn claims(sub: &str, site: &str) -> Value {
    json!({ "sub": sub, "exp": now() + 600, "atomik_site": site })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// Unpadded base64url (RFC 4648 §5), for hand-made tokens.
fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A device token for `site`, with a `role` claim if given.
fn role_token(sub: &str, site: &SiteId, role: Option<&str>) -> String {
    let c = claims(sub, &site.to_string());
    mint(&match role {
        Some(r) => with(c, "role", json!(r)),
        None => c,
    })
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// -------------------------------------------------------------- replies

/// A refusal's `error` code and `message` (empty when the body is not the
/// JSON of a refusal).
fn code_of(reply: &Reply) -> (String, String) {
    let json: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    (
        json["error"].as_str().unwrap_or("").to_string(),
        json["message"].as_str().unwrap_or("").to_string(),
    )
}

/// A reply for a failure message: its text, or the size of a sync
/// response.
fn shown(reply: &Reply) -> String {
    if reply.body.starts_with(b"AK") {
        format!("a sync response of {} bytes", reply.body.len())
    } else {
        reply.text()
    }
}

// --------------------------------------------------------- hand framing

/// A message of tag `tag` with `body` (everything between the tag and the
/// checksum) and a correct CRC-32: malformed on purpose, but not so that
/// the checksum catches it.
fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = b"AK".to_vec();
    out.push(tag);
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The tag of a v2 request.
const REQUEST_TAG: u8 = 0x21;

fn varint(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_u64(&mut out, v);
    out
}

/// A site dictionary of `site` only and an empty column dictionary.
fn one_site_dictionary(site: SiteId) -> Vec<u8> {
    let mut out = varint(1);
    out.extend_from_slice(site.as_bytes());
    out.extend(varint(0));
    out
}

// ------------------------------------------------------------------ run

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const NAMES: [&str; 3] = ["A", "B", "C"];

/// One run: a hub behind a serve process, three honest devices with their
/// tokens, and the exact sums their writes must add up to.
struct Run {
    engine: &'static str,
    hub: HubDb,
    serve: AuthServe,
    hub_site: SiteId,
    devices: Vec<Device>,
    names: Vec<String>,
    tokens: Vec<String>,
    /// Per key: the `add` sum of column n and the `xor` of column f.
    expected: BTreeMap<i64, (i64, u64)>,
    /// Each device's last answer from the hub.
    last_answer: Vec<Option<Vec<u8>>>,
    /// Each device's first request (applied long ago by the time it is
    /// replayed).
    first_request: Vec<Option<Vec<u8>>>,
    attackers: u64,
    /// Devices that sync but may not read every column (attack 12): the
    /// registry and log must account for their batches; their values are
    /// not the hub's.
    partial_readers: Vec<Device>,
    /// The upload whose body never comes (attack 8), answered at
    /// `--request-timeout`.
    stalled: Option<std::thread::JoinHandle<String>>,
    files: tempfile::TempDir,
}

impl Run {
    fn start(hub: HubDb, files: tempfile::TempDir) -> Run {
        let key = files.path().join("hub.key");
        std::fs::write(&key, SECRET).unwrap();
        let max_body = MAX_BODY.to_string();
        let timeout = REQUEST_TIMEOUT_SECS.to_string();
        let mut extra = vec![
            "--max-body",
            max_body.as_str(),
            "--request-timeout",
            timeout.as_str(),
        ];
        if matches!(hub, HubDb::Postgres { .. }) {
            extra.extend(["--pool", "4"]);
        }
        let serve = AuthServe::start(&atomik_bin(), &hub.serve_arg(), &key, &extra).unwrap();
        let hub_site = serve.hub_site().unwrap();
        let devices: Vec<Device> = NAMES
            .iter()
            .map(|n| Device::open(&files.path().join(format!("{n}.sqlite"))).unwrap())
            .collect();
        let tokens = devices
            .iter()
            .zip(NAMES)
            .map(|(d, n)| mint(&claims(&format!("device-{n}"), &d.site_hex())))
            .collect();
        println!("{}: atomik serve on {}", hub.engine(), serve.url());
        Run {
            engine: hub.engine(),
            hub,
            serve,
            hub_site,
            devices,
            names: NAMES.iter().map(|n| n.to_string()).collect(),
            tokens,
            expected: BTreeMap::new(),
            last_answer: vec![None; 3],
            first_request: vec![None; 3],
            attackers: 0,
            partial_readers: Vec::new(),
            stalled: None,
            files,
        }
    }

    /// Another honest device, whose token carries `role` (if any).
    fn add_device(&mut self, name: &str, role: Option<&str>) -> usize {
        let d = Device::open(&self.files.path().join(format!("{name}.sqlite"))).unwrap();
        self.tokens
            .push(role_token(&format!("device-{name}"), &d.site, role));
        self.devices.push(d);
        self.names.push(name.to_string());
        self.last_answer.push(None);
        self.first_request.push(None);
        self.devices.len() - 1
    }

    fn site(&self, i: usize) -> SiteId {
        self.devices[i].site
    }

    /// A fresh valid token for `site` with a principal of its own (so
    /// that the attacks do not spend an honest device's rate budget).
    fn attacker_token(&mut self, site: SiteId) -> String {
        self.attackers += 1;
        mint(&claims(
            &format!("attacker-{}", self.attackers),
            &site.to_string(),
        ))
    }

    fn add(&mut self, i: usize, key: i64, delta: i64) {
        self.devices[i].write(key, Column::N, delta as u64).unwrap();
        let e = self.expected.entry(key).or_insert((0, 0));
        e.0 = e.0.wrapping_add(delta);
    }

    fn flip(&mut self, i: usize, key: i64, bits: u64) {
        self.devices[i].write(key, Column::F, bits).unwrap();
        self.expected.entry(key).or_insert((0, 0)).1 ^= bits;
    }

    /// One honest sync of device `i` with its own token; the deltas it
    /// applied.
    fn sync(&mut self, i: usize) -> u64 {
        let request = self.devices[i].node.sync_request().unwrap();
        if self.first_request[i].is_none() {
            self.first_request[i] = Some(request.clone());
        }
        let r = self.serve.post_as(&request, &self.tokens[i]).unwrap();
        assert_eq!(
            r.status,
            200,
            "{}: honest sync of {}: {}",
            self.engine,
            self.names[i],
            r.text()
        );
        let n = self.devices[i].node.finish_sync(&r.body).unwrap();
        self.last_answer[i] = Some(r.body);
        n
    }

    /// Let the hub finish what earlier serves left for the next one (a
    /// PostgreSQL hub numbers committed log entries at the next serve):
    /// syncs of C until one uploads nothing.
    fn settle(&mut self) {
        for _ in 0..5 {
            let request = self.devices[C].node.sync_request().unwrap();
            let quiet = decode_request(&request).unwrap().uploads.is_empty();
            let r = self.serve.post_as(&request, &self.tokens[C]).unwrap();
            assert_eq!(r.status, 200, "{}: settle: {}", self.engine, r.text());
            self.devices[C].node.finish_sync(&r.body).unwrap();
            if quiet {
                return;
            }
        }
        panic!("{}: C never stopped uploading", self.engine);
    }

    fn dump(&self) -> Dump {
        self.hub.dump().unwrap()
    }

    /// POST `body` with `authorization`; the reply must be `status` with
    /// error `code`, the hub must be unchanged, and `/health` still 200.
    /// Returns the refusal's message.
    fn refused(
        &self,
        what: &str,
        body: &[u8],
        authorization: Option<&str>,
        status: u16,
        code: &str,
    ) -> String {
        self.refused_by(what, |s| s.post(body, authorization), status, code)
    }

    /// As [`Run::refused`], with the request sent by `send`.
    fn refused_by(
        &self,
        what: &str,
        send: impl FnOnce(&AuthServe) -> anyhow::Result<Reply>,
        status: u16,
        code: &str,
    ) -> String {
        let before = self.dump();
        let r = send(&self.serve).unwrap();
        let (got, message) = code_of(&r);
        assert_eq!(
            (r.status, got.as_str()),
            (status, code),
            "{}: {what}: {}",
            self.engine,
            shown(&r)
        );
        assert!(
            !message.is_empty() && !message.contains('\n'),
            "{}: {what}: a refusal says one short line: {}",
            self.engine,
            r.text()
        );
        self.assert_unchanged(what, &before);
        message
    }

    fn assert_unchanged(&self, what: &str, before: &Dump) {
        let after = self.dump();
        assert!(
            &after == before,
            "{}: {what}: the hub's state changed:\n{}",
            self.engine,
            dump_diff(before, &after)
        );
        self.assert_healthy(what);
    }

    fn assert_healthy(&self, what: &str) {
        let h = self.serve.health().unwrap();
        assert_eq!(
            (h.status, h.text().starts_with("ok atomik")),
            (200, true),
            "{}: after {what}: /health: {}",
            self.engine,
            h.text()
        );
    }

    /// The serve log has a line for `code` naming principal `sub`.
    fn assert_logged(&self, code: &str, sub: &str) {
        let needle = format!("principal={sub:?}");
        assert!(
            self.serve
                .log()
                .iter()
                .any(|l| l.contains(&format!(" {code} ")) && l.contains(&needle)),
            "{}: no log line for {code} by {sub}: {:#?}",
            self.engine,
            self.serve.log()
        );
    }

    fn registry_of(&self, i: usize) -> i64 {
        self.hub
            .registry()
            .unwrap()
            .get(&self.devices[i].site_hex())
            .copied()
            .unwrap_or(0)
    }

    /// Everything converges: two quiet rounds, then exact sums on the hub,
    /// the hub's rows and digests on every device, the registry and log
    /// holding exactly the honest batches, nothing parked.
    fn converge(&mut self) {
        for _ in 0..2 {
            for i in 0..self.devices.len() {
                self.sync(i);
            }
        }
        let rows = self.hub.rows().unwrap();
        let got: BTreeMap<i64, (i64, u64)> = rows
            .iter()
            .map(|(k, n, f)| {
                (
                    *k,
                    (
                        AtomikValue::from_bytes(n).unwrap().read_i64(),
                        AtomikValue::from_bytes(f).unwrap().read(),
                    ),
                )
            })
            .collect();
        assert_eq!(
            got, self.expected,
            "{}: the hub holds the exact sums of the honest writes, and no other row",
            self.engine
        );
        let digests = self.hub.digests().unwrap();
        for (i, d) in self.devices.iter_mut().enumerate() {
            assert_eq!(
                d.node.rows().unwrap(),
                rows,
                "{}: device {} holds the hub's rows byte for byte",
                self.engine,
                self.names[i]
            );
            assert_eq!(d.node.digests().unwrap(), digests, "{}", self.engine);
            assert_eq!(d.node.parked().unwrap(), 0);
        }
        let registry = self.hub.registry().unwrap();
        let hub_hex = self.hub_site.to_string();
        let hub_own = registry.get(&hub_hex).copied().unwrap_or(0);
        let mut log_expected: Vec<(String, i64)> =
            (1..=hub_own).map(|s| (hub_hex.clone(), s)).collect();
        for (i, d) in self.devices.iter().enumerate() {
            let own = d.own_seq().unwrap();
            assert_eq!(
                registry.get(&d.site_hex()).copied().unwrap_or(0),
                own,
                "{}: the hub applied every batch of {} and no forged one",
                self.engine,
                self.names[i]
            );
            log_expected.extend((1..=own).map(|s| (d.site_hex(), s)));
        }
        for d in &self.partial_readers {
            let own = d.own_seq().unwrap();
            assert_eq!(registry.get(&d.site_hex()).copied().unwrap_or(0), own);
            log_expected.extend((1..=own).map(|s| (d.site_hex(), s)));
        }
        let honest: BTreeSet<String> = self
            .devices
            .iter()
            .chain(&self.partial_readers)
            .map(Device::site_hex)
            .collect();
        for (site, seq) in &registry {
            assert!(
                honest.contains(site) || *site == hub_hex,
                "{}: registry entry {site} = {seq} of no honest device",
                self.engine
            );
        }
        log_expected.sort();
        let log = self.hub.log_entries().unwrap();
        assert_eq!(
            log.iter()
                .map(|(o, s, _)| (o.clone(), *s))
                .collect::<Vec<_>>(),
            log_expected,
            "{}: the log holds exactly the honest batches",
            self.engine
        );
        // The hub writes nothing of its own that is not a zero delta (rows
        // created at the hub for the test's fixtures ship at the identity).
        for (origin, seq, bytes) in &log {
            if *origin == hub_hex {
                let Message::Batch(b) = atomik_core::codec::decode(bytes).unwrap() else {
                    panic!("log entry {seq} is not a batch");
                };
                assert!(
                    b.changes.cells().all(|(_, _, d)| d == 0),
                    "{}: the hub's own batch {seq} writes: {:?}",
                    self.engine,
                    b.changes
                );
            }
        }
        let dump = self.dump();
        for (table, rows) in &dump {
            if table.ends_with("parked") {
                assert!(rows.is_empty(), "{}: {table}: {rows:?}", self.engine);
            }
        }
    }
}

// --------------------------------------------------------------- attacks

/// Some state first: every device has synced and holds a cursor.
fn warm_up(run: &mut Run) {
    run.add(A, 1, 5);
    run.flip(A, 1, 0b1010);
    run.sync(A);
    run.add(B, 2, 3);
    run.sync(B);
    run.add(C, 3, -4);
    run.sync(C);
    run.sync(A);
    assert_eq!(run.registry_of(A), 1);
}

/// Attack 1: A's token uploads a batch of victim B at B's next seq.
fn forged_origin(run: &mut Run) {
    run.add(B, 1, 7);
    let b_request = decode_request(&run.devices[B].node.sync_request().unwrap()).unwrap();
    let victim_seq = b_request.uploads.last().unwrap().seq;
    assert_eq!(victim_seq as i64, run.registry_of(B) + 1, "B's next seq");
    let evil = changes("n", Group::Add, &[(1, 1_000_000), (2, 1)]);
    let forged = relay_request(run.site(A), vec![(run.site(B), victim_seq, evil.clone())]);
    let t = run.attacker_token(run.site(A));
    run.refused(
        "forged origin",
        &encode_request(&forged),
        Some(&bearer(&t)),
        403,
        "forged_origin",
    );
    run.assert_logged("forged_origin", &format!("attacker-{}", run.attackers));
    // Hidden behind A's own honest batch: refused whole, A's batch too.
    run.add(A, 4, 4);
    let a_request = decode_request(&run.devices[A].node.sync_request().unwrap()).unwrap();
    let mut uploads: Vec<(SiteId, u64, Changes)> = a_request
        .uploads
        .iter()
        .map(|u| (u.origin, u.seq, u.changes.clone()))
        .collect();
    uploads.push((run.site(B), victim_seq, evil));
    let t = run.attacker_token(run.site(A));
    run.refused(
        "forged origin behind an own batch",
        &encode_request(&relay_request(run.site(A), uploads)),
        Some(&bearer(&t)),
        403,
        "forged_origin",
    );
    // The victim's real batch applies, at its seq, with its deltas.
    run.sync(B);
    assert_eq!(run.registry_of(B), victim_seq as i64);
    run.sync(A);
    let value = |run: &Run, key: i64| {
        let rows = run.hub.rows().unwrap();
        let (_, n, _) = rows.iter().find(|r| r.0 == key).unwrap();
        AtomikValue::from_bytes(n).unwrap().read_i64()
    };
    assert_eq!(value(run, 1), 12, "5 from A and B's real 7");
    assert_eq!(value(run, 4), 4);
}

/// Attack 2: A request of another site than the token's.
fn forbidden_site(run: &mut Run) {
    run.add(B, 5, 1);
    let b_bytes = run.devices[B].node.sync_request().unwrap();
    let t = run.attacker_token(run.site(A));
    run.refused(
        "B's real request with A's token",
        &b_bytes,
        Some(&bearer(&t)),
        403,
        "forbidden_site",
    );
    let next_b = run.registry_of(B) as u64 + 1;
    let evil = changes("n", Group::Add, &[(5, 1_000_000)]);
    let as_b = leaf_request(run.site(B), None, next_b, vec![evil.clone()]);
    run.refused(
        "a request naming B with A's token",
        &encode_request(&as_b),
        Some(&bearer(&t)),
        403,
        "forbidden_site",
    );
    let as_hub = leaf_request(run.hub_site, None, 1, vec![evil.clone()]);
    run.refused(
        "a request naming the hub with A's token",
        &encode_request(&as_hub),
        Some(&bearer(&t)),
        403,
        "forbidden_site",
    );
    // Even a token minted for the hub's own site (which /health shows)
    // cannot make the hub apply a batch as its own: the hub refuses a
    // request of its own site.
    let hub_token = run.attacker_token(run.hub_site);
    let m = run.refused(
        "the hub's own site, with a token for it",
        &encode_request(&as_hub),
        Some(&bearer(&hub_token)),
        422,
        "refused",
    );
    assert!(m.contains("made by this replica"), "{}: {m}", run.engine);
    // A relay's token may upload others' batches, but only ask as itself.
    let relay = SiteId::random().unwrap();
    let relay_token = mint(&with(
        claims("relay-1", &relay.to_string()),
        "atomik_relay",
        json!(true),
    ));
    run.refused(
        "a relay token naming device B",
        &b_bytes,
        Some(&bearer(&relay_token)),
        403,
        "forbidden_site",
    );
    run.sync(B);
}

/// Attack 3: A device token asking as a relay.
fn not_a_relay(run: &mut Run) {
    let t = run.attacker_token(run.site(A));
    let ask = relay_request(run.site(A), vec![]);
    run.refused(
        "asking for per-origin entries",
        &encode_request(&ask),
        Some(&bearer(&t)),
        403,
        "not_a_relay",
    );
    let next = run.devices[A].own_seq().unwrap() as u64 + 1;
    let own = relay_request(
        run.site(A),
        vec![(run.site(A), next, changes("n", Group::Add, &[(6, 1)]))],
    );
    run.refused(
        "own batch in relay form",
        &encode_request(&own),
        Some(&bearer(&t)),
        403,
        "not_a_relay",
    );
}

/// Attack 12: Token scopes (`atomik_write`, `atomik_read`): writes outside the
/// write scope, broken scope claims, and what a read scope lets down.
fn scopes(run: &mut Run) {
    let site = run.site(A);
    let next = run.registry_of(A) as u64 + 1;
    let scoped = |run: &mut Run, write: Value| {
        run.attackers += 1;
        mint(&with(
            claims(&format!("attacker-{}", run.attackers), &site.to_string()),
            "atomik_write",
            write,
        ))
    };
    let n_and_f = {
        let mut c = changes("f", Group::Xor, &[(12, 1)]);
        c.merge(&changes("n", Group::Add, &[(12, 1_000_000)]))
            .unwrap();
        c
    };
    let only_f = scoped(run, json!(["cells.f"]));
    for (what, batches, token) in [
        (
            "n with a token that may write only cells.f",
            vec![changes("n", Group::Add, &[(12, 1_000_000)])],
            only_f.clone(),
        ),
        (
            "f and n in one batch, the token may write only cells.f",
            vec![n_and_f.clone()],
            only_f.clone(),
        ),
        (
            "an allowed batch, then one outside the scope",
            vec![
                changes("f", Group::Xor, &[(12, 1)]),
                changes("n", Group::Add, &[(12, 1_000_000)]),
            ],
            only_f.clone(),
        ),
        (
            "a token that may write nothing",
            vec![changes("f", Group::Xor, &[(12, 1)])],
            scoped(run, json!([])),
        ),
        (
            "a pattern of another case",
            vec![changes("n", Group::Add, &[(12, 1)])],
            scoped(run, json!(["Cells.n", "cells.N"])),
        ),
    ] {
        let body = encode_request(&leaf_request(site, None, next, batches));
        let m = run.refused(
            &format!("scope: {what}"),
            &body,
            Some(&bearer(&token)),
            403,
            "forbidden_column",
        );
        assert!(m.contains("cells."), "{}: {what}: {m}", run.engine);
    }
    let body = encode_request(&leaf_request(site, None, next, vec![n_and_f]));
    let relay = with(
        claims("relay-2", &site.to_string()),
        "atomik_relay",
        json!(true),
    );
    for (what, token) in [
        ("atomik_write: null", scoped(run, Value::Null)),
        ("atomik_write: a table", scoped(run, json!(["cells"]))),
        ("atomik_write: an empty pattern", scoped(run, json!([""]))),
        ("atomik_write: not a list", scoped(run, json!("cells.n"))),
        (
            "a relay token with a scope",
            mint(&with(relay, "atomik_read", json!(["cells.f"]))),
        ),
    ] {
        run.refused(
            &format!("scope: {what}"),
            &body,
            Some(&bearer(&token)),
            401,
            "unauthenticated",
        );
    }
    // A token that may read only cells.f gets no cell of cells.n, in a
    // snapshot (its first sync) or in a range.
    let reader = Device::open(&run.files.path().join("scoped-reader.sqlite")).unwrap();
    let read_f = mint(&with(
        claims("scoped-reader", &reader.site_hex()),
        "atomik_read",
        json!(["cells.f"]),
    ));
    let mut reader = reader;
    for round in 0..2 {
        let request = reader.node.sync_request().unwrap();
        let r = run.serve.post_as(&request, &read_f).unwrap();
        assert_eq!(r.status, 200, "{}: {}", run.engine, r.text());
        let answer = decode_response(&r.body).unwrap();
        let cells = match &answer.payload {
            Payload::Range(c) | Payload::Snapshot(c) => c.clone(),
            other => panic!("{}: a leaf gets {}", run.engine, other.name()),
        };
        assert!(
            cells.columns().all(|(id, _)| id.column == "f"),
            "{}: round {round}: cells of another column than f came down: {cells:?}",
            run.engine
        );
        assert!(
            round == 1 || cells.cell_count() > 0,
            "{}: the snapshot holds the f cells",
            run.engine
        );
        reader.node.finish_sync(&r.body).unwrap();
        run.add(B, 13, 1);
        run.flip(B, 13, 0b100);
        run.sync(B);
    }
    run.partial_readers.push(reader);
}

/// Attack 4: Tokens that are missing, broken, expired or not ours.
fn bad_tokens(run: &mut Run) {
    run.add(A, 6, 11);
    let request = run.devices[A].node.sync_request().unwrap();
    let site = run.devices[A].site_hex();
    let good = claims("thief", &site);
    let valid = mint(&good);
    let parts: Vec<&str> = valid.split('.').collect();
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(good.to_string().as_bytes());
    let escalated = b64url(
        with(good.clone(), "atomik_relay", json!(true))
            .to_string()
            .as_bytes(),
    );
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("Basic scheme", Some("Basic YTpi".to_string())),
        ("empty bearer", Some("Bearer ".to_string())),
        ("garbage", Some(bearer("not.a.jwt"))),
        (
            "expired an hour ago",
            Some(bearer(&mint(&with(
                good.clone(),
                "exp",
                json!(now() - 3600),
            )))),
        ),
        (
            "expired just past the 60 s skew",
            Some(bearer(&mint(&with(good.clone(), "exp", json!(now() - 90))))),
        ),
        (
            "signed with another secret",
            Some(bearer(&mint_with(
                b"another secret, also 32 bytes or more",
                Algorithm::HS256,
                &good,
            ))),
        ),
        (
            "HS512 with the right secret",
            Some(bearer(&mint_with(SECRET, Algorithm::HS512, &good))),
        ),
        (
            "HS384 with the right secret",
            Some(bearer(&mint_with(SECRET, Algorithm::HS384, &good))),
        ),
        (
            "alg none, no signature",
            Some(bearer(&format!("{none_header}.{payload}."))),
        ),
        (
            "alg none, a valid token's signature",
            Some(bearer(&format!("{none_header}.{payload}.{}", parts[2]))),
        ),
        (
            "claims tampered (atomik_relay added), signature kept",
            Some(bearer(&format!("{}.{escalated}.{}", parts[0], parts[2]))),
        ),
        (
            "signature stripped",
            Some(bearer(&format!("{}.{}.", parts[0], parts[1]))),
        ),
        (
            "no atomik_site",
            Some(bearer(&mint(&without(good.clone(), "atomik_site")))),
        ),
        (
            "short atomik_site",
            Some(bearer(&mint(&with(
                good.clone(),
                "atomik_site",
                json!(&site[..30]),
            )))),
        ),
        (
            "non-hex atomik_site",
            Some(bearer(&mint(&with(
                good.clone(),
                "atomik_site",
                json!("zz".repeat(16)),
            )))),
        ),
        ("no exp", Some(bearer(&mint(&without(good.clone(), "exp"))))),
        ("no sub", Some(bearer(&mint(&without(good.clone(), "sub"))))),
        (
            "an SQL injection as role",
            Some(bearer(&mint(&with(
                good.clone(),
                "role",
                json!("x\"; DROP ROLE postgres; --"),
            )))),
        ),
    ];
    for (what, authorization) in &cases {
        run.refused(
            &format!("token: {what}"),
            &request,
            authorization.as_deref(),
            401,
            "unauthenticated",
        );
    }
    // The same request with A's own token applies.
    let before = run.registry_of(A);
    run.sync(A);
    assert_eq!(run.registry_of(A), before + 1);
}

/// Attack 5: Replays by the request's own principal.
fn replays(run: &mut Run) {
    run.add(A, 7, 3);
    let request = run.devices[A].node.sync_request().unwrap();
    let r = run.serve.post_as(&request, &run.tokens[A]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    run.devices[A].node.finish_sync(&r.body).unwrap();
    run.last_answer[A] = Some(r.body);
    run.settle();
    let hub_after = run.dump();
    let device_after = run.devices[A].dump().unwrap();
    let oldest = run.first_request[A].clone().unwrap();
    for (what, bytes) in [
        ("replay", &request),
        ("replay again", &request),
        ("the first request ever", &oldest),
    ] {
        let t = run.attacker_token(run.site(A));
        let r = run.serve.post_as(bytes, &t).unwrap();
        assert_eq!(r.status, 200, "{}: {what}: {}", run.engine, r.text());
        run.assert_unchanged(what, &hub_after);
        // The stale answer reaches the device: it applies nothing.
        assert_eq!(
            run.devices[A].node.finish_sync(&r.body).unwrap(),
            0,
            "{}: {what}",
            run.engine
        );
        assert_eq!(
            run.devices[A].dump().unwrap(),
            device_after,
            "{}: {what}: the device changed",
            run.engine
        );
    }
    // The same (applied) seq with other deltas: a duplicate, ignored.
    let applied = run.registry_of(A) as u64;
    let rewrite = leaf_request(
        run.site(A),
        None,
        applied,
        vec![changes("n", Group::Add, &[(7, 1_000_000)])],
    );
    let t = run.attacker_token(run.site(A));
    let r = run.serve.post_as(&encode_request(&rewrite), &t).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    run.assert_unchanged("an applied seq rewritten", &hub_after);
    // Cursors into another hub's log, or past the end of this one: a
    // snapshot for the asker, nothing written.
    for (what, cursor) in [
        ("a cursor of another hub", SiteId::random().unwrap()),
        ("a cursor past the log's end", run.hub_site),
    ] {
        let ask = leaf_request(
            run.site(A),
            Some(Cursor {
                hub: cursor,
                position: 1 << 40,
            }),
            1,
            vec![],
        );
        let r = run.serve.post_as(&encode_request(&ask), &t).unwrap();
        assert_eq!(r.status, 200, "{}: {what}: {}", run.engine, r.text());
        run.assert_unchanged(what, &hub_after);
    }
}

/// Attack 5b: Uploads beyond the principal's next seq: left for later, never
/// applied, and they do not take the seqs of the real batches.
fn burnt_seqs(run: &mut Run) {
    run.settle();
    let next = run.registry_of(A) as u64 + 1;
    assert_eq!(run.devices[A].own_seq().unwrap() as u64 + 1, next);
    let before = run.dump();
    for ahead in [1, 5, 1 << 40] {
        let ahead_request = leaf_request(
            run.site(A),
            None,
            next + ahead,
            vec![changes("n", Group::Add, &[(8, 1_000_000)])],
        );
        let t = run.attacker_token(run.site(A));
        let r = run
            .serve
            .post_as(&encode_request(&ahead_request), &t)
            .unwrap();
        assert_eq!(
            r.status,
            200,
            "{}: seq {}: {}",
            run.engine,
            next + ahead,
            r.text()
        );
        run.assert_unchanged("an upload past a gap", &before);
    }
    // A's real batches take those seqs, with their own deltas.
    run.add(A, 8, 1);
    run.sync(A);
    run.add(A, 8, 2);
    run.sync(A);
    assert_eq!(run.registry_of(A) as u64, next + 1);
}

/// Attack 6: Deltas of the wrong group, untracked columns, wrong key shapes.
fn poison_pills(run: &mut Run) {
    let next = run.registry_of(A) as u64 + 1;
    let site = run.site(A);
    let poison = |cs: Vec<Changes>| encode_request(&leaf_request(site, None, next, cs));
    let t = run.attacker_token(site);
    let auth = bearer(&t);
    let m = run.refused(
        "xor deltas on the add column (existing and fresh keys)",
        &poison(vec![changes(
            "n",
            Group::Xor,
            &[(1, 0xff), (900, 1), (901, 1)],
        )]),
        Some(&auth),
        422,
        "refused",
    );
    assert!(m.contains("tracked as add"), "{}: {m}", run.engine);
    let m = run.refused(
        "add deltas on the xor column (a fresh key)",
        &poison(vec![changes("f", Group::Add, &[(902, 1)])]),
        Some(&auth),
        422,
        "refused",
    );
    assert!(m.contains("tracked as xor"), "{}: {m}", run.engine);
    run.refused(
        "an honest batch, then a poisoned one",
        &poison(vec![
            changes("n", Group::Add, &[(9, 1)]),
            changes("n", Group::Xor, &[(903, 1)]),
        ]),
        Some(&auth),
        422,
        "refused",
    );
    let both = {
        let mut c = changes("n", Group::Add, &[(9, 1)]);
        c.merge(&changes("f", Group::Add, &[(904, 1)])).unwrap();
        c
    };
    run.refused(
        "one batch, one good column and one poisoned",
        &poison(vec![both]),
        Some(&auth),
        422,
        "refused",
    );
    let m = run.refused(
        "an untracked column",
        &poison(vec![changes("zz", Group::Add, &[(1, 1)])]),
        Some(&auth),
        422,
        "refused",
    );
    assert!(m.contains("not tracked"), "{}: {m}", run.engine);
    let mut untracked_table = Changes::new();
    untracked_table
        .add(
            &ColumnId::new("ledger", "id", Group::Add),
            &KeyShape::int(),
            Key::int(1),
            1,
        )
        .unwrap();
    run.refused(
        "an untracked table",
        &poison(vec![untracked_table]),
        Some(&auth),
        422,
        "refused",
    );
    let mut text_key = Changes::new();
    text_key
        .add(
            &ColumnId::new("cells", "n", Group::Add),
            &KeyShape::text(),
            Key::text("1; DROP TABLE cells"),
            1,
        )
        .unwrap();
    run.refused(
        "a text key for an integer key",
        &poison(vec![text_key]),
        Some(&auth),
        422,
        "refused",
    );
    // The keys the pills aimed at are still everyone's to write, in their
    // own groups; A's next seq is still A's.
    run.add(C, 900, 9);
    run.add(C, 901, -1);
    run.flip(C, 902, 0b11);
    run.add(A, 1, 1);
    run.flip(A, 903, 1);
    run.sync(C);
    run.sync(A);
    assert_eq!(run.registry_of(A) as u64, next);
}

/// Attack 7: Bodies that are not a well-formed request.
fn malformed(run: &mut Run) {
    run.add(A, 10, 1);
    let valid = run.devices[A].node.sync_request().unwrap();
    let site = run.site(A);
    let t = run.attacker_token(site);
    let auth = bearer(&t);
    let answer = run.last_answer[B].clone().unwrap();
    let (body, _crc) = valid.split_at(valid.len() - 4);
    let next = run.registry_of(A) as u64 + 1;
    let mut random = vec![0u8; 300];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut flipped = valid.clone();
    flipped[valid.len() / 2] ^= 0x40;
    let mut trailing = body[3..].to_vec();
    trailing.push(0);
    let dict = one_site_dictionary(site);
    let with_dict = |rest: &[u8]| {
        let mut b = dict.clone();
        b.extend_from_slice(rest);
        frame(REQUEST_TAG, &b)
    };
    let huge_string = {
        let mut b = varint(1);
        b.extend_from_slice(site.as_bytes());
        b.extend(varint(1));
        b.extend(varint(1 << 40));
        b.extend_from_slice(b"cells");
        frame(REQUEST_TAG, &b)
    };
    let one = || vec![changes("n", Group::Add, &[(10, 1)])];
    let beyond_counter = leaf_request(
        site,
        Some(Cursor {
            hub: run.hub_site,
            position: u64::MAX,
        }),
        next,
        one(),
    );
    // A real batch long enough that the count of two uploads fits it.
    let cells: Vec<(i64, u64)> = (100..140).map(|k| (k, 1)).collect();
    let empty_then_real = vec![Changes::new(), changes("n", Group::Add, &cells)];
    // What, the body, and a word of the reason it must be refused for.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not atomik",
            b"GET / HTTP/1.1 definitely not atomik".to_vec(),
            "bad magic",
        ),
        ("random bytes", random, "bad magic"),
        ("too short", b"AK".to_vec(), "too short"),
        (
            "truncated by 3 bytes",
            valid[..valid.len() - 3].to_vec(),
            "checksum",
        ),
        (
            "truncated by half",
            valid[..valid.len() / 2].to_vec(),
            "checksum",
        ),
        (
            "truncated, with a checksum that fits",
            frame(REQUEST_TAG, &body[3..body.len() - 3]),
            "",
        ),
        ("a flipped bit", flipped, "checksum"),
        (
            "a response sent as a request",
            answer,
            "expected an atomik v2 sync request",
        ),
        (
            "wire version 1",
            frame(0x11, &body[3..]),
            "wire format version 1",
        ),
        ("unknown kind", frame(0x27, &body[3..]), "unknown kind"),
        (
            "an empty batch",
            encode_request(&leaf_request(site, None, next, vec![Changes::new()])),
            "",
        ),
        (
            "an empty batch before a real one",
            encode_request(&leaf_request(site, None, next, empty_then_real)),
            "empty batch",
        ),
        (
            "2^40 sites",
            frame(REQUEST_TAG, &varint(1 << 40)),
            "items but only",
        ),
        (
            "2^50 uploads",
            with_dict(&[&[0u8, 0u8][..], &varint(1 << 50)].concat()),
            "items but only",
        ),
        ("a 2^40-byte table name", huge_string, "items but only"),
        (
            "an overlong varint",
            frame(REQUEST_TAG, &[0xff; 11]),
            "invalid varint",
        ),
        (
            "trailing bytes",
            frame(REQUEST_TAG, &trailing),
            "trailing bytes",
        ),
        ("unknown flags", with_dict(&[0, 0x80, 0]), "unknown bits"),
        (
            "a site index out of range",
            with_dict(&[5, 0, 0]),
            "refers to site #5",
        ),
        (
            "seq 0",
            encode_request(&leaf_request(site, None, 0, one())),
            "seqs start at 1",
        ),
        (
            "a cursor beyond 2^63 - 1",
            encode_request(&beyond_counter),
            "beyond 2^63 - 1",
        ),
    ];
    let before = run.dump();
    let m = run.refused("malformed: empty", b"", Some(&auth), 400, "bad_request");
    assert!(m.contains("empty request"), "{}: {m}", run.engine);
    for (what, bytes, why) in &cases {
        // A principal per body: more than the burst of one would be 429.
        let t = run.attacker_token(site);
        let m = run.refused(
            &format!("malformed: {what}"),
            bytes,
            Some(&bearer(&t)),
            422,
            "refused",
        );
        assert!(m.contains(why), "{}: {what}: {m}", run.engine);
    }
    let r = run.serve.request("GET", "/sync", b"").unwrap();
    assert_eq!(r.status, 405, "{}: GET /sync: {}", run.engine, r.text());
    let r = run.serve.request("POST", "/sync/../admin", &valid).unwrap();
    assert_eq!(
        (r.status, code_of(&r).0.as_str()),
        (404, "not_found"),
        "{}",
        run.engine
    );
    run.assert_unchanged("malformed bodies", &before);
    run.sync(A);
}

/// Attack 8: Bodies over `--max-body`, and one that never arrives.
fn oversized(run: &mut Run) {
    let site = run.site(A);
    let next = run.registry_of(A) as u64 + 1;
    let cells: Vec<(i64, u64)> = (0..3000).map(|k| (10_000 + k, u64::MAX / 3)).collect();
    let big = encode_request(&leaf_request(
        site,
        None,
        next,
        vec![changes("n", Group::Add, &cells)],
    ));
    assert!(big.len() > MAX_BODY, "{} bytes", big.len());
    let t = run.attacker_token(site);
    let auth = bearer(&t);
    let auth = auth.as_str();
    // Each body is written in one piece: serve answers 413 as soon as the
    // limit is passed and closes, which would cut a client that writes the
    // body after the headers.
    run.refused_by(
        "a real request over --max-body",
        |s| s.post_whole(&big, Some(auth)),
        413,
        "too_large",
    );
    run.refused_by(
        "one byte over --max-body",
        |s| s.post_whole(&vec![0u8; MAX_BODY + 1], Some(auth)),
        413,
        "too_large",
    );
    run.refused_by(
        "exactly --max-body (read, then refused as not atomik)",
        |s| s.post_whole(&vec![0u8; MAX_BODY], Some(auth)),
        422,
        "refused",
    );
    run.refused_by(
        "over --max-body without a token",
        |s| s.post_whole(&big, None),
        401,
        "unauthenticated",
    );
    let head = |length: &str| {
        format!(
            "POST /sync HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: {auth}\r\n\
             {length}\r\n\r\n"
        )
        .into_bytes()
    };
    let mut claimed = head("Content-Length: 1000000000000");
    claimed.extend(vec![b'A'; MAX_BODY + 1]);
    run.refused_by(
        "Content-Length 10^12, more than --max-body sent",
        |s| parse_raw_answer(&s.raw(&claimed)?),
        413,
        "too_large",
    );
    let mut chunked = head("Transfer-Encoding: chunked");
    chunked.extend(format!("{:x}\r\n", MAX_BODY * 2).into_bytes());
    chunked.extend(vec![b'A'; MAX_BODY * 2]);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    run.refused_by(
        "a chunked body over --max-body",
        |s| parse_raw_answer(&s.raw(&chunked)?),
        413,
        "too_large",
    );
    // A body announced as 10^12 bytes that never comes: refused from its
    // headers, without waiting for it.
    run.refused_by(
        "Content-Length 10^12, no body sent",
        |s| parse_raw_answer(&s.raw(&head("Content-Length: 1000000000000"))?),
        413,
        "too_large",
    );
    // A body within --max-body that never comes: the connection is held
    // until --request-timeout, then 408. Checked at the end of the run, so
    // that the wait overlaps the other attacks.
    let mut stalled = head(&format!("Content-Length: {MAX_BODY}"));
    stalled.extend_from_slice(b"AK");
    let addr = run.serve.addr().to_string();
    run.stalled = Some(std::thread::spawn(move || {
        raw_exchange(&addr, &stalled).unwrap()
    }));
}

/// The end of 8: the stalled upload was answered 408 `timeout`.
fn stalled_upload_timed_out(run: &mut Run) {
    let before = run.dump();
    let answer = run.stalled.take().unwrap().join().unwrap();
    let r = parse_raw_answer(&answer).unwrap();
    assert_eq!(
        (r.status, code_of(&r).0.as_str()),
        (408, "timeout"),
        "{}: a body that never comes: {answer}",
        run.engine
    );
    run.assert_unchanged("a body that never comes", &before);
}

/// Attack 9: Responses a device must refuse, leaving its file as it was.
fn forged_responses(run: &mut Run) {
    run.add(A, 11, 1);
    let request = decode_request(&run.devices[A].node.sync_request().unwrap()).unwrap();
    let cursor = request.cursor.expect("A holds a cursor");
    let sent = run.devices[A].own_seq().unwrap() as u64;
    let before = run.devices[A].dump().unwrap();
    let response = |ack: u64, position: u64, payload: Payload| Response {
        to: run.site(A),
        from: run.hub_site,
        base: Some(cursor),
        position,
        ack,
        payload,
    };
    let mut garbage = b"AK".to_vec();
    garbage.extend([0x22; 40]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "another device's real answer",
            run.last_answer[B].clone().unwrap(),
            "answers site",
        ),
        (
            "an ack beyond what it sent (range)",
            encode_response(&response(
                sent + 5,
                cursor.position,
                Payload::Range(Changes::new()),
            )),
            "acknowledges",
        ),
        (
            "an ack beyond what it sent (snapshot)",
            encode_response(&Response {
                base: None,
                ..response(sent + 1, cursor.position, Payload::Snapshot(Changes::new()))
            }),
            "acknowledges",
        ),
        (
            "a position beyond 2^63 - 1",
            encode_response(&response(0, u64::MAX, Payload::Range(Changes::new()))),
            "2^63",
        ),
        (
            "an ack beyond 2^63 - 1",
            encode_response(&response(
                1 << 63,
                cursor.position,
                Payload::Range(Changes::new()),
            )),
            "2^63",
        ),
        (
            "xor deltas for the add column",
            encode_response(&response(
                0,
                cursor.position + 1,
                Payload::Range(changes("n", Group::Xor, &[(1, 0xff), (905, 1)])),
            )),
            "tracked as add",
        ),
        (
            "a request as a response",
            encode_request(&request),
            "expected",
        ),
        ("garbage", garbage, "atomik message"),
    ];
    for (what, bytes, why) in cases {
        let err = run.devices[A].node.finish_sync(&bytes).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains(why),
            "{}: forged response, {what}: {text}",
            run.engine
        );
        assert_eq!(
            run.devices[A].dump().unwrap(),
            before,
            "{}: forged response, {what}: the device changed",
            run.engine
        );
    }
    run.sync(A);
}

/// Attack 11: A flood from one principal.
fn flood(run: &mut Run) {
    let flooder = mint(&claims("flooder", &SiteId::random().unwrap().to_string()));
    // Empty bodies: the rate is counted before the body is read. The
    // burst (20) passes, then 429 (10/s refill: a tight loop outruns it).
    let mut statuses = Vec::new();
    let refusal = loop {
        let r = run.serve.post_as(b"", &flooder).unwrap();
        statuses.push(r.status);
        if r.status != 400 || statuses.len() == 80 {
            break r;
        }
    };
    assert_eq!(
        (refusal.status, code_of(&refusal).0.as_str()),
        (429, "rate_limited"),
        "{}: after {} requests: {}",
        run.engine,
        statuses.len(),
        refusal.text()
    );
    assert!(statuses.len() > 20, "the burst of 20 passes: {statuses:?}");
    let after: u64 = refusal
        .retry_after
        .as_deref()
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&after), "Retry-After {after}");
    let other = run.attacker_token(run.site(C));
    let r = run.serve.post_as(b"", &other).unwrap();
    assert_eq!(r.status, 400, "another principal has its own budget");
}

/// One step of the suite: its name and what it does.
type Step = (&'static str, fn(&mut Run));

/// Every attack against one hub, then convergence.
fn suite(hub: HubDb, files: tempfile::TempDir) {
    let mut run = Run::start(hub, files);
    let steps: [Step; 14] = [
        ("warm up", warm_up),
        // First: its upload that never comes waits for --request-timeout
        // while the other attacks run.
        ("8 oversized bodies", oversized),
        ("1 forged origin", forged_origin),
        ("2 forbidden site", forbidden_site),
        ("3 not a relay", not_a_relay),
        ("12 scopes", scopes),
        ("4 bad tokens", bad_tokens),
        ("5 replays", replays),
        ("5b burnt seqs", burnt_seqs),
        ("6 poison pills", poison_pills),
        ("7 malformed bodies", malformed),
        ("9 forged responses", forged_responses),
        ("11 flood", flood),
        ("8 stalled upload", stalled_upload_timed_out),
    ];
    for (name, step) in steps {
        let start = std::time::Instant::now();
        step(&mut run);
        println!("{}: {name}: ok ({:?})", run.engine, start.elapsed());
    }
    run.converge();
    println!("{}: converged", run.engine);
}

#[test]
#[ignore = "needs the atomik program (ATOMIK_BIN): run tests/cross-engine.sh"]
fn sqlite_hub() {
    let files = tempfile::tempdir().unwrap();
    let hub = HubDb::new_sqlite(&files.path().join("hub.sqlite")).unwrap();
    suite(hub, files);
}

#[test]
#[ignore = "needs PostgreSQL with pg_atomik: run tests/cross-engine.sh"]
fn postgres_hub() {
    let hub = HubDb::new_postgres(&pg_cluster(), "atomik_hostile").unwrap();
    suite(hub, tempfile::tempdir().unwrap());
}

// ------------------------------------------------- PostgreSQL roles (10)

/// Create `role` (cluster-wide, once) and give it, in the hub's database,
/// what `atomik_sync` needs on atomik's own objects — every table and
/// sequence of schema atomik (whatever the installed pg_atomik has) and
/// its functions — plus `on_cells` on the tracked table.
fn create_role(hub: &HubDb, role: &str, on_cells: &str) {
    let mut c = hub.pg_client().unwrap();
    c.batch_execute(&format!(
        "DO $$ BEGIN CREATE ROLE {role} NOLOGIN;
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
         GRANT USAGE ON SCHEMA atomik TO {role};
         GRANT ALL ON ALL TABLES IN SCHEMA atomik TO {role};
         GRANT ALL ON ALL SEQUENCES IN SCHEMA atomik TO {role};
         GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA atomik TO {role};
         GRANT {on_cells} ON cells TO {role};"
    ))
    .unwrap();
}

/// 10a and 10b: the `role` claim runs the sync as that role.
#[test]
#[ignore = "needs PostgreSQL with pg_atomik: run tests/cross-engine.sh"]
fn postgres_hub_roles() {
    let hub = HubDb::new_postgres(&pg_cluster(), "atomik_hostile_roles").unwrap();
    create_role(&hub, "honest_role", "SELECT, INSERT, UPDATE");
    create_role(&hub, "readonly_role", "SELECT");
    let mut run = Run::start(hub, tempfile::tempdir().unwrap());
    let h = run.add_device("H", Some("honest_role"));
    let r = run.add_device("R", Some("readonly_role"));
    let u = run.add_device("U", Some("readonly_role"));
    warm_up(&mut run);

    // A role with the privileges it needs writes, existing and new rows.
    run.add(h, 1, 5);
    run.add(h, 50, 2);
    run.flip(h, 51, 4);
    run.sync(h);
    assert_eq!(run.registry_of(h), 1);

    // A role that may only read the table: its upload is refused whole.
    run.add(r, 1, 100);
    run.add(r, 52, 1);
    let request = run.devices[r].node.sync_request().unwrap();
    let m = run.refused(
        "readonly_role uploads a change",
        &request,
        Some(&bearer(&run.tokens[r])),
        403,
        "forbidden",
    );
    assert!(m.contains("permission denied"), "{m}");
    run.assert_logged("403 forbidden", "device-R");
    // It may still download (and keeps syncing:
    // `postgres_readonly_device_keeps_syncing`).
    run.sync(u);
    assert_eq!(run.devices[u].node.rows().unwrap(), run.hub.rows().unwrap());
    run.tokens[u] = role_token("device-U", &run.site(u), None);

    // A role that does not exist: SET LOCAL ROLE fails, nothing applied.
    run.add(h, 2, 1);
    let request = run.devices[h].node.sync_request().unwrap();
    let ghost = role_token("device-H", &run.site(h), Some("no_such_role"));
    let m = run.refused(
        "a role that does not exist",
        &request,
        Some(&bearer(&ghost)),
        422,
        "refused",
    );
    assert!(m.contains("no_such_role"), "{m}");
    run.sync(h);
    assert_eq!(run.registry_of(h), 2);

    // Once R's token carries a role that may write, its refused batch
    // applies, exactly once.
    run.tokens[r] = role_token("device-R", &run.site(r), Some("honest_role"));
    run.sync(r);
    assert_eq!(run.registry_of(r), 1);
    run.converge();
}

/// A PostgreSQL hub whose tracked table has row-level security: role
/// `rls_role` may read every row but UPDATE and INSERT only keys under
/// 100; device A (no role: the server's own user, which bypasses the
/// policies) has written keys 1, 2, 3 and 500. Device "L0" has
/// `rls_role`.
fn rls_run(db: &str) -> (Run, usize) {
    let hub = HubDb::new_postgres(&pg_cluster(), db).unwrap();
    create_role(&hub, "rls_role", "SELECT, INSERT, UPDATE");
    hub.pg_client()
        .unwrap()
        .batch_execute(
            "ALTER TABLE cells ENABLE ROW LEVEL SECURITY;
             CREATE POLICY rls_read ON cells FOR SELECT TO rls_role USING (true);
             CREATE POLICY rls_update ON cells FOR UPDATE TO rls_role
                 USING (id < 100) WITH CHECK (id < 100);
             CREATE POLICY rls_insert ON cells FOR INSERT TO rls_role WITH CHECK (id < 100);",
        )
        .unwrap();
    let mut run = Run::start(hub, tempfile::tempdir().unwrap());
    let allowed = run.add_device("L0", Some("rls_role"));
    warm_up(&mut run);
    run.add(A, 500, 1);
    run.sync(A);
    (run, allowed)
}

/// Device `i`'s refused batch applies once its token carries no role (the
/// server's own user), and everything converges.
fn rewrite_with_full_rights(run: &mut Run, i: usize) {
    run.tokens[i] = role_token(&run.names[i].clone(), &run.site(i), None);
    run.sync(i);
    assert_eq!(run.registry_of(i), 1);
}

/// 10c: row-level security decides which keys a role may write.
#[test]
#[ignore = "needs PostgreSQL with pg_atomik: run tests/cross-engine.sh"]
fn postgres_hub_row_level_security() {
    let (mut run, allowed) = rls_run("atomik_hostile_rls");
    // Keys under 100, existing and new: applied.
    run.add(allowed, 1, 2);
    run.add(allowed, 60, 3);
    run.sync(allowed);
    assert_eq!(run.registry_of(allowed), 1);
    // A new row its INSERT policy refuses: refused whole, nothing applied.
    let fresh = run.add_device("L2", Some("rls_role"));
    run.add(fresh, 600, 7);
    run.add(fresh, 61, 1);
    let request = run.devices[fresh].node.sync_request().unwrap();
    let m = run.refused(
        "rls_role inserts key 600",
        &request,
        Some(&bearer(&run.tokens[fresh])),
        403,
        "forbidden",
    );
    assert!(m.contains("row-level security"), "{m}");
    rewrite_with_full_rights(&mut run, fresh);
    run.converge();
}

/// Found by this suite (fixed): an UPDATE that a row-level security
/// policy hides was not refused — the delta was silently dropped on the
/// hub, yet the batch was registered, logged and acknowledged (200), and
/// every other device downloaded it: the hub and the fleet diverged for
/// good, and the forbidden write reached every replica but the hub.
///
/// Request: device L1 with a token `{"role": "rls_role"}` uploads `+7` to
/// `cells.n` key 500 (a row that exists; `rls_update` is `USING (id <
/// 100)`). Response: 200. Hub: `atomik.registry` gets L1 = 1, the batch is
/// in `atomik.log_pending`, `cells` row 500 is unchanged (n = 1). Then
/// device B syncs and holds n = 8 for key 500; L1 itself, bootstrapped
/// from the hub's snapshot, holds 1. (pg_atomik's `receive_block` counts
/// an `UPDATE` that matched fewer rows as missing rows, and
/// `create_missing` finds the row visible, so it neither inserts nor
/// parks; it now refuses the message, `ProtocolError::WriteRefused`.)
/// Expected: 403 `forbidden` and nothing applied, like the INSERT that the
/// policy refuses.
#[test]
#[ignore = "needs PostgreSQL with pg_atomik: run tests/cross-engine.sh"]
fn postgres_hub_refuses_an_update_hidden_by_row_level_security() {
    let (mut run, _) = rls_run("atomik_hostile_rls_bug");
    let existing = run.add_device("L1", Some("rls_role"));
    run.add(existing, 500, 7);
    let request = run.devices[existing].node.sync_request().unwrap();
    run.refused(
        "rls_role updates key 500, hidden by the UPDATE policy",
        &request,
        Some(&bearer(&run.tokens[existing])),
        403,
        "forbidden",
    );
    rewrite_with_full_rights(&mut run, existing);
    run.converge();
}

// ------------------------------------------- bugs found here, fixed

/// One sync of `device` with `hub`, both opened in this process.
fn sync_direct(device: &mut Device, hub: &mut SqliteNode) {
    let request = device.node.sync_request().unwrap();
    let response = hub.serve_sync(&request).unwrap();
    device.node.finish_sync(&response).unwrap();
}

/// Found by this suite (fixed): a SQLite replica that created a row
/// for a received delta of one tracked column takes the row's *other*
/// tracked columns (created at their default, the identity) for its own
/// new cells, and its next seal ships them as a batch of its own, with
/// zero deltas. `forget_written` (sqlite_atomik/src/store/cells.rs) forgets
/// the write record of the received column only. So a device that never
/// writes uploads a batch after every download that brought new rows, and
/// a hub emits batches under its own origin (PostgreSQL skips its record
/// triggers while applying: its hub does not). Values stay right (the
/// deltas are zero), but every new row costs a batch per replica, a
/// PostgreSQL hub refuses such a batch from a device whose token's role
/// may only read (`postgres_readonly_device_keeps_syncing`),
/// and a replay is not a no-op on the hub: it seals them (the suite's
/// `settle` works around that). Expected: a replica that only received
/// seals nothing.
#[test]
fn applied_rows_are_not_sealed_again() {
    let dir = tempfile::tempdir().unwrap();
    let hub_path = dir.path().join("hub.sqlite");
    let mut hub = SqliteNode::open(&hub_path).unwrap();
    let mut writer = Device::open(&dir.path().join("writer.sqlite")).unwrap();
    let mut reader = Device::open(&dir.path().join("reader.sqlite")).unwrap();
    writer.write(1, Column::N, 5).unwrap();
    sync_direct(&mut writer, &mut hub);
    sync_direct(&mut reader, &mut hub); // a snapshot: row 1
    writer.write(2, Column::N, 1).unwrap();
    sync_direct(&mut writer, &mut hub);
    sync_direct(&mut reader, &mut hub); // a range: row 2
    let request = decode_request(&reader.node.sync_request().unwrap()).unwrap();
    assert_eq!(
        (request.uploads.len(), reader.own_seq().unwrap()),
        (0, 0),
        "a device that never wrote uploads nothing: {:?}",
        request.uploads
    );
    let hub_own: i64 = open_reader(&hub_path)
        .unwrap()
        .query_row(
            "SELECT coalesce(max(value), 0) FROM atomik_settings WHERE name = 'v2_own_seq'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        hub_own, 0,
        "a hub that only applied seals nothing of its own"
    );
}

/// The consequence the fix of `applied_rows_are_not_sealed_again` removed
/// for a device whose token's `role` may only read the tracked table: its first
/// sync (a snapshot) works, its second uploads the zero deltas of the rows
/// it received and gets 403 `forbidden` ("permission denied for table
/// cells"), and so does every later one: it can never download again.
/// Expected: it keeps syncing.
#[test]
#[ignore = "needs PostgreSQL with pg_atomik: run tests/cross-engine.sh"]
fn postgres_readonly_device_keeps_syncing() {
    let hub = HubDb::new_postgres(&pg_cluster(), "atomik_hostile_readonly_bug").unwrap();
    create_role(&hub, "readonly_role", "SELECT");
    let mut run = Run::start(hub, tempfile::tempdir().unwrap());
    let u = run.add_device("U", Some("readonly_role"));
    warm_up(&mut run);
    run.sync(u);
    run.add(A, 70, 1);
    run.sync(A);
    run.sync(u);
    run.sync(u);
    run.converge();
}

/// The same for a device whose token may write nothing (`atomik_write: []`, README's
/// "a dashboard that writes nothing: --write-none"): its first sync (a
/// snapshot) works, its second uploads the zero deltas of the rows it
/// received and gets 403 `forbidden_column`, and so does every later one.
/// Expected: it keeps syncing.
#[test]
#[ignore = "needs the atomik program (ATOMIK_BIN): run tests/cross-engine.sh"]
fn write_none_device_keeps_syncing() {
    let files = tempfile::tempdir().unwrap();
    let hub = HubDb::new_sqlite(&files.path().join("hub.sqlite")).unwrap();
    let mut run = Run::start(hub, files);
    warm_up(&mut run);
    let dashboard = run.add_device("dashboard", None);
    let site = run.site(dashboard).to_string();
    run.tokens[dashboard] = mint(&with(claims("dashboard", &site), "atomik_write", json!([])));
    run.sync(dashboard);
    run.add(A, 70, 1);
    run.sync(A);
    run.sync(dashboard);
    run.sync(dashboard);
    run.converge();
}
