//! The record of written cells: the bodies of the trigger functions
//! `atomik.mark_dirty()` and `atomik.mark_new()` (declared in
//! [`crate::internal_fns`]) that `atomik_track` installs on a tracked
//! column.
//!
//! * `atomik.mark_dirty()`, on the first local write to a cell after a
//!   seal (the `atomik_acc_<column>` triggers' `WHEN
//!   (atomik.dirtied(OLD.c, NEW.c))` keeps every later write from calling
//!   it), appends one row `(wire table, column, key texts)` to
//!   `atomik.dirty` with a heap insert: no SPI, no executor. The table has
//!   no index, trigger, rule or default; its checks (1 to 8 key parts, none
//!   NULL) hold by construction (a tracked key has 1 to 8 columns, none
//!   NULL).
//! * `atomik.mark_new()`, on an INSERT, an UPDATE from NULL or one that
//!   changes the row's key (rule 3: a new cell ships even at the
//!   identity), inserts the cell into `atomik.new_cells` (`ON CONFLICT DO
//!   NOTHING`: it has a primary key), as the table's owner.
//!
//! Remote applies (`atomik.applying` on) record nothing.
//!
//! No role has privileges on the record (0.5.0): the writer's right is its
//! write of the tracked table, which fired the trigger. So that no role
//! can record cells of a table it may not write, with a trigger of its own
//! on a table of its own that names another table, the trigger must be one
//! `atomik_track` created: its relation and arguments must be a row of
//! `atomik.tracked` ([`check_trigger`], looked up once per trigger per
//! backend).
//!
//! Key parts are the key columns' output texts (what `::text` gives: an
//! integer in decimal, a text as is), the form the seal reads keys in.

use std::ffi::{c_char, CStr};

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::{IntoDatum, PgSqlErrorCode};

use crate::errors::raise;

/// The trigger's arguments: wire table name, column name, key columns.
fn trigger_args(trigger: &pg_sys::Trigger) -> Vec<String> {
    let n = usize::try_from(trigger.tgnargs).unwrap_or(0);
    if n == 0 || trigger.tgargs.is_null() {
        return Vec::new();
    }
    // SAFETY: PostgreSQL passes `tgnargs` NUL-terminated strings in
    // `tgargs`, valid for the duration of the trigger call.
    let args = unsafe { std::slice::from_raw_parts(trigger.tgargs, n) };
    args.iter()
        .map(|a| {
            // SAFETY: as above.
            unsafe { CStr::from_ptr(*a) }.to_string_lossy().into_owned()
        })
        .collect()
}

/// True while this transaction applies remote changes (`receive` sets
/// `atomik.applying` to `on`, locally to the transaction).
fn applying() -> bool {
    // SAFETY: reads a (possibly undefined, then NULL) configuration
    // option; the returned string belongs to the GUC machinery and is
    // only read here, before any other GUC call.
    unsafe {
        let v = pg_sys::GetConfigOption(c"atomik.applying".as_ptr(), true, false);
        !v.is_null() && CStr::from_ptr(v).to_bytes() == b"on"
    }
}

/// The cell of the row `td` fired for — the trigger's wire table and
/// column, and the key texts — once the trigger is found to be
/// `atomik_track`'s; `None` during a remote apply. `function` names the
/// trigger function in errors.
fn cell_of(td: &pg_sys::TriggerData, function: &str) -> Option<(Vec<String>, Vec<String>)> {
    if applying() {
        return None;
    }
    // SAFETY: a trigger call's TriggerData points at its Trigger.
    let args = trigger_args(unsafe { &*td.tg_trigger });
    if args.len() < 3 || args.len() > 10 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "{function} takes a table, a column and 1 to 8 key columns as trigger arguments, got {} arguments",
                args.len()
            ),
        )
    }
    let update = td.tg_event & pg_sys::TRIGGER_EVENT_OPMASK == pg_sys::TRIGGER_EVENT_UPDATE;
    let tuple = if update {
        td.tg_newtuple
    } else {
        td.tg_trigtuple
    };
    // SAFETY: the trigger's relation is open for the call; its
    // descriptor describes `tuple`.
    let desc = unsafe { (*td.tg_relation).rd_att };
    let mut key = Vec::with_capacity(args.len() - 2);
    for column in &args[2..] {
        let name = std::ffi::CString::new(column.as_str()).unwrap_or_default();
        // SAFETY: SPI_fnumber / SPI_getvalue only read the descriptor and
        // the tuple (no SPI connection needed); the value is a palloc'd
        // string in the current memory context, or NULL.
        let text = unsafe {
            let attnum = pg_sys::SPI_fnumber(desc, name.as_ptr());
            let v: *mut c_char = if attnum > 0 {
                pg_sys::SPI_getvalue(tuple, desc, attnum)
            } else {
                std::ptr::null_mut()
            };
            if v.is_null() {
                None
            } else {
                let s = CStr::from_ptr(v).to_string_lossy().into_owned();
                pg_sys::pfree(v.cast());
                Some(s)
            }
        };
        match text {
            Some(t) => key.push(t),
            None => raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                format!(
                    "{function}: key column \"{column}\" of \"{}\" is missing or NULL",
                    args[0]
                ),
            ),
        }
    }
    // SAFETY: the trigger's relation is open for the call, and a trigger
    // call's TriggerData points at its Trigger.
    let (relid, tgoid) = unsafe { ((*td.tg_relation).rd_id, (*td.tg_trigger).tgoid) };
    check_trigger(tgoid, relid, &args, function);
    Some((args, key))
}

/// `atomik.mark_dirty()`: record the cell of the row `td` fired for in
/// `atomik.dirty`.
pub fn record_dirty(td: &pg_sys::TriggerData) {
    if let Some((args, key)) = cell_of(td, "atomik.mark_dirty()") {
        append(&args[0], &args[1], key);
    }
}

/// `atomik.mark_new()`: record the cell of the row `td` fired for in
/// `atomik.new_cells`, as that table's owner.
pub fn record_new(td: &pg_sys::TriggerData) {
    let Some((args, key)) = cell_of(td, "atomik.mark_new()") else {
        return;
    };
    let inserted = crate::internal::table(c"new_cells").and_then(|relid| {
        crate::internal::as_owner_of(relid, || {
            crate::store::exec(
                "INSERT INTO atomik.new_cells VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[
                    DatumWithOid::from(args[0].as_str()),
                    DatumWithOid::from(args[1].as_str()),
                    DatumWithOid::from(key),
                ],
            )
        })
    });
    if let Err(e) = inserted {
        raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("atomik.mark_new(): {e}"),
        )
    }
}

thread_local! {
    /// Triggers found to be `atomik_track`'s: (trigger, relation,
    /// arguments). A trigger's relation and arguments never change; a
    /// trigger dropped with its column's tracking leaves an entry that no
    /// trigger matches.
    static CHECKED: std::cell::RefCell<std::collections::HashSet<(pg_sys::Oid, pg_sys::Oid, Vec<String>)>> =
        std::cell::RefCell::new(std::collections::HashSet::new());
}

/// Raise 42501 unless the trigger `tgoid` on `relid` with `args` is one
/// `atomik_track` created: `atomik.tracked` has the row (args[0],
/// args[1]) for `relid` with key columns `args[2..]`.
fn check_trigger(tgoid: pg_sys::Oid, relid: pg_sys::Oid, args: &[String], function: &str) {
    let id = (tgoid, relid, args.to_vec());
    if CHECKED.with(|c| c.borrow().contains(&id)) {
        return;
    }
    let tracked = pgrx::Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM atomik.tracked
                         WHERE table_name = $1 AND column_name = $2
                           AND relid = $3::oid::regclass AND key_columns = $4)",
        &[
            DatumWithOid::from(args[0].as_str()),
            DatumWithOid::from(args[1].as_str()),
            DatumWithOid::from(relid),
            DatumWithOid::from(args[2..].to_vec()),
        ],
    );
    match tracked {
        Ok(Some(true)) => {
            CHECKED.with(|c| {
                let mut c = c.borrow_mut();
                if c.len() >= 4096 {
                    c.clear();
                }
                c.insert(id);
            });
        }
        Ok(_) => raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "{function}: this trigger does not record column \"{}\" of table \"{}\" as atomik_track made it; only atomik_track may create atomik triggers",
                args[1], args[0]
            ),
        ),
        Err(e) => raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("{function}: cannot read atomik.tracked: {e}"),
        ),
    }
}

/// Append `(table, column, key)` to `atomik.dirty` with a heap insert.
fn append(table: &str, column: &str, key: Vec<String>) {
    let relid = match crate::internal::table(c"dirty") {
        Ok(relid) => relid,
        Err(e) => raise(PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE, e.to_string()),
    };
    let appended = crate::internal::heap_append(
        relid,
        vec![
            (table.into_datum(), pg_sys::TEXTOID),
            (column.into_datum(), pg_sys::TEXTOID),
            (key.into_datum(), pg_sys::TEXTARRAYOID),
        ],
        "atomik.dirty",
    );
    if let Err(e) = appended {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
            e.to_string(),
        )
    }
}
