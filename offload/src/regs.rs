//! The engine's control/status register map (`rtl/README.md`) and the
//! [`RegisterBus`] every hardware backend reaches it through.

use crate::error::OffloadError;

/// ID register: reads [`ID_MAGIC`].
pub const ID: u32 = 0x00;
/// VERSION register: major in 31:16, minor in 15:0.
pub const VERSION: u32 = 0x04;
/// NUM_BANKS register.
pub const NUM_BANKS: u32 = 0x08;
/// SLOTS_PER_BANK register.
pub const SLOTS_PER_BANK: u32 = 0x0C;
/// CONTROL register (write-only action bits, reads 0).
pub const CONTROL: u32 = 0x10;
/// STATUS register.
pub const STATUS: u32 = 0x14;
/// ERRORS register (sticky, write 1 to clear).
pub const ERRORS: u32 = 0x18;
/// ERROR_COUNT register.
pub const ERROR_COUNT: u32 = 0x1C;
/// SCRATCH register (read/write, no effect).
pub const SCRATCH: u32 = 0x20;
/// RESULT_PACKET register: result beats per TLAST packet (0 = no TLAST).
pub const RESULT_PACKET: u32 = 0x24;
/// First 64-bit counter (LO at `0x40 + 8k`, HI at `0x44 + 8k`).
pub const COUNTER_BASE: u32 = 0x40;

/// `"ATMK"`.
pub const ID_MAGIC: u32 = 0x4154_4D4B;
/// Major version this driver speaks.
pub const VERSION_MAJOR: u32 = 1;

/// CONTROL bit: clear all counters.
pub const CTL_CLEAR_COUNTERS: u32 = 1 << 0;
/// CONTROL bit: clear ERRORS and ERROR_COUNT.
pub const CTL_CLEAR_ERRORS: u32 = 1 << 1;
/// CONTROL bit: zero every slot (STATUS.CLEARING while it runs).
pub const CTL_CLEAR_SLOTS: u32 = 1 << 2;
/// CONTROL bit: all three above plus dropping in-flight ops and results.
pub const CTL_SOFT_RESET: u32 = 1 << 3;

/// STATUS bit: a slot clear is pending or running; the op stream is blocked.
pub const ST_CLEARING: u32 = 1 << 0;
/// STATUS bit: no op in flight, no result waiting, not clearing.
pub const ST_IDLE: u32 = 1 << 1;
/// STATUS bit: ERRORS is non-zero.
pub const ST_ERROR: u32 = 1 << 2;

/// Counter order (index `k` at `COUNTER_BASE + 8k`).
pub const COUNTER_NAMES: [&str; 8] = [
    "cycles",
    "busy_cycles",
    "ops",
    "beats",
    "results",
    "conflict_stalls",
    "out_stalls",
    "forwards",
];

/// 32-bit register access at byte offsets. Implemented by the UIO mapping on
/// the board and by the Verilated model's CSR port in simulation, so the
/// driver code above it is the same for both.
pub trait RegisterBus {
    /// Read the register at `offset`.
    fn read32(&mut self, offset: u32) -> Result<u32, OffloadError>;
    /// Write the register at `offset`.
    fn write32(&mut self, offset: u32, value: u32) -> Result<(), OffloadError>;

    /// Read a 64-bit counter: LO (which latches HI), then HI.
    fn read64(&mut self, lo_offset: u32) -> Result<u64, OffloadError> {
        let lo = self.read32(lo_offset)?;
        let hi = self.read32(lo_offset + 4)?;
        Ok(u64::from(hi) << 32 | u64::from(lo))
    }
}

/// Snapshot of the engine's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Clock cycles since the last counter clear.
    pub cycles: u64,
    /// Cycles with an op beat offered, an op in flight, a result waiting or a clear running.
    pub busy_cycles: u64,
    /// Non-NOP ops issued.
    pub ops: u64,
    /// Op beats accepted.
    pub beats: u64,
    /// Result words delivered.
    pub results: u64,
    /// Cycles an offered beat waited because two of its lanes needed one bank.
    pub conflict_stalls: u64,
    /// Cycles an offered beat waited because the result stream was blocked.
    pub out_stalls: u64,
    /// Ops that took their slot from the write-back bypass (read-after-write
    /// on the same slot in consecutive cycles).
    pub forwards: u64,
}

impl Counters {
    /// Read every counter.
    pub fn read<B: RegisterBus + ?Sized>(bus: &mut B) -> Result<Counters, OffloadError> {
        let mut v = [0u64; 8];
        for (k, slot) in v.iter_mut().enumerate() {
            *slot = bus.read64(COUNTER_BASE + 8 * k as u32)?;
        }
        Ok(Counters {
            cycles: v[0],
            busy_cycles: v[1],
            ops: v[2],
            beats: v[3],
            results: v[4],
            conflict_stalls: v[5],
            out_stalls: v[6],
            forwards: v[7],
        })
    }
}
