//! SQLite session-extension patchsets in W2 (rusqlite's `session` feature).
//!
//! Every replica holds `inventory(sku INTEGER PRIMARY KEY, qty INTEGER)`.
//! A client records its offline session and uploads the patchset. The hub
//! applies it (conflicts: replace) while recording its own session, and
//! logs the patchset of what that changed at the hub; a download is the
//! combination (`Changegroup`) of every hub patchset since the client's
//! previous download. A patchset carries new row values, not deltas: this
//! is how the session extension replicates, and it is measured as is.

use anyhow::Result;
use rusqlite::session::{Changegroup, ConflictAction, ConflictType, Session};
use rusqlite::Connection;

use super::{Op, SyncSystem};

#[derive(Debug)]
struct Client {
    conn: Connection,
    outbox: Vec<u8>,
    /// Index in the hub log of the client's next download.
    next_log: usize,
}

/// SQLite session patchsets.
#[derive(Debug)]
pub struct SessionSystem {
    hub: Connection,
    clients: Vec<Client>,
    log: Vec<Vec<u8>>,
}

fn replica(opening: &[i64]) -> Result<Connection> {
    let c = Connection::open_in_memory()?;
    c.execute_batch(
        "CREATE TABLE inventory(sku INTEGER PRIMARY KEY, qty INTEGER NOT NULL); BEGIN;",
    )?;
    {
        let mut st = c.prepare("INSERT INTO inventory(sku, qty) VALUES (?1, ?2)")?;
        for (sku, &v) in opening.iter().enumerate() {
            st.execute([sku as i64, v])?;
        }
    }
    c.execute_batch("COMMIT")?;
    Ok(c)
}

/// Run `ops` as `UPDATE ... qty = qty + d` under a session; the patchset.
pub(crate) fn recorded_updates(c: &Connection, ops: &[Op]) -> Result<Vec<u8>> {
    let mut s = Session::new(c)?;
    s.attach(None::<&str>)?;
    c.execute_batch("BEGIN")?;
    {
        let mut st = c.prepare_cached("UPDATE inventory SET qty = qty + ?2 WHERE sku = ?1")?;
        for &(sku, d) in ops {
            st.execute([sku, d])?;
        }
    }
    c.execute_batch("COMMIT")?;
    let mut out = vec![];
    s.patchset_strm(&mut out)?;
    Ok(out)
}

/// Apply a patchset; a conflicting row is replaced, a missing one skipped.
pub(crate) fn apply(c: &Connection, patchset: &[u8]) -> Result<()> {
    if patchset.is_empty() {
        return Ok(());
    }
    c.apply_strm(
        &mut &patchset[..],
        None::<fn(&str) -> bool>,
        |kind, _item| match kind {
            ConflictType::SQLITE_CHANGESET_DATA | ConflictType::SQLITE_CHANGESET_CONFLICT => {
                ConflictAction::SQLITE_CHANGESET_REPLACE
            }
            _ => ConflictAction::SQLITE_CHANGESET_OMIT,
        },
    )?;
    Ok(())
}

fn combine(parts: &[Vec<u8>]) -> Result<Vec<u8>> {
    let mut g = Changegroup::new()?;
    for p in parts.iter().filter(|p| !p.is_empty()) {
        g.add_stream(&mut &p[..])?;
    }
    let mut out = vec![];
    g.output_strm(&mut out)?;
    Ok(out)
}

fn values(c: &Connection) -> Result<Vec<i64>> {
    let mut st = c.prepare("SELECT qty FROM inventory ORDER BY sku")?;
    let rows = st.query_map([], |r| r.get::<_, i64>(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl SessionSystem {
    /// Every replica starts with the opening stock.
    ///
    /// # Errors
    /// SQLite errors.
    pub fn new(clients: usize, opening: &[i64]) -> Result<Self> {
        Ok(SessionSystem {
            hub: replica(opening)?,
            clients: (0..clients)
                .map(|_| {
                    Ok(Client {
                        conn: replica(opening)?,
                        outbox: vec![],
                        next_log: 0,
                    })
                })
                .collect::<Result<_>>()?,
            log: vec![],
        })
    }
}

impl SyncSystem for SessionSystem {
    fn name(&self) -> &'static str {
        "sqlite-session"
    }

    fn local(&mut self, client: usize, ops: &[Op]) -> Result<()> {
        let c = &mut self.clients[client];
        let p = recorded_updates(&c.conn, ops)?;
        c.outbox = combine(&[std::mem::take(&mut c.outbox), p])?;
        Ok(())
    }

    fn upload(&mut self, client: usize) -> Result<Vec<u8>> {
        Ok(std::mem::take(&mut self.clients[client].outbox))
    }

    fn hub_receive(&mut self, client: usize, upload: &[u8]) -> Result<Vec<u8>> {
        let mut entry = vec![];
        {
            let mut s = Session::new(&self.hub)?;
            s.attach(None::<&str>)?;
            apply(&self.hub, upload)?;
            s.patchset_strm(&mut entry)?;
        }
        self.log.push(entry);
        let c = &mut self.clients[client];
        let down = combine(&self.log[c.next_log..])?;
        c.next_log = self.log.len();
        Ok(down)
    }

    fn client_receive(&mut self, client: usize, download: &[u8]) -> Result<()> {
        apply(&self.clients[client].conn, download)
    }

    fn hub_values(&mut self) -> Result<Vec<i64>> {
        values(&self.hub)
    }

    fn client_values(&mut self, client: usize) -> Result<Vec<i64>> {
        values(&self.clients[client].conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same patchset applied twice, with another client's update in
    /// between (a duplicate delivered late), rolls the value back: the
    /// patchset carries the row's new value, not the delta.
    #[test]
    fn late_duplicate_patchset_rolls_back() {
        let hub = replica(&[100]).unwrap();
        let a = replica(&[100]).unwrap();
        let b = replica(&[100]).unwrap();
        let pa = recorded_updates(&a, &[(0, -3)]).unwrap();
        let pb = recorded_updates(&b, &[(0, -5)]).unwrap();
        apply(&hub, &pa).unwrap();
        assert_eq!(values(&hub).unwrap(), [97]);
        apply(&hub, &pb).unwrap();
        // Exact sum would be 92; last writer wins.
        assert_eq!(values(&hub).unwrap(), [95]);
        apply(&hub, &pa).unwrap();
        assert_eq!(values(&hub).unwrap(), [97]);
    }
}
