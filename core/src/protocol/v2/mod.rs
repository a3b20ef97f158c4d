//! Protocol v2: a sync costs its changes, not the size of the fleet.
//!
//! A hub numbers every batch it applies in its own **log**. A replica
//! downstream of it holds one **cursor** (the hub, a position) and its
//! **outbox** (sealed batches the hub has not acknowledged). A leaf's sync
//! states its site, its cursor and its outbox — no vector — and gets back
//! the group-sum of the log after its cursor less its own entries: exact,
//! because `add` and `xor` are groups. A hub keeps exactly-once per origin
//! in its **registry** (storage, never traffic). A replica whose cursor is
//! missing, names another hub, or is older than the retained log gets a
//! snapshot and re-applies its unacknowledged outbox on top.
//!
//! Relays (hubs that sync to an upstream hub) upload their outbox — every
//! batch they applied that did not come from upstream, per origin — and
//! download per-origin entries, so that they keep exactly-once themselves.
//!
//! | call | SQL surface |
//! |---|---|
//! | [`seal`] | `atomik_seal()` |
//! | [`sync_request`] | `atomik_sync_request()` |
//! | [`serve_sync`] | `atomik_sync(request)` |
//! | [`finish_sync`] | `atomik_sync_finish(response)` |
//!
//! Every call runs inside one transaction of the store; on an error the
//! caller rolls back and nothing of the call is applied. `ARCHITECTURE.md`
//! ("Protocol v2") gives the rules and why each is needed.

mod authenticate;
mod finish;
mod serve;

pub use authenticate::{require_device_keys, set_device_key};
pub use finish::finish_sync;
pub use serve::serve_sync;

use crate::codec::v2::{encode_request_with, encode_response_with, OutboxEntry, Request};
use crate::error::{ProtocolError, Result};
use crate::log_store::{LogAppend, LogStore};
use crate::site::SiteId;
use crate::store::TrackedColumn;

use super::apply::check_tracked;

/// Names of the numeric settings protocol v2 keeps in [`crate::Store::setting`].
pub mod settings {
    /// The last seq this replica sealed.
    pub const OWN_SEQ: &str = "v2_own_seq";
    /// The position of the last outbox entry ever pushed.
    pub const OUTBOX_END: &str = "v2_outbox_end";
    /// The highest own seq dropped from the outbox after a hub acknowledged
    /// it: a snapshot that does not include it would lose it (the snapshot
    /// floor).
    pub const ACKED_SEQ: &str = "v2_acked_seq";
    /// Set when this replica first serves a sync: it is a hub, keeps a log
    /// and a registry, and asks its own upstream (if any) as a relay.
    pub const HUB: &str = "v2_hub";
    /// Set by the first sync request: this replica has an upstream, so
    /// everything it applies that did not come from upstream waits in its
    /// outbox until the upstream acknowledges it.
    pub const UPSTREAM: &str = "v2_upstream";
    /// Set when a replica serves before it ever asked an upstream: it is a
    /// root hub, keeps no outbox, and refuses to sync upward later.
    pub const ROOT: &str = "v2_root";
    /// Set by [`super::make_relay`] on a replica that already holds state
    /// from its upstream as a leaf (coalesced, without per-origin seqs):
    /// it serves no one until a relay snapshot from its upstream has
    /// replaced that state and its registry.
    pub const RELAY_BOOTSTRAP: &str = "v2_relay_bootstrap";
    /// Seconds a hub keeps log entries; a cursor behind the trimmed part
    /// gets a snapshot.
    pub const HORIZON_SECS: &str = "horizon_secs";
    /// Default horizon: 30 days.
    pub const DEFAULT_HORIZON_SECS: u64 = 30 * 24 * 3600;
    /// Set on a hub that serves only sites with an enrolled device key
    /// ([`crate::auth`]).
    pub const REQUIRE_KEYS: &str = "v2_require_keys";
}

/// `atomik_horizon([secs])`: the seconds a hub keeps log entries, after
/// setting them when `secs` is given.
///
/// # Errors
/// [`ProtocolError::BadSetting`] for a horizon below 1; store errors.
pub fn horizon<S: LogStore + ?Sized>(store: &mut S, secs: Option<i64>) -> Result<u64> {
    positive_setting(
        store,
        settings::HORIZON_SECS,
        settings::DEFAULT_HORIZON_SECS,
        secs,
        "the horizon must be a positive number of seconds",
    )
}

/// `atomik_max_parked([n])`: how many cells this replica may keep parked
/// ([`crate::store::MAX_PARKED`]), after setting it when `n` is given.
///
/// # Errors
/// [`ProtocolError::BadSetting`] for a limit below 1; store errors.
pub fn max_parked<S: LogStore + ?Sized>(store: &mut S, n: Option<i64>) -> Result<u64> {
    positive_setting(
        store,
        crate::store::MAX_PARKED,
        crate::store::DEFAULT_MAX_PARKED,
        n,
        "the parked-delta limit must be a positive number",
    )
}

fn positive_setting<S: LogStore + ?Sized>(
    store: &mut S,
    name: &str,
    default: u64,
    value: Option<i64>,
    must: &str,
) -> Result<u64> {
    if let Some(v) = value {
        let v = u64::try_from(v)
            .ok()
            .filter(|v| *v > 0)
            .ok_or_else(|| ProtocolError::BadSetting(format!("{must}, got {v}")))?;
        store.set_setting(name, Some(v))?;
    }
    Ok(store.setting(name)?.unwrap_or(default))
}

fn flag<S: LogStore + ?Sized>(store: &mut S, name: &str) -> Result<bool> {
    Ok(store.setting(name)?.is_some())
}

fn number<S: LogStore + ?Sized>(store: &mut S, name: &str) -> Result<u64> {
    Ok(store.setting(name)?.unwrap_or(0))
}

/// Seal pending local writes into one batch `(this site, seq)`. On a hub
/// the batch is appended to the log and the hub's own registry entry
/// advances; unless this replica is a root, it also waits in the outbox
/// for the upstream. Returns the seq, or 0 when nothing was pending.
///
/// # Errors
/// Store errors; a seq that would overflow; a pending cell of another
/// group than its column is tracked in ([`ProtocolError::ColumnGroup`]).
pub fn seal<S: LogStore + ?Sized>(store: &mut S, now: u64) -> Result<u64> {
    let mut changes = store.take_pending()?;
    changes.prune_empty();
    if changes.is_empty() {
        return Ok(0);
    }
    // A local write of another group than its column's (an engine whose
    // writes bypass the check) must not ship: every hub would refuse it.
    check_tracked(&store.tracked()?, &changes)?;
    let site = store.site_id()?;
    let seq = number(store, settings::OWN_SEQ)?
        .checked_add(1)
        .ok_or_else(|| ProtocolError::Store("batch seq overflow".to_string()))?;
    store.set_setting(settings::OWN_SEQ, Some(seq))?;
    if flag(store, settings::HUB)? {
        store.log_append(LogAppend {
            origin: site,
            seq,
            via: site,
            changes: &changes,
            now,
        })?;
        store.set_registry_seq(site, seq)?;
    }
    if !flag(store, settings::ROOT)? {
        push_outbox(store, site, seq, changes)?;
    }
    Ok(seq)
}

fn push_outbox<S: LogStore + ?Sized>(
    store: &mut S,
    origin: SiteId,
    seq: u64,
    changes: crate::Changes,
) -> Result<()> {
    let position = number(store, settings::OUTBOX_END)? + 1;
    store.set_setting(settings::OUTBOX_END, Some(position))?;
    store.outbox_push(&OutboxEntry {
        position,
        origin,
        seq,
        changes,
    })
}

/// `atomik_make_relay()`: declare that this replica will serve others and
/// sync to an upstream hub — a relay hub. Its next request asks as a relay
/// and bootstraps from a relay snapshot, which carries the per-origin
/// registry a hub needs. A replica that already synced as a device serves
/// no one until that snapshot is installed. Returns true when this call
/// made it a relay, false when it already was one.
///
/// A hub that serves without this and without ever having made a sync
/// request becomes a root hub.
///
/// # Errors
/// [`ProtocolError::RootHub`] on a root hub; store errors.
pub fn make_relay<S: LogStore + ?Sized>(store: &mut S, now: u64) -> Result<bool> {
    let site = store.site_id()?;
    if flag(store, settings::ROOT)? {
        return Err(ProtocolError::RootHub(site));
    }
    if flag(store, settings::HUB)? {
        return Ok(false);
    }
    if !flag(store, settings::UPSTREAM)? {
        store.set_setting(settings::UPSTREAM, Some(now))?;
    }
    store.set_setting(settings::HUB, Some(1))?;
    if store.link()?.is_some() {
        store.set_setting(settings::RELAY_BOOTSTRAP, Some(1))?;
        store.set_link(None)?;
    }
    let own = number(store, settings::OWN_SEQ)?;
    store.set_registry_seq(site, own)?;
    Ok(true)
}

/// `atomik_sync_request()`: seal pending writes, then ask the upstream.
/// The request holds this replica's site, its cursor, and its outbox.
///
/// # Errors
/// [`ProtocolError::RootHub`] on a root hub; store errors.
pub fn sync_request<S: LogStore + ?Sized>(store: &mut S, now: u64) -> Result<Vec<u8>> {
    let site = store.site_id()?;
    if flag(store, settings::ROOT)? {
        return Err(ProtocolError::RootHub(site));
    }
    if !flag(store, settings::UPSTREAM)? {
        store.set_setting(settings::UPSTREAM, Some(now))?;
    }
    seal(store, now)?;
    let key = authenticate::own_key(store)?;
    Ok(encode_request_with(
        &Request {
            site,
            relays: flag(store, settings::HUB)?,
            cursor: store.link()?,
            uploads: store.outbox()?,
        },
        key.as_ref(),
    ))
}

/// Where a batch applied on a hub came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Uploaded by a downstream peer: it waits in the outbox for the
    /// upstream, if this hub has one.
    Downstream,
    /// Downloaded from the upstream: the upstream has it already.
    Upstream,
}

/// What [`apply_once`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// Applied now, with this many deltas.
    Now(u64),
    /// Applied before: nothing to do.
    Duplicate,
    /// Earlier seqs of its origin have not arrived here: left for later.
    Gap {
        /// The highest seq of the origin applied here.
        have: u64,
    },
}

/// Apply one batch on a hub exactly once, by the registry: an old seq is a
/// duplicate, a gap is left alone, the next seq goes into the references,
/// the registry, the log, and (from downstream, on a relay) the outbox.
fn apply_once<S: LogStore + ?Sized>(
    store: &mut S,
    tracked: &[TrackedColumn],
    batch: &crate::Batch,
    via: SiteId,
    source: Source,
    now: u64,
) -> Result<Applied> {
    let have = store.registry_seq_for_update(batch.origin)?;
    if batch.seq <= have {
        return Ok(Applied::Duplicate);
    }
    if batch.seq != have + 1 {
        return Ok(Applied::Gap { have });
    }
    check_tracked(tracked, &batch.changes)?;
    let applied = store.receive(&batch.changes)?;
    store.set_registry_seq(batch.origin, batch.seq)?;
    store.log_append(LogAppend {
        origin: batch.origin,
        seq: batch.seq,
        via,
        changes: &batch.changes,
        now,
    })?;
    if source == Source::Downstream && !flag(store, settings::ROOT)? {
        push_outbox(store, batch.origin, batch.seq, batch.changes.clone())?;
    }
    Ok(Applied::Now(applied))
}

/// Trim log entries older than the horizon. Nothing else is needed for
/// retention: a cursor behind the trimmed part gets a snapshot, so no
/// silent device holds anything back.
fn trim<S: LogStore + ?Sized>(store: &mut S, now: u64) -> Result<()> {
    let horizon = store
        .setting(settings::HORIZON_SECS)?
        .unwrap_or(settings::DEFAULT_HORIZON_SECS);
    if let Some(before) = now.checked_sub(horizon) {
        store.log_trim(before)?;
    }
    Ok(())
}

/// `atomik_vector()` in protocol v2: where this replica stands — its site
/// and its cursor, as a request with no uploads. A few dozen bytes,
/// whatever the size of the fleet.
///
/// # Errors
/// Store errors.
pub fn position_message<S: LogStore + ?Sized>(store: &mut S) -> Result<Vec<u8>> {
    let key = authenticate::own_key(store)?;
    Ok(encode_request_with(
        &Request {
            site: store.site_id()?,
            relays: flag(store, settings::HUB)?,
            cursor: store.link()?,
            uploads: Vec::new(),
        },
        key.as_ref(),
    ))
}

/// `atomik_changes(position)`: what a replica standing at `position` (an
/// `atomik_vector()` message) lacks, as a response it can apply with
/// `atomik_apply`. Seals nothing, applies nothing, registers nothing. A
/// replica that is not a hub has no log to answer from.
///
/// # Errors
/// [`ProtocolError::NotServing`] on a replica that is not a hub; decode errors; a message that carries uploads (that is a sync request:
/// send it to `atomik_sync`); store errors.
pub fn changes_for<S: LogStore + ?Sized>(store: &mut S, position: &[u8]) -> Result<Vec<u8>> {
    let (req, tagged) = crate::codec::v2::decode_request_tagged(position)?;
    if !req.uploads.is_empty() {
        return Err(ProtocolError::Decode(crate::DecodeError::Malformed(format!(
            "atomik_changes takes a position (atomik_vector()), but this request uploads {} batches: send it to atomik_sync",
            req.uploads.len()
        ))));
    }
    let site = store.site_id()?;
    if flag(store, settings::RELAY_BOOTSTRAP)? {
        return Err(ProtocolError::RelayBootstrapping(site));
    }
    if !flag(store, settings::HUB)? {
        return Err(ProtocolError::NotServing(site));
    }
    let key = authenticate::check_request(store, req.site, tagged)?;
    let bounds = store.log_bounds()?;
    store.begin_serve(serve::usable_cursor(&req, site, bounds).is_none())?;
    let ack = store.registry_seq(req.site)?;
    let response = serve::respond(store, site, &req, ack)?;
    Ok(encode_response_with(&response, key.as_ref()))
}

/// `atomik_apply(bytes)` in protocol v2: apply a response (from
/// `atomik_sync` or `atomik_changes`) exactly once, as
/// [`finish_sync`] does. Returns the deltas newly applied.
///
/// # Errors
/// As [`finish_sync`]; a message of another kind or wire version.
pub fn apply_message<S: LogStore + ?Sized>(store: &mut S, bytes: &[u8], now: u64) -> Result<u64> {
    finish_sync(store, bytes, now)
}
