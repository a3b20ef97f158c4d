//! Errors of every backend.

use std::path::PathBuf;

/// Everything an [`Engine`](crate::Engine) operation or backend setup can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OffloadError {
    /// A slot number is not below the engine's slot count.
    #[error("slot {slot} out of range: the engine has {slots} slots")]
    SlotOutOfRange {
        /// The offending slot.
        slot: u32,
        /// The engine's total slot count (banks × slots per bank).
        slots: u32,
    },
    /// A merge-read index is not below the slots per bank.
    #[error("merge index {index} out of range: the engine has {slots_per_bank} slots per bank")]
    IndexOutOfRange {
        /// The offending index.
        index: u32,
        /// Slots per bank.
        slots_per_bank: u32,
    },
    /// Bank count other than 1, 2, 4 or 8.
    #[error("unsupported bank count {0}: use 1, 2, 4 or 8")]
    BadBankCount(u32),
    /// Slots per bank not a power of two in 2..=2^24.
    #[error("unsupported slots per bank {0}: use a power of two from 2 to 16777216")]
    BadSlotCount(u32),
    /// The device at the other end of the register bus is not an atomik engine
    /// of a supported version, or has a different geometry than requested.
    #[error("device identity check failed: {0}")]
    Identity(String),
    /// The engine's ERRORS register was non-zero after a batch.
    #[error("engine reported errors: ERRORS={flags:#x} ERROR_COUNT={count}")]
    Device {
        /// ERRORS register value (bit 0 slot range, bit 1 bad opcode, bit 2 bad CSR access).
        flags: u32,
        /// ERROR_COUNT register value.
        count: u32,
    },
    /// The result stream did not match what the op stream asked for.
    #[error("result stream protocol error: {0}")]
    Protocol(String),
    /// A bounded wait (stream drain, DMA completion, RAM clear) ran out.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The AXI DMA reported an error in a status register.
    #[error("AXI DMA {channel} error: DMASR={status:#x}")]
    Dma {
        /// `MM2S` or `S2MM`.
        channel: &'static str,
        /// The status register value.
        status: u32,
    },
    /// A batch does not fit the DMA buffer or the DMA length register.
    #[error("transfer of {bytes} bytes exceeds the limit of {limit} bytes")]
    TransferTooLarge {
        /// Bytes needed.
        bytes: usize,
        /// Bytes available.
        limit: usize,
    },
    /// A register access outside the mapped window or not 4-byte aligned.
    #[error("register offset {offset:#x} invalid for a {len}-byte window")]
    BadRegister {
        /// Byte offset asked for.
        offset: u32,
        /// Size of the mapped window.
        len: usize,
    },
    /// An operating-system call failed (opening or mapping a UIO / u-dma-buf device).
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A backend cannot be used in this build or on this machine.
    #[error("backend {backend} unavailable: {reason}")]
    Unavailable {
        /// Backend name.
        backend: &'static str,
        /// Why.
        reason: String,
    },
    /// A seed string that is neither decimal nor `0x` hexadecimal u64.
    #[error("invalid seed {input:?}: expected a decimal or 0x-hexadecimal 64-bit integer")]
    BadSeed {
        /// The text given.
        input: String,
    },
}
