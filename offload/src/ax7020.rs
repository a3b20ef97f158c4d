//! The AX7020 (Zynq-7020) backend: engine registers and an AXI DMA mapped
//! through Linux UIO, op/result beats through a physically contiguous
//! `u-dma-buf` buffer.
//!
//! **This backend has never run on silicon.** No board was reachable while it
//! was written. What is tested: the whole driver ([`HwEngine`]) and the AXI
//! DMA register sequence in [`AxiDmaTransport`] run in the test suite against
//! the Verilated RTL, with the DMA emulated in Rust after Xilinx PG021
//! (simple / direct-register mode, S2MM completing on TLAST) — see
//! `sim::open_ax7020_on_sim`; `rtl/atomik_axi_top.v` (AXI-Lite bridge and
//! AXI-Stream ports) has its own Icarus bench. What is not tested: the UIO
//! and u-dma-buf mappings ([`UioRegisters`], [`UdmaBuf`]), the real AXI DMA
//! IP, cache coherence, and timing closure of the RTL on the part.
//!
//! Expected block design (not in this repository): `rtl/atomik_axi_top.v`
//! with its AXI-Lite port on GP0 (UIO map of `/dev/uioE`), an AXI DMA (no
//! scatter-gather, stream width = 128 × banks bits, buffer-length register
//! ≥ 23 bits) on HP0 whose MM2S feeds `s_axis` and whose S2MM takes
//! `m_axis` (UIO map of `/dev/uioD`), and a `u-dma-buf` device for the
//! buffer.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use memmap2::{MmapMut, MmapOptions};

use crate::engine::Backend;
use crate::error::OffloadError;
use crate::hw::{BeatTransport, HwEngine};
use crate::regs::RegisterBus;
use crate::wire::LaneWord;

/// AXI DMA register offsets (PG021, direct register mode).
pub mod dma {
    /// MM2S control.
    pub const MM2S_DMACR: u32 = 0x00;
    /// MM2S status.
    pub const MM2S_DMASR: u32 = 0x04;
    /// MM2S source address, low 32 bits.
    pub const MM2S_SA: u32 = 0x18;
    /// MM2S source address, high 32 bits.
    pub const MM2S_SA_MSB: u32 = 0x1C;
    /// MM2S length in bytes; writing it starts the transfer.
    pub const MM2S_LENGTH: u32 = 0x28;
    /// S2MM control.
    pub const S2MM_DMACR: u32 = 0x30;
    /// S2MM status.
    pub const S2MM_DMASR: u32 = 0x34;
    /// S2MM destination address, low 32 bits.
    pub const S2MM_DA: u32 = 0x48;
    /// S2MM destination address, high 32 bits.
    pub const S2MM_DA_MSB: u32 = 0x4C;
    /// S2MM buffer length; after completion, the bytes received.
    pub const S2MM_LENGTH: u32 = 0x58;

    /// DMACR: run/stop.
    pub const CR_RS: u32 = 1 << 0;
    /// DMACR: soft reset (self-clearing; resets both channels).
    pub const CR_RESET: u32 = 1 << 2;
    /// DMASR: halted.
    pub const SR_HALTED: u32 = 1 << 0;
    /// DMASR: idle.
    pub const SR_IDLE: u32 = 1 << 1;
    /// DMASR: internal, slave and decode error bits.
    pub const SR_ERRORS: u32 = 0x70;
    /// DMASR: interrupt on complete (write 1 to clear).
    pub const SR_IOC: u32 = 1 << 12;
}

/// A physically contiguous buffer the DMA can reach.
pub trait DmaMemory {
    /// Bus address of byte 0.
    fn phys_addr(&self) -> u64;
    /// Size in bytes.
    fn len(&self) -> usize;
    /// Whether the buffer is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Copy `words` (little-endian) to byte `offset`.
    fn write_words(&mut self, offset: usize, words: &[u64]) -> Result<(), OffloadError>;
    /// Copy words from byte `offset` into `out`.
    fn read_words(&mut self, offset: usize, out: &mut [u64]) -> Result<(), OffloadError>;
}

/// Beat transport over an AXI DMA in direct register mode. The first half of
/// the buffer carries op beats (MM2S), the second half result beats (S2MM).
#[derive(Debug)]
pub struct AxiDmaTransport<D: RegisterBus, M: DmaMemory> {
    dma: D,
    mem: M,
    max_length: usize,
    poll_limit: u32,
    started: bool,
    words: Vec<u64>,
}

impl<D: RegisterBus, M: DmaMemory> AxiDmaTransport<D, M> {
    /// A transport over the DMA's registers and a buffer. `length_bits` is the
    /// DMA's configured buffer-length register width (8..=26).
    pub fn new(dma: D, mem: M, length_bits: u32) -> Self {
        let bits = length_bits.clamp(8, 26);
        AxiDmaTransport {
            dma,
            mem,
            max_length: (1usize << bits) - 1,
            poll_limit: 10_000_000,
            started: false,
            words: Vec::new(),
        }
    }

    /// The DMA register bus.
    pub fn dma_mut(&mut self) -> &mut D {
        &mut self.dma
    }

    fn limit(&self) -> usize {
        (self.mem.len() / 2).min(self.max_length) & !15
    }

    fn start(&mut self) -> Result<(), OffloadError> {
        self.dma.write32(dma::MM2S_DMACR, dma::CR_RESET)?;
        let mut polls = 0;
        while self.dma.read32(dma::MM2S_DMACR)? & dma::CR_RESET != 0 {
            polls += 1;
            if polls > self.poll_limit {
                return Err(OffloadError::Timeout("AXI DMA reset".into()));
            }
        }
        self.dma.write32(dma::MM2S_DMACR, dma::CR_RS)?;
        self.dma.write32(dma::S2MM_DMACR, dma::CR_RS)?;
        self.started = true;
        Ok(())
    }

    fn wait(&mut self, status: u32, channel: &'static str) -> Result<(), OffloadError> {
        for _ in 0..self.poll_limit {
            let st = self.dma.read32(status)?;
            if st & dma::SR_ERRORS != 0 {
                self.started = false;
                return Err(OffloadError::Dma {
                    channel,
                    status: st,
                });
            }
            if st & dma::SR_IOC != 0 {
                self.dma.write32(status, dma::SR_IOC)?;
                return Ok(());
            }
        }
        self.started = false;
        Err(OffloadError::Timeout(format!(
            "AXI DMA {channel} completion"
        )))
    }
}

impl<D: RegisterBus, M: DmaMemory> BeatTransport for AxiDmaTransport<D, M> {
    fn transfer(
        &mut self,
        beats: &[LaneWord],
        lanes: usize,
        result_beats: usize,
        out: &mut Vec<LaneWord>,
    ) -> Result<(), OffloadError> {
        let in_bytes = beats.len() * 16;
        let out_bytes = result_beats * lanes * 16;
        let limit = self.limit();
        for bytes in [in_bytes, out_bytes] {
            if bytes > limit {
                return Err(OffloadError::TransferTooLarge { bytes, limit });
            }
        }
        if in_bytes == 0 {
            return Ok(());
        }
        if !self.started {
            self.start()?;
        }
        self.words.clear();
        self.words.extend(beats.iter().flatten());
        self.mem.write_words(0, &self.words)?;
        let half = (self.mem.len() / 2) & !15;
        let tx = self.mem.phys_addr();
        let rx = tx + half as u64;
        if out_bytes > 0 {
            self.dma.write32(dma::S2MM_DMACR, dma::CR_RS)?;
            self.dma.write32(dma::S2MM_DA, rx as u32)?;
            self.dma.write32(dma::S2MM_DA_MSB, (rx >> 32) as u32)?;
            self.dma.write32(dma::S2MM_LENGTH, out_bytes as u32)?;
        }
        self.dma.write32(dma::MM2S_DMACR, dma::CR_RS)?;
        self.dma.write32(dma::MM2S_SA, tx as u32)?;
        self.dma.write32(dma::MM2S_SA_MSB, (tx >> 32) as u32)?;
        self.dma.write32(dma::MM2S_LENGTH, in_bytes as u32)?;
        self.wait(dma::MM2S_DMASR, "MM2S")?;
        if out_bytes > 0 {
            self.wait(dma::S2MM_DMASR, "S2MM")?;
            let got = self.dma.read32(dma::S2MM_LENGTH)? as usize;
            if got != out_bytes {
                return Err(OffloadError::Protocol(format!(
                    "S2MM received {got} bytes, expected {out_bytes}"
                )));
            }
            self.words.clear();
            self.words.resize(out_bytes / 8, 0);
            self.mem.read_words(half, &mut self.words)?;
            out.extend(self.words.chunks_exact(2).map(|w| [w[0], w[1]]));
        }
        Ok(())
    }

    fn needs_packet_length(&self) -> bool {
        true
    }

    fn max_beats(&self, lanes: usize) -> usize {
        // An op beat can split into `lanes` issue cycles, each a full result beat.
        self.limit() / (16 * lanes * lanes)
    }
}

fn io_err(path: &Path, source: std::io::Error) -> OffloadError {
    OffloadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_sysfs(path: &Path) -> Result<String, OffloadError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| io_err(path, e))
}

fn parse_sysfs_u64(path: &Path) -> Result<u64, OffloadError> {
    let text = read_sysfs(path)?;
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|e| {
        io_err(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        )
    })
}

/// One memory map of a UIO device as a [`RegisterBus`] (volatile 32-bit
/// accesses).
#[derive(Debug)]
pub struct UioRegisters {
    map: MmapMut,
    path: PathBuf,
}

impl UioRegisters {
    /// Map map number `map` of `/dev/uioN` (its size from
    /// `/sys/class/uio/uioN/maps/mapM/size`).
    pub fn open(dev: &Path, map: u32) -> Result<Self, OffloadError> {
        let name = dev
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io_err(dev, std::io::ErrorKind::InvalidInput.into()))?;
        let size_path = PathBuf::from(format!("/sys/class/uio/{name}/maps/map{map}/size"));
        let size = parse_sysfs_u64(&size_path)? as usize;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_SYNC)
            .open(dev)
            .map_err(|e| io_err(dev, e))?;
        let page = page_size();
        // SAFETY: the UIO device file stays open for the mapping's creation;
        // the mapping is device memory owned by this process's handle, and
        // every access through it is bounds- and alignment-checked volatile.
        let map = unsafe {
            MmapOptions::new()
                .offset(u64::from(map) * page as u64)
                .len(size)
                .map_mut(&file)
        }
        .map_err(|e| io_err(dev, e))?;
        Ok(UioRegisters {
            map,
            path: dev.to_path_buf(),
        })
    }

    fn check(&self, offset: u32) -> Result<usize, OffloadError> {
        let off = offset as usize;
        if !off.is_multiple_of(4) || off + 4 > self.map.len() {
            return Err(OffloadError::BadRegister {
                offset,
                len: self.map.len(),
            });
        }
        Ok(off)
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

impl RegisterBus for UioRegisters {
    fn read32(&mut self, offset: u32) -> Result<u32, OffloadError> {
        let off = self.check(offset)?;
        // SAFETY: `off + 4 <= len` and `off` is 4-aligned within a page-aligned mapping.
        Ok(unsafe { std::ptr::read_volatile(self.map.as_ptr().add(off) as *const u32) })
    }

    fn write32(&mut self, offset: u32, value: u32) -> Result<(), OffloadError> {
        let off = self.check(offset)?;
        // SAFETY: as in `read32`.
        unsafe { std::ptr::write_volatile(self.map.as_mut_ptr().add(off) as *mut u32, value) };
        Ok(())
    }
}

/// A `u-dma-buf` buffer (`/dev/udmabufN`, opened `O_SYNC` so the mapping is
/// uncached and needs no explicit cache maintenance).
#[derive(Debug)]
pub struct UdmaBuf {
    map: MmapMut,
    phys: u64,
}

impl UdmaBuf {
    /// Map `/dev/<name>` with its size and bus address from
    /// `/sys/class/u-dma-buf/<name>/{size,phys_addr}`.
    pub fn open(name: &str) -> Result<Self, OffloadError> {
        let sys = PathBuf::from(format!("/sys/class/u-dma-buf/{name}"));
        let size = parse_sysfs_u64(&sys.join("size"))? as usize;
        let phys = parse_sysfs_u64(&sys.join("phys_addr"))?;
        let dev = PathBuf::from(format!("/dev/{name}"));
        let file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_SYNC)
            .open(&dev)
            .map_err(|e| io_err(&dev, e))?;
        // SAFETY: the buffer belongs to this process while mapped; the DMA only
        // touches it between `transfer`'s start and completion, while no Rust
        // reference into it is alive.
        let map =
            unsafe { MmapOptions::new().len(size).map_mut(&file) }.map_err(|e| io_err(&dev, e))?;
        Ok(UdmaBuf { map, phys })
    }
}

impl DmaMemory for UdmaBuf {
    fn phys_addr(&self) -> u64 {
        self.phys
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn write_words(&mut self, offset: usize, words: &[u64]) -> Result<(), OffloadError> {
        copy_in(&mut self.map[..], offset, words)
    }

    fn read_words(&mut self, offset: usize, out: &mut [u64]) -> Result<(), OffloadError> {
        copy_out(&self.map[..], offset, out)
    }
}

/// Copy little-endian words into a byte buffer with a bounds check.
pub(crate) fn copy_in(buf: &mut [u8], offset: usize, words: &[u64]) -> Result<(), OffloadError> {
    let end = offset + words.len() * 8;
    let limit = buf.len();
    let dst = buf
        .get_mut(offset..end)
        .ok_or(OffloadError::TransferTooLarge { bytes: end, limit })?;
    for (chunk, w) in dst.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    Ok(())
}

/// Copy little-endian words out of a byte buffer with a bounds check.
pub(crate) fn copy_out(buf: &[u8], offset: usize, out: &mut [u64]) -> Result<(), OffloadError> {
    let end = offset + out.len() * 8;
    let src = buf.get(offset..end).ok_or(OffloadError::TransferTooLarge {
        bytes: end,
        limit: buf.len(),
    })?;
    for (w, chunk) in out.iter_mut().zip(src.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *w = u64::from_le_bytes(b);
    }
    Ok(())
}

/// Where the board's devices are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ax7020Config {
    /// UIO device of the engine's register block.
    pub engine_uio: PathBuf,
    /// Map index of the engine registers in `engine_uio`.
    pub engine_map: u32,
    /// UIO device of the AXI DMA.
    pub dma_uio: PathBuf,
    /// Map index of the DMA registers in `dma_uio`.
    pub dma_map: u32,
    /// `u-dma-buf` device name.
    pub udmabuf: String,
    /// Width of the DMA's buffer-length register (bits).
    pub length_bits: u32,
}

impl Default for Ax7020Config {
    fn default() -> Self {
        Ax7020Config {
            engine_uio: PathBuf::from("/dev/uio0"),
            engine_map: 0,
            dma_uio: PathBuf::from("/dev/uio1"),
            dma_map: 0,
            udmabuf: "udmabuf0".to_string(),
            length_bits: 23,
        }
    }
}

/// The board engine.
pub type Ax7020Engine = HwEngine<UioRegisters, AxiDmaTransport<UioRegisters, UdmaBuf>>;

/// Open the board engine: map the devices, check the engine's identity and
/// geometry, soft-reset it.
pub fn open(config: &Ax7020Config, banks: Option<u32>) -> Result<Ax7020Engine, OffloadError> {
    let regs = UioRegisters::open(&config.engine_uio, config.engine_map)?;
    let dma = UioRegisters::open(&config.dma_uio, config.dma_map)?;
    let mem = UdmaBuf::open(&config.udmabuf)?;
    let transport = AxiDmaTransport::new(dma, mem, config.length_bits);
    HwEngine::open(regs, transport, Backend::Ax7020, banks)
}

/// Why the default board configuration cannot be opened here, or `None`
/// when its device files exist.
pub fn unavailable_reason(config: &Ax7020Config) -> Option<String> {
    for p in [&config.engine_uio, &config.dma_uio] {
        if !p.exists() {
            return Some(format!(
                "{} does not exist (no AX7020 board here)",
                p.display()
            ));
        }
    }
    let buf = PathBuf::from(format!("/dev/{}", config.udmabuf));
    if !buf.exists() {
        return Some(format!("{} does not exist", buf.display()));
    }
    None
}
