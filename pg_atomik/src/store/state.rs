//! The replica's identity and settings (schema `atomik`, see
//! `state_tables.sql`), and the byte form of stored batches.

use atomik_core::codec::{decode, encode, Message};
use atomik_core::error::Result;
use atomik_core::{Batch, ProtocolError, SiteId};
use pgrx::datum::DatumWithOid;

use super::spi::{exec, get, rows, to_i64, to_u64};

/// A site id from its stored 16 bytes.
pub fn site_of(bytes: &[u8]) -> Result<SiteId> {
    SiteId::from_slice(bytes).ok_or_else(|| {
        ProtocolError::store(format!("stored site id has {} bytes, not 16", bytes.len()))
    })
}

/// A site id as a `bytea` argument.
pub fn site_arg(site: SiteId) -> DatumWithOid<'static> {
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

/// A batch as the outbox and the log store it: encoded with the wire
/// codec as a version 1 batch message (origin, seq and changes), as
/// `atomik.batches` did in 0.2.0.
pub fn batch_bytes(batch: &Batch) -> Vec<u8> {
    encode(&Message::Batch(batch.clone()))
}

/// A stored batch back from its bytes; `table` names the table it was read
/// from for the error when the bytes are not a batch.
pub fn batch_of(bytes: &[u8], table: &str) -> Result<Batch> {
    match decode(bytes)? {
        Message::Batch(b) => Ok(b),
        other => Err(ProtocolError::store(format!(
            "{table} holds a {} message, not a batch",
            other.kind().name()
        ))),
    }
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

/// Every numeric setting (a dozen rows at most), in one statement.
pub fn all_settings() -> Result<Vec<(String, u64)>> {
    rows("SELECT name, value FROM atomik.settings", &[], |r| {
        let name: String = get(r, 1)?;
        let value = to_u64(get::<i64>(r, 2)?, &name)?;
        Ok((name, value))
    })
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

/// Lock a numeric setting's row until the end of the transaction
/// (creating it at 0) and return its value as of the lock.
pub fn lock_setting(name: &str) -> Result<u64> {
    exec(
        "INSERT INTO atomik.settings (name, value) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
        &[DatumWithOid::from(name)],
    )?;
    let v = rows(
        "SELECT value FROM atomik.settings WHERE name = $1 FOR UPDATE",
        &[DatumWithOid::from(name)],
        |r| get::<i64>(r, 1),
    )?;
    to_u64(v.first().copied().unwrap_or(0), name)
}
