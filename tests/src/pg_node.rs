//! A replica in a PostgreSQL database with `CREATE EXTENSION pg_atomik`.

use anyhow::{Context, Result};
use postgres::{Client, NoTls};

use crate::node::{fixed17, Node, Row};
use crate::schema::{self, Column, Delta};

/// A PostgreSQL replica.
pub struct PgNode {
    client: Client,
    deferred: bool,
}

impl std::fmt::Debug for PgNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PgNode")
    }
}

/// Where the test cluster is: a Unix socket directory and a port, from
/// `ATOMIK_PG_HOST` and `ATOMIK_PG_PORT` (set by `tests/cross-engine.sh`).
#[derive(Debug, Clone)]
pub struct PgCluster {
    /// Socket directory (or host name).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl PgCluster {
    /// The cluster named by the environment, if any.
    ///
    /// # Errors
    /// A port that is not a number.
    pub fn from_env() -> Result<Option<Self>> {
        let Ok(host) = std::env::var("ATOMIK_PG_HOST") else {
            return Ok(None);
        };
        let port = std::env::var("ATOMIK_PG_PORT")
            .unwrap_or_else(|_| "5432".into())
            .parse()
            .context("ATOMIK_PG_PORT must be a port number")?;
        Ok(Some(PgCluster { host, port }))
    }

    /// A `postgres://` URL of database `db` (the form `atomik serve` takes).
    pub fn url(&self, db: &str) -> String {
        let host: String = self
            .host
            .bytes()
            .map(|b| match b {
                b'/' => "%2F".to_string(),
                _ => (b as char).to_string(),
            })
            .collect();
        format!("postgresql://postgres@{host}:{}/{db}", self.port)
    }

    /// Create database `db` if it does not exist, and give it a fresh
    /// pg_atomik (new site id, no replication state) and the W4 schema.
    ///
    /// # Errors
    /// SQL errors, e.g. pg_atomik is not installed.
    pub fn reset_database(&self, db: &str) -> Result<()> {
        let mut admin = Client::connect(&self.url("postgres"), NoTls)
            .with_context(|| format!("cannot connect to {}", self.url("postgres")))?;
        let exists = !admin
            .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&db])?
            .is_empty();
        if !exists {
            admin.batch_execute(&format!("CREATE DATABASE {db}"))?;
        }
        let mut c = Client::connect(&self.url(db), NoTls)?;
        c.batch_execute(&format!(
            "SET client_min_messages = warning;
             DROP TABLE IF EXISTS cells, ledger;
             DROP EXTENSION IF EXISTS pg_atomik CASCADE;
             CREATE EXTENSION pg_atomik;
             {}",
            schema::PG_SCHEMA
        ))
        .with_context(|| {
            format!(
                "cannot create pg_atomik in {db} (is it installed? pg_atomik/test.sh installs it)"
            )
        })?;
        Ok(())
    }
}

impl PgNode {
    /// Connect to database `db` of `cluster`.
    ///
    /// # Errors
    /// Connection errors.
    pub fn connect(cluster: &PgCluster, db: &str) -> Result<Self> {
        let url = cluster.url(db);
        let client =
            Client::connect(&url, NoTls).with_context(|| format!("cannot connect to {url}"))?;
        Ok(PgNode {
            client,
            deferred: false,
        })
    }

    /// Write through pg_atomik's lock-free deferred path: every delta to a
    /// cell whose row exists goes through `atomik_defer` (folded into the
    /// row by the next seal, sync or fold) instead of an `UPDATE`.
    pub fn with_deferred_writes(mut self) -> Self {
        self.deferred = true;
        self
    }

    /// The underlying client, for statements the trait does not cover.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Node for PgNode {
    fn write(&mut self, id: u64, deltas: &[Delta]) -> Result<()> {
        let mut tx = self.client.transaction()?;
        let n = tx.prepare(&schema::upsert_sql(Column::N, '$'))?;
        let f = tx.prepare(&schema::upsert_sql(Column::F, '$'))?;
        let exists = tx.prepare("SELECT 1 FROM cells WHERE id = $1")?;
        let defer = tx.prepare("SELECT atomik_defer('cells', $1, $2::bigint, $3::bigint)")?;
        for d in deltas {
            let delta = d.delta as i64;
            if self.deferred && !tx.query(&exists, &[&d.key])?.is_empty() {
                tx.query(&defer, &[&d.column.name(), &d.key, &delta])?;
                continue;
            }
            let stmt = if d.column == Column::N { &n } else { &f };
            tx.execute(stmt, &[&d.key, &delta])?;
        }
        tx.execute("INSERT INTO ledger (id) VALUES ($1)", &[&(id as i64)])?;
        tx.commit()?;
        Ok(())
    }

    fn make_relay(&mut self) -> Result<()> {
        self.client.query_one("SELECT atomik_make_relay()", &[])?;
        Ok(())
    }

    fn sync_request(&mut self) -> Result<Vec<u8>> {
        Ok(self
            .client
            .query_one("SELECT atomik_sync_request()", &[])?
            .get(0))
    }

    fn serve_sync(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        Ok(self
            .client
            .query_one("SELECT atomik_sync($1)", &[&request])?
            .get(0))
    }

    fn finish_sync(&mut self, response: &[u8]) -> Result<u64> {
        let n: i64 = self
            .client
            .query_one("SELECT atomik_sync_finish($1)", &[&response])?
            .get(0);
        Ok(n as u64)
    }

    fn rows(&mut self) -> Result<Vec<Row>> {
        self.client
            .query(schema::ROWS_SQL, &[])?
            .into_iter()
            .map(|r| Ok((r.get(0), fixed17(r.get(1))?, fixed17(r.get(2))?)))
            .collect()
    }

    fn digests(&mut self) -> Result<(i64, i64)> {
        let r = self.client.query_one(schema::DIGESTS_SQL, &[])?;
        Ok((r.get(0), r.get(1)))
    }

    fn parked(&mut self) -> Result<i64> {
        Ok(self
            .client
            .query_one("SELECT count(*) FROM atomik.parked", &[])?
            .get(0))
    }
}
