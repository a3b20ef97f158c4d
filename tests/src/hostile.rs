//! What the hostile-client suite (`tests/tests/hostile.rs`) drives: a real
//! `atomik serve --auth-key …` process whose stderr is kept, raw access to
//! its HTTP endpoint (any `Authorization` header, any body, raw bytes over
//! TCP), the hub behind it read directly (a SQLite file or a PostgreSQL
//! database: every table of atomik's state and the tracked table, dumped
//! as text, so that "nothing was applied" is an exact comparison), honest
//! SQLite devices, and builders of hostile messages from atomik-core's own
//! codec types.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use atomik_core::codec::v2::{Cursor, OutboxEntry, Request};
use atomik_core::{Changes, ColumnId, Group, Key, KeyShape, SiteId};
use rusqlite::OptionalExtension;

use crate::node::{Node, Row};
use crate::pg_node::{PgCluster, PgNode};
use crate::schema::{self, Column, Delta};
use crate::sqlite_node::SqliteNode;

/// How long one HTTP exchange with the server may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

/// `atomik serve --auth-key KEY` in front of a hub, on a loopback port it
/// picked; killed when dropped. Its stderr (one line per refusal, with
/// the full reason) is kept for the test to read.
#[derive(Debug)]
pub struct AuthServe {
    child: Child,
    url: String,
    log: Arc<Mutex<Vec<String>>>,
    agent: ureq::Agent,
}

/// One answer of `atomik serve`.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body (a response's bytes, or the JSON of a refusal).
    pub body: Vec<u8>,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
}

impl Reply {
    /// The body as text (lossy), for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl AuthServe {
    /// Start `program serve --hub HUB --listen 127.0.0.1:0 --auth-key KEY`
    /// plus `extra`, and wait until it says where it listens.
    ///
    /// # Errors
    /// It cannot be started or does not say where it listens.
    pub fn start(program: &Path, hub: &str, key: &Path, extra: &[&str]) -> Result<Self> {
        let key = key.to_string_lossy();
        let args: Vec<&str> = ["--auth-key", key.as_ref()]
            .into_iter()
            .chain(extra.iter().copied())
            .collect();
        let (child, url, first, lines) = crate::serve::spawn(program, hub, &args)?;
        let log = Arc::new(Mutex::new(vec![first.trim_end().to_string()]));
        let sink = log.clone();
        // Keep draining its stderr so that it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.lines() {
                let Ok(line) = line else { break };
                if let Ok(mut log) = sink.lock() {
                    log.push(line);
                }
            }
        });
        let agent = ureq::AgentBuilder::new().timeout(HTTP_TIMEOUT).build();
        Ok(AuthServe {
            child,
            url,
            log,
            agent,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Every line serve wrote to stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// `POST /sync` with `body` and, if given, this exact `Authorization`
    /// header value.
    ///
    /// # Errors
    /// Transport errors (not HTTP error statuses: those are replies).
    pub fn post(&self, body: &[u8], authorization: Option<&str>) -> Result<Reply> {
        let mut req = self
            .agent
            .post(&format!("{}/sync", self.url))
            .set("Content-Type", "application/octet-stream");
        if let Some(a) = authorization {
            req = req.set("Authorization", a);
        }
        reply(req.send_bytes(body))
    }

    /// `POST /sync` with `Authorization: Bearer <token>`.
    ///
    /// # Errors
    /// As [`AuthServe::post`].
    pub fn post_as(&self, body: &[u8], token: &str) -> Result<Reply> {
        self.post(body, Some(&format!("Bearer {token}")))
    }

    /// `GET /health`.
    ///
    /// # Errors
    /// Transport errors.
    pub fn health(&self) -> Result<Reply> {
        reply(self.agent.get(&format!("{}/health", self.url)).call())
    }

    /// Any request to any path, with any method.
    ///
    /// # Errors
    /// Transport errors.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> Result<Reply> {
        reply(
            self.agent
                .request(method, &format!("{}{path}", self.url))
                .send_bytes(body),
        )
    }

    /// Send `bytes` as they are over a new TCP connection and read one
    /// answer ([`raw_exchange`]).
    ///
    /// # Errors
    /// Connection errors.
    pub fn raw(&self, bytes: &[u8]) -> Result<String> {
        raw_exchange(self.addr(), bytes)
    }

    /// `POST /sync` of `body` written in one piece over a raw connection,
    /// so that a server that answers before it has read the whole body
    /// (413) cannot break the upload half-way, as it may a client that
    /// writes the headers and the body separately.
    ///
    /// # Errors
    /// Connection errors, or an answer that is not HTTP.
    pub fn post_whole(&self, body: &[u8], authorization: Option<&str>) -> Result<Reply> {
        let mut request = format!(
            "POST /sync HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {}\r\n",
            self.addr(),
            body.len()
        );
        if let Some(a) = authorization {
            request.push_str(&format!("Authorization: {a}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        parse_raw_answer(&raw_exchange(self.addr(), &bytes)?)
    }

    /// The hub's site id, as `/health` shows it.
    ///
    /// # Errors
    /// Transport errors, or a health line without a site.
    pub fn hub_site(&self) -> Result<SiteId> {
        let h = self.health()?;
        let text = h.text();
        let site = text
            .split_whitespace()
            .skip_while(|w| *w != "site")
            .nth(1)
            .ok_or_else(|| anyhow!("no site in /health: {text:?}"))?;
        site.parse().map_err(|e| anyhow!("{site}: {e}"))
    }
}

/// Send `bytes` to `addr` over a new TCP connection and read one answer
/// (until its body is complete, the server closes, or `HTTP_TIMEOUT`). A
/// write that the server cut short (it answered early and closed) is not
/// an error: its answer is read all the same.
///
/// # Errors
/// Connection errors.
pub fn raw_exchange(addr: &str, bytes: &[u8]) -> Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    if let Err(e) = stream.write_all(bytes) {
        if !matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ) {
            return Err(e).context("writing the raw request");
        }
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                // One answer is all a test asks for: stop at the end of
                // its body rather than wait for the close.
                if complete_http_answer(&answer) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !answer.is_empty() => {
                break
            }
            Err(e) => return Err(e).context("reading the raw answer"),
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The status and body of a raw HTTP/1.1 answer.
///
/// # Errors
/// Not an HTTP answer.
pub fn parse_raw_answer(answer: &str) -> Result<Reply> {
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow!("not an HTTP answer: {answer:?}"))?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let retry_after = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("retry-after")
            .then(|| value.trim().to_string())
    });
    Ok(Reply {
        status,
        body: body.as_bytes().to_vec(),
        retry_after,
    })
}

/// Whether `answer` holds a whole HTTP/1.1 answer (headers and a body of
/// its Content-Length).
fn complete_http_answer(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end].lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    length.is_some_and(|n| answer.len() >= end + 4 + n)
}

fn reply(answer: Result<ureq::Response, ureq::Error>) -> Result<Reply> {
    let resp = match answer {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(anyhow!(e).context("cannot reach atomik serve")),
    };
    let status = resp.status();
    let retry_after = resp.header("Retry-After").map(str::to_string);
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body)?;
    Ok(Reply {
        status,
        body,
        retry_after,
    })
}

impl Drop for AuthServe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every table of a replica's atomik state and its tracked table, each as
/// its rows rendered as text, sorted: two dumps are equal exactly when
/// nothing was written.
pub type Dump = BTreeMap<String, Vec<String>>;

/// The hub database behind the server, read on connections of its own.
#[derive(Debug, Clone)]
pub enum HubDb {
    /// A SQLite hub file.
    Sqlite(PathBuf),
    /// A database of the cross-engine PostgreSQL cluster.
    Postgres {
        /// The cluster.
        cluster: PgCluster,
        /// The database.
        db: String,
    },
}

impl HubDb {
    /// A fresh SQLite hub at `path`, with the W4 table tracked.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn new_sqlite(path: &Path) -> Result<Self> {
        drop(SqliteNode::open(path)?);
        Ok(HubDb::Sqlite(path.to_path_buf()))
    }

    /// Database `db` of `cluster`, reset: a fresh pg_atomik and the W4
    /// table.
    ///
    /// # Errors
    /// SQL errors.
    pub fn new_postgres(cluster: &PgCluster, db: &str) -> Result<Self> {
        cluster.reset_database(db)?;
        Ok(HubDb::Postgres {
            cluster: cluster.clone(),
            db: db.to_string(),
        })
    }

    /// "SQLite" or "PostgreSQL".
    pub fn engine(&self) -> &'static str {
        match self {
            HubDb::Sqlite(_) => "SQLite",
            HubDb::Postgres { .. } => "PostgreSQL",
        }
    }

    /// What `atomik serve --hub` takes.
    pub fn serve_arg(&self) -> String {
        match self {
            HubDb::Sqlite(path) => path.display().to_string(),
            HubDb::Postgres { cluster, db } => cluster.url(db),
        }
    }

    /// A PostgreSQL client on the hub's database (superuser).
    ///
    /// # Errors
    /// Not a PostgreSQL hub; connection errors.
    pub fn pg_client(&self) -> Result<postgres::Client> {
        match self {
            HubDb::Postgres { cluster, db } => Ok(postgres::Client::connect(
                &cluster.url(db),
                postgres::NoTls,
            )?),
            HubDb::Sqlite(_) => bail!("a SQLite hub has no PostgreSQL client"),
        }
    }

    /// The tracked table's rows, in key order, as canonical bytes.
    ///
    /// # Errors
    /// Database errors.
    pub fn rows(&self) -> Result<Vec<Row>> {
        match self {
            HubDb::Sqlite(path) => crate::sqlite_node::rows_of(&open_reader(path)?),
            HubDb::Postgres { cluster, db } => PgNode::connect(cluster, db)?.rows(),
        }
    }

    /// `atomik_digest` of both columns.
    ///
    /// # Errors
    /// Database errors.
    pub fn digests(&self) -> Result<(i64, i64)> {
        match self {
            HubDb::Sqlite(path) => {
                Ok(open_reader(path)?
                    .query_row(schema::DIGESTS_SQL, [], |r| Ok((r.get(0)?, r.get(1)?)))?)
            }
            HubDb::Postgres { cluster, db } => PgNode::connect(cluster, db)?.digests(),
        }
    }

    /// The hub's registry: per origin (hex), the highest seq applied.
    ///
    /// # Errors
    /// Database errors.
    pub fn registry(&self) -> Result<BTreeMap<String, i64>> {
        self.pairs(
            "SELECT lower(hex(site)), seq FROM atomik_registry",
            "SELECT encode(site, 'hex'), seq FROM atomik.registry",
        )
    }

    /// The hub's log: (origin (hex), seq, the batch's bytes) of every
    /// entry, numbered or not yet, sorted.
    ///
    /// # Errors
    /// Database errors.
    pub fn log_entries(&self) -> Result<Vec<(String, i64, Vec<u8>)>> {
        let mut out = match self {
            HubDb::Sqlite(path) => {
                let conn = open_reader(path)?;
                let mut st =
                    conn.prepare("SELECT lower(hex(origin)), seq, bytes FROM atomik_log")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()?
            }
            HubDb::Postgres { .. } => {
                let mut c = self.pg_client()?;
                c.query(
                    "SELECT encode(origin, 'hex'), seq, bytes FROM atomik.log
                     UNION ALL SELECT encode(origin, 'hex'), seq, bytes FROM atomik.log_pending",
                    &[],
                )?
                .into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
            }
        };
        out.sort();
        Ok(out)
    }

    fn pairs(&self, sqlite: &str, pg: &str) -> Result<BTreeMap<String, i64>> {
        Ok(match self {
            HubDb::Sqlite(path) => {
                let conn = open_reader(path)?;
                let mut st = conn.prepare(sqlite)?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<rusqlite::Result<_>>()?
            }
            HubDb::Postgres { .. } => self
                .pg_client()?
                .query(pg, &[])?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
        })
    }

    /// Every table of the hub's atomik state and the W4 tables, as text.
    ///
    /// # Errors
    /// Database errors.
    pub fn dump(&self) -> Result<Dump> {
        match self {
            HubDb::Sqlite(path) => dump_sqlite(path),
            HubDb::Postgres { .. } => {
                let mut c = self.pg_client()?;
                dump_postgres(&mut c)
            }
        }
    }
}

/// A connection that reads a replica file (atomik registered, nothing
/// created).
///
/// # Errors
/// SQLite errors.
pub fn open_reader(path: &Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    sqlite_atomik::register(&conn)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// Every `atomik_*` table of a SQLite replica file and its W4 tables.
///
/// # Errors
/// SQLite errors.
pub fn dump_sqlite(path: &Path) -> Result<Dump> {
    let conn = open_reader(path)?;
    let names: Vec<String> = {
        let mut st = conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
              AND (name LIKE 'atomik%' OR name IN ('cells', 'ledger')) ORDER BY name",
        )?;
        let names = st.query_map([], |r| r.get(0))?;
        names.collect::<rusqlite::Result<_>>()?
    };
    let mut dump = Dump::new();
    for name in names {
        let mut st = conn.prepare(&format!("SELECT * FROM \"{name}\""))?;
        let width = st.column_count();
        let mut rows: Vec<String> = st
            .query_map([], |r| {
                (0..width)
                    .map(|i| r.get::<_, rusqlite::types::Value>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()
            })?
            .map(|r| r.map(|values| format!("{values:?}")))
            .collect::<rusqlite::Result<_>>()?;
        rows.sort();
        dump.insert(name, rows);
    }
    Ok(dump)
}

/// Every table of schema `atomik` of a PostgreSQL replica (whatever tables
/// the installed pg_atomik has) and its W4 tables.
///
/// # Errors
/// SQL errors.
pub fn dump_postgres(c: &mut postgres::Client) -> Result<Dump> {
    let tables: Vec<(String, String)> = c
        .query(
            "SELECT table_schema, table_name FROM information_schema.tables
              WHERE table_type = 'BASE TABLE'
                AND (table_schema = 'atomik'
                     OR (table_schema = 'public' AND table_name IN ('cells', 'ledger')))
              ORDER BY 1, 2",
            &[],
        )?
        .into_iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut dump = Dump::new();
    for (schema, table) in tables {
        let rows: Vec<String> = c
            .query(
                &format!("SELECT t::text FROM \"{schema}\".\"{table}\" t ORDER BY 1"),
                &[],
            )?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        dump.insert(format!("{schema}.{table}"), rows);
    }
    Ok(dump)
}

/// An honest device: a SQLite replica file with the W4 table.
#[derive(Debug)]
pub struct Device {
    /// The replica.
    pub node: SqliteNode,
    /// Its file.
    pub path: PathBuf,
    /// Its site id.
    pub site: SiteId,
    next_id: u64,
}

impl Device {
    /// Open (create) the device at `path`.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn open(path: &Path) -> Result<Self> {
        let node = SqliteNode::open(path)?;
        let site: String =
            open_reader(path)?.query_row("SELECT atomik_site_id()", [], |r| r.get(0))?;
        Ok(Device {
            node,
            path: path.to_path_buf(),
            site: site.parse().map_err(|e| anyhow!("{site}: {e}"))?,
            next_id: 1,
        })
    }

    /// Its site id as 32 hex digits.
    pub fn site_hex(&self) -> String {
        self.site.to_string()
    }

    /// One local transaction: `delta` into (`key`, `column`).
    ///
    /// # Errors
    /// SQLite errors.
    pub fn write(&mut self, key: i64, column: Column, delta: u64) -> Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        self.node.write(id, &[Delta { key, column, delta }])
    }

    /// The highest seq this device has sealed.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn own_seq(&self) -> Result<i64> {
        let conn = open_reader(&self.path)?;
        let seq: Option<i64> = conn
            .query_row(
                "SELECT value FROM atomik_settings WHERE name = 'v2_own_seq'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(seq.unwrap_or(0))
    }

    /// Everything the device's file holds.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn dump(&self) -> Result<Dump> {
        dump_sqlite(&self.path)
    }
}

/// The wire id of a W4 column in group `group` (which need not be the
/// column's own: that is what a poison pill claims).
pub fn column_id(column: &str, group: Group) -> ColumnId {
    ColumnId::new(schema::TABLE, column, group)
}

/// Changes of `cells.column`, claimed in `group`: `delta` per key.
pub fn changes(column: &str, group: Group, cells: &[(i64, u64)]) -> Changes {
    let mut c = Changes::new();
    let id = column_id(column, group);
    for &(key, delta) in cells {
        c.add(&id, &KeyShape::int(), Key::int(key), delta)
            .expect("an integer key fits the W4 table");
    }
    c
}

/// A leaf's request: `site` uploads `batches` as its seqs `first_seq`,
/// `first_seq + 1`, ….
pub fn leaf_request(
    site: SiteId,
    cursor: Option<Cursor>,
    first_seq: u64,
    batches: Vec<Changes>,
) -> Request {
    Request {
        site,
        relays: false,
        cursor,
        uploads: batches
            .into_iter()
            .enumerate()
            .map(|(i, changes)| OutboxEntry {
                position: first_seq + i as u64,
                origin: site,
                seq: first_seq + i as u64,
                changes,
            })
            .collect(),
    }
}

/// A relay-form request: `site` uploads `(origin, seq, changes)` at
/// outbox positions 1, 2, ….
pub fn relay_request(site: SiteId, uploads: Vec<(SiteId, u64, Changes)>) -> Request {
    Request {
        site,
        relays: true,
        cursor: None,
        uploads: uploads
            .into_iter()
            .enumerate()
            .map(|(i, (origin, seq, changes))| OutboxEntry {
                position: i as u64 + 1,
                origin,
                seq,
                changes,
            })
            .collect(),
    }
}

/// What differs between two dumps: per table, the rows only in `before`
/// (`-`) and only in `after` (`+`). Empty when they are equal.
pub fn dump_diff(before: &Dump, after: &Dump) -> String {
    let mut out = String::new();
    let tables: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for table in tables {
        let b = before.get(table).cloned().unwrap_or_default();
        let a = after.get(table).cloned().unwrap_or_default();
        if a == b {
            continue;
        }
        out.push_str(&format!("{table}:\n"));
        for row in b.iter().filter(|r| !a.contains(r)) {
            out.push_str(&format!("  - {row}\n"));
        }
        for row in a.iter().filter(|r| !b.contains(r)) {
            out.push_str(&format!("  + {row}\n"));
        }
    }
    out
}
