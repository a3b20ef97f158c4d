//! `atomik_inspect(message)`: a table-valued function (an eponymous
//! virtual table) over `atomik_core::inspect` — one row per cell of a sync
//! message, with its header. `SELECT * FROM atomik_inspect(x'…')`, the same
//! SQL as in PostgreSQL. It reads only its argument, never the database.

use std::borrow::Cow;
use std::ffi::{c_int, CStr};
use std::marker::PhantomData;

use atomik_core::inspect::{inspect, Row};
use rusqlite::types::ValueRef;
use rusqlite::vtab::{
    Context, Filters, IndexConstraintOp, IndexInfo, Module, VTab, VTabConfig, VTabConnection,
    VTabCursor,
};
use rusqlite::{ffi, Connection};

const NAME: &CStr = c"atomik_inspect";

/// The hidden column that takes the message.
const MESSAGE: c_int = 13;

/// Register `atomik_inspect`.
///
/// # Errors
/// When SQLite refuses the module.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    const MODULE: Module<InspectTab> = Module::eponymous_only_module();
    conn.create_module(NAME, &MODULE, None)
}

fn refuse(message: String) -> rusqlite::Error {
    rusqlite::Error::ModuleError(format!("atomik_inspect: {message}"))
}

/// The virtual table (no state of its own).
#[repr(C)]
struct InspectTab {
    /// Base class. Must be first.
    base: ffi::sqlite3_vtab,
}

// SAFETY: `InspectTab` is `repr(C)` with `sqlite3_vtab` first, as the trait
// requires.
unsafe impl<'vtab> VTab<'vtab> for InspectTab {
    type Aux = ();
    type Cursor = InspectCursor<'vtab>;

    fn connect(
        db: &mut VTabConnection,
        _aux: Option<&()>,
        _module_name: &[u8],
        _database_name: &[u8],
        _table_name: &[u8],
        _args: &[&[u8]],
    ) -> rusqlite::Result<(Cow<'static, CStr>, Self)> {
        // It reads its argument only: safe in triggers and views.
        db.config(VTabConfig::Innocuous)?;
        Ok((
            Cow::Borrowed(
                c"CREATE TABLE x(kind TEXT, site TEXT, hub TEXT, position INTEGER, base INTEGER, \
                  ack INTEGER, origin TEXT, seq INTEGER, tbl TEXT, col TEXT, grp TEXT, key TEXT, \
                  delta INTEGER, message HIDDEN)",
            ),
            InspectTab {
                base: ffi::sqlite3_vtab::default(),
            },
        ))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<bool> {
        let mut message = None;
        for (i, c) in info.constraints().enumerate() {
            if c.column() == MESSAGE {
                if !c.is_usable() {
                    // Another plan will give it a value.
                    return Ok(false);
                }
                if c.operator() == IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ {
                    message = Some(i);
                }
            }
        }
        match message {
            Some(i) => {
                let mut usage = info.constraint_usage(i);
                usage.set_argv_index(1);
                usage.set_omit(true);
                info.set_idx_num(1);
                info.set_estimated_cost(1.0);
                info.set_estimated_rows(100);
            }
            None => {
                // Refused in filter, with a message saying how to call it.
                info.set_idx_num(0);
                info.set_estimated_cost(1e12);
            }
        }
        Ok(true)
    }

    fn open(&mut self) -> rusqlite::Result<InspectCursor<'_>> {
        Ok(InspectCursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            rows: Vec::new(),
            at: 0,
            phantom: PhantomData,
        })
    }
}

/// A cursor over the rows of one message.
#[repr(C)]
struct InspectCursor<'vtab> {
    /// Base class. Must be first.
    base: ffi::sqlite3_vtab_cursor,
    rows: Vec<Row>,
    at: usize,
    phantom: PhantomData<&'vtab InspectTab>,
}

// SAFETY: `repr(C)` with `sqlite3_vtab_cursor` first, as the trait requires.
unsafe impl VTabCursor for InspectCursor<'_> {
    fn filter(
        &mut self,
        idx_num: c_int,
        _idx_str: Option<&str>,
        args: &Filters<'_>,
    ) -> rusqlite::Result<()> {
        self.at = 0;
        self.rows = Vec::new();
        if idx_num != 1 || args.is_empty() {
            return Err(refuse(
                "give it the message: SELECT * FROM atomik_inspect(bytes)".to_string(),
            ));
        }
        let Some(message) = args.iter().next() else {
            return Err(refuse(
                "give it the message: SELECT * FROM atomik_inspect(bytes)".to_string(),
            ));
        };
        self.rows = match message {
            ValueRef::Null => Vec::new(),
            ValueRef::Blob(b) => inspect(b).map_err(|e| refuse(e.to_string()))?,
            other => {
                return Err(refuse(format!(
                    "the message must be a BLOB, got {}",
                    other.data_type()
                )))
            }
        };
        Ok(())
    }

    fn next(&mut self) -> rusqlite::Result<()> {
        self.at += 1;
        Ok(())
    }

    fn eof(&self) -> bool {
        self.at >= self.rows.len()
    }

    fn column(&self, ctx: &mut Context, i: c_int) -> rusqlite::Result<()> {
        let Some(r) = self.rows.get(self.at) else {
            return ctx.set_result(&None::<i64>);
        };
        let int = |v: Option<u64>| v.map(|v| v as i64);
        match i {
            0 => ctx.set_result(&r.kind),
            1 => ctx.set_result(&r.site.map(|s| s.to_string())),
            2 => ctx.set_result(&r.hub.map(|s| s.to_string())),
            3 => ctx.set_result(&int(r.position)),
            4 => ctx.set_result(&int(r.base)),
            5 => ctx.set_result(&int(r.ack)),
            6 => ctx.set_result(&r.origin.map(|s| s.to_string())),
            7 => ctx.set_result(&int(r.seq)),
            8 => ctx.set_result(&r.table),
            9 => ctx.set_result(&r.column),
            10 => ctx.set_result(&r.group),
            11 => ctx.set_result(&r.key),
            12 => ctx.set_result(&r.delta),
            _ => ctx.set_result(&None::<i64>),
        }
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(self.at as i64 + 1)
    }
}
