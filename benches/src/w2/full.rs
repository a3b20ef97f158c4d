//! Full-state sync with last-writer-wins per SKU: a client uploads every
//! SKU as (key, value, write timestamp), 24 bytes each; the hub keeps, per
//! SKU, the value with the newer timestamp and answers with every SKU as
//! (key, value), 16 bytes each, which the client takes as its state.

use anyhow::{bail, Result};

use super::{Op, SyncSystem};

/// Values and per-SKU write timestamps of one replica.
#[derive(Debug, Clone)]
struct State {
    values: Vec<i64>,
    stamps: Vec<u64>,
}

/// Full-state last-writer-wins sync.
#[derive(Debug)]
pub struct FullStateSystem {
    hub: State,
    clients: Vec<State>,
    clock: u64,
}

impl FullStateSystem {
    /// Every replica starts with the opening stock.
    pub fn new(clients: usize, opening: &[i64]) -> Self {
        let s = State {
            values: opening.to_vec(),
            stamps: vec![0; opening.len()],
        };
        FullStateSystem {
            hub: s.clone(),
            clients: vec![s; clients],
            clock: 0,
        }
    }
}

fn word(b: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_le_bytes(w)
}

impl SyncSystem for FullStateSystem {
    fn name(&self) -> &'static str {
        "full-state-lww"
    }

    fn local(&mut self, client: usize, ops: &[Op]) -> Result<()> {
        let s = &mut self.clients[client];
        for &(sku, d) in ops {
            self.clock += 1;
            s.values[sku as usize] += d;
            s.stamps[sku as usize] = self.clock;
        }
        Ok(())
    }

    fn upload(&mut self, client: usize) -> Result<Vec<u8>> {
        let s = &self.clients[client];
        let mut out = Vec::with_capacity(24 * s.values.len());
        for (k, (v, t)) in s.values.iter().zip(&s.stamps).enumerate() {
            out.extend_from_slice(&(k as u64).to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
            out.extend_from_slice(&t.to_le_bytes());
        }
        Ok(out)
    }

    fn hub_receive(&mut self, _client: usize, upload: &[u8]) -> Result<Vec<u8>> {
        if upload.len() != 24 * self.hub.values.len() {
            bail!("full-state upload of {} bytes", upload.len());
        }
        for row in 0..self.hub.values.len() {
            let (k, v, t) = (
                word(upload, 3 * row) as usize,
                word(upload, 3 * row + 1) as i64,
                word(upload, 3 * row + 2),
            );
            if t > self.hub.stamps[k] {
                self.hub.values[k] = v;
                self.hub.stamps[k] = t;
            }
        }
        let mut out = Vec::with_capacity(16 * self.hub.values.len());
        for (k, v) in self.hub.values.iter().enumerate() {
            out.extend_from_slice(&(k as u64).to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
        }
        Ok(out)
    }

    fn client_receive(&mut self, client: usize, download: &[u8]) -> Result<()> {
        let s = &mut self.clients[client];
        if download.len() != 16 * s.values.len() {
            bail!("full-state download of {} bytes", download.len());
        }
        for row in 0..s.values.len() {
            s.values[word(download, 2 * row) as usize] = word(download, 2 * row + 1) as i64;
        }
        Ok(())
    }

    fn hub_values(&mut self) -> Result<Vec<i64>> {
        Ok(self.hub.values.clone())
    }

    fn client_values(&mut self, client: usize) -> Result<Vec<i64>> {
        Ok(self.clients[client].values.clone())
    }
}
