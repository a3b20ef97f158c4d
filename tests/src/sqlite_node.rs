//! A replica in an SQLite file, with atomik registered statically, as a
//! Rust app would use it.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::node::{fixed17, Node, Row};
use crate::schema::{self, Delta};

/// An SQLite replica.
#[derive(Debug)]
pub struct SqliteNode {
    conn: Connection,
}

impl SqliteNode {
    /// Open (or create) the replica at `path` with the W4 schema.
    /// `synchronous = OFF`: the tests kill processes, they do not cut
    /// power, and the journal keeps every transaction atomic either way.
    ///
    /// # Errors
    /// SQLite errors, with the path named.
    pub fn open(path: &Path) -> Result<Self> {
        let conn =
            Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        sqlite_atomik::register(&conn)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;")?;
        conn.execute_batch(schema::SQLITE_SCHEMA)
            .with_context(|| format!("cannot set up {}", path.display()))?;
        Ok(SqliteNode { conn })
    }

    /// Whether the write with ledger id `id` committed.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn has_written(&self, id: u64) -> Result<bool> {
        let n: i64 = self.conn.query_row(
            "SELECT count(*) FROM ledger WHERE id = ?1",
            [id as i64],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    fn blob(&self, sql: &str, arg: &[u8]) -> Result<Vec<u8>> {
        Ok(self.conn.query_row(sql, [arg], |r| r.get(0))?)
    }
}

impl Node for SqliteNode {
    fn write(&mut self, id: u64, deltas: &[Delta]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for d in deltas {
            tx.prepare_cached(&schema::upsert_sql(d.column, '?'))?
                .execute(rusqlite::params![d.key, d.delta as i64])?;
        }
        tx.execute("INSERT INTO ledger (id) VALUES (?1)", [id as i64])?;
        tx.commit()?;
        Ok(())
    }

    fn make_relay(&mut self) -> Result<()> {
        self.conn
            .query_row("SELECT atomik_make_relay()", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }

    fn sync_request(&mut self) -> Result<Vec<u8>> {
        Ok(self
            .conn
            .query_row("SELECT atomik_sync_request()", [], |r| r.get(0))?)
    }

    fn serve_sync(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        self.blob("SELECT atomik_sync(?1)", request)
    }

    fn finish_sync(&mut self, response: &[u8]) -> Result<u64> {
        let n: i64 = self
            .conn
            .query_row("SELECT atomik_sync_finish(?1)", [response], |r| r.get(0))?;
        Ok(n as u64)
    }

    fn rows(&mut self) -> Result<Vec<Row>> {
        rows_of(&self.conn)
    }

    fn digests(&mut self) -> Result<(i64, i64)> {
        Ok(self
            .conn
            .query_row(schema::DIGESTS_SQL, [], |r| Ok((r.get(0)?, r.get(1)?)))?)
    }

    fn parked(&mut self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM atomik_parked", [], |r| r.get(0))?)
    }
}

/// Every row of the cross-engine table in a SQLite database, in key order.
///
/// # Errors
/// SQLite errors; a cell that is not a 17-byte value.
pub fn rows_of(conn: &rusqlite::Connection) -> Result<Vec<Row>> {
    let mut stmt = conn.prepare(schema::ROWS_SQL)?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Vec<u8>>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    rows.map(|row| {
        let (k, n, f) = row?;
        Ok((k, fixed17(n)?, fixed17(f)?))
    })
    .collect()
}
