//! The `sim` backend: `rtl/atomik_engine.v` compiled by Verilator (one model
//! per bank count, 256 slots per bank, built by `build.rs`), driven only
//! through its CSR port and its op/result valid/ready streams.
//!
//! Also here: a Rust emulation of the AXI DMA's direct-register mode so the
//! `ax7020` driver (register sequence included) runs against the RTL —
//! [`open_ax7020_on_sim`].

use std::cell::RefCell;
use std::ffi::c_void;
use std::ptr::NonNull;
use std::rc::Rc;

use crate::ax7020::{copy_in, copy_out, dma, AxiDmaTransport, DmaMemory};
use crate::engine::{check_geometry, Backend};
use crate::error::OffloadError;
use crate::hw::{BeatTransport, HwEngine};
use crate::regs::RegisterBus;
use crate::wire::LaneWord;

/// Slots per bank of every built model.
pub const SIM_SLOTS_PER_BANK: u32 = 256;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SimIn {
    in_data: [u64; 16],
    in_mask: u32,
    csr_wdata: u32,
    rst: u8,
    in_valid: u8,
    out_ready: u8,
    csr_we: u8,
    csr_re: u8,
    csr_addr: u8,
    pad: [u8; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SimOut {
    out_data: [u64; 16],
    out_mask: u32,
    csr_rdata: u32,
    in_ready: u8,
    out_valid: u8,
    out_last: u8,
    pad: [u8; 5],
}

extern "C" {
    fn atomik_sim_new(banks: u32) -> *mut c_void;
    fn atomik_sim_free(sim: *mut c_void);
    fn atomik_sim_cycle(sim: *mut c_void, input: *const SimIn, output: *mut SimOut);
    fn atomik_sim_abi_size() -> u32;
}

/// Random gaps on the op stream and back-pressure on the result stream, for
/// tests. The default offers every cycle and always accepts.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    state: u64,
    valid_pct: u64,
    ready_pct: u64,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            state: 0,
            valid_pct: 100,
            ready_pct: 100,
        }
    }
}

impl Pacing {
    /// Offer a beat in `valid_pct`% of cycles and accept results in
    /// `ready_pct`% (both clamped to 1..=100), from a seeded generator.
    pub fn random(seed: u64, valid_pct: u64, ready_pct: u64) -> Self {
        Pacing {
            state: seed,
            valid_pct: valid_pct.clamp(1, 100),
            ready_pct: ready_pct.clamp(1, 100),
        }
    }

    fn roll(&mut self, pct: u64) -> bool {
        if pct >= 100 {
            return true;
        }
        crate::abench::splitmix64(&mut self.state) % 100 < pct
    }
}

/// One Verilated engine.
#[derive(Debug)]
pub struct SimModel {
    ptr: NonNull<c_void>,
    banks: u32,
    input: SimIn,
    output: SimOut,
    cycles: u64,
    /// Indices (within the last `pump`) of result beats taken with TLAST.
    lasts: Vec<usize>,
}

impl SimModel {
    /// Build a model of `banks` banks and hold it in reset for two cycles.
    pub fn new(banks: u32) -> Result<Self, OffloadError> {
        check_geometry(banks, SIM_SLOTS_PER_BANK)?;
        let want = (std::mem::size_of::<SimIn>() * 1000 + std::mem::size_of::<SimOut>()) as u32;
        // SAFETY: a pure function of the C++ struct layouts.
        let got = unsafe { atomik_sim_abi_size() };
        if got != want {
            return Err(OffloadError::Unavailable {
                backend: "sim",
                reason: format!("C shim ABI mismatch ({got} != {want})"),
            });
        }
        // SAFETY: returns an owned model or null.
        let ptr =
            NonNull::new(unsafe { atomik_sim_new(banks) }).ok_or(OffloadError::Unavailable {
                backend: "sim",
                reason: format!("no model for {banks} banks"),
            })?;
        let mut m = SimModel {
            ptr,
            banks,
            input: SimIn {
                in_data: [0; 16],
                in_mask: 0,
                csr_wdata: 0,
                rst: 1,
                in_valid: 0,
                out_ready: 0,
                csr_we: 0,
                csr_re: 0,
                csr_addr: 0,
                pad: [0; 2],
            },
            output: SimOut {
                out_data: [0; 16],
                out_mask: 0,
                csr_rdata: 0,
                in_ready: 0,
                out_valid: 0,
                out_last: 0,
                pad: [0; 5],
            },
            cycles: 0,
            lasts: Vec::new(),
        };
        m.cycle();
        m.cycle();
        m.input.rst = 0;
        Ok(m)
    }

    /// Bank count.
    pub fn banks(&self) -> u32 {
        self.banks
    }

    /// Clock cycles simulated so far.
    pub fn cycles(&self) -> u64 {
        self.cycles
    }

    fn cycle(&mut self) {
        // SAFETY: `ptr` is a live model; both structs match the C layout
        // (checked by `atomik_sim_abi_size` in `new`).
        unsafe { atomik_sim_cycle(self.ptr.as_ptr(), &self.input, &mut self.output) };
        self.cycles += 1;
    }

    fn csr_addr(offset: u32) -> Result<u8, OffloadError> {
        if offset % 4 != 0 || offset > 0xFC {
            return Err(OffloadError::BadRegister { offset, len: 256 });
        }
        Ok(offset as u8)
    }

    /// One CSR read cycle (the streams are held idle and no result is taken).
    pub fn csr_read(&mut self, offset: u32) -> Result<u32, OffloadError> {
        self.input.csr_addr = Self::csr_addr(offset)?;
        self.input.csr_re = 1;
        self.input.in_valid = 0;
        self.input.out_ready = 0;
        self.cycle();
        self.input.csr_re = 0;
        Ok(self.output.csr_rdata)
    }

    /// One CSR write cycle.
    pub fn csr_write(&mut self, offset: u32, value: u32) -> Result<(), OffloadError> {
        self.input.csr_addr = Self::csr_addr(offset)?;
        self.input.csr_we = 1;
        self.input.csr_wdata = value;
        self.input.in_valid = 0;
        self.input.out_ready = 0;
        self.cycle();
        self.input.csr_we = 0;
        Ok(())
    }

    /// Push `beats` (`lanes` words each, all lanes valid) through the op
    /// stream and collect result beats into `out`, taking at most
    /// `max_out_beats`. Stops after `want_out_beats` results when given,
    /// otherwise when the pipeline has drained. Returns the result beats taken.
    fn pump(
        &mut self,
        beats: &[LaneWord],
        pacing: &mut Pacing,
        max_out_beats: usize,
        want_out_beats: Option<usize>,
        out: &mut Vec<LaneWord>,
    ) -> Result<usize, OffloadError> {
        let r = self.pump_inner(beats, pacing, max_out_beats, want_out_beats, out);
        // leave both streams idle whatever happened
        self.input.in_valid = 0;
        self.input.out_ready = 0;
        r
    }

    fn pump_inner(
        &mut self,
        beats: &[LaneWord],
        pacing: &mut Pacing,
        max_out_beats: usize,
        want_out_beats: Option<usize>,
        out: &mut Vec<LaneWord>,
    ) -> Result<usize, OffloadError> {
        let lanes = self.banks as usize;
        if beats.len() % lanes != 0 {
            return Err(OffloadError::Protocol(format!(
                "{} lane words is not a whole number of {lanes}-lane beats",
                beats.len()
            )));
        }
        let n = beats.len() / lanes;
        let mask = (1u32 << lanes) - 1;
        let limit = 64
            * (n + want_out_beats.unwrap_or(n) + 16) as u64
            * lanes as u64
            * (100 / pacing.valid_pct.max(1) + 100 / pacing.ready_pct.max(1));
        let (mut i, mut got, mut quiet, mut spent) = (0usize, 0usize, 0u32, 0u64);
        self.lasts.clear();
        self.input.in_mask = mask;
        loop {
            if i < n {
                // a beat once offered stays offered until accepted
                if self.input.in_valid == 0 && pacing.roll(pacing.valid_pct) {
                    for (l, w) in beats[i * lanes..(i + 1) * lanes].iter().enumerate() {
                        self.input.in_data[2 * l] = w[0];
                        self.input.in_data[2 * l + 1] = w[1];
                    }
                    self.input.in_valid = 1;
                }
            } else {
                self.input.in_valid = 0;
            }
            let ready = got < max_out_beats && pacing.roll(pacing.ready_pct);
            self.input.out_ready = u8::from(ready);
            self.cycle();
            spent += 1;
            if self.input.in_valid == 1 && self.output.in_ready == 1 {
                i += 1;
                self.input.in_valid = 0;
                // the beat's last lanes issued this cycle; their results are
                // at most two cycles behind
                quiet = 0;
            }
            if self.output.out_valid == 1 {
                quiet = 0;
                if ready {
                    for l in 0..lanes {
                        out.push([self.output.out_data[2 * l], self.output.out_data[2 * l + 1]]);
                    }
                    if self.output.out_last == 1 {
                        self.lasts.push(got);
                    }
                    got += 1;
                } else if got >= max_out_beats && i >= n {
                    return Err(OffloadError::Protocol(format!(
                        "engine produced more than {max_out_beats} result beats"
                    )));
                }
            } else {
                quiet += 1;
            }
            match want_out_beats {
                Some(w) if i >= n && got >= w => break,
                None if i >= n && quiet >= 4 => break,
                _ => {}
            }
            if spent > limit {
                return Err(OffloadError::Timeout(format!(
                    "op/result streams: {i}/{n} beats in, {got} result beats out after {spent} cycles"
                )));
            }
        }
        Ok(got)
    }
}

impl Drop for SimModel {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `atomik_sim_new` and is freed once.
        unsafe { atomik_sim_free(self.ptr.as_ptr()) };
    }
}

/// A model shared by a register bus and a transport.
pub type SharedModel = Rc<RefCell<SimModel>>;

/// The model's CSR port as a [`RegisterBus`].
#[derive(Debug, Clone)]
pub struct SimRegs(pub SharedModel);

impl RegisterBus for SimRegs {
    fn read32(&mut self, offset: u32) -> Result<u32, OffloadError> {
        self.0.borrow_mut().csr_read(offset)
    }

    fn write32(&mut self, offset: u32, value: u32) -> Result<(), OffloadError> {
        self.0.borrow_mut().csr_write(offset, value)
    }
}

/// The model's op/result streams as a [`BeatTransport`], driven cycle by cycle.
#[derive(Debug, Clone)]
pub struct SimStream {
    model: SharedModel,
    pacing: Pacing,
}

impl BeatTransport for SimStream {
    fn transfer(
        &mut self,
        beats: &[LaneWord],
        _lanes: usize,
        result_beats: usize,
        out: &mut Vec<LaneWord>,
    ) -> Result<(), OffloadError> {
        let got = self.model.borrow_mut().pump(
            beats,
            &mut self.pacing,
            result_beats,
            Some(result_beats),
            out,
        )?;
        if got != result_beats {
            return Err(OffloadError::Protocol(format!(
                "{got} result beats, expected {result_beats}"
            )));
        }
        Ok(())
    }

    fn max_beats(&self, _lanes: usize) -> usize {
        1 << 16
    }
}

/// The simulated engine.
pub type SimEngine = HwEngine<SimRegs, SimStream>;

/// Open a simulated engine of `banks` banks (1, 2, 4, 8).
pub fn open(banks: u32) -> Result<SimEngine, OffloadError> {
    open_paced(banks, Pacing::default())
}

/// Open a simulated engine whose streams are paced by `pacing`.
pub fn open_paced(banks: u32, pacing: Pacing) -> Result<SimEngine, OffloadError> {
    let model = Rc::new(RefCell::new(SimModel::new(banks)?));
    HwEngine::open(
        SimRegs(model.clone()),
        SimStream { model, pacing },
        Backend::Sim,
        Some(banks),
    )
}

/// Bus address the emulated DMA buffer pretends to live at.
pub const SIM_DMA_PHYS: u64 = 0x3F00_0000;

/// A `Vec`-backed [`DmaMemory`] shared with [`SimAxiDma`].
#[derive(Debug, Clone)]
pub struct SimDmaMemory(Rc<RefCell<Vec<u8>>>);

impl DmaMemory for SimDmaMemory {
    fn phys_addr(&self) -> u64 {
        SIM_DMA_PHYS
    }

    fn len(&self) -> usize {
        self.0.borrow().len()
    }

    fn write_words(&mut self, offset: usize, words: &[u64]) -> Result<(), OffloadError> {
        copy_in(&mut self.0.borrow_mut(), offset, words)
    }

    fn read_words(&mut self, offset: usize, out: &mut [u64]) -> Result<(), OffloadError> {
        copy_out(&self.0.borrow(), offset, out)
    }
}

/// Rust emulation of a Xilinx AXI DMA (PG021) in direct register mode whose
/// MM2S stream feeds the model's op stream and whose S2MM channel takes its
/// result stream. Transfers complete synchronously when MM2S_LENGTH is
/// written; S2MM completes at the result stream's TLAST (the engine's
/// `out_last`, set up by the RESULT_PACKET register), as PG021 describes.
/// This is our reading of the data sheet, not the IP.
#[derive(Debug)]
pub struct SimAxiDma {
    model: SharedModel,
    mem: Rc<RefCell<Vec<u8>>>,
    regs: [u32; 24],
    s2mm_armed: bool,
    pacing: Pacing,
    writes: Vec<(u32, u32)>,
}

impl SimAxiDma {
    /// Every register write so far, in order (offset, value).
    pub fn writes(&self) -> &[(u32, u32)] {
        &self.writes
    }

    fn idx(offset: u32) -> Result<usize, OffloadError> {
        if offset % 4 != 0 || offset >= 0x60 {
            return Err(OffloadError::BadRegister { offset, len: 0x60 });
        }
        Ok((offset / 4) as usize)
    }

    fn reset(&mut self) {
        self.regs = [0; 24];
        self.regs[(dma::MM2S_DMASR / 4) as usize] = dma::SR_HALTED;
        self.regs[(dma::S2MM_DMASR / 4) as usize] = dma::SR_HALTED;
        self.s2mm_armed = false;
    }

    fn r(&self, offset: u32) -> u32 {
        self.regs[(offset / 4) as usize]
    }

    fn set(&mut self, offset: u32, f: impl FnOnce(u32) -> u32) {
        let i = (offset / 4) as usize;
        self.regs[i] = f(self.regs[i]);
    }

    fn run_mm2s(&mut self, len: usize) -> Result<(), OffloadError> {
        let lanes = self.model.borrow().banks() as usize;
        let base = (u64::from(self.r(dma::MM2S_SA_MSB)) << 32 | u64::from(self.r(dma::MM2S_SA)))
            .wrapping_sub(SIM_DMA_PHYS) as usize;
        let beat_bytes = lanes * 16;
        let mem_len = self.mem.borrow().len();
        if len % beat_bytes != 0 || base.checked_add(len).is_none_or(|e| e > mem_len) {
            // decode error (bad address) or a partial stream beat
            self.set(dma::MM2S_DMASR, |s| s | 0x40 | dma::SR_IDLE);
            return Ok(());
        }
        let mut words = vec![0u64; len / 8];
        copy_out(&self.mem.borrow(), base, &mut words)?;
        let beats: Vec<LaneWord> = words.chunks_exact(2).map(|w| [w[0], w[1]]).collect();
        let cap = if self.s2mm_armed {
            self.r(dma::S2MM_LENGTH) as usize / beat_bytes
        } else {
            0
        };
        let mut out = Vec::new();
        let res = self
            .model
            .borrow_mut()
            .pump(&beats, &mut self.pacing, cap, None, &mut out);
        let first_last = self.model.borrow().lasts.first().copied();
        self.set(dma::MM2S_DMASR, |s| s | dma::SR_IOC | dma::SR_IDLE);
        match res {
            Err(OffloadError::Protocol(_)) => {
                // results with nowhere to go: a real S2MM would stall; flag it
                self.set(dma::S2MM_DMASR, |s| s | 0x10);
                return Ok(());
            }
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        if self.s2mm_armed {
            let dst = (u64::from(self.r(dma::S2MM_DA_MSB)) << 32 | u64::from(self.r(dma::S2MM_DA)))
                .wrapping_sub(SIM_DMA_PHYS) as usize;
            let flat: Vec<u64> = out.iter().flatten().copied().collect();
            if copy_in(&mut self.mem.borrow_mut(), dst, &flat).is_err() {
                self.set(dma::S2MM_DMASR, |s| s | 0x40);
                return Ok(());
            }
            // the S2MM packet ends at the first TLAST; beats after it would
            // start a packet nobody armed a buffer for
            let beats_out = out.len() / lanes;
            match first_last {
                Some(k) if k + 1 == beats_out => {
                    self.set(dma::S2MM_LENGTH, |_| (beats_out * beat_bytes) as u32);
                    self.set(dma::S2MM_DMASR, |s| s | dma::SR_IOC | dma::SR_IDLE);
                    self.s2mm_armed = false;
                }
                Some(_) => self.set(dma::S2MM_DMASR, |s| s | 0x10),
                None => {} // no TLAST yet: the channel keeps waiting
            }
        }
        Ok(())
    }
}

impl RegisterBus for SimAxiDma {
    fn read32(&mut self, offset: u32) -> Result<u32, OffloadError> {
        let i = Self::idx(offset)?;
        Ok(self.regs[i])
    }

    fn write32(&mut self, offset: u32, value: u32) -> Result<(), OffloadError> {
        let i = Self::idx(offset)?;
        self.writes.push((offset, value));
        match offset {
            dma::MM2S_DMACR | dma::S2MM_DMACR => {
                if value & dma::CR_RESET != 0 {
                    self.reset();
                } else {
                    self.regs[i] = value;
                    let sr = offset + 4;
                    if value & dma::CR_RS != 0 {
                        self.set(sr, |s| s & !dma::SR_HALTED);
                    } else {
                        self.set(sr, |s| s | dma::SR_HALTED);
                    }
                }
            }
            dma::MM2S_DMASR | dma::S2MM_DMASR => {
                self.regs[i] &= !(value & 0x7000);
            }
            dma::S2MM_LENGTH => {
                if self.r(dma::S2MM_DMASR) & dma::SR_HALTED == 0 {
                    self.regs[i] = value;
                    self.s2mm_armed = true;
                    self.set(dma::S2MM_DMASR, |s| s & !dma::SR_IDLE);
                }
            }
            dma::MM2S_LENGTH => {
                if self.r(dma::MM2S_DMASR) & dma::SR_HALTED == 0 {
                    self.regs[i] = value;
                    self.set(dma::MM2S_DMASR, |s| s & !dma::SR_IDLE);
                    self.run_mm2s(value as usize)?;
                }
            }
            _ => self.regs[i] = value,
        }
        Ok(())
    }
}

/// The `ax7020` driver running over the simulated RTL and the emulated DMA.
pub type Ax7020OnSim = HwEngine<SimRegs, AxiDmaTransport<SimAxiDma, SimDmaMemory>>;

/// Open the `ax7020` driver (the same [`HwEngine`] and [`AxiDmaTransport`]
/// code the board uses) over the simulated engine, with a `buffer_bytes`
/// DMA buffer and a `length_bits`-wide DMA length register.
pub fn open_ax7020_on_sim(
    banks: u32,
    pacing: Pacing,
    buffer_bytes: usize,
    length_bits: u32,
) -> Result<Ax7020OnSim, OffloadError> {
    let model = Rc::new(RefCell::new(SimModel::new(banks)?));
    let mem = Rc::new(RefCell::new(vec![0u8; buffer_bytes]));
    let mut dma_regs = SimAxiDma {
        model: model.clone(),
        mem: mem.clone(),
        regs: [0; 24],
        s2mm_armed: false,
        pacing,
        writes: Vec::new(),
    };
    dma_regs.reset();
    let transport = AxiDmaTransport::new(dma_regs, SimDmaMemory(mem), length_bits);
    HwEngine::open(SimRegs(model), transport, Backend::Ax7020, Some(banks))
}
