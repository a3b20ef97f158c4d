//! Settings of the deferred path and the background worker that folds
//! (and numbers the hub log's committed entries, `atomik_publish`).
//!
//! The worker exists only when `pg_atomik` is in `shared_preload_libraries`
//! (PostgreSQL registers static background workers at server start). It
//! connects to `atomik.fold_database` and, every `atomik.fold_interval_ms`,
//! folds batches of `atomik.fold_batch` buffered deltas, one transaction per
//! batch, until the buffer is drained. Without preloading, nothing folds
//! automatically: call `atomik_fold_deferred()` (the seal and sync calls
//! also fold first). If the worker fails it exits and PostgreSQL restarts it
//! after `RESTART_SECS`; its transaction is rolled back, so nothing is lost.

use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::prelude::*;
use pgrx::{GucContext, GucFlags, GucRegistry, GucSetting};

use super::fold::{fold, Wait};

/// `atomik.fold_interval_ms`: pause between worker folds and log numberings
/// (0: the worker does neither).
pub static FOLD_INTERVAL_MS: GucSetting<i32> = GucSetting::<i32>::new(200);

/// `atomik.fold_batch`: buffered deltas per fold transaction.
pub static FOLD_BATCH: GucSetting<i32> = GucSetting::<i32>::new(10_000);

/// `atomik.fold_database`: the database the worker folds.
pub static FOLD_DATABASE: GucSetting<Option<std::ffi::CString>> =
    GucSetting::<Option<std::ffi::CString>>::new(Some(c"postgres"));

/// Seconds PostgreSQL waits before restarting a worker that exited on an error.
const RESTART_SECS: u64 = 5;

/// The current `atomik.fold_batch`, at least 1.
pub fn batch() -> u64 {
    u64::try_from(FOLD_BATCH.get()).unwrap_or(1).max(1)
}

/// Define the settings; register the worker when preloading.
pub fn init() {
    GucRegistry::define_int_guc(
        c"atomik.fold_interval_ms",
        c"Milliseconds between background folds of deferred deltas (0 disables the worker's folds).",
        c"Only used by the fold worker, which runs when pg_atomik is in shared_preload_libraries.",
        &FOLD_INTERVAL_MS,
        0,
        3_600_000,
        GucContext::Sighup,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_int_guc(
        c"atomik.fold_batch",
        c"Deferred deltas folded per transaction.",
        c"The worker folds one batch per transaction; atomik_fold_deferred() and seals fold every committed delta in batches of this size.",
        &FOLD_BATCH,
        1,
        10_000_000,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_string_guc(
        c"atomik.fold_database",
        c"Database whose deferred deltas the fold worker folds.",
        c"Read when the worker starts (at server start); a reload does not move a running worker.",
        &FOLD_DATABASE,
        // Not Postmaster: a library loaded after startup (not preloaded)
        // may not define such a setting, and then defines this one too.
        GucContext::Sighup,
        GucFlags::default(),
    );
    // SAFETY: a flag PostgreSQL sets while loading preloaded libraries.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        BackgroundWorkerBuilder::new("pg_atomik fold worker")
            .set_type("pg_atomik fold")
            .set_library("pg_atomik")
            .set_function("atomik_fold_worker_main")
            .enable_spi_access()
            .set_restart_time(Some(Duration::from_secs(RESTART_SECS)))
            .load();
    }
}

fn database() -> String {
    FOLD_DATABASE
        .get()
        .and_then(|c| c.to_str().ok().map(str::to_string))
        .unwrap_or_else(|| "postgres".to_string())
}

/// Whether this database has pg_atomik at a version with the buffer and
/// the fold lock (0.5.0).
fn installed() -> bool {
    Spi::get_one::<bool>(
        "SELECT pg_catalog.to_regclass('atomik.deferred') IS NOT NULL
            AND pg_catalog.to_regclass('atomik.fold_lock') IS NOT NULL",
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// The worker's main loop.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn atomik_fold_worker_main(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let db = database();
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    // The worker runs as a superuser: names in the SQL it runs resolve in
    // pg_catalog only (application tables are always schema-qualified), so
    // no function another role created can be picked instead of a builtin.
    BackgroundWorker::transaction(|| {
        if let Err(e) = Spi::run("SET search_path = pg_catalog, pg_temp") {
            pgrx::warning!("pg_atomik fold worker: cannot set search_path: {e}");
        }
    });
    log!("pg_atomik fold worker started on database \"{db}\"");
    loop {
        let interval = FOLD_INTERVAL_MS.get();
        let wait = Duration::from_millis(u64::try_from(interval.max(10)).unwrap_or(1000));
        if !BackgroundWorker::wait_latch(Some(wait)) {
            break;
        }
        if BackgroundWorker::sighup_received() {
            // SAFETY: rereads the configuration files, as a backend does
            // on SIGHUP, outside any transaction.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        if interval == 0 {
            continue;
        }
        // One batch per transaction; go on while batches come back full.
        loop {
            let batch = batch();
            let folded = BackgroundWorker::transaction(|| {
                if !installed() {
                    return 0;
                }
                match fold(Some(batch), batch, Wait::Skip) {
                    Ok(Some(n)) => n,
                    Ok(None) => 0,
                    Err(e) => crate::errors::protocol_error(e),
                }
            });
            if folded < batch || BackgroundWorker::sigterm_received() {
                break;
            }
        }
        // Number the log entries of serves that committed after the last
        // numbering (the feed and LISTEN atomik_log see them then).
        BackgroundWorker::transaction(|| {
            if installed() {
                if let Err(e) = crate::replication::publish_committed() {
                    crate::errors::protocol_error(e)
                }
            }
        });
    }
    log!("pg_atomik fold worker stopped");
}
