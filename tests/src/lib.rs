//! # atomik-cross-engine
//!
//! Tests that cross engines: SQLite device files (each in its own process,
//! killed and restarted at random), a PostgreSQL hub and a second hub, all
//! driven through the same `atomik_*` SQL calls an application makes.
//!
//! * [`w4`] — workload W4 of benches/README.md: chaos schedules over a lossy,
//!   duplicating, reordering transport (direct or through `atomik serve`
//!   over loopback HTTP), checked against an exact oracle;
//! * [`golden`] — one SQL script run on both engines, results compared with
//!   a golden file;
//! * [`hostile`] — what the hostile-client suite drives: `atomik serve
//!   --auth-key` as a process, its hub read directly, hostile messages;
//! * [`node`] — what a replica offers the tests, whatever engine keeps it:
//!   [`sqlite_node`], [`pg_node`], and [`device`] (a child process);
//! * [`schema`] — the tracked table every replica holds.

pub mod device;
pub mod golden;
pub mod hostile;
pub mod node;
pub mod pg_node;
pub mod schema;
pub mod serve;
pub mod sqlite_node;
pub mod w4;
