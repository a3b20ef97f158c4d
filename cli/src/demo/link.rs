//! A flaky link between a device and the hub: requests and responses are
//! dropped, duplicated, and delivered late out of order. The device simply
//! retries until a response arrives, as a field app would.

use std::collections::HashMap;

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::replica::Replica;

/// How often each fault happens, per message.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LinkFaults {
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that an old response of the same device is delivered
    /// (late, out of order) before the current one.
    pub reorder: f64,
}

/// Faults that actually happened in a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FaultsSeen {
    /// Messages lost.
    pub dropped: u64,
    /// Messages delivered twice.
    pub duplicated: u64,
    /// Old responses delivered late (each applied nothing).
    pub reordered: u64,
}

/// Bytes and attempts of one device.
#[derive(Debug, Clone, Copy, Default)]
pub struct Traffic {
    /// Completed syncs.
    pub syncs: u64,
    /// Attempts that lost a message and were retried.
    pub retries: u64,
    /// Bytes sent device → hub (including retries and duplicates).
    pub bytes_up: u64,
    /// Bytes sent hub → device (including duplicates).
    pub bytes_down: u64,
}

/// The link.
#[derive(Debug)]
pub struct FlakyLink {
    faults: LinkFaults,
    rng: ChaCha8Rng,
    seen: FaultsSeen,
    /// Per device (by its first request bytes' site), an old response.
    stale: HashMap<usize, Vec<u8>>,
}

const MAX_ATTEMPTS: usize = 100;

impl FlakyLink {
    /// A link with these fault rates.
    pub fn new(faults: LinkFaults, seed: u64) -> Self {
        FlakyLink {
            faults,
            rng: ChaCha8Rng::seed_from_u64(seed),
            seen: FaultsSeen::default(),
            stale: HashMap::new(),
        }
    }

    /// Faults so far.
    pub fn faults_seen(&self) -> FaultsSeen {
        self.seen
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }

    /// One sync of `device` with `hub`, retried until it completes.
    ///
    /// # Errors
    /// A replica error, or no success after many attempts.
    pub fn sync<D: Replica, H: Replica>(
        &mut self,
        device: &mut D,
        hub: &mut H,
        now: u64,
        traffic: &mut Traffic,
    ) -> Result<()> {
        let id = device as *const D as usize;
        for _ in 0..MAX_ATTEMPTS {
            let request = device.sync_request(now)?;
            traffic.bytes_up += request.len() as u64;
            if self.chance(self.faults.drop) {
                self.seen.dropped += 1;
                traffic.retries += 1;
                continue;
            }
            let response = hub.serve_sync(&request, now)?;
            if self.chance(self.faults.duplicate) {
                // The request arrives twice; the hub answers twice.
                self.seen.duplicated += 1;
                traffic.bytes_up += request.len() as u64;
                let again = hub.serve_sync(&request, now)?;
                traffic.bytes_down += again.len() as u64;
                self.stale.insert(id, again);
            }
            traffic.bytes_down += response.len() as u64;
            if self.chance(self.faults.drop) {
                self.seen.dropped += 1;
                traffic.retries += 1;
                self.stale.insert(id, response);
                continue;
            }
            if self.chance(self.faults.reorder) {
                if let Some(old) = self.stale.remove(&id) {
                    self.seen.reordered += 1;
                    device.finish_sync(&old, now)?;
                }
            }
            device.finish_sync(&response, now)?;
            if self.chance(self.faults.duplicate) {
                self.seen.duplicated += 1;
                traffic.bytes_down += response.len() as u64;
                if device.finish_sync(&response, now)? != 0 {
                    bail!("a duplicated response applied deltas twice");
                }
            }
            self.stale.insert(id, response);
            traffic.syncs += 1;
            return Ok(());
        }
        bail!("no sync completed in {MAX_ATTEMPTS} attempts")
    }
}
