//! # pg_atomik
//!
//! The PostgreSQL side of atomik: the `atomik` type (a delta-accumulated
//! 64-bit value in group `add` or `xor`), the functions of DESIGN.md §4,
//! and the hub and device roles of the replication protocol, whose logic
//! lives in `atomik-core` and runs here over SPI.
//!
//! Modules, by role:
//! * [`datum`] — the fixed-length type and its datum conversions;
//! * [`value_fns`] — pure value functions, operators, casts, `atomik_fold`;
//! * [`internal_fns`] — helpers in schema `atomik` the store's SQL calls;
//! * [`store`] — `atomik_core::LogStore` (protocol v2 storage) over SPI;
//! * [`record`] — the triggers that record cells written since a seal;
//! * [`replication`] / [`tracking`] — the replication SQL functions;
//! * [`deferred`] — lock-free deferred accumulation, its fold and worker;
//! * [`inspect`] — `atomik_inspect`, a message as rows;
//! * [`errors`], [`subxact`] — SQLSTATE mapping and subtransactions.

use pgrx::prelude::*;

pgrx::pg_module_magic!();

pub mod datum;
pub mod deferred;
pub mod errors;
pub mod feed;
pub mod inspect;
pub mod internal;
pub mod internal_fns;
pub mod invalidation;
pub mod locks;
pub mod record;
pub mod replication;
pub mod store;
pub mod subxact;
pub mod tracking;
pub mod value_fns;

#[cfg(any(test, feature = "pg_test"))]
mod sql_tests;

/// Library load: define the settings, and register the fold worker when
/// the library is in `shared_preload_libraries`.
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    deferred::worker::init();
}

/// Hooks `cargo pgrx test` needs.
#[cfg(test)]
pub mod pg_test {
    /// Per-test setup (none).
    pub fn setup(_options: Vec<&str>) {}

    /// Settings for the test cluster.
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
