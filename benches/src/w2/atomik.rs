//! atomik in W2: every replica a real SQLite database (in memory) with the
//! statically registered extension, syncing with `atomik_sync_request`,
//! `atomik_sync` and `atomik_sync_finish` — the bytes are real messages.

use anyhow::Result;
use rusqlite::Connection;

use super::{Op, SyncSystem};

/// atomik over `sqlite_atomik`: one hub and `clients` devices.
#[derive(Debug)]
pub struct AtomikSystem {
    hub: Connection,
    clients: Vec<Connection>,
}

fn replica() -> Result<Connection> {
    let c = Connection::open_in_memory()?;
    sqlite_atomik::register(&c)?;
    c.execute_batch(
        "CREATE TABLE inventory(sku INTEGER PRIMARY KEY, qty BLOB);
         SELECT atomik_track('inventory', 'qty');",
    )?;
    Ok(c)
}

fn accum(c: &Connection, ops: &[Op]) -> Result<()> {
    c.execute_batch("BEGIN")?;
    {
        let mut st = c.prepare_cached(
            "INSERT INTO inventory(sku, qty) VALUES (?1, atomik_add(?2))
             ON CONFLICT(sku) DO UPDATE SET qty = atomik_accum(qty, ?2)",
        )?;
        for &(sku, d) in ops {
            st.execute([sku, d])?;
        }
    }
    c.execute_batch("COMMIT")?;
    Ok(())
}

fn blob(c: &Connection, sql: &str, arg: Option<&[u8]>) -> Result<Vec<u8>> {
    Ok(match arg {
        Some(a) => c.query_row(sql, [a], |r| r.get(0))?,
        None => c.query_row(sql, [], |r| r.get(0))?,
    })
}

fn values(c: &Connection) -> Result<Vec<i64>> {
    let mut st = c.prepare("SELECT atomik_read(qty) FROM inventory ORDER BY sku")?;
    let rows = st.query_map([], |r| r.get::<_, i64>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl AtomikSystem {
    /// The hub loads the opening stock; every client bootstraps from it
    /// with one (unmeasured) sync.
    ///
    /// # Errors
    /// SQLite or protocol errors.
    pub fn new(clients: usize, opening: &[i64]) -> Result<Self> {
        let hub = replica()?;
        let ops: Vec<Op> = opening
            .iter()
            .enumerate()
            .map(|(s, &v)| (s as i64, v))
            .collect();
        accum(&hub, &ops)?;
        let mut sys = AtomikSystem {
            hub,
            clients: (0..clients).map(|_| replica()).collect::<Result<_>>()?,
        };
        for c in 0..clients {
            let u = sys.upload(c)?;
            let d = sys.hub_receive(c, &u)?;
            sys.client_receive(c, &d)?;
        }
        Ok(sys)
    }
}

impl SyncSystem for AtomikSystem {
    fn name(&self) -> &'static str {
        "atomik"
    }

    fn local(&mut self, client: usize, ops: &[Op]) -> Result<()> {
        accum(&self.clients[client], ops)
    }

    fn upload(&mut self, client: usize) -> Result<Vec<u8>> {
        blob(&self.clients[client], "SELECT atomik_sync_request()", None)
    }

    fn hub_receive(&mut self, _client: usize, upload: &[u8]) -> Result<Vec<u8>> {
        blob(&self.hub, "SELECT atomik_sync(?1)", Some(upload))
    }

    fn client_receive(&mut self, client: usize, download: &[u8]) -> Result<()> {
        self.clients[client].query_row("SELECT atomik_sync_finish(?1)", [download], |r| {
            r.get::<_, i64>(0)
        })?;
        Ok(())
    }

    fn hub_values(&mut self) -> Result<Vec<i64>> {
        values(&self.hub)
    }

    fn client_values(&mut self, client: usize) -> Result<Vec<i64>> {
        values(&self.clients[client])
    }
}
