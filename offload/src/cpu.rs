//! The reference backend: plain Rust over two `u64` arrays.

use crate::engine::{check_geometry, validate_ops, Backend, Delta, Engine, Group, Op};
use crate::error::OffloadError;

/// Reference engine. Slot `s` is element `s` of `refs` / `accs`; the bank
/// split only matters for [`Op::MergeRead`], which folds the `banks`
/// consecutive slots `index * banks ..`.
#[derive(Debug, Clone)]
pub struct CpuEngine {
    banks: u32,
    slots_per_bank: u32,
    refs: Vec<u64>,
    accs: Vec<u64>,
}

impl CpuEngine {
    /// A cleared engine of `banks` × `slots_per_bank` slots.
    pub fn new(banks: u32, slots_per_bank: u32) -> Result<Self, OffloadError> {
        check_geometry(banks, slots_per_bank)?;
        let n = (banks * slots_per_bank) as usize;
        Ok(CpuEngine {
            banks,
            slots_per_bank,
            refs: vec![0; n],
            accs: vec![0; n],
        })
    }

    /// `(reference, accumulator)` of a slot, or `None` out of range.
    pub fn slot(&self, slot: u32) -> Option<(u64, u64)> {
        let i = slot as usize;
        Some((*self.refs.get(i)?, *self.accs.get(i)?))
    }
}

impl Engine for CpuEngine {
    fn backend(&self) -> Backend {
        Backend::Cpu
    }

    fn banks(&self) -> u32 {
        self.banks
    }

    fn slots_per_bank(&self) -> u32 {
        self.slots_per_bank
    }

    fn execute(&mut self, ops: &[Op], results: &mut Vec<u64>) -> Result<(), OffloadError> {
        validate_ops(ops, self.banks, self.slots_per_bank)?;
        for op in ops {
            match *op {
                Op::Load { slot, value } => {
                    self.refs[slot as usize] = value;
                    self.accs[slot as usize] = 0;
                }
                Op::Accum { slot, group, delta } => {
                    let a = &mut self.accs[slot as usize];
                    *a = group.combine(*a, delta);
                }
                Op::Read { slot, group } => {
                    let s = slot as usize;
                    results.push(group.combine(self.refs[s], self.accs[s]));
                }
                Op::Pending { slot } => results.push(self.accs[slot as usize]),
                Op::MergeRead { index, group } => {
                    let base = (index * self.banks) as usize;
                    let end = base + self.banks as usize;
                    let v = self.refs[base..end]
                        .iter()
                        .zip(&self.accs[base..end])
                        .fold(0u64, |m, (&r, &a)| group.combine(m, group.combine(r, a)));
                    results.push(v);
                }
            }
        }
        Ok(())
    }

    fn clear(&mut self) -> Result<(), OffloadError> {
        self.refs.fill(0);
        self.accs.fill(0);
        Ok(())
    }

    /// The hot path: one bounds check per batch, then a tight loop.
    fn accumulate(&mut self, batch: &[Delta]) -> Result<(), OffloadError> {
        let slots = self.accs.len();
        if let Some(d) = batch.iter().find(|d| d.slot as usize >= slots) {
            return Err(OffloadError::SlotOutOfRange {
                slot: d.slot,
                slots: slots as u32,
            });
        }
        let accs = &mut self.accs[..];
        for d in batch {
            let a = &mut accs[d.slot as usize];
            *a = match d.group {
                Group::Add => a.wrapping_add(d.delta),
                Group::Xor => *a ^ d.delta,
            };
        }
        Ok(())
    }
}
