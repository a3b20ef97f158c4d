//! The core's store conformance kit, run against [`SqliteStore`]: the same
//! cases the memory store and PostgreSQL pass.

mod common;

use sqlite_atomik::replication::atomically;
use sqlite_atomik::store::SqliteStore;

#[test]
fn sqlite_store_passes_the_log_store_kit() {
    let c = common::mem();
    atomically(&c, |c| {
        atomik_core::log_store::conformance::log_primitives(&mut SqliteStore::new(c))
    })
    .unwrap();
}
