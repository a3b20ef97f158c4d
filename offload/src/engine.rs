//! The [`Engine`] trait and the operations it executes.

use crate::error::OffloadError;

/// The group an accumulator folds deltas with (DESIGN §1).
///
/// The engine does not store a group per slot: every op carries it, because
/// the host knows the group of each column. Mixing groups on one slot is
/// defined (each op applies its own group) but meaningless; callers don't.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// Wrapping 64-bit addition.
    Add,
    /// Bitwise exclusive or.
    Xor,
}

impl Group {
    /// Both groups.
    pub const ALL: [Group; 2] = [Group::Add, Group::Xor];

    /// `a ⊕ b` in this group.
    #[inline]
    pub fn combine(self, a: u64, b: u64) -> u64 {
        match self {
            Group::Add => a.wrapping_add(b),
            Group::Xor => a ^ b,
        }
    }

    /// `a ⊖ b` in this group.
    #[inline]
    pub fn subtract(self, a: u64, b: u64) -> u64 {
        match self {
            Group::Add => a.wrapping_sub(b),
            Group::Xor => a ^ b,
        }
    }

    /// The group bit of the op word: 0 add, 1 xor.
    #[inline]
    pub fn bit(self) -> u64 {
        match self {
            Group::Add => 0,
            Group::Xor => 1,
        }
    }

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Group::Add => "add",
            Group::Xor => "xor",
        }
    }
}

/// One accumulation: `slot.accumulator ⊕= delta` under `group`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delta {
    /// Global slot number.
    pub slot: u32,
    /// Group to fold with.
    pub group: Group,
    /// The delta.
    pub delta: u64,
}

/// One engine operation. Global slot `s` lives in bank `s % banks` at index
/// `s / banks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// reference = value, accumulator = 0.
    Load {
        /// Global slot.
        slot: u32,
        /// New reference.
        value: u64,
    },
    /// accumulator = accumulator ⊕ delta.
    Accum {
        /// Global slot.
        slot: u32,
        /// Group.
        group: Group,
        /// Delta.
        delta: u64,
    },
    /// Result: reference ⊕ accumulator.
    Read {
        /// Global slot.
        slot: u32,
        /// Group.
        group: Group,
    },
    /// Result: the accumulator (the pending, not yet shipped delta).
    Pending {
        /// Global slot.
        slot: u32,
    },
    /// Result: ⊕ over every bank `b` of read(index × banks + b) — the value of
    /// one logical slot striped over all banks.
    MergeRead {
        /// Per-bank index (`< slots_per_bank`).
        index: u32,
        /// Group.
        group: Group,
    },
}

impl Op {
    /// Whether the op produces a result word.
    #[inline]
    pub fn has_result(&self) -> bool {
        matches!(
            self,
            Op::Read { .. } | Op::Pending { .. } | Op::MergeRead { .. }
        )
    }
}

/// Which implementation runs the ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Plain Rust, the reference.
    Cpu,
    /// `rtl/atomik_engine.v` compiled by Verilator, driven through its
    /// register map and op/result streams (cargo feature `sim`).
    Sim,
    /// The AX7020 (Zynq-7020) board through Linux UIO and an AXI DMA.
    /// Never run on silicon; see the crate README.
    Ax7020,
}

impl Backend {
    /// Every backend, in report order.
    pub const ALL: [Backend; 3] = [Backend::Cpu, Backend::Sim, Backend::Ax7020];

    /// Lower-case name, as printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Sim => "sim",
            Backend::Ax7020 => "ax7020",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Bank counts every backend supports.
pub const BANK_COUNTS: [u32; 4] = [1, 2, 4, 8];

/// Check a bank count and slots-per-bank pair.
pub fn check_geometry(banks: u32, slots_per_bank: u32) -> Result<(), OffloadError> {
    if !BANK_COUNTS.contains(&banks) {
        return Err(OffloadError::BadBankCount(banks));
    }
    if !(2..=1 << 24).contains(&slots_per_bank) || !slots_per_bank.is_power_of_two() {
        return Err(OffloadError::BadSlotCount(slots_per_bank));
    }
    Ok(())
}

/// Check every slot / index of `ops` against the geometry. Backends call this
/// before touching any state, so a batch with a bad slot changes nothing.
pub fn validate_ops(ops: &[Op], banks: u32, slots_per_bank: u32) -> Result<(), OffloadError> {
    let slots = banks * slots_per_bank;
    for op in ops {
        match *op {
            Op::Load { slot, .. }
            | Op::Accum { slot, .. }
            | Op::Read { slot, .. }
            | Op::Pending { slot } => {
                if slot >= slots {
                    return Err(OffloadError::SlotOutOfRange { slot, slots });
                }
            }
            Op::MergeRead { index, .. } => {
                if index >= slots_per_bank {
                    return Err(OffloadError::IndexOutOfRange {
                        index,
                        slots_per_bank,
                    });
                }
            }
        }
    }
    Ok(())
}

/// A batched accumulation engine: a bank of `(reference, accumulator)` slots.
///
/// Every backend gives byte-identical results for the same op sequence, for
/// every bank count. Slots start (and return after [`Engine::clear`]) at the
/// identity: reference 0, accumulator 0. A batch with an out-of-range slot is
/// rejected before anything is applied. After any other error (device error,
/// timeout, protocol error) a hardware backend's slot contents are
/// unspecified: reset it (`HwEngine::reset`, which also zeroes every slot).
pub trait Engine {
    /// Which backend this is.
    fn backend(&self) -> Backend;
    /// Number of banks (1, 2, 4 or 8).
    fn banks(&self) -> u32;
    /// Slots per bank.
    fn slots_per_bank(&self) -> u32;
    /// Total global slots.
    fn slots(&self) -> u32 {
        self.banks() * self.slots_per_bank()
    }

    /// Execute `ops` in program order, appending the result of every
    /// `Read`, `Pending` and `MergeRead` to `results`, in order.
    fn execute(&mut self, ops: &[Op], results: &mut Vec<u64>) -> Result<(), OffloadError>;

    /// Reset every slot to the identity.
    fn clear(&mut self) -> Result<(), OffloadError>;

    /// LOAD each `(slot, value)`.
    fn load(&mut self, items: &[(u32, u64)]) -> Result<(), OffloadError> {
        let ops: Vec<Op> = items
            .iter()
            .map(|&(slot, value)| Op::Load { slot, value })
            .collect();
        self.execute(&ops, &mut Vec::new())
    }

    /// Accumulate a batch of deltas.
    fn accumulate(&mut self, batch: &[Delta]) -> Result<(), OffloadError> {
        let ops: Vec<Op> = batch
            .iter()
            .map(|d| Op::Accum {
                slot: d.slot,
                group: d.group,
                delta: d.delta,
            })
            .collect();
        self.execute(&ops, &mut Vec::new())
    }

    /// Read `reference ⊕ accumulator` of each `(slot, group)`.
    fn read(&mut self, slots: &[(u32, Group)]) -> Result<Vec<u64>, OffloadError> {
        let ops: Vec<Op> = slots
            .iter()
            .map(|&(slot, group)| Op::Read { slot, group })
            .collect();
        let mut out = Vec::with_capacity(ops.len());
        self.execute(&ops, &mut out)?;
        Ok(out)
    }

    /// Read the accumulator of each slot.
    fn pending(&mut self, slots: &[u32]) -> Result<Vec<u64>, OffloadError> {
        let ops: Vec<Op> = slots.iter().map(|&slot| Op::Pending { slot }).collect();
        let mut out = Vec::with_capacity(ops.len());
        self.execute(&ops, &mut out)?;
        Ok(out)
    }

    /// Merge-read each `(index, group)` across all banks.
    fn merge_read(&mut self, indices: &[(u32, Group)]) -> Result<Vec<u64>, OffloadError> {
        let ops: Vec<Op> = indices
            .iter()
            .map(|&(index, group)| Op::MergeRead { index, group })
            .collect();
        let mut out = Vec::with_capacity(ops.len());
        self.execute(&ops, &mut out)?;
        Ok(out)
    }
}
