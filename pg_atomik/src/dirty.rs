//! The dirty record's writer: the body of the trigger function
//! `atomik.mark_dirty()` (declared in [`crate::internal_fns`]), which the
//! `atomik_acc_<column>` row triggers call on the first local write to a
//! cell after a seal (their `WHEN (atomik.dirtied(OLD.c, NEW.c))` keeps
//! every later write to the cell from calling it).
//!
//! It appends one row `(wire table, column, key texts)` to `atomik.dirty`
//! with a heap insert, after the privilege check an `INSERT` would make
//! (`INSERT` on `atomik.dirty`, granted to PUBLIC): no SPI, no executor,
//! no PL/pgSQL. The table has no index, trigger, rule or default; its one
//! check (1 to 8 key parts) holds by construction (a tracked key has 1 to 8
//! columns). Remote applies (`atomik.applying` on) record nothing.
//!
//! Key parts are the key columns' output texts (what `::text` gives: an
//! integer in decimal, a text as is), the form `atomik.new_cells` and the
//! seal read keys in.

use std::ffi::{c_char, CStr};

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

/// The OID of `atomik.dirty` (looked up in the syscache at each call: it
/// changes only with the extension, and a lookup costs less than keeping
/// a cache in step with DDL).
fn dirty_table() -> pg_sys::Oid {
    // SAFETY: catalog cache lookups by name; `false` makes a missing
    // schema an ERROR.
    let oid = unsafe {
        let nsp = pg_sys::get_namespace_oid(c"atomik".as_ptr(), false);
        pg_sys::get_relname_relid(c"dirty".as_ptr(), nsp)
    };
    if oid == pg_sys::InvalidOid {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            "table atomik.dirty does not exist (is pg_atomik installed at 0.3.0 or later?)"
                .to_string(),
        )
    }
    oid
}

/// Record the cell of the row `td` fired for in `atomik.dirty`.
pub fn record(td: &pg_sys::TriggerData) {
    if applying() {
        return;
    }
    // SAFETY: a trigger call's TriggerData points at its Trigger.
    let args = trigger_args(unsafe { &*td.tg_trigger });
    if args.len() < 3 || args.len() > 10 {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            format!(
                "atomik.mark_dirty() takes a table, a column and 1 to 8 key columns as trigger arguments, got {} arguments",
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
                    "atomik.mark_dirty(): key column \"{column}\" of \"{}\" is missing or NULL",
                    args[0]
                ),
            ),
        }
    }
    append(&args[0], &args[1], key);
}

/// Append `(table, column, key)` to `atomik.dirty` with a heap insert.
fn append(table: &str, column: &str, key: Vec<String>) {
    let relid = dirty_table();
    // SAFETY: a catalog privilege lookup for the current user; a failure
    // is reported as PostgreSQL's own permission error (an ERROR).
    unsafe {
        let result = pg_sys::pg_class_aclcheck(
            relid,
            pg_sys::GetUserId(),
            pg_sys::ACL_INSERT as pg_sys::AclMode,
        );
        if result != pg_sys::AclResult::ACLCHECK_OK {
            pg_sys::aclcheck_error(
                result,
                pg_sys::ObjectType::OBJECT_TABLE,
                pg_sys::get_rel_name(relid),
            );
        }
    }
    let values = [table.into_datum(), column.into_datum(), key.into_datum()];
    let mut datums: Vec<pg_sys::Datum> = values
        .into_iter()
        .map(|v| {
            v.unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                    "a NULL datum for atomik.dirty".to_string(),
                )
            })
        })
        .collect();
    let mut nulls = [false; 3];
    let types = [pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::TEXTARRAYOID];
    let lock = pg_sys::RowExclusiveLock as pg_sys::LOCKMODE;
    // SAFETY: the relation is opened with RowExclusiveLock (as INSERT
    // does) and closed below; the tuple is formed from its own descriptor
    // after checking that it has exactly the three columns of
    // state_tables.sql, in order, with these types.
    let shaped = unsafe {
        let rel = pg_sys::table_open(relid, lock);
        let desc = (*rel).rd_att;
        let shaped = (*desc).natts == 3
            && (*desc)
                .attrs
                .as_slice(3)
                .iter()
                .zip(types)
                .all(|(att, ty)| !att.attisdropped && att.atttypid == ty);
        if shaped {
            let tuple = pg_sys::heap_form_tuple(desc, datums.as_mut_ptr(), nulls.as_mut_ptr());
            pg_sys::simple_heap_insert(rel, tuple);
            pg_sys::heap_freetuple(tuple);
        }
        pg_sys::table_close(rel, lock);
        shaped
    };
    if !shaped {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
            "atomik.dirty does not have the columns (table_name text, column_name text, key text[])"
                .to_string(),
        )
    }
}
