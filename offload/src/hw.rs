//! The hardware driver, written once over [`RegisterBus`] and
//! [`BeatTransport`]: the `sim` backend runs it over the Verilated model,
//! the `ax7020` backend over UIO and an AXI DMA.

use crate::engine::{check_geometry, validate_ops, Backend, Engine, Op};
use crate::error::OffloadError;
use crate::regs::{self, Counters, RegisterBus};
use crate::wire::{self, LaneWord, NOP_WORD};

/// Moves op beats into the engine and result beats out of it.
pub trait BeatTransport {
    /// Send `beats` (each `lanes` lane words, every lane valid; padding lanes
    /// are NOPs) and append exactly `result_beats` result beats (each `lanes`
    /// lane words, empty lanes all zero) to `out`.
    fn transfer(
        &mut self,
        beats: &[LaneWord],
        lanes: usize,
        result_beats: usize,
        out: &mut Vec<LaneWord>,
    ) -> Result<(), OffloadError>;

    /// Largest number of op beats one `transfer` call accepts.
    fn max_beats(&self, lanes: usize) -> usize;

    /// Whether the result stream must end each transfer with TLAST (a DMA
    /// S2MM channel completes on it); the driver then programs
    /// RESULT_PACKET with the transfer's result-beat count.
    fn needs_packet_length(&self) -> bool {
        false
    }
}

/// How many STATUS polls a RAM clear may take before giving up.
const CLEAR_POLLS: u32 = 1_000_000;

/// An engine behind a register bus and a beat transport.
#[derive(Debug)]
pub struct HwEngine<R: RegisterBus, T: BeatTransport> {
    regs: R,
    transport: T,
    backend: Backend,
    banks: u32,
    slots_per_bank: u32,
    beats: Vec<LaneWord>,
    out: Vec<LaneWord>,
    packet: Option<u32>,
}

impl<R: RegisterBus, T: BeatTransport> HwEngine<R, T> {
    /// Probe the engine (ID, VERSION, geometry), soft-reset it and wait for
    /// the slot clear to finish. `expect_banks` / `expect_slots` reject a
    /// device of another geometry when given.
    pub fn open(
        mut regs: R,
        transport: T,
        backend: Backend,
        expect_banks: Option<u32>,
    ) -> Result<Self, OffloadError> {
        let id = regs.read32(regs::ID)?;
        if id != regs::ID_MAGIC {
            return Err(OffloadError::Identity(format!(
                "ID register reads {id:#010x}, expected {:#010x} (\"ATMK\")",
                regs::ID_MAGIC
            )));
        }
        let version = regs.read32(regs::VERSION)?;
        if version >> 16 != regs::VERSION_MAJOR {
            return Err(OffloadError::Identity(format!(
                "engine version {}.{} is not {}.x",
                version >> 16,
                version & 0xFFFF,
                regs::VERSION_MAJOR
            )));
        }
        let banks = regs.read32(regs::NUM_BANKS)?;
        let slots_per_bank = regs.read32(regs::SLOTS_PER_BANK)?;
        check_geometry(banks, slots_per_bank)
            .map_err(|e| OffloadError::Identity(format!("device geometry: {e}")))?;
        if let Some(want) = expect_banks {
            if want != banks {
                return Err(OffloadError::Identity(format!(
                    "device has {banks} banks, {want} requested"
                )));
            }
        }
        let mut engine = HwEngine {
            regs,
            transport,
            backend,
            banks,
            slots_per_bank,
            beats: Vec::new(),
            out: Vec::new(),
            packet: None,
        };
        engine.reset()?;
        Ok(engine)
    }

    fn wait_cleared(&mut self) -> Result<(), OffloadError> {
        for _ in 0..CLEAR_POLLS {
            let st = self.regs.read32(regs::STATUS)?;
            if st & regs::ST_CLEARING == 0 {
                return Ok(());
            }
        }
        Err(OffloadError::Timeout("slot clear (STATUS.CLEARING)".into()))
    }

    /// SOFT_RESET the engine (drops anything in flight, zeroes every slot,
    /// the counters and the errors) and wait for the slot clear. Use after a
    /// timeout or protocol error, when the engine's state is unknown.
    pub fn reset(&mut self) -> Result<(), OffloadError> {
        self.regs.write32(regs::CONTROL, regs::CTL_SOFT_RESET)?;
        self.wait_cleared()
    }

    /// Read the engine's counters.
    pub fn counters(&mut self) -> Result<Counters, OffloadError> {
        Counters::read(&mut self.regs)
    }

    /// Zero the engine's counters.
    pub fn clear_counters(&mut self) -> Result<(), OffloadError> {
        self.regs.write32(regs::CONTROL, regs::CTL_CLEAR_COUNTERS)
    }

    /// The register bus, for tests and diagnostics.
    pub fn regs_mut(&mut self) -> &mut R {
        &mut self.regs
    }

    /// The transport, for tests and diagnostics.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    fn run_chunk(&mut self, ops: &[Op], results: &mut Vec<u64>) -> Result<(), OffloadError> {
        let lanes = self.banks as usize;
        self.beats.clear();
        let mut result_beats = 0;
        for chunk in ops.chunks(lanes) {
            let start = self.beats.len();
            self.beats.extend(chunk.iter().map(wire::encode));
            self.beats.resize(start + lanes, NOP_WORD);
            result_beats +=
                wire::result_beats(&self.beats[start..], self.banks, self.slots_per_bank);
        }
        if self.transport.needs_packet_length() && result_beats > 0 {
            let n = u32::try_from(result_beats).map_err(|_| OffloadError::TransferTooLarge {
                bytes: result_beats * lanes * 16,
                limit: u32::MAX as usize,
            })?;
            if self.packet != Some(n) {
                self.regs.write32(regs::RESULT_PACKET, n)?;
                self.packet = Some(n);
            }
        }
        self.out.clear();
        self.transport
            .transfer(&self.beats, lanes, result_beats, &mut self.out)?;
        if self.out.len() != result_beats * lanes {
            return Err(OffloadError::Protocol(format!(
                "expected {} result lanes, transport returned {}",
                result_beats * lanes,
                self.out.len()
            )));
        }
        let mut expected = ops.iter().filter(|op| op.has_result());
        for &w in &self.out {
            let r = wire::decode_result(w);
            if r.opcode == wire::OP_NOP {
                if w != NOP_WORD {
                    return Err(OffloadError::Protocol(format!(
                        "empty result lane not zero: {w:016x?}"
                    )));
                }
                continue;
            }
            let Some(op) = expected.next() else {
                return Err(OffloadError::Protocol("more results than reads".into()));
            };
            let want = wire::encode(op);
            if (want[1] & 0xFF_FFFF_FFFF) != (w[1] & 0xFF_FFFF_FFFF) || r.error {
                return Err(OffloadError::Protocol(format!(
                    "result {:016x?} does not answer op {op:?}",
                    w
                )));
            }
            results.push(r.value);
        }
        if expected.next().is_some() {
            return Err(OffloadError::Protocol("fewer results than reads".into()));
        }
        Ok(())
    }
}

impl<R: RegisterBus, T: BeatTransport> Engine for HwEngine<R, T> {
    fn backend(&self) -> Backend {
        self.backend
    }

    fn banks(&self) -> u32 {
        self.banks
    }

    fn slots_per_bank(&self) -> u32 {
        self.slots_per_bank
    }

    fn execute(&mut self, ops: &[Op], results: &mut Vec<u64>) -> Result<(), OffloadError> {
        validate_ops(ops, self.banks, self.slots_per_bank)?;
        let lanes = self.banks as usize;
        let per_transfer = self.transport.max_beats(lanes).max(1) * lanes;
        for chunk in ops.chunks(per_transfer) {
            self.run_chunk(chunk, results)?;
        }
        let flags = self.regs.read32(regs::ERRORS)?;
        if flags != 0 {
            let count = self.regs.read32(regs::ERROR_COUNT)?;
            self.regs.write32(regs::CONTROL, regs::CTL_CLEAR_ERRORS)?;
            return Err(OffloadError::Device { flags, count });
        }
        Ok(())
    }

    fn clear(&mut self) -> Result<(), OffloadError> {
        self.regs.write32(regs::CONTROL, regs::CTL_CLEAR_SLOTS)?;
        self.wait_cleared()
    }
}
