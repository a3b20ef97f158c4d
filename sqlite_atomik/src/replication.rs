//! The functions that read or write replica state: tracking, seal, vector,
//! changes, apply, the three sync calls (protocol v2), digest, and the
//! companions. Each
//! call is one savepoint around one `atomik_core` call: all of it or none.
//!
//! They are flagged `DIRECTONLY` (not usable from triggers, views or schema
//! expressions, so a crafted schema cannot make them run) and, since they
//! read or write the database, neither deterministic nor innocuous.

use std::time::{SystemTime, UNIX_EPOCH};

use atomik_core::protocol::v2;
use atomik_core::{ProtocolError, Store};
use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::Connection;

use crate::args::{fail, guard, int_arg, key_arg, message_arg, name_arg};
use crate::store::SqliteStore;
use crate::{digest, schema, track};

/// Flags of every function that touches replica state.
pub const STATEFUL: FunctionFlags =
    FunctionFlags::SQLITE_UTF8.union(FunctionFlags::SQLITE_DIRECTONLY);

/// Current unix time in seconds (the `now` of the protocol calls).
fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Run `body` in a savepoint on `conn`: released when it succeeds, rolled
/// back (nothing of it kept) when it fails. The schema is checked (and
/// created on first use) inside the same savepoint.
///
/// # Errors
/// `body`'s error text, or an SQLite error of the savepoint itself.
pub fn atomically<T>(
    conn: &Connection,
    body: impl FnOnce(&Connection) -> Result<T, String>,
) -> Result<T, String> {
    conn.execute_batch("SAVEPOINT atomik_call")
        .map_err(|e| format!("cannot start a savepoint: {e}"))?;
    let result = schema::ensure(conn).and_then(|()| body(conn));
    match result {
        Ok(v) => match conn.execute_batch("RELEASE atomik_call") {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK TO atomik_call; RELEASE atomik_call");
                Err(format!("cannot commit: {e}"))
            }
        },
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK TO atomik_call; RELEASE atomik_call");
            Err(e)
        }
    }
}

/// [`atomically`] with a [`SqliteStore`] over the connection.
///
/// # Errors
/// The protocol's error text.
pub fn with_store<T>(
    conn: &Connection,
    body: impl FnOnce(&mut SqliteStore<'_>) -> Result<T, ProtocolError>,
) -> Result<T, String> {
    atomically(conn, |c| {
        body(&mut SqliteStore::new(c)).map_err(|e| e.to_string())
    })
}

/// Register a stateful function of `n` arguments whose body gets the
/// connection and the arguments.
fn stateful<T, F>(conn: &Connection, name: &'static str, n: i32, body: F) -> rusqlite::Result<()>
where
    T: rusqlite::ToSql,
    F: Fn(&Context<'_>, &Connection) -> rusqlite::Result<T> + Send + 'static,
{
    conn.create_scalar_function(name, n, STATEFUL, move |ctx| {
        guard(name, || {
            // SAFETY: the connection is used only during this call, on the
            // thread SQLite called us on.
            let c = unsafe { ctx.get_connection()? };
            body(ctx, &c)
        })
    })
}

/// Map a body's error text to the function's SQL error.
fn run<T>(name: &str, r: Result<T, String>) -> rusqlite::Result<T> {
    r.map_err(|e| fail(name, e))
}

/// Register the stateful functions on `conn`.
///
/// # Errors
/// When SQLite refuses a registration.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    stateful(conn, "atomik_track", 2, |ctx, c| {
        let f = "atomik_track";
        let (t, col) = (
            name_arg(ctx, 0, f, "table")?,
            name_arg(ctx, 1, f, "column")?,
        );
        run(f, atomically(c, |c| track::track(c, &t, &col, None)))
    })?;
    stateful(conn, "atomik_track", 3, |ctx, c| {
        let f = "atomik_track";
        let (t, col, g) = (
            name_arg(ctx, 0, f, "table")?,
            name_arg(ctx, 1, f, "column")?,
            name_arg(ctx, 2, f, "group")?,
        );
        run(f, atomically(c, |c| track::track(c, &t, &col, Some(&g))))
    })?;
    stateful(conn, "atomik_untrack", 2, |ctx, c| {
        let f = "atomik_untrack";
        let (t, col) = (
            name_arg(ctx, 0, f, "table")?,
            name_arg(ctx, 1, f, "column")?,
        );
        run(f, atomically(c, |c| track::untrack(c, &t, &col)))
    })?;
    stateful(conn, "atomik_site_id", 0, |_ctx, c| {
        run(
            "atomik_site_id",
            with_store(c, |s| Ok(s.site_id()?.to_string())),
        )
    })?;
    stateful(conn, "atomik_seal", 0, |_ctx, c| {
        run(
            "atomik_seal",
            with_store(c, |s| v2::seal(s, now()).map(|n| n as i64)),
        )
    })?;
    // Read-only, without a savepoint (so usable inside an INSERT … SELECT):
    // a file without atomik tables is at position 0.
    stateful(conn, "atomik_log_position", 0, |_ctx, c| {
        run(
            "atomik_log_position",
            schema::readable(c).and_then(|exists| {
                if !exists {
                    return Ok(0);
                }
                atomik_core::feed::position(&mut SqliteStore::new(c))
                    .map(|p| p as i64)
                    .map_err(|e| e.to_string())
            }),
        )
    })?;
    stateful(conn, "atomik_vector", 0, |_ctx, c| {
        run("atomik_vector", with_store(c, |s| v2::position_message(s)))
    })?;
    stateful(conn, "atomik_changes", 1, |ctx, c| {
        let m = message_arg(ctx, 0, "atomik_changes")?;
        run("atomik_changes", with_store(c, |s| v2::changes_for(s, m)))
    })?;
    stateful(conn, "atomik_apply", 1, |ctx, c| {
        let m = message_arg(ctx, 0, "atomik_apply")?;
        run(
            "atomik_apply",
            with_store(c, |s| v2::apply_message(s, m, now()).map(|n| n as i64)),
        )
    })?;
    stateful(conn, "atomik_sync_request", 0, |_ctx, c| {
        run(
            "atomik_sync_request",
            with_store(c, |s| v2::sync_request(s, now())),
        )
    })?;
    stateful(conn, "atomik_sync", 1, |ctx, c| {
        let m = message_arg(ctx, 0, "atomik_sync")?;
        run(
            "atomik_sync",
            with_store(c, |s| v2::serve_sync(s, m, now())),
        )
    })?;
    stateful(conn, "atomik_sync_finish", 1, |ctx, c| {
        let m = message_arg(ctx, 0, "atomik_sync_finish")?;
        run(
            "atomik_sync_finish",
            with_store(c, |s| v2::finish_sync(s, m, now()).map(|n| n as i64)),
        )
    })?;
    stateful(conn, "atomik_make_relay", 0, |_ctx, c| {
        run(
            "atomik_make_relay",
            with_store(c, |s| v2::make_relay(s, now()).map(i64::from)),
        )
    })?;
    stateful(conn, "atomik_digest", 2, |ctx, c| {
        let f = "atomik_digest";
        let (t, col) = (
            name_arg(ctx, 0, f, "table")?,
            name_arg(ctx, 1, f, "column")?,
        );
        run(f, digest::digest(c, &t, &col))
    })?;
    stateful(conn, "atomik_set_device_key", 2, |ctx, c| {
        let f = "atomik_set_device_key";
        let site = name_arg(ctx, 0, f, "site id")?;
        let key = key_arg(ctx, 1, f)?;
        run(
            f,
            with_store(c, |s| v2::set_device_key(s, &site, key).map(i64::from)),
        )
    })?;
    stateful(conn, "atomik_new_device_key", 0, |_ctx, _c| {
        run(
            "atomik_new_device_key",
            atomik_core::auth::DeviceKey::generate()
                .map(|k| k.as_bytes().to_vec())
                .map_err(|e| e.to_string()),
        )
    })?;
    stateful(conn, "atomik_require_device_keys", 0, |_ctx, c| {
        run(
            "atomik_require_device_keys",
            with_store(c, |s| v2::require_device_keys(s, None).map(i64::from)),
        )
    })?;
    stateful(conn, "atomik_require_device_keys", 1, |ctx, c| {
        let f = "atomik_require_device_keys";
        let on = match int_arg(ctx, 0, f)? {
            Some(v @ (0 | 1)) => v == 1,
            other => {
                return Err(fail(
                    f,
                    format!("argument 1 must be 1 (require) or 0 (do not), got {other:?}"),
                ))
            }
        };
        run(
            f,
            with_store(c, |s| v2::require_device_keys(s, Some(on)).map(i64::from)),
        )
    })?;
    for name in ["atomik_horizon", "atomik_max_parked"] {
        stateful(conn, name, 0, move |_ctx, c| {
            run(
                name,
                with_store(c, |s| get_set(name, s, None).map(|v| v as i64)),
            )
        })?;
        stateful(conn, name, 1, move |ctx, c| {
            let Some(v) = int_arg(ctx, 0, name)? else {
                return Err(fail(name, "argument 1 must be an INTEGER, got NULL"));
            };
            run(
                name,
                with_store(c, |s| get_set(name, s, Some(v)).map(|v| v as i64)),
            )
        })?;
    }
    Ok(())
}

/// `atomik_horizon` and `atomik_max_parked`: a numeric setting, read, and
/// set first when `value` is given.
fn get_set(name: &str, s: &mut SqliteStore<'_>, value: Option<i64>) -> Result<u64, ProtocolError> {
    match name {
        "atomik_horizon" => v2::horizon(s, value),
        _ => v2::max_parked(s, value),
    }
}
