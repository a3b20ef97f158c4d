//! `atomik_sync(request)` on a hub.

use std::collections::BTreeSet;

use crate::codec::v2::{
    decode_request_tagged, encode_response_with, Cursor, Payload, Request, Response,
};
use crate::error::{ProtocolError, Result};
use crate::log_store::{LogBounds, LogStore};
use crate::site::SiteId;
use crate::Batch;

use super::{apply_once, authenticate, flag, number, seal, settings, trim, Applied, Source};

/// Serve a v2 sync request: seal the hub's own pending writes, apply the
/// uploads exactly once, and answer with what the asker lacks — the log
/// range after its cursor (less its own entries), or a snapshot.
///
/// Touches the asker's registry entries, the log range, and nothing that
/// grows with the fleet (a relay's snapshot carries the registry).
///
/// # Errors
/// Decode errors (a message of another kind or version included), a
/// request refused for its device-key authentication
/// ([`ProtocolError::Unauthenticated`]), tracking and group errors, a
/// request of this replica or of its own upstream; the caller rolls back.
pub fn serve_sync<S: LogStore + ?Sized>(
    store: &mut S,
    request: &[u8],
    now: u64,
) -> Result<Vec<u8>> {
    let (req, tagged) = decode_request_tagged(request)?;
    let site = store.site_id()?;
    if req.site == site {
        return Err(ProtocolError::OwnRequest(site));
    }
    if store.link()?.is_some_and(|l| l.hub == req.site) {
        return Err(ProtocolError::UpstreamCycle(req.site));
    }
    let key = authenticate::check_request(store, req.site, tagged)?;
    // Locks first (a store whose serves run in parallel takes them here,
    // before any write), then the first serve's role change and the seal.
    let from_log = usable_cursor(&req, site, store.log_bounds()?);
    store.begin_serve(from_log.is_none())?;
    ready_to_serve(store, site)?;
    seal(store, now)?;
    // A download from the log is read before the uploads lock any cell (it
    // leaves out the asker's entries, so it does not depend on them): a hot
    // cell's row is then held only from its update to the commit. A
    // snapshot is read after them, since it includes them up to the ack.
    store.log_publish()?;
    let position = store.log_bounds()?.watermark;
    let from_log = match from_log {
        Some(cursor) => Some(log_payload(store, &req, cursor, position)?),
        None => None,
    };
    let tracked = store.tracked()?;
    // Uploads of an origin after a gap in its seqs (a device that roamed:
    // its earlier batches still travel through another hub) are left for a
    // later sync; the ack tells the asker exactly what was applied.
    let mut gapped: BTreeSet<SiteId> = BTreeSet::new();
    let mut relay_ack = req.uploads.first().map_or(0, |u| u.position - 1);
    for u in &req.uploads {
        if !gapped.contains(&u.origin) {
            let batch = Batch {
                origin: u.origin,
                seq: u.seq,
                changes: u.changes.clone(),
            };
            match apply_once(store, &tracked, &batch, req.site, Source::Downstream, now)? {
                Applied::Gap { .. } => {
                    gapped.insert(u.origin);
                }
                Applied::Now(_) | Applied::Duplicate => {}
            }
        }
        if gapped.is_empty() {
            relay_ack = u.position;
        }
    }
    let ack = if req.relays {
        relay_ack
    } else {
        store.registry_seq(req.site)?
    };
    let payload = match from_log {
        Some(payload) => payload,
        None => snapshot(store, req.site, position, req.relays)?,
    };
    // Retention last: what this serve read was retained when it read it.
    trim(store, now)?;
    Ok(encode_response_with(
        &answer(&req, site, position, ack, payload),
        key.as_ref(),
    ))
}

/// The response to `req` from this hub (`site`).
fn answer(req: &Request, site: SiteId, position: u64, ack: u64, payload: Payload) -> Response {
    Response {
        to: req.site,
        from: site,
        base: req.cursor,
        position,
        ack,
        payload,
    }
}

/// A replica that never asked an upstream becomes a root hub when it first
/// serves: it keeps no outbox. One that syncs to an upstream serves only as
/// a relay ([`super::make_relay`]), once bootstrapped: as a device its
/// state holds others' batches without their seqs, so its snapshots could
/// not say which of the asker's own batches they include.
fn ready_to_serve<S: LogStore + ?Sized>(store: &mut S, site: SiteId) -> Result<()> {
    if flag(store, settings::RELAY_BOOTSTRAP)? {
        return Err(ProtocolError::RelayBootstrapping(site));
    }
    if flag(store, settings::HUB)? {
        return Ok(());
    }
    if flag(store, settings::UPSTREAM)? {
        return Err(ProtocolError::NotAHub(site));
    }
    store.set_setting(settings::HUB, Some(1))?;
    store.set_setting(settings::ROOT, Some(1))?;
    let end = number(store, settings::OUTBOX_END)?;
    store.outbox_drop_through(end)?;
    let own = number(store, settings::OWN_SEQ)?;
    store.set_registry_seq(site, own)
}

/// A read-only answer (`atomik_changes`): what a replica at `req`'s
/// position lacks, as of the watermark.
pub(super) fn respond<S: LogStore + ?Sized>(
    store: &mut S,
    site: SiteId,
    req: &Request,
    ack: u64,
) -> Result<Response> {
    store.log_publish()?;
    let bounds = store.log_bounds()?;
    let position = bounds.watermark;
    let payload = match usable_cursor(req, site, bounds) {
        Some(c) => log_payload(store, req, c, position)?,
        None => snapshot(store, req.site, position, req.relays)?,
    };
    Ok(answer(req, site, position, ack, payload))
}

/// The log after `cursor` through `position`, less the asker's entries:
/// summed for a leaf, per origin for a relay.
fn log_payload<S: LogStore + ?Sized>(
    store: &mut S,
    req: &Request,
    cursor: Cursor,
    position: u64,
) -> Result<Payload> {
    Ok(if req.relays {
        Payload::Entries(store.log_entries(cursor.position, Some(position), req.site)?)
    } else {
        Payload::Range(store.log_sum(cursor.position, Some(position), req.site)?)
    })
}

/// The asker's cursor, when the log can answer from it: it names this hub
/// and lies within the retained log; otherwise the asker gets a snapshot.
pub(super) fn usable_cursor(req: &Request, site: SiteId, bounds: LogBounds) -> Option<Cursor> {
    req.cursor.filter(|c| {
        c.hub == site && c.position >= bounds.trimmed_through && c.position <= bounds.watermark
    })
}

/// The hub's references as of `position`: entries committed beyond it
/// (a store whose serves run in parallel) are taken out again, except the
/// asker's own, which the snapshot includes up to its ack.
fn snapshot<S: LogStore + ?Sized>(
    store: &mut S,
    asker: SiteId,
    position: u64,
    relays: bool,
) -> Result<Payload> {
    let mut values = store.references()?;
    let beyond = store.log_entries(position, None, asker)?;
    for b in &beyond {
        values.subtract(&b.changes).map_err(ProtocolError::store)?;
    }
    if !relays {
        return Ok(Payload::Snapshot(values));
    }
    let mut registry = store.registry()?;
    for b in &beyond {
        let seq = registry.get(&b.origin).min(b.seq - 1);
        registry.set(b.origin, seq);
    }
    Ok(Payload::RelaySnapshot { registry, values })
}
