//! The replica's bookkeeping: site id, relay flag, vectors, batch store,
//! peers and settings — and the [`Store`] impl that joins them with the
//! cell operations of [`super::cells`].

use atomik_core::codec::{decode, encode, Batch, Message, VectorMessage};
use atomik_core::error::Result;
use atomik_core::store::{Peer, PeerRole, Store, TrackedColumn};
use atomik_core::{Changes, ProtocolError, SiteId, VersionVector};
use rusqlite::{params, OptionalExtension};

use super::{se, SqliteStore};

fn site_from(bytes: &[u8], table: &str) -> Result<SiteId> {
    SiteId::from_slice(bytes).ok_or_else(|| {
        ProtocolError::Store(format!(
            "{table} holds a site id of {} bytes, not 16",
            bytes.len()
        ))
    })
}

fn role_name(role: PeerRole) -> &'static str {
    match role {
        PeerRole::Downstream => "downstream",
        PeerRole::Upstream => "upstream",
    }
}

impl SqliteStore<'_> {
    fn read_vector(&mut self, table: &str) -> Result<VersionVector> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT site, seq FROM {table}"))
            .map_err(se)?;
        let rows: Vec<(Vec<u8>, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(se)?;
        let mut v = VersionVector::new();
        for (site, seq) in rows {
            v.set(site_from(&site, table)?, seq as u64);
        }
        Ok(v)
    }

    fn write_entry(&mut self, table: &str, site: SiteId, seq: u64) -> Result<()> {
        if seq == 0 {
            self.conn
                .prepare_cached(&format!("DELETE FROM {table} WHERE site = ?1"))
                .and_then(|mut s| s.execute([site.as_bytes().as_slice()]))
                .map_err(se)?;
        } else {
            self.conn
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO {table}(site, seq) VALUES (?1, ?2)"
                ))
                .and_then(|mut s| s.execute(params![site.as_bytes().as_slice(), seq as i64]))
                .map_err(se)?;
        }
        Ok(())
    }

    fn meta(&mut self, key: &str) -> Result<Option<rusqlite::types::Value>> {
        self.conn
            .prepare_cached("SELECT value FROM atomik_meta WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(se)
    }
}

impl Store for SqliteStore<'_> {
    fn site_id(&mut self) -> Result<SiteId> {
        if let Some(s) = self.site {
            return Ok(s);
        }
        let site = match self.meta("site_id")? {
            Some(rusqlite::types::Value::Blob(b)) => site_from(&b, "atomik_meta")?,
            _ => {
                return Err(ProtocolError::Store(
                    "atomik_meta has no site_id".to_string(),
                ))
            }
        };
        self.site = Some(site);
        Ok(site)
    }

    fn is_relay(&mut self) -> Result<bool> {
        Ok(matches!(
            self.meta("relay")?,
            Some(rusqlite::types::Value::Integer(1))
        ))
    }

    fn set_relay(&mut self, relay: bool) -> Result<()> {
        self.conn
            .prepare_cached("INSERT OR REPLACE INTO atomik_meta(key, value) VALUES ('relay', ?1)")
            .and_then(|mut s| s.execute([i64::from(relay)]))
            .map_err(se)?;
        Ok(())
    }

    fn vector(&mut self) -> Result<VersionVector> {
        self.read_vector("atomik_vector")
    }

    fn set_vector_entry(&mut self, site: SiteId, seq: u64) -> Result<()> {
        self.write_entry("atomik_vector", site, seq)
    }

    fn replace_vector(&mut self, vector: &VersionVector) -> Result<()> {
        self.conn
            .execute("DELETE FROM atomik_vector", [])
            .map_err(se)?;
        for (site, seq) in vector.iter() {
            self.write_entry("atomik_vector", site, seq)?;
        }
        Ok(())
    }

    fn folded(&mut self) -> Result<VersionVector> {
        self.read_vector("atomik_folded")
    }

    fn set_folded_entry(&mut self, site: SiteId, seq: u64) -> Result<()> {
        self.write_entry("atomik_folded", site, seq)
    }

    fn tracked(&mut self) -> Result<Vec<TrackedColumn>> {
        Ok(self.tracked_cols()?.iter().map(|t| t.as_core()).collect())
    }

    fn take_pending(&mut self) -> Result<Changes> {
        self.seal_cells()
    }

    fn receive(&mut self, changes: &Changes) -> Result<u64> {
        self.receive_cells(changes)
    }

    fn references(&mut self) -> Result<Changes> {
        self.reference_cells()
    }

    fn install_references(&mut self, values: &Changes) -> Result<()> {
        self.install_cells(values)
    }

    fn store_batch(&mut self, batch: &Batch) -> Result<()> {
        let bytes = encode(&Message::Batch(batch.clone()));
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO atomik_batches(origin, seq, bytes) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    batch.origin.as_bytes().as_slice(),
                    batch.seq as i64,
                    bytes
                ])
            })
            .map_err(se)?;
        Ok(())
    }

    fn stored_batches(
        &mut self,
        after: &VersionVector,
        exclude: Option<SiteId>,
    ) -> Result<Vec<Batch>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT origin, seq, bytes FROM atomik_batches ORDER BY origin, seq")
            .map_err(se)?;
        let mut rows = stmt.query([]).map_err(se)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(se)? {
            let origin = site_from(
                row.get_ref(0).and_then(|v| Ok(v.as_blob()?)).map_err(se)?,
                "atomik_batches",
            )?;
            let seq = row.get::<_, i64>(1).map_err(se)? as u64;
            if Some(origin) == exclude || seq <= after.get(&origin) {
                continue;
            }
            let bytes = row.get_ref(2).and_then(|v| Ok(v.as_blob()?)).map_err(se)?;
            match decode(bytes) {
                Ok(Message::Batch(b)) if b.origin == origin && b.seq == seq => out.push(b),
                Ok(_) => {
                    return Err(ProtocolError::Store(format!(
                        "atomik_batches row ({origin}, {seq}) does not hold that batch"
                    )))
                }
                Err(e) => {
                    return Err(ProtocolError::Store(format!(
                        "atomik_batches row ({origin}, {seq}) is damaged: {e}"
                    )))
                }
            }
        }
        Ok(out)
    }

    fn stored_heads(&mut self) -> Result<VersionVector> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT origin, max(seq) FROM atomik_batches GROUP BY origin")
            .map_err(se)?;
        let rows: Vec<(Vec<u8>, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(se)?;
        let mut v = VersionVector::new();
        for (site, seq) in rows {
            v.set(site_from(&site, "atomik_batches")?, seq as u64);
        }
        Ok(v)
    }

    fn has_batch(&mut self, origin: SiteId, seq: u64) -> Result<bool> {
        self.conn
            .prepare_cached(
                "SELECT EXISTS(SELECT 1 FROM atomik_batches WHERE origin = ?1 AND seq = ?2)",
            )
            .and_then(|mut s| {
                s.query_row(params![origin.as_bytes().as_slice(), seq as i64], |r| {
                    r.get(0)
                })
            })
            .map_err(se)
    }

    fn drop_batches_through(&mut self, origin: SiteId, through: u64) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM atomik_batches WHERE origin = ?1 AND seq <= ?2")
            .and_then(|mut s| s.execute(params![origin.as_bytes().as_slice(), through as i64]))
            .map_err(se)?;
        Ok(())
    }

    fn peers(&mut self) -> Result<Vec<Peer>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT site, role, vector, last_seen FROM atomik_peers ORDER BY site, role",
            )
            .map_err(se)?;
        let rows: Vec<(Vec<u8>, String, Vec<u8>, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .and_then(Iterator::collect)
            .map_err(se)?;
        rows.into_iter()
            .map(|(site, role, vector, last_seen)| {
                let site = site_from(&site, "atomik_peers")?;
                let role = match role.as_str() {
                    "downstream" => PeerRole::Downstream,
                    "upstream" => PeerRole::Upstream,
                    other => {
                        return Err(ProtocolError::Store(format!(
                            "atomik_peers holds an unknown role \"{other}\""
                        )))
                    }
                };
                let vector = match decode(&vector) {
                    Ok(Message::Vector(v)) => v.vector,
                    _ => {
                        return Err(ProtocolError::Store(format!(
                            "atomik_peers holds a damaged vector for {site}"
                        )))
                    }
                };
                Ok(Peer {
                    site,
                    role,
                    vector,
                    last_seen: last_seen as u64,
                })
            })
            .collect()
    }

    fn put_peer(&mut self, peer: &Peer) -> Result<()> {
        let vector = encode(&Message::Vector(VectorMessage {
            site: peer.site,
            vector: peer.vector.clone(),
        }));
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO atomik_peers(site, role, vector, last_seen) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    peer.site.as_bytes().as_slice(),
                    role_name(peer.role),
                    vector,
                    peer.last_seen as i64
                ])
            })
            .map_err(se)?;
        Ok(())
    }

    fn remove_peer(&mut self, site: SiteId, role: PeerRole) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM atomik_peers WHERE site = ?1 AND role = ?2")
            .and_then(|mut s| s.execute(params![site.as_bytes().as_slice(), role_name(role)]))
            .map_err(se)?;
        Ok(())
    }

    fn setting(&mut self, name: &str) -> Result<Option<u64>> {
        self.conn
            .prepare_cached("SELECT value FROM atomik_settings WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get::<_, i64>(0)).optional())
            .map(|v| v.map(|v| v as u64))
            .map_err(se)
    }

    fn set_setting(&mut self, name: &str, value: Option<u64>) -> Result<()> {
        match value {
            Some(v) => self
                .conn
                .prepare_cached(
                    "INSERT OR REPLACE INTO atomik_settings(name, value) VALUES (?1, ?2)",
                )
                .and_then(|mut s| s.execute(params![name, v as i64])),
            None => self
                .conn
                .prepare_cached("DELETE FROM atomik_settings WHERE name = ?1")
                .and_then(|mut s| s.execute([name])),
        }
        .map_err(se)?;
        Ok(())
    }
}
