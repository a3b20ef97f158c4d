//! The replica's own state tables: identity, vectors, batch store, peers
//! and settings (schema `atomik`, see `state_tables.sql`).

use atomik_core::codec::{decode, encode, Message, VectorMessage};
use atomik_core::error::Result;
use atomik_core::store::{Peer, PeerRole};
use atomik_core::{Batch, ProtocolError, SiteId, VersionVector};
use pgrx::datum::DatumWithOid;

use super::spi::{exec, get, rows, to_i64, to_u64};

fn site_of(bytes: &[u8]) -> Result<SiteId> {
    SiteId::from_slice(bytes).ok_or_else(|| {
        ProtocolError::store(format!("stored site id has {} bytes, not 16", bytes.len()))
    })
}

fn site_arg(site: SiteId) -> DatumWithOid<'static> {
    DatumWithOid::from(site.as_bytes().to_vec())
}

/// This replica's site id, created (from the operating system's random
/// generator) on first use.
pub fn site_id() -> Result<SiteId> {
    let existing = rows("SELECT site_id FROM atomik.meta", &[], |r| {
        get::<Vec<u8>>(r, 1)
    })?;
    if let Some(bytes) = existing.first() {
        return site_of(bytes);
    }
    let fresh = SiteId::random().map_err(ProtocolError::store)?;
    exec(
        "INSERT INTO atomik.meta (site_id) VALUES ($1) ON CONFLICT DO NOTHING",
        &[site_arg(fresh)],
    )?;
    let bytes = rows("SELECT site_id FROM atomik.meta", &[], |r| {
        get::<Vec<u8>>(r, 1)
    })?;
    site_of(
        bytes
            .first()
            .ok_or_else(|| ProtocolError::store("atomik.meta is empty"))?,
    )
}

/// Whether this replica relays (has served a sync).
pub fn is_relay() -> Result<bool> {
    site_id()?;
    Ok(
        rows("SELECT relay FROM atomik.meta", &[], |r| get::<bool>(r, 1))?
            .first()
            .copied()
            .unwrap_or(false),
    )
}

/// Mark this replica as a relay (or not).
pub fn set_relay(relay: bool) -> Result<()> {
    site_id()?;
    exec(
        "UPDATE atomik.meta SET relay = $1",
        &[DatumWithOid::from(relay)],
    )?;
    Ok(())
}

/// Read a vector table (`atomik.vector` or `atomik.folded`).
pub fn read_vector(table: VectorTable) -> Result<VersionVector> {
    let sql = format!("SELECT site, seq FROM {}", table.name());
    let entries = rows(&sql, &[], |r| {
        Ok((
            site_of(&get::<Vec<u8>>(r, 1)?)?,
            to_u64(get::<i64>(r, 2)?, "seq")?,
        ))
    })?;
    Ok(entries.into_iter().collect())
}

/// Set one entry of a vector table (0 removes it).
pub fn set_entry(table: VectorTable, site: SiteId, seq: u64) -> Result<()> {
    if seq == 0 {
        let sql = format!("DELETE FROM {} WHERE site = $1", table.name());
        exec(&sql, &[site_arg(site)])?;
    } else {
        let sql = format!(
            "INSERT INTO {} (site, seq) VALUES ($1, $2)
             ON CONFLICT (site) DO UPDATE SET seq = EXCLUDED.seq",
            table.name()
        );
        exec(
            &sql,
            &[site_arg(site), DatumWithOid::from(to_i64(seq, "seq")?)],
        )?;
    }
    Ok(())
}

/// Replace a whole vector table.
pub fn replace_vector(table: VectorTable, vector: &VersionVector) -> Result<()> {
    exec(&format!("DELETE FROM {}", table.name()), &[])?;
    for (site, seq) in vector.iter() {
        set_entry(table, site, seq)?;
    }
    Ok(())
}

/// The two vector tables.
#[derive(Debug, Clone, Copy)]
pub enum VectorTable {
    /// `atomik.vector`: highest seq applied per origin.
    Applied,
    /// `atomik.folded`: highest seq no longer stored per origin.
    Folded,
}

impl VectorTable {
    fn name(self) -> &'static str {
        match self {
            VectorTable::Applied => "atomik.vector",
            VectorTable::Folded => "atomik.folded",
        }
    }
}

/// Keep a batch, encoded with the wire codec.
pub fn store_batch(batch: &Batch) -> Result<()> {
    let bytes = encode(&Message::Batch(batch.clone()));
    exec(
        "INSERT INTO atomik.batches (origin, seq, bytes) VALUES ($1, $2, $3)
         ON CONFLICT (origin, seq) DO UPDATE SET bytes = EXCLUDED.bytes",
        &[
            site_arg(batch.origin),
            DatumWithOid::from(to_i64(batch.seq, "seq")?),
            DatumWithOid::from(bytes),
        ],
    )?;
    Ok(())
}

/// Stored batches after `after`, excluding `exclude`'s, in (origin, seq) order.
pub fn stored_batches(after: &VersionVector, exclude: Option<SiteId>) -> Result<Vec<Batch>> {
    let sites: Vec<Vec<u8>> = after.iter().map(|(s, _)| s.as_bytes().to_vec()).collect();
    let seqs = after
        .iter()
        .map(|(_, n)| to_i64(n, "seq"))
        .collect::<Result<Vec<_>>>()?;
    let exclude = exclude.map(|s| s.as_bytes().to_vec());
    rows(
        "SELECT b.bytes
           FROM atomik.batches b
           LEFT JOIN unnest($1::bytea[], $2::bigint[]) AS v(site, seq) ON v.site = b.origin
          WHERE b.seq > coalesce(v.seq, 0)
            AND ($3::bytea IS NULL OR b.origin <> $3::bytea)
          ORDER BY b.origin, b.seq",
        &[
            DatumWithOid::from(sites),
            DatumWithOid::from(seqs),
            match exclude {
                Some(e) => DatumWithOid::from(e),
                None => DatumWithOid::null::<Vec<u8>>(),
            },
        ],
        |r| match decode(&get::<Vec<u8>>(r, 1)?)? {
            Message::Batch(b) => Ok(b),
            other => Err(ProtocolError::store(format!(
                "atomik.batches holds a {} message",
                other.kind().name()
            ))),
        },
    )
}

/// Per origin, the highest stored seq.
pub fn stored_heads() -> Result<VersionVector> {
    let entries = rows(
        "SELECT origin, max(seq) FROM atomik.batches GROUP BY origin",
        &[],
        |r| {
            Ok((
                site_of(&get::<Vec<u8>>(r, 1)?)?,
                to_u64(get::<i64>(r, 2)?, "seq")?,
            ))
        },
    )?;
    Ok(entries.into_iter().collect())
}

/// True when `(origin, seq)` is in the batch store.
pub fn has_batch(origin: SiteId, seq: u64) -> Result<bool> {
    let found = rows(
        "SELECT 1 FROM atomik.batches WHERE origin = $1 AND seq = $2",
        &[site_arg(origin), DatumWithOid::from(to_i64(seq, "seq")?)],
        |_| Ok(()),
    )?;
    Ok(!found.is_empty())
}

/// Delete stored batches of `origin` through `through`.
pub fn drop_batches_through(origin: SiteId, through: u64) -> Result<()> {
    exec(
        "DELETE FROM atomik.batches WHERE origin = $1 AND seq <= $2",
        &[
            site_arg(origin),
            DatumWithOid::from(to_i64(through, "seq")?),
        ],
    )?;
    Ok(())
}

fn role_name(role: PeerRole) -> &'static str {
    match role {
        PeerRole::Downstream => "downstream",
        PeerRole::Upstream => "upstream",
    }
}

/// The registered peers.
pub fn peers() -> Result<Vec<Peer>> {
    rows(
        "SELECT site, role, vector, last_seen FROM atomik.peers ORDER BY site, role",
        &[],
        |r| {
            let site = site_of(&get::<Vec<u8>>(r, 1)?)?;
            let role = match get::<String>(r, 2)?.as_str() {
                "downstream" => PeerRole::Downstream,
                _ => PeerRole::Upstream,
            };
            let vector = match decode(&get::<Vec<u8>>(r, 3)?)? {
                Message::Vector(v) => v.vector,
                other => {
                    return Err(ProtocolError::store(format!(
                        "atomik.peers holds a {} message",
                        other.kind().name()
                    )))
                }
            };
            Ok(Peer {
                site,
                role,
                vector,
                last_seen: to_u64(get::<i64>(r, 4)?, "last_seen")?,
            })
        },
    )
}

/// Register or update a peer.
pub fn put_peer(peer: &Peer) -> Result<()> {
    let vector = encode(&Message::Vector(VectorMessage {
        site: peer.site,
        vector: peer.vector.clone(),
    }));
    exec(
        "INSERT INTO atomik.peers (site, role, vector, last_seen) VALUES ($1, $2, $3, $4)
         ON CONFLICT (site, role) DO UPDATE SET vector = EXCLUDED.vector, last_seen = EXCLUDED.last_seen",
        &[
            site_arg(peer.site),
            DatumWithOid::from(role_name(peer.role)),
            DatumWithOid::from(vector),
            DatumWithOid::from(to_i64(peer.last_seen, "last_seen")?),
        ],
    )?;
    Ok(())
}

/// Unregister a peer.
pub fn remove_peer(site: SiteId, role: PeerRole) -> Result<()> {
    exec(
        "DELETE FROM atomik.peers WHERE site = $1 AND role = $2",
        &[site_arg(site), DatumWithOid::from(role_name(role))],
    )?;
    Ok(())
}

/// A numeric setting.
pub fn setting(name: &str) -> Result<Option<u64>> {
    let v = rows(
        "SELECT value FROM atomik.settings WHERE name = $1",
        &[DatumWithOid::from(name)],
        |r| get::<i64>(r, 1),
    )?;
    v.first().map(|v| to_u64(*v, name)).transpose()
}

/// Set or clear a numeric setting.
pub fn set_setting(name: &str, value: Option<u64>) -> Result<()> {
    match value {
        Some(v) => exec(
            "INSERT INTO atomik.settings (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
            &[
                DatumWithOid::from(name),
                DatumWithOid::from(to_i64(v, name)?),
            ],
        )?,
        None => exec(
            "DELETE FROM atomik.settings WHERE name = $1",
            &[DatumWithOid::from(name)],
        )?,
    };
    Ok(())
}
