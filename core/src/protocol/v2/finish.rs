//! `atomik_sync_finish(response)`: apply a v2 response exactly once.

use crate::codec::v2::{decode_response_tagged, Cursor, Payload, Response};
use crate::error::{ProtocolError, Result};
use crate::log_store::LogStore;
use crate::site::{SiteId, VersionVector};
use crate::Changes;

use super::super::apply::check_tracked;
use super::{apply_once, authenticate, flag, number, settings, trim, Applied, Source};

/// Apply a v2 response. The acknowledgement always counts (it is true
/// whenever it was computed); the payload is applied only if the cursor
/// the request stated is still this replica's cursor, so a late,
/// duplicated or reordered response applies nothing and returns 0.
///
/// # Errors
/// Decode errors, a response addressed to another replica, one refused
/// for its device-key authentication
/// ([`ProtocolError::UnauthenticatedResponse`]), a relay's
/// response from a hub other than its upstream, an ack beyond what this
/// replica sent, tracking and group errors, a snapshot that lacks
/// acknowledged own batches; the caller rolls back.
pub fn finish_sync<S: LogStore + ?Sized>(store: &mut S, response: &[u8], now: u64) -> Result<u64> {
    let (resp, tagged) = decode_response_tagged(response)?;
    let site = store.site_id()?;
    if resp.to != site {
        return Err(ProtocolError::NotAddressedHere {
            addressed: resp.to,
            this: site,
        });
    }
    authenticate::check_response(store, site, resp.from, tagged)?;
    let hub = flag(store, settings::HUB)?;
    let link = store.link()?;
    if hub {
        if let Some(l) = link.filter(|l| l.hub != resp.from) {
            return Err(ProtocolError::RelayUpstream {
                relay: site,
                upstream: l.hub,
                got: resp.from,
            });
        }
    }
    let relay_form = matches!(
        resp.payload,
        Payload::Entries(_) | Payload::RelaySnapshot { .. }
    );
    // A payload is for this replica's state as it is now only if it was
    // computed against this cursor, in the form this replica's role takes.
    let current = resp.base == link && relay_form == hub;
    if current && matches!(resp.payload, Payload::Snapshot(_)) {
        let floor = number(store, settings::ACKED_SEQ)?;
        if resp.ack < floor {
            return Err(ProtocolError::StaleSnapshot {
                hub: resp.from,
                covered: resp.ack,
                dropped: floor,
            });
        }
    }
    take_ack(store, site, &resp, relay_form)?;
    let applied = if current {
        let n = apply_payload(store, site, &resp, now)?;
        store.set_link(Some(Cursor {
            hub: resp.from,
            position: resp.position,
        }))?;
        n
    } else {
        0
    };
    if hub {
        trim(store, now)?;
    }
    Ok(applied)
}

/// Drop from the outbox what the responder acknowledged: for a leaf, its
/// own batches up to the ack's seq; for a relay, positions up to the ack.
fn take_ack<S: LogStore + ?Sized>(
    store: &mut S,
    site: SiteId,
    resp: &Response,
    relay_form: bool,
) -> Result<()> {
    let sent = number(
        store,
        if relay_form {
            settings::OUTBOX_END
        } else {
            settings::OWN_SEQ
        },
    )?;
    if resp.ack > sent {
        return Err(ProtocolError::AckBeyondSent {
            from: resp.from,
            ack: resp.ack,
            sent,
        });
    }
    if relay_form {
        return store.outbox_drop_through(resp.ack);
    }
    let mut through = None;
    let mut dropped_seq = None;
    for e in store.outbox()? {
        if e.origin != site || e.seq > resp.ack {
            break;
        }
        through = Some(e.position);
        dropped_seq = Some(e.seq);
    }
    if let (Some(position), Some(seq)) = (through, dropped_seq) {
        store.outbox_drop_through(position)?;
        if seq > number(store, settings::ACKED_SEQ)? {
            store.set_setting(settings::ACKED_SEQ, Some(seq))?;
        }
    }
    Ok(())
}

fn apply_payload<S: LogStore + ?Sized>(
    store: &mut S,
    site: SiteId,
    resp: &Response,
    now: u64,
) -> Result<u64> {
    let tracked = store.tracked()?;
    match &resp.payload {
        Payload::Range(changes) => {
            check_tracked(&tracked, changes)?;
            store.receive(changes)
        }
        Payload::Entries(batches) => {
            let mut n = 0;
            for b in batches {
                match apply_once(store, &tracked, b, resp.from, Source::Upstream, now)? {
                    Applied::Now(k) => n += k,
                    Applied::Duplicate => {}
                    // The cursor must not pass a batch that was not applied.
                    Applied::Gap { have } => {
                        return Err(ProtocolError::Gap {
                            origin: b.origin,
                            have,
                            got: b.seq,
                        })
                    }
                }
            }
            Ok(n)
        }
        Payload::Snapshot(values) => {
            check_tracked(&tracked, values)?;
            // What the hub does not have yet: the outbox after the ack.
            let mut total = values.clone();
            for e in store.outbox()? {
                total.merge(&e.changes).map_err(ProtocolError::store)?;
            }
            store.install_references(&total)?;
            Ok(values.cell_count() as u64)
        }
        Payload::RelaySnapshot { registry, values } => {
            check_tracked(&tracked, values)?;
            install_relay_snapshot(store, site, registry, values)
        }
    }
}

/// A relay installs its upstream's snapshot: references are the snapshot's
/// plus every outbox entry the snapshot's registry does not include; the
/// registry becomes the snapshot's, raised by those entries; and the log
/// is discarded behind an empty position, so that every cursor the relay
/// handed out falls behind it and its leaves take snapshots too.
fn install_relay_snapshot<S: LogStore + ?Sized>(
    store: &mut S,
    site: SiteId,
    registry: &VersionVector,
    values: &Changes,
) -> Result<u64> {
    let mut total = values.clone();
    let mut reg = registry.clone();
    for e in store.outbox()? {
        let have = reg.get(&e.origin);
        if e.seq <= have {
            continue;
        }
        if e.seq != have + 1 {
            return Err(ProtocolError::Gap {
                origin: e.origin,
                have,
                got: e.seq,
            });
        }
        total.merge(&e.changes).map_err(ProtocolError::store)?;
        reg.set(e.origin, e.seq);
    }
    let own = number(store, settings::OWN_SEQ)?;
    reg.set(site, own.max(reg.get(&site)));
    store.install_references(&total)?;
    for (origin, _) in store.registry()?.iter() {
        store.set_registry_seq(origin, reg.get(&origin))?;
    }
    for (origin, seq) in reg.iter() {
        store.set_registry_seq(origin, seq)?;
    }
    store.log_reset()?;
    store.set_setting(settings::RELAY_BOOTSTRAP, None)?;
    Ok(values.cell_count() as u64)
}
