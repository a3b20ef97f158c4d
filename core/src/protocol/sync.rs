//! The one-round-trip sync: request, serve, finish — and `atomik_changes`.

use crate::changes::Changes;
use crate::codec::{decode, encode, Message, MessageKind, Payload, SyncRequest, SyncResponse};
use crate::error::{ProtocolError, Result};
use crate::site::{SiteId, VersionVector};
use crate::store::{Peer, PeerRole, VectorStore};

use super::apply::{apply_batch, check_tracked};
use super::retention::fold_covered;
use super::settings;
use super::{seal, snapshot};

/// `atomik_sync_request()`: seal pending writes, then ask. The request
/// carries this replica's vector and every stored batch its upstream may
/// lack (a leaf's outbox; a relay's stored batches of every origin).
///
/// The first request of a replica records that it has an upstream, so it
/// keeps every batch until that upstream has it: a device or a relay hub
/// should make one (even if its answer is lost) before it serves others.
///
/// # Errors
/// [`ProtocolError::RootHub`] on a root hub; store errors.
pub fn sync_request<S: VectorStore + ?Sized>(store: &mut S, now: u64) -> Result<Vec<u8>> {
    seal(store)?;
    let site = store.site_id()?;
    let relays = store.is_relay()?;
    let upstreams = upstream_peers(store)?;
    if upstreams.is_empty() && store.setting(settings::ROOT_HUB)?.is_some() {
        return Err(ProtocolError::RootHub(site));
    }
    if upstreams.is_empty() && store.setting(settings::PENDING_UPSTREAM)?.is_none() {
        store.set_setting(settings::PENDING_UPSTREAM, Some(now))?;
    }
    let baseline = pointwise_min(upstreams.iter().map(|p| &p.vector));
    let batches = store.stored_batches(&baseline, None)?;
    Ok(encode(&Message::Request(SyncRequest {
        site,
        relays,
        vector: store.vector()?,
        batches,
    })))
}

/// `atomik_sync(request)` on a hub: seal the hub's own pending writes,
/// apply the uploads exactly once, register the asker, fold what every
/// peer has, and answer with what the asker lacks.
///
/// # Errors
/// Decode errors, a gap in the uploads, tracking and group errors, a
/// request made by this replica itself; the caller rolls back.
pub fn serve_sync<S: VectorStore + ?Sized>(
    store: &mut S,
    request: &[u8],
    now: u64,
) -> Result<Vec<u8>> {
    let Message::Request(req) = Message::decode_kind(request, MessageKind::Request)? else {
        unreachable!("decode_kind checked the kind")
    };
    let site = store.site_id()?;
    if req.site == site {
        return Err(ProtocolError::OwnRequest(site));
    }
    let is_upstream = store
        .peers()?
        .iter()
        .any(|p| p.site == req.site && p.role == PeerRole::Upstream);
    if is_upstream {
        return Err(ProtocolError::UpstreamCycle(req.site));
    }
    if !store.is_relay()? {
        store.set_relay(true)?;
    }
    seal(store)?;
    let tracked = store.tracked()?;
    for batch in &req.batches {
        apply_batch(store, &tracked, batch)?;
    }
    store.put_peer(&Peer {
        site: req.site,
        role: PeerRole::Downstream,
        vector: req.vector.clone(),
        last_seen: now,
    })?;
    fold_covered(store, now)?;
    let response = respond(store, site, req.site, &req.vector, req.relays)?;
    Ok(encode(&Message::Response(response)))
}

/// `atomik_changes(vector)`: what a replica with that vector lacks, as one
/// coalesced delta per cell (or a snapshot when some of it was folded).
/// Registers nothing and applies nothing.
///
/// # Errors
/// Decode errors, store errors.
pub fn changes_for<S: VectorStore + ?Sized>(store: &mut S, vector: &[u8]) -> Result<Vec<u8>> {
    let Message::Vector(v) = Message::decode_kind(vector, MessageKind::Vector)? else {
        unreachable!("decode_kind checked the kind")
    };
    let site = store.site_id()?;
    let response = respond(store, site, v.site, &v.vector, false)?;
    Ok(encode(&Message::Response(response)))
}

/// `atomik_sync_finish(response)`: apply a response exactly once. Returns
/// the number of deltas newly applied; a late, duplicated or reordered
/// response applies nothing and returns 0.
///
/// # Errors
/// Decode errors, a response addressed to another replica, tracking and
/// group errors, a stale snapshot; the caller rolls back.
pub fn finish_sync<S: VectorStore + ?Sized>(
    store: &mut S,
    response: &[u8],
    now: u64,
) -> Result<u64> {
    match decode(response)? {
        Message::Response(r) => finish_decoded(store, &r, now),
        other => Err(ProtocolError::Decode(crate::DecodeError::WrongKind {
            expected: MessageKind::Response.name(),
            found: other.kind().name(),
        })),
    }
}

pub(crate) fn finish_decoded<S: VectorStore + ?Sized>(
    store: &mut S,
    r: &SyncResponse,
    now: u64,
) -> Result<u64> {
    let site = store.site_id()?;
    if r.to != site {
        return Err(ProtocolError::NotAddressedHere {
            addressed: r.to,
            this: site,
        });
    }
    let applied = match &r.payload {
        Payload::Coalesced(changes) => {
            let vector = store.vector()?;
            if r.base != vector {
                0
            } else {
                check_tracked(&store.tracked()?, changes)?;
                let n = store.receive(changes)?;
                let covers = r.covers();
                for (origin, seq) in covers.iter() {
                    if origin != site && seq > vector.get(&origin) {
                        // Received coalesced: not stored per batch here.
                        store.set_folded_entry(origin, seq)?;
                    }
                }
                store.replace_vector(&covers)?;
                n
            }
        }
        Payload::Batches(batches) => {
            let tracked = store.tracked()?;
            let mut n = 0;
            for b in batches {
                n += apply_batch(store, &tracked, b)?;
            }
            n
        }
        Payload::Snapshot(values) => {
            if r.base != store.vector()? {
                0
            } else {
                snapshot::install(store, r.from, &r.hub_vector, values)?
            }
        }
    };
    store.put_peer(&Peer {
        site: r.from,
        role: PeerRole::Upstream,
        vector: r.acked.clone(),
        last_seen: now,
    })?;
    store.set_setting(settings::PENDING_UPSTREAM, None)?;
    fold_covered(store, now)?;
    Ok(applied)
}

/// Compute the response for an asker whose vector is `base`.
fn respond<S: VectorStore + ?Sized>(
    store: &mut S,
    site: SiteId,
    asker: SiteId,
    base: &VersionVector,
    relays: bool,
) -> Result<SyncResponse> {
    let hub_vector = store.vector()?;
    let folded = store.folded()?;
    let needs_snapshot = folded
        .iter()
        .any(|(origin, seq)| origin != asker && base.get(&origin) < seq);
    let payload = if needs_snapshot {
        Payload::Snapshot(store.references()?)
    } else {
        let batches = store.stored_batches(base, Some(asker))?;
        if relays {
            Payload::Batches(batches)
        } else {
            let mut sum = Changes::new();
            for b in &batches {
                sum.merge(&b.changes)
                    .map_err(|e| ProtocolError::Store(e.to_string()))?;
            }
            Payload::Coalesced(sum)
        }
    };
    let acked = passable_vector(store, &hub_vector, &folded)?;
    Ok(SyncResponse {
        to: asker,
        from: site,
        base: base.clone(),
        hub_vector,
        acked,
        payload,
    })
}

/// The part of this replica's vector it can pass on to its upstream. A root
/// hub (no upstream, none awaited) passes on everything it has. Otherwise,
/// per origin: what the upstream already acknowledged, extended by the
/// batches kept here without a gap. Batches received folded from a peer
/// that is not the upstream are left out, so their origin keeps them and
/// sends them again.
fn passable_vector<S: VectorStore + ?Sized>(
    store: &mut S,
    vector: &VersionVector,
    folded: &VersionVector,
) -> Result<VersionVector> {
    let upstreams = upstream_peers(store)?;
    if upstreams.is_empty() && store.setting(settings::PENDING_UPSTREAM)?.is_none() {
        return Ok(vector.clone());
    }
    let upstream = pointwise_min(upstreams.iter().map(|p| &p.vector));
    let mut out = VersionVector::new();
    for (origin, seq) in vector.iter() {
        let acknowledged = upstream.get(&origin);
        let passable = if folded.get(&origin) <= acknowledged {
            seq
        } else {
            let mut n = acknowledged;
            while n < seq && store.has_batch(origin, n + 1)? {
                n += 1;
            }
            n
        };
        out.set(origin, passable);
    }
    Ok(out)
}

/// The registered upstream peers.
fn upstream_peers<S: VectorStore + ?Sized>(store: &mut S) -> Result<Vec<Peer>> {
    Ok(store
        .peers()?
        .into_iter()
        .filter(|p| p.role == PeerRole::Upstream)
        .collect())
}

/// Pointwise minimum of vectors (empty for none).
fn pointwise_min<'a>(mut vectors: impl Iterator<Item = &'a VersionVector>) -> VersionVector {
    let Some(first) = vectors.next() else {
        return VersionVector::new();
    };
    let mut out = first.clone();
    for v in vectors {
        out = out.iter().map(|(s, n)| (s, n.min(v.get(&s)))).collect();
    }
    out
}
