//! `atomik_feed(after [, max_entries])`: the changefeed, a table-valued
//! function (an eponymous virtual table) over `atomik_core::feed` — one row
//! per cell of every hub log entry after the cursor `after`, the same SQL
//! as in PostgreSQL:
//!
//! ```sql
//! SELECT position, origin, seq, tbl, col, grp, key, delta
//!   FROM atomik_feed(:cursor, 100);
//! ```
//!
//! A single-column key is shown as its SQL value (INTEGER or TEXT), so it
//! joins with the table; a composite key as a JSON array (`[1,"a"]`,
//! `json_extract(key, '$[0]')`). It reads the database and never writes
//! it: a file without atomik tables has an empty feed, and one whose
//! tables are at an older schema is refused until any atomik function has
//! upgraded them. Flagged direct-only, like every function that reads
//! replica state.

use std::borrow::Cow;
use std::ffi::{c_int, CStr};
use std::marker::PhantomData;

use atomik_core::feed;
use atomik_core::{KeyPart, ProtocolError};
use rusqlite::types::{Value, ValueRef};
use rusqlite::vtab::{
    Context, Filters, IndexConstraintOp, IndexInfo, Module, VTab, VTabConfig, VTabConnection,
    VTabCursor,
};
use rusqlite::{ffi, Connection};

use crate::schema;
use crate::store::SqliteStore;

const NAME: &CStr = c"atomik_feed";

/// The hidden columns that take the arguments.
const AFTER: c_int = 8;
const MAX_ENTRIES: c_int = 9;
/// `idx_num` bits: which arguments the plan passes.
const HAS_AFTER: c_int = 1;
const HAS_MAX: c_int = 2;

const USAGE: &str = "give it the cursor: SELECT * FROM atomik_feed(after) or atomik_feed(after, max_entries), with after = 0 or the position of the last row consumed";

/// Register `atomik_feed`.
///
/// # Errors
/// When SQLite refuses the module.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    const MODULE: Module<FeedTab> = Module::eponymous_only_module();
    conn.create_module(NAME, &MODULE, None)
}

fn refuse(message: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::ModuleError(format!("atomik_feed: {message}"))
}

/// The virtual table: the connection it reads.
#[repr(C)]
struct FeedTab {
    /// Base class. Must be first.
    base: ffi::sqlite3_vtab,
    db: *mut ffi::sqlite3,
}

// SAFETY: `FeedTab` is `repr(C)` with `sqlite3_vtab` first, as the trait
// requires.
unsafe impl<'vtab> VTab<'vtab> for FeedTab {
    type Aux = ();
    type Cursor = FeedCursor<'vtab>;

    fn connect(
        db: &mut VTabConnection,
        _aux: Option<&()>,
        _module_name: &[u8],
        _database_name: &[u8],
        _table_name: &[u8],
        _args: &[&[u8]],
    ) -> rusqlite::Result<(Cow<'static, CStr>, Self)> {
        // It reads replica state: not from triggers, views or schema
        // expressions.
        db.config(VTabConfig::DirectOnly)?;
        // SAFETY: the handle of the connection this table lives in, valid
        // for as long as the table.
        let handle = unsafe { db.handle() };
        Ok((
            Cow::Borrowed(
                c"CREATE TABLE x(position INTEGER, origin TEXT, seq INTEGER, tbl TEXT, col TEXT, \
                  grp TEXT, key, delta INTEGER, after HIDDEN, max_entries HIDDEN)",
            ),
            FeedTab {
                base: ffi::sqlite3_vtab::default(),
                db: handle,
            },
        ))
    }

    fn best_index(&self, info: &mut IndexInfo) -> rusqlite::Result<bool> {
        let (mut after, mut max) = (None, None);
        for (i, c) in info.constraints().enumerate() {
            if c.column() != AFTER && c.column() != MAX_ENTRIES {
                continue;
            }
            if !c.is_usable() {
                // Another plan will give it a value.
                return Ok(false);
            }
            if c.operator() == IndexConstraintOp::SQLITE_INDEX_CONSTRAINT_EQ {
                if c.column() == AFTER {
                    after = Some(i);
                } else {
                    max = Some(i);
                }
            }
        }
        let mut idx = 0;
        let mut argv = 0;
        for (slot, bit) in [(after, HAS_AFTER), (max, HAS_MAX)] {
            if let Some(i) = slot {
                argv += 1;
                let mut usage = info.constraint_usage(i);
                usage.set_argv_index(argv);
                usage.set_omit(true);
                idx |= bit;
            }
        }
        info.set_idx_num(idx);
        if idx & HAS_AFTER != 0 {
            info.set_estimated_cost(10.0);
            info.set_estimated_rows(1000);
        } else {
            // Refused in filter, with a message saying how to call it.
            info.set_estimated_cost(1e12);
        }
        Ok(true)
    }

    fn open(&mut self) -> rusqlite::Result<FeedCursor<'_>> {
        Ok(FeedCursor {
            base: ffi::sqlite3_vtab_cursor::default(),
            db: self.db,
            rows: Vec::new(),
            at: 0,
            phantom: PhantomData,
        })
    }
}

/// One row of the feed, as SQL values.
struct Row {
    position: i64,
    origin: String,
    seq: i64,
    table: String,
    column: String,
    group: String,
    key: Value,
    delta: i64,
}

/// A cursor over the rows of one read of the feed.
#[repr(C)]
struct FeedCursor<'vtab> {
    /// Base class. Must be first.
    base: ffi::sqlite3_vtab_cursor,
    db: *mut ffi::sqlite3,
    rows: Vec<Row>,
    at: usize,
    phantom: PhantomData<&'vtab FeedTab>,
}

/// A cursor or entry count argument: a non-negative INTEGER.
fn count_arg(value: ValueRef<'_>, what: &str) -> rusqlite::Result<Option<u64>> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(v) => u64::try_from(v)
            .map(Some)
            .map_err(|_| refuse(format!("{what} must not be negative, got {v}"))),
        other => Err(refuse(format!(
            "{what} must be an INTEGER, got {}",
            crate::args::type_name(&other)
        ))),
    }
}

/// A key as the feed shows it: its SQL value, or JSON when composite.
fn key_value(key: &atomik_core::Key) -> Value {
    match key.parts() {
        [KeyPart::Int(v)] => Value::Integer(*v),
        [KeyPart::Text(s)] => Value::Text(s.clone()),
        _ => Value::Text(key.to_json()),
    }
}

fn read(conn: &Connection, after: u64, max: Option<u64>) -> rusqlite::Result<Vec<Row>> {
    if !schema::readable(conn).map_err(refuse)? {
        return Ok(Vec::new());
    }
    let entries = feed::read(&mut SqliteStore::new(conn), after, max)
        .map_err(|e: ProtocolError| refuse(e))?;
    Ok(feed::rows(&entries)
        .map(|r| Row {
            // Positions and seqs are stored as INTEGER: at most 2^63 - 1.
            position: r.position as i64,
            origin: r.origin.to_string(),
            seq: r.seq as i64,
            table: r.column.table.clone(),
            column: r.column.column.clone(),
            group: r.column.group.to_string(),
            key: key_value(r.key),
            delta: r.delta as i64,
        })
        .collect())
}

// SAFETY: `repr(C)` with `sqlite3_vtab_cursor` first, as the trait requires.
unsafe impl VTabCursor for FeedCursor<'_> {
    fn filter(
        &mut self,
        idx_num: c_int,
        _idx_str: Option<&str>,
        args: &Filters<'_>,
    ) -> rusqlite::Result<()> {
        self.at = 0;
        self.rows = Vec::new();
        if idx_num & HAS_AFTER == 0 {
            return Err(refuse(USAGE));
        }
        let mut values = args.iter();
        let Some(after) = values.next() else {
            return Err(refuse(USAGE));
        };
        let Some(after) = count_arg(after, "after")? else {
            // A NULL cursor: nothing to read, as SQL's NULL in, NULL out.
            return Ok(());
        };
        let max = match (idx_num & HAS_MAX != 0, values.next()) {
            (true, Some(v)) => count_arg(v, "max_entries")?,
            _ => None,
        };
        // SAFETY: the connection this table lives in, used only during this
        // call, on the thread SQLite called us on; not closed on drop.
        let conn = unsafe { Connection::from_handle(self.db)? };
        self.rows = crate::args::guard("atomik_feed", || read(&conn, after, max))?;
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
        match i {
            0 => ctx.set_result(&r.position),
            1 => ctx.set_result(&r.origin),
            2 => ctx.set_result(&r.seq),
            3 => ctx.set_result(&r.table),
            4 => ctx.set_result(&r.column),
            5 => ctx.set_result(&r.group),
            6 => ctx.set_result(&r.key),
            7 => ctx.set_result(&r.delta),
            _ => ctx.set_result(&None::<i64>),
        }
    }

    fn rowid(&self) -> rusqlite::Result<i64> {
        Ok(self.at as i64 + 1)
    }
}
