//! # sqlite_atomik
//!
//! atomik for SQLite: delta-accumulated columns (the 17-byte atomik value
//! stored as a BLOB) and their replication, as SQL functions with the same
//! names and meanings as in PostgreSQL (DESIGN.md §4).
//!
//! Two builds:
//!
//! * **Rust apps** (default feature `bundled`): call [`register`] on a
//!   `rusqlite::Connection`, or [`register_auto_extension`] once so every
//!   connection opened afterwards has the functions.
//! * **Loadable extension** (`--no-default-features --features loadable`):
//!   `libsqlite_atomik.so`, loaded by the `sqlite3` shell
//!   (`.load ./libsqlite_atomik`), Python's `sqlite3` module, or any app;
//!   its entry point is `sqlite3_sqliteatomik_init`.
//!
//! ```
//! let conn = rusqlite::Connection::open_in_memory().unwrap();
//! sqlite_atomik::register(&conn).unwrap();
//! conn.execute_batch(
//!     "CREATE TABLE stock(sku TEXT PRIMARY KEY, qty BLOB);
//!      SELECT atomik_track('stock', 'qty');
//!      INSERT INTO stock VALUES ('apple', atomik_add(10));
//!      UPDATE stock SET qty = atomik_accum(qty, -3) WHERE sku = 'apple';",
//! ).unwrap();
//! let qty: i64 = conn
//!     .query_row("SELECT atomik_read(qty) FROM stock", [], |r| r.get(0))
//!     .unwrap();
//! assert_eq!(qty, 7);
//! ```

#![warn(missing_docs)]

#[cfg(all(feature = "bundled", feature = "loadable"))]
compile_error!(
    "features `bundled` and `loadable` cannot be built together: build the loadable extension with \
     `cargo build -p sqlite_atomik --release --no-default-features --features loadable`"
);

pub mod args;
pub mod digest;
mod fast;
pub mod feed;
pub mod ident;
pub mod inspect;
pub mod keys;
pub mod replication;
pub mod schema;
pub mod store;
pub mod track;
pub mod tracked;
pub mod values;

pub use store::SqliteStore;

use rusqlite::Connection;

/// The extension's version (the workspace version), as `atomik_version()`.
pub const VERSION: &str = atomik_core::VERSION;

/// Every SQL function the extension registers, as `(name, arguments)`,
/// sorted. The test suite pins the functions present after loading to
/// exactly this list.
pub const SQL_FUNCTIONS: &[(&str, i32)] = &[
    ("atomik_accum", 2),
    ("atomik_add", 1),
    ("atomik_apply", 1),
    ("atomik_bytes", 1),
    ("atomik_changes", 1),
    ("atomik_digest", 2),
    ("atomik_fold", 1),
    ("atomik_from_bytes", 1),
    ("atomik_group", 1),
    ("atomik_horizon", 0),
    ("atomik_horizon", 1),
    ("atomik_internal_receive", 3),
    ("atomik_log_position", 0),
    ("atomik_make_relay", 0),
    ("atomik_max_parked", 0),
    ("atomik_max_parked", 1),
    ("atomik_new_device_key", 0),
    ("atomik_pending", 1),
    ("atomik_read", 1),
    ("atomik_require_device_keys", 0),
    ("atomik_require_device_keys", 1),
    ("atomik_seal", 0),
    ("atomik_set", 2),
    ("atomik_set_device_key", 2),
    ("atomik_site_id", 0),
    ("atomik_sync", 1),
    ("atomik_sync_finish", 1),
    ("atomik_sync_request", 0),
    ("atomik_text", 1),
    ("atomik_track", 2),
    ("atomik_track", 3),
    ("atomik_untrack", 2),
    ("atomik_vector", 0),
    ("atomik_version", 0),
    ("atomik_xor", 1),
];

/// Every table-valued function (eponymous virtual table) the extension
/// registers. The test suite pins the modules present to this list.
pub const SQL_MODULES: &[&str] = &["atomik_feed", "atomik_inspect"];

/// Register every atomik function on `conn`. The extension's tables are
/// created in the connection's main database on first use of a function
/// that needs them.
///
/// # Errors
/// When SQLite refuses a registration.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    values::register(conn)?;
    replication::register(conn)?;
    inspect::register(conn)?;
    feed::register(conn)?;
    Ok(())
}

#[cfg(not(feature = "loadable"))]
fn register_owned(conn: Connection) -> rusqlite::Result<()> {
    register(&conn)
}

#[cfg(not(feature = "loadable"))]
unsafe extern "C" fn auto_init(
    db: *mut rusqlite::ffi::sqlite3,
    pz_err_msg: *mut *mut std::ffi::c_char,
    _api: *const rusqlite::ffi::sqlite3_api_routines,
) -> std::ffi::c_int {
    // SAFETY: called by SQLite with a valid handle of a connection being
    // opened; the rusqlite bridge catches panics.
    unsafe { rusqlite::auto_extension::init_auto_extension(db, pz_err_msg, register_owned) }
}

/// Register atomik as an SQLite auto-extension: every connection opened
/// afterwards in this process (through rusqlite or any other user of the
/// same SQLite library) gets the functions. Calling it again is harmless.
///
/// # Errors
/// When SQLite refuses the registration.
#[cfg(not(feature = "loadable"))]
pub fn register_auto_extension() -> rusqlite::Result<()> {
    // SAFETY: `auto_init` opens no database and does not touch the list of
    // auto-extensions; SQLite ignores a second registration of the same
    // function.
    unsafe { rusqlite::auto_extension::register_auto_extension(auto_init) }
}

/// Entry point of the loadable extension (SQLite derives its name from
/// `libsqlite_atomik.so`).
///
/// # Safety
/// Called by SQLite's extension loader with a valid connection and API
/// table.
#[cfg(feature = "loadable")]
#[no_mangle]
pub unsafe extern "C" fn sqlite3_sqliteatomik_init(
    db: *mut rusqlite::ffi::sqlite3,
    pz_err_msg: *mut *mut std::ffi::c_char,
    p_api: *mut rusqlite::ffi::sqlite3_api_routines,
) -> std::ffi::c_int {
    fn init(conn: Connection) -> rusqlite::Result<bool> {
        register(&conn)?;
        Ok(false)
    }
    // SAFETY: forwarded unchanged from SQLite's loader.
    unsafe { Connection::extension_init2(db, pz_err_msg, p_api, init) }
}
