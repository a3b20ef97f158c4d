//! Automerge in W2: each replica an `AutoCommit` document holding one map
//! of `Counter`s (key: the SKU as text); sales and restocks are counter
//! increments committed as one change per offline session.
//!
//! Messages (Automerge leaves the transport to the application): an upload
//! is the client's heads (1 + 32·n bytes) and `save_after(hub heads the
//! client last heard of)` — its changes the hub lacks; a download is the
//! hub's heads and `save_after(client heads)`. Applying is
//! `load_incremental`, which ignores changes it already has.

use anyhow::{bail, Context, Result};
use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, ROOT};

use super::{Op, SyncSystem};

#[derive(Debug)]
struct Client {
    doc: AutoCommit,
    /// The hub's heads as of the last download.
    hub_heads: Vec<ChangeHash>,
}

/// Automerge counters.
#[derive(Debug)]
pub struct AutomergeSystem {
    hub: AutoCommit,
    clients: Vec<Client>,
    inv: ObjId,
    skus: usize,
}

/// Heads then payload: `n`, n × 32 bytes, the rest.
pub(crate) fn frame(heads: &[ChangeHash], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 32 * heads.len() + payload.len());
    out.push(heads.len() as u8);
    for h in heads {
        out.extend_from_slice(&h.0);
    }
    out.extend_from_slice(payload);
    out
}

fn unframe(msg: &[u8]) -> Result<(Vec<ChangeHash>, &[u8])> {
    let n = *msg.first().context("empty message")? as usize;
    if msg.len() < 1 + 32 * n {
        bail!("truncated heads");
    }
    let heads = msg[1..1 + 32 * n]
        .chunks(32)
        .map(ChangeHash::try_from)
        .collect::<Result<_, _>>()?;
    Ok((heads, &msg[1 + 32 * n..]))
}

fn actor(n: u8) -> ActorId {
    ActorId::from(vec![n; 16])
}

/// A document with one counter per SKU at the opening stock.
pub(crate) fn base_doc(opening: &[i64]) -> Result<(AutoCommit, ObjId)> {
    let mut base = AutoCommit::new().with_actor(actor(0xFF));
    let inv = base.put_object(ROOT, "inv", ObjType::Map)?;
    for (sku, &v) in opening.iter().enumerate() {
        base.put(&inv, sku.to_string(), ScalarValue::counter(v))?;
    }
    base.commit();
    Ok((base, inv))
}

pub(crate) fn increment(doc: &mut AutoCommit, inv: &ObjId, ops: &[Op]) -> Result<()> {
    for &(sku, d) in ops {
        doc.increment(inv, sku.to_string(), d)?;
    }
    doc.commit();
    Ok(())
}

impl AutomergeSystem {
    /// Every replica a fork of one document holding the opening stock.
    ///
    /// # Errors
    /// Automerge errors.
    pub fn new(clients: usize, opening: &[i64]) -> Result<Self> {
        let (mut base, inv) = base_doc(opening)?;
        let heads = base.get_heads();
        let clients = (0..clients)
            .map(|c| Client {
                doc: base.fork().with_actor(actor(c as u8 + 1)),
                hub_heads: heads.clone(),
            })
            .collect();
        Ok(AutomergeSystem {
            hub: base.fork().with_actor(actor(0)),
            clients,
            inv,
            skus: opening.len(),
        })
    }

    fn values(doc: &AutoCommit, inv: &ObjId, skus: usize) -> Result<Vec<i64>> {
        (0..skus)
            .map(|sku| {
                let (v, _) = doc
                    .get(inv, sku.to_string())?
                    .with_context(|| format!("no counter for SKU {sku}"))?;
                v.as_i64().context("not a counter")
            })
            .collect()
    }
}

impl SyncSystem for AutomergeSystem {
    fn name(&self) -> &'static str {
        "automerge"
    }

    fn local(&mut self, client: usize, ops: &[Op]) -> Result<()> {
        increment(&mut self.clients[client].doc, &self.inv, ops)
    }

    fn upload(&mut self, client: usize) -> Result<Vec<u8>> {
        let c = &mut self.clients[client];
        let changes = c.doc.save_after(&c.hub_heads);
        Ok(frame(&c.doc.get_heads(), &changes))
    }

    fn hub_receive(&mut self, _client: usize, upload: &[u8]) -> Result<Vec<u8>> {
        let (client_heads, changes) = unframe(upload)?;
        if !changes.is_empty() {
            self.hub.load_incremental(changes)?;
        }
        let missing = self.hub.save_after(&client_heads);
        Ok(frame(&self.hub.get_heads(), &missing))
    }

    fn client_receive(&mut self, client: usize, download: &[u8]) -> Result<()> {
        let (hub_heads, changes) = unframe(download)?;
        let c = &mut self.clients[client];
        if !changes.is_empty() {
            c.doc.load_incremental(changes)?;
        }
        c.hub_heads = hub_heads;
        Ok(())
    }

    fn hub_values(&mut self) -> Result<Vec<i64>> {
        Self::values(&self.hub, &self.inv, self.skus)
    }

    fn client_values(&mut self, client: usize) -> Result<Vec<i64>> {
        Self::values(&self.clients[client].doc, &self.inv, self.skus)
    }
}
