//! What the demo needs of a replica, whatever engine keeps it.

use anyhow::Result;
use atomik_core::memory::MemoryStore;
use atomik_core::protocol::v2 as protocol;
use atomik_core::{Group, Key, KeyShape, SiteId};

/// The table and column every demo replica tracks.
pub const TABLE: &str = "inventory";
/// The tracked `add` column: stock on hand per SKU.
pub const COLUMN: &str = "qty";

/// One replica of the demo: a device or the hub.
pub trait Replica {
    /// Record a local change of stock (a sale or a restock).
    fn accum(&mut self, sku: i64, delta: i64) -> Result<()>;
    /// Start a transaction around a run of local changes.
    fn begin(&mut self) -> Result<()> {
        Ok(())
    }
    /// Commit the run of local changes.
    fn commit(&mut self) -> Result<()> {
        Ok(())
    }
    /// `atomik_sync_request()`.
    fn sync_request(&mut self, now: u64) -> Result<Vec<u8>>;
    /// `atomik_sync(request)`.
    fn serve_sync(&mut self, request: &[u8], now: u64) -> Result<Vec<u8>>;
    /// `atomik_sync_finish(response)`.
    fn finish_sync(&mut self, response: &[u8], now: u64) -> Result<u64>;
    /// Every cell's canonical 17 bytes, in key order.
    fn values(&mut self) -> Result<Vec<(i64, [u8; 17])>>;
    /// `atomik_digest('inventory', 'qty')`.
    fn digest(&mut self) -> Result<i64>;
    /// `atomik_site_id()`.
    fn site_id(&mut self) -> Result<String>;
    /// `atomik_log_position()`: where a hub's log ends.
    fn log_position(&mut self) -> Result<u64>;
}

/// A replica kept in memory by `atomik_core::memory::MemoryStore`.
#[derive(Debug)]
pub struct MemoryReplica(MemoryStore);

impl MemoryReplica {
    /// A new replica with a random site id and the inventory table tracked.
    pub fn new() -> Result<Self> {
        let site = SiteId::random().map_err(anyhow::Error::msg)?;
        let mut s = MemoryStore::new(site);
        s.create_table(TABLE, KeyShape::int(), true);
        s.track(TABLE, COLUMN, Group::Add)?;
        Ok(MemoryReplica(s))
    }
}

impl Replica for MemoryReplica {
    fn accum(&mut self, sku: i64, delta: i64) -> Result<()> {
        Ok(self
            .0
            .accum(TABLE, COLUMN, &Key::int(sku), Group::Add, delta as u64)?)
    }

    fn sync_request(&mut self, now: u64) -> Result<Vec<u8>> {
        Ok(self.0.atomically(|s| protocol::sync_request(s, now))?)
    }

    fn serve_sync(&mut self, request: &[u8], now: u64) -> Result<Vec<u8>> {
        Ok(self
            .0
            .atomically(|s| protocol::serve_sync(s, request, now))?)
    }

    fn finish_sync(&mut self, response: &[u8], now: u64) -> Result<u64> {
        Ok(self
            .0
            .atomically(|s| protocol::finish_sync(s, response, now))?)
    }

    fn values(&mut self) -> Result<Vec<(i64, [u8; 17])>> {
        self.0
            .cells(TABLE, COLUMN)
            .into_iter()
            .map(|(k, v)| match k.parts() {
                [atomik_core::KeyPart::Int(i)] => Ok((*i, v.to_bytes())),
                _ => Err(anyhow::anyhow!("unexpected key {k}")),
            })
            .collect()
    }

    fn digest(&mut self) -> Result<i64> {
        Ok(self.0.digest(TABLE, COLUMN))
    }

    fn site_id(&mut self) -> Result<String> {
        use atomik_core::Store;
        Ok(self.0.site_id()?.to_string())
    }

    fn log_position(&mut self) -> Result<u64> {
        Ok(atomik_core::feed::position(&mut self.0)?)
    }
}

/// A replica in a real SQLite database file, driven through the atomik SQL
/// functions exactly as an app would (statically registered extension).
#[derive(Debug)]
pub struct SqliteReplica {
    conn: rusqlite::Connection,
}

impl SqliteReplica {
    /// Open (or create) the database at `path`, register atomik, and make
    /// sure the inventory table exists and is tracked.
    ///
    /// # Errors
    /// SQLite errors, with the path named.
    pub fn open(path: &std::path::Path) -> Result<Self> {
        use anyhow::Context;
        let conn = rusqlite::Connection::open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        sqlite_atomik::register(&conn)?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS {TABLE} (sku INTEGER PRIMARY KEY, {COLUMN} BLOB);"
        ))
        .with_context(|| format!("cannot set up {}", path.display()))?;
        conn.query_row(
            &format!("SELECT atomik_track('{TABLE}', '{COLUMN}')"),
            [],
            |_| Ok(()),
        )
        .with_context(|| format!("cannot track {TABLE}.{COLUMN} in {}", path.display()))?;
        Ok(SqliteReplica { conn })
    }

    /// Open an existing device or hub database without creating tables: for
    /// `atomik sync` and `atomik serve`, which work on whatever the app
    /// tracks.
    ///
    /// # Errors
    /// SQLite errors, with the path named.
    pub fn open_existing(path: &std::path::Path) -> Result<Self> {
        use anyhow::Context;
        if !path.exists() {
            anyhow::bail!("no database at {}", path.display());
        }
        let conn = rusqlite::Connection::open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        sqlite_atomik::register(&conn)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        Ok(SqliteReplica { conn })
    }

    fn blob_call(&self, sql: &str, arg: Option<&[u8]>) -> Result<Vec<u8>> {
        let out = match arg {
            Some(a) => self.conn.query_row(sql, [a], |r| r.get(0))?,
            None => self.conn.query_row(sql, [], |r| r.get(0))?,
        };
        Ok(out)
    }
}

impl Replica for SqliteReplica {
    fn accum(&mut self, sku: i64, delta: i64) -> Result<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO {TABLE} (sku, {COLUMN}) VALUES (?1, atomik_add(?2))
                 ON CONFLICT (sku) DO UPDATE SET {COLUMN} = atomik_accum({COLUMN}, ?2)"
            ))?
            .execute([sku, delta])?;
        Ok(())
    }

    fn begin(&mut self) -> Result<()> {
        self.conn.execute_batch("BEGIN")?;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }

    fn sync_request(&mut self, _now: u64) -> Result<Vec<u8>> {
        self.blob_call("SELECT atomik_sync_request()", None)
    }

    /// In `BEGIN IMMEDIATE` unless the caller opened a transaction: other
    /// processes may write the hub file too (a feed consumer, the app),
    /// and a deferred transaction that reads before it writes is refused
    /// at once (SQLITE_BUSY) where an immediate one waits its turn.
    fn serve_sync(&mut self, request: &[u8], _now: u64) -> Result<Vec<u8>> {
        if !self.conn.is_autocommit() {
            return self.blob_call("SELECT atomik_sync(?1)", Some(request));
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let answer = self
            .blob_call("SELECT atomik_sync(?1)", Some(request))
            .and_then(|a| {
                self.conn.execute_batch("COMMIT")?;
                Ok(a)
            });
        if answer.is_err() && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        answer
    }

    fn finish_sync(&mut self, response: &[u8], _now: u64) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT atomik_sync_finish(?1)", [response], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn values(&mut self) -> Result<Vec<(i64, [u8; 17])>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT sku, atomik_bytes({COLUMN}) FROM {TABLE} WHERE {COLUMN} IS NOT NULL ORDER BY sku"
        ))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        rows.map(|row| {
            let (sku, bytes) = row?;
            let fixed: [u8; 17] = bytes
                .try_into()
                .map_err(|b: Vec<u8>| anyhow::anyhow!("atomik_bytes returned {} bytes", b.len()))?;
            Ok((sku, fixed))
        })
        .collect()
    }

    fn digest(&mut self) -> Result<i64> {
        Ok(self.conn.query_row(
            &format!("SELECT atomik_digest('{TABLE}', '{COLUMN}')"),
            [],
            |r| r.get(0),
        )?)
    }

    fn site_id(&mut self) -> Result<String> {
        Ok(self
            .conn
            .query_row("SELECT atomik_site_id()", [], |r| r.get(0))?)
    }

    fn log_position(&mut self) -> Result<u64> {
        let p: i64 = self
            .conn
            .query_row("SELECT atomik_log_position()", [], |r| r.get(0))?;
        Ok(p as u64)
    }
}

/// A hub in a PostgreSQL database with `CREATE EXTENSION pg_atomik`,
/// driven through the same SQL functions.
pub struct PgReplica {
    client: postgres::Client,
}

impl std::fmt::Debug for PgReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgReplica")
    }
}

impl PgReplica {
    /// Connect to `url` (a `postgres://` URL).
    ///
    /// # Errors
    /// Connection errors.
    pub fn connect(url: &str) -> Result<Self> {
        use anyhow::Context;
        let client = postgres::Client::connect(url, postgres::NoTls)
            .with_context(|| format!("cannot connect to {url}"))?;
        Ok(PgReplica { client })
    }

    /// Connect and make sure the demo's inventory table exists and is
    /// tracked (for `atomik demo --hub postgres://...`). The table is
    /// emptied first so that each demo run starts from scratch.
    ///
    /// # Errors
    /// SQL errors.
    pub fn connect_for_demo(url: &str) -> Result<Self> {
        let mut hub = Self::connect(url)?;
        hub.client.batch_execute(&format!(
            "CREATE EXTENSION IF NOT EXISTS pg_atomik;
             CREATE TABLE IF NOT EXISTS {TABLE} (sku bigint PRIMARY KEY, {COLUMN} atomik);
             SELECT atomik_track('{TABLE}', '{COLUMN}');"
        ))?;
        let rows: i64 = hub
            .client
            .query_one(&format!("SELECT count(*) FROM {TABLE}"), &[])?
            .get(0);
        if rows > 0 {
            anyhow::bail!(
                "table {TABLE} in the hub database already has {rows} rows; the demo needs a fresh database"
            );
        }
        Ok(hub)
    }
}

impl Replica for PgReplica {
    fn accum(&mut self, sku: i64, delta: i64) -> Result<()> {
        self.client.execute(
            &format!(
                "INSERT INTO {TABLE} (sku, {COLUMN}) VALUES ($1, atomik_add($2))
                 ON CONFLICT (sku) DO UPDATE SET {COLUMN} = atomik_accum({TABLE}.{COLUMN}, $2)"
            ),
            &[&sku, &delta],
        )?;
        Ok(())
    }

    fn begin(&mut self) -> Result<()> {
        self.client.batch_execute("BEGIN")?;
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        self.client.batch_execute("COMMIT")?;
        Ok(())
    }

    fn sync_request(&mut self, _now: u64) -> Result<Vec<u8>> {
        Ok(self
            .client
            .query_one("SELECT atomik_sync_request()", &[])?
            .get(0))
    }

    fn serve_sync(&mut self, request: &[u8], _now: u64) -> Result<Vec<u8>> {
        Ok(self
            .client
            .query_one("SELECT atomik_sync($1)", &[&request])?
            .get(0))
    }

    fn finish_sync(&mut self, response: &[u8], _now: u64) -> Result<u64> {
        let n: i64 = self
            .client
            .query_one("SELECT atomik_sync_finish($1)", &[&response])?
            .get(0);
        Ok(n as u64)
    }

    fn values(&mut self) -> Result<Vec<(i64, [u8; 17])>> {
        let rows = self.client.query(
            &format!(
                "SELECT sku, atomik_bytes({COLUMN}) FROM {TABLE} WHERE {COLUMN} IS NOT NULL ORDER BY sku"
            ),
            &[],
        )?;
        rows.iter()
            .map(|r| {
                let bytes: Vec<u8> = r.get(1);
                let fixed: [u8; 17] = bytes.try_into().map_err(|b: Vec<u8>| {
                    anyhow::anyhow!("atomik_bytes returned {} bytes", b.len())
                })?;
                Ok((r.get(0), fixed))
            })
            .collect()
    }

    fn digest(&mut self) -> Result<i64> {
        Ok(self
            .client
            .query_one(&format!("SELECT atomik_digest('{TABLE}', '{COLUMN}')"), &[])?
            .get(0))
    }

    fn site_id(&mut self) -> Result<String> {
        Ok(self
            .client
            .query_one("SELECT atomik_site_id()", &[])?
            .get(0))
    }

    fn log_position(&mut self) -> Result<u64> {
        let p: i64 = self
            .client
            .query_one("SELECT atomik_log_position()", &[])?
            .get(0);
        Ok(p as u64)
    }
}

impl<R: Replica + ?Sized> Replica for Box<R> {
    fn accum(&mut self, sku: i64, delta: i64) -> Result<()> {
        (**self).accum(sku, delta)
    }
    fn begin(&mut self) -> Result<()> {
        (**self).begin()
    }
    fn commit(&mut self) -> Result<()> {
        (**self).commit()
    }
    fn sync_request(&mut self, now: u64) -> Result<Vec<u8>> {
        (**self).sync_request(now)
    }
    fn serve_sync(&mut self, request: &[u8], now: u64) -> Result<Vec<u8>> {
        (**self).serve_sync(request, now)
    }
    fn finish_sync(&mut self, response: &[u8], now: u64) -> Result<u64> {
        (**self).finish_sync(response, now)
    }
    fn values(&mut self) -> Result<Vec<(i64, [u8; 17])>> {
        (**self).values()
    }
    fn digest(&mut self) -> Result<i64> {
        (**self).digest()
    }
    fn site_id(&mut self) -> Result<String> {
        (**self).site_id()
    }
    fn log_position(&mut self) -> Result<u64> {
        (**self).log_position()
    }
}
