//! The pure value functions of DESIGN.md §4 and the `atomik_fold`
//! aggregate, over the 17-byte canonical BLOB.
//!
//! They are STRICT as in PostgreSQL (a NULL argument gives NULL), and
//! flagged `DETERMINISTIC | INNOCUOUS`: usable in indexes, views, triggers
//! and CHECK constraints.

use atomik_core::{AtomikValue, Group};
use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::Connection;

use crate::args::{fail, guard, int_arg, value_arg};

/// Flags of every pure function.
pub const PURE: FunctionFlags = FunctionFlags::SQLITE_UTF8
    .union(FunctionFlags::SQLITE_DETERMINISTIC)
    .union(FunctionFlags::SQLITE_INNOCUOUS);

type Bytes = Option<[u8; 17]>;

fn bytes(v: AtomikValue) -> Bytes {
    Some(v.to_bytes())
}

/// Register the value functions and the aggregate on `conn`.
///
/// # Errors
/// When SQLite refuses a registration.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function("atomik_add", 1, PURE, |ctx| {
        guard("atomik_add", || new_value(ctx, "atomik_add", Group::Add))
    })?;
    conn.create_scalar_function("atomik_xor", 1, PURE, |ctx| {
        guard("atomik_xor", || new_value(ctx, "atomik_xor", Group::Xor))
    })?;
    crate::fast::register(conn)?;
    conn.create_scalar_function("atomik_set", 2, PURE, |ctx| {
        guard("atomik_set", || {
            let f = "atomik_set";
            let (Some(a), Some(v)) = (value_arg(ctx, 0, f)?, int_arg(ctx, 1, f)?) else {
                return Ok(None);
            };
            Ok(bytes(a.set(v as u64)))
        })
    })?;
    conn.create_scalar_function("atomik_read", 1, PURE, |ctx| {
        guard("atomik_read", || {
            Ok(value_arg(ctx, 0, "atomik_read")?.map(|a| a.read_i64()))
        })
    })?;
    conn.create_scalar_function("atomik_pending", 1, PURE, |ctx| {
        guard("atomik_pending", || {
            Ok(value_arg(ctx, 0, "atomik_pending")?.map(|a| a.pending() as i64))
        })
    })?;
    conn.create_scalar_function("atomik_group", 1, PURE, |ctx| {
        guard("atomik_group", || {
            Ok(value_arg(ctx, 0, "atomik_group")?.map(|a| a.group().name()))
        })
    })?;
    conn.create_scalar_function("atomik_text", 1, PURE, |ctx| {
        guard("atomik_text", || {
            Ok(value_arg(ctx, 0, "atomik_text")?.map(|a| a.to_string()))
        })
    })?;
    conn.create_scalar_function("atomik_bytes", 1, PURE, |ctx| {
        guard("atomik_bytes", || {
            Ok(value_arg(ctx, 0, "atomik_bytes")?.and_then(bytes))
        })
    })?;
    conn.create_scalar_function("atomik_from_bytes", 1, PURE, |ctx| {
        guard("atomik_from_bytes", || {
            Ok(value_arg(ctx, 0, "atomik_from_bytes")?.and_then(bytes))
        })
    })?;
    conn.create_scalar_function("atomik_version", 0, PURE, |_ctx| Ok(atomik_core::VERSION))?;
    conn.create_scalar_function("atomik_internal_receive", 3, PURE, |ctx| {
        guard("atomik_internal_receive", || internal_receive(ctx))
    })?;
    conn.create_aggregate_function("atomik_fold", 1, PURE, Fold)?;
    Ok(())
}

fn new_value(ctx: &Context<'_>, function: &str, group: Group) -> rusqlite::Result<Bytes> {
    Ok(int_arg(ctx, 0, function)?.and_then(|v| bytes(AtomikValue::new_pending(group, v as u64))))
}

/// `atomik_internal_receive(a, d, group_code)`: fold a remote delta into
/// the reference of `a` (the identity of the group when `a` is NULL). Used
/// by `atomik_apply` and the sync calls to update a cell in one statement;
/// not for applications (it bypasses exactly-once delivery).
fn internal_receive(ctx: &Context<'_>) -> rusqlite::Result<Bytes> {
    let f = "atomik_internal_receive";
    let d =
        int_arg(ctx, 1, f)?.ok_or_else(|| fail(f, "argument 2 must be an INTEGER, got NULL"))?;
    let code =
        int_arg(ctx, 2, f)?.ok_or_else(|| fail(f, "argument 3 must be an INTEGER, got NULL"))?;
    let group = u8::try_from(code)
        .ok()
        .and_then(Group::from_code)
        .ok_or_else(|| fail(f, format!("unknown group code {code}")))?;
    let v = match value_arg(ctx, 0, f)? {
        Some(v) => v,
        None => {
            CREATED_FROM_NULL.with(|c| c.set(true));
            AtomikValue::identity(group)
        }
    };
    if v.group() != group {
        return Err(fail(
            f,
            format!("group mismatch: cell is {}, delta is {group}", v.group()),
        ));
    }
    Ok(bytes(v.receive(d as u64)))
}

thread_local! {
    /// Set by `atomik_internal_receive` when it created a cell from NULL on
    /// this thread: the write trigger recorded that cell as written
    /// locally, and the store forgets the record (a received cell is not a
    /// local write and must not ship again).
    static CREATED_FROM_NULL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether an `atomik_internal_receive` on this thread created a cell from
/// NULL since the last call; clears the flag.
pub fn take_created_from_null() -> bool {
    CREATED_FROM_NULL.with(|c| c.replace(false))
}

/// `atomik_fold(a)`: group-combine of the non-NULL values; NULL when there
/// are none; an error when two groups meet.
#[derive(Debug)]
struct Fold;

impl Aggregate<Option<AtomikValue>, Bytes> for Fold {
    fn init(&self, _ctx: &mut Context<'_>) -> rusqlite::Result<Option<AtomikValue>> {
        Ok(None)
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut Option<AtomikValue>) -> rusqlite::Result<()> {
        guard("atomik_fold", || {
            let Some(v) = value_arg(ctx, 0, "atomik_fold")? else {
                return Ok(());
            };
            *acc = Some(match acc.take() {
                None => v,
                Some(a) => a.combine(v).map_err(|e| fail("atomik_fold", e))?,
            });
            Ok(())
        })
    }

    fn finalize(
        &self,
        _ctx: &mut Context<'_>,
        acc: Option<Option<AtomikValue>>,
    ) -> rusqlite::Result<Bytes> {
        Ok(acc.flatten().and_then(bytes))
    }
}
