//! The changefeed: `atomik_feed(after, max_entries)` and
//! `atomik_log_position()` over `atomik_core::feed`, the same SQL as in
//! SQLite:
//!
//! ```sql
//! SELECT position, origin, seq, tbl, col, grp, key, delta
//!   FROM atomik_feed(:cursor, 100);
//! ```
//!
//! **Who sees what.** The log is the hub's internal state (`atomik.log`,
//! which no role may read without an explicit GRANT), and it holds every
//! tracked column's deltas. The feed reads it as the owner of `atomik.log`
//! (the role that created the extension) — with `search_path` pinned to
//! `pg_catalog, pg_temp`, as a `SECURITY DEFINER` function would — and
//! shows the caller only the cells of columns the caller may `SELECT`
//! (`has_column_privilege`) in tables whose row-level security does not
//! apply to the caller (`row_security_active`: the feed cannot apply row
//! policies to deltas, so a table under them is shown only to roles that
//! see all of its rows). An entry none of whose cells the caller may see
//! is one row with only its position, so that the last row's position is
//! always the cursor to resume from.
//!
//! Keys are `jsonb`: a number or a string for a single-column key
//! (`(key)::bigint`, `key #>> '{}'`), an array for a composite key.

use std::collections::BTreeSet;

use atomik_core::feed;
use atomik_core::ProtocolError;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;

use crate::errors::{or_raise, raise};
use crate::store::spi::{get, rows};
use crate::store::PgStore;

/// The columns (table, column) the calling role may read through the feed.
fn readable_columns() -> atomik_core::error::Result<BTreeSet<(String, String)>> {
    let found = rows(
        "SELECT t.table_name, t.column_name FROM atomik.tracked t
          WHERE pg_catalog.has_column_privilege(t.relid, t.column_name, 'SELECT')
            AND NOT pg_catalog.row_security_active(t.relid)",
        &[],
        |r| Ok((get::<String>(r, 1)?, get::<String>(r, 2)?)),
    )?;
    Ok(found.into_iter().collect())
}

/// Restores the calling role's user id and security context when dropped
/// (also when an ERROR unwinds through it; a transaction's abort restores
/// them as well).
struct AsCaller {
    user: pg_sys::Oid,
    context: i32,
    guc_level: i32,
}

impl Drop for AsCaller {
    fn drop(&mut self) {
        // SAFETY: restores what `as_log_owner` saved, in the same backend.
        unsafe {
            pg_sys::AtEOXact_GUC(true, self.guc_level);
            pg_sys::SetUserIdAndSecContext(self.user, self.context);
        }
    }
}

/// Run `f` as the owner of `atomik.log`, with `search_path` set to
/// `pg_catalog, pg_temp` for its duration — what `SECURITY DEFINER ... SET
/// search_path` does for an SQL function.
fn as_log_owner<T>(f: impl FnOnce() -> T) -> atomik_core::error::Result<T> {
    let log = crate::internal::table(c"log")?;
    let owner = rows(
        "SELECT relowner FROM pg_catalog.pg_class WHERE oid = $1",
        &[DatumWithOid::from(log)],
        |r| get::<pg_sys::Oid>(r, 1),
    )?
    .into_iter()
    .next()
    .ok_or_else(|| ProtocolError::store("atomik.log has no owner"))?;
    let mut user = pg_sys::InvalidOid;
    let mut context = 0;
    // SAFETY: the backend's current user id and security context, saved
    // and restored by `AsCaller` (and by any abort in between); the GUC
    // nest level is popped by `AtEOXact_GUC` in the same way
    // `fmgr_security_definer` does.
    let guard = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut user, &mut context);
        let guc_level = pg_sys::NewGUCNestLevel();
        let guard = AsCaller {
            user,
            context,
            guc_level,
        };
        pg_sys::SetUserIdAndSecContext(
            owner,
            context | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        guard
    };
    let out = f();
    drop(guard);
    Ok(out)
}

fn count_arg(v: i64, what: &str) -> u64 {
    u64::try_from(v).unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("{what} must not be negative, got {v}"),
        )
    })
}

/// `atomik_feed(after, max_entries)`: one row per cell of every entry of
/// this hub's log after position `after` (0: from the start), up to the
/// committed end, at most `max_entries` entries (all when NULL), in
/// position order; only the columns the caller may read (see the module
/// documentation). A NULL cursor gives no rows.
#[pg_extern(stable, parallel_unsafe, requires = ["state_tables"])]
#[allow(clippy::type_complexity)]
fn atomik_feed(
    after: Option<i64>,
    max_entries: default!(Option<i64>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(position, i64),
        name!(origin, Option<String>),
        name!(seq, Option<i64>),
        name!(tbl, Option<String>),
        name!(col, Option<String>),
        name!(grp, Option<String>),
        name!(key, Option<JsonB>),
        name!(delta, Option<i64>),
    ),
> {
    let Some(after) = after else {
        return TableIterator::new(Vec::new());
    };
    let after = count_arg(after, "after");
    let max = max_entries.map(|m| count_arg(m, "max_entries"));
    let readable = or_raise(readable_columns());
    let entries = or_raise(or_raise(as_log_owner(|| {
        feed::read(&mut PgStore::new(), after, max)
    })));
    let mut out = Vec::new();
    for entry in &entries {
        let before = out.len();
        for r in feed::rows(std::slice::from_ref(entry)) {
            if !readable.contains(&(r.column.table.clone(), r.column.column.clone())) {
                continue;
            }
            let key = serde_json::from_str(&r.key.to_json())
                .unwrap_or_else(|e| or_raise(Err(ProtocolError::store(e.to_string()))));
            // Positions and seqs are stored as bigint: at most 2^63 - 1.
            out.push((
                r.position as i64,
                Some(r.origin.to_string()),
                Some(r.seq as i64),
                Some(r.column.table.clone()),
                Some(r.column.column.clone()),
                Some(r.column.group.to_string()),
                Some(JsonB(key)),
                Some(r.delta as i64),
            ));
        }
        if out.len() == before {
            // Nothing of it is the caller's to see: its position only.
            out.push((
                entry.position as i64,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            ));
        }
    }
    TableIterator::new(out)
}

/// `atomik_log_position()`: where this hub's log ends (every entry at or
/// below it has committed): the cursor a new feed consumer starts from.
#[pg_extern(stable, parallel_unsafe, requires = ["state_tables"])]
fn atomik_log_position() -> i64 {
    let position = or_raise(as_log_owner(|| feed::position(&mut PgStore::new())));
    // Positions are stored as bigint: at most 2^63 - 1.
    or_raise(position) as i64
}

pgrx::extension_sql!(
    r#"
COMMENT ON FUNCTION atomik_feed(bigint, bigint) IS 'hub: one row per cell of each log entry after position after (at most max_entries entries), the columns the caller may read; resume from the last row''s position';
COMMENT ON FUNCTION atomik_log_position() IS 'hub: the position where its log ends: the cursor a new feed consumer starts from';
"#,
    name = "feed_comments",
    requires = [atomik_feed, atomik_log_position]
);
