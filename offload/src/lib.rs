//! Batched accumulation engines for atomik (DESIGN §5).
//!
//! A stream of `(slot, delta)` folded into per-slot `(reference,
//! accumulator)` values is the one atomik operation worth offloading. The
//! [`Engine`] trait runs such batches; its backends are:
//!
//! * [`cpu::CpuEngine`] — plain Rust, the reference, always built;
//! * `sim` (cargo feature `sim`) — `rtl/atomik_engine.v` compiled by Verilator
//!   and driven only through its register map and op/result streams;
//! * [`ax7020`] — the Zynq-7020 board through Linux UIO and an AXI DMA.
//!   **It has never run on silicon**; its driver code is tested over the
//!   simulated RTL (see the module docs).
//!
//! Every backend gives results byte-identical to `cpu` for 1, 2, 4 and 8
//! banks. [`abench`] is workload W6.

#![warn(missing_docs)]

pub mod abench;
pub mod ax7020;
pub mod cpu;
mod engine;
mod error;
pub mod hw;
pub mod regs;
#[cfg(feature = "sim")]
pub mod sim;
pub mod wire;

pub use engine::{check_geometry, validate_ops, Backend, Delta, Engine, Group, Op, BANK_COUNTS};
pub use error::OffloadError;

/// Slots per bank of engines opened by [`open_engine`] (and of the simulated
/// models).
pub const DEFAULT_SLOTS_PER_BANK: u32 = 256;

/// Open an engine of `banks` banks with [`DEFAULT_SLOTS_PER_BANK`] slots per
/// bank on `backend`. Returns [`OffloadError::Unavailable`] when the backend
/// is not built (`sim` without the feature) or has no device here (`ax7020`
/// without a board).
pub fn open_engine(backend: Backend, banks: u32) -> Result<Box<dyn Engine>, OffloadError> {
    match backend {
        Backend::Cpu => Ok(Box::new(cpu::CpuEngine::new(
            banks,
            DEFAULT_SLOTS_PER_BANK,
        )?)),
        Backend::Sim => open_sim(banks),
        Backend::Ax7020 => {
            let config = ax7020::Ax7020Config::default();
            if let Some(reason) = ax7020::unavailable_reason(&config) {
                return Err(OffloadError::Unavailable {
                    backend: "ax7020",
                    reason,
                });
            }
            Ok(Box::new(ax7020::open(&config, Some(banks))?))
        }
    }
}

#[cfg(feature = "sim")]
fn open_sim(banks: u32) -> Result<Box<dyn Engine>, OffloadError> {
    Ok(Box::new(sim::open(banks)?))
}

#[cfg(not(feature = "sim"))]
fn open_sim(banks: u32) -> Result<Box<dyn Engine>, OffloadError> {
    engine::check_geometry(banks, DEFAULT_SLOTS_PER_BANK)?;
    Err(OffloadError::Unavailable {
        backend: "sim",
        reason: "built without cargo feature `sim` (needs Verilator)".to_string(),
    })
}
