//! `atomik_track`, `atomik_untrack` and `atomik_digest`: the functions that
//! name a table and column. The names come from the caller's own SQL; they
//! are resolved through the catalog (`to_regclass`, `pg_attribute`) and
//! only catalog names, quoted, reach generated SQL.

use atomik_core::digest::Digest;
use atomik_core::error::Result;
use atomik_core::{AtomikValue, Group, KeyShape, ProtocolError};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::Oid;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal};
use pgrx::PgSqlErrorCode;

use crate::errors::{or_raise, raise, raise_with_hint};
use crate::internal_fns::atomik::group_of;
use crate::replication::lock;
use crate::store::tracked::{primary_key, shape_from_kinds, TrackedTable};
use crate::store::{exec, get, rows};

/// A table and atomik column named by the caller, resolved.
struct Target {
    relid: Oid,
    relname: String,
    qualified: String,
    column: String,
    key_columns: Vec<String>,
    shape: KeyShape,
    kinds: String,
}

impl Target {
    fn as_tracked(&self, group: Group) -> TrackedTable {
        TrackedTable {
            table: self.relname.clone(),
            column: self.column.clone(),
            shape: self.shape.clone(),
            qualified: self.qualified.clone(),
            col: quote_identifier(&self.column),
            keys: self.key_columns.iter().map(quote_identifier).collect(),
            group,
        }
    }
}

/// Resolve `table` (as `to_regclass` reads it) and its atomik `column`, or
/// raise an error naming what is missing.
fn resolve(table: &str, column: &str) -> Result<Target> {
    let found = rows(
        "SELECT c.oid, c.relname::text, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::text
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          WHERE c.oid = pg_catalog.to_regclass($1)",
        &[DatumWithOid::from(table)],
        |r| {
            Ok((
                get::<Oid>(r, 1)?,
                get::<String>(r, 2)?,
                get::<String>(r, 3)?,
                get::<String>(r, 4)?,
            ))
        },
    )?;
    let Some((relid, relname, qualified, relkind)) = found.into_iter().next() else {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!("table \"{table}\" does not exist"),
        )
    };
    if relkind != "r" && relkind != "p" {
        raise(
            PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
            format!("\"{table}\" is not a table"),
        );
    }
    let ty = rows(
        "SELECT a.atttypid::regtype::text,
                a.atttypid = (SELECT t.oid FROM pg_catalog.pg_type t
                               JOIN pg_catalog.pg_extension e ON e.extnamespace = t.typnamespace
                              WHERE e.extname = 'pg_atomik' AND t.typname = 'atomik')
           FROM pg_catalog.pg_attribute a
          WHERE a.attrelid = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
        &[DatumWithOid::from(relid), DatumWithOid::from(column)],
        |r| Ok((get::<String>(r, 1)?, get::<bool>(r, 2)?)),
    )?;
    match ty.first() {
        None => raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!("column \"{column}\" of table \"{table}\" does not exist"),
        ),
        Some((name, false)) => raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!("column \"{column}\" of table \"{table}\" has type {name}, not atomik"),
        ),
        Some(_) => {}
    }
    let Some((key_columns, kinds)) = primary_key(relid, &relname)? else {
        raise_with_hint(
            PgSqlErrorCode::ERRCODE_INVALID_TABLE_DEFINITION,
            format!("table \"{table}\" has no primary key"),
            "atomik identifies rows across replicas by primary key; add one",
        )
    };
    let shape = shape_from_kinds(&kinds)?;
    Ok(Target {
        relid,
        relname,
        qualified,
        column: column.to_string(),
        key_columns,
        shape,
        kinds,
    })
}

/// Raise the error [`resolve`] raises for `table`.`column` (missing
/// table or column, not atomik, no primary key), if any.
pub(crate) fn check_column(table: &str, column: &str) -> Result<()> {
    resolve(table, column).map(|_| ())
}

/// The three trigger names of a tracked column: new cells by `INSERT`,
/// new cells by `UPDATE` (from NULL, or of the key), dirty cells (the
/// first local write since a seal that leaves a non-zero accumulator).
fn trigger_names(column: &str) -> [String; 3] {
    [
        quote_identifier(format!("atomik_new_{column}")),
        quote_identifier(format!("atomik_set_{column}")),
        quote_identifier(format!("atomik_acc_{column}")),
    ]
}

/// Create the record-keeping triggers of a tracked column (the upgrade
/// script `pg_atomik--0.2.0--0.3.0.sql` creates the same ones for columns
/// tracked before 0.3.0):
/// * `atomik_new_<c>`, `AFTER INSERT`, when the cell is not NULL: marks it
///   new (`atomik.mark_new`, rule 3);
/// * `atomik_set_<c>`, `AFTER UPDATE OF <c>, <key columns>`, when the cell
///   is not NULL and was NULL or the row's key changed: marks it new;
/// * `atomik_acc_<c>`, `AFTER UPDATE OF <c>`, when `atomik.dirtied(OLD.c,
///   NEW.c)` — the accumulator was the identity and is not any more —
///   records the cell as dirty (`atomik.mark_dirty`, [`crate::record`]).
///
/// All are row triggers whose `WHEN` clause PostgreSQL evaluates when it
/// queues the event: a write to a cell that is already dirty (every write
/// after the first since a seal) runs no trigger function at all. Remote
/// applies only ever change references, so they never make a cell dirty;
/// their new cells are skipped by the functions (`atomik.applying`).
fn create_triggers(t: &TrackedTable, wire_table: &str, key_columns: &[String]) -> Result<()> {
    let args = std::iter::once(wire_table)
        .chain(std::iter::once(t.column.as_str()))
        .chain(key_columns.iter().map(String::as_str))
        .map(quote_literal)
        .collect::<Vec<_>>()
        .join(", ");
    let keys = |side: &str| {
        t.keys
            .iter()
            .map(|k| format!("{side}.{k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let [on_insert, on_update, on_accum] = trigger_names(&t.column);
    exec(
        &format!(
            "CREATE TRIGGER {on_insert} AFTER INSERT ON {q} FOR EACH ROW
               WHEN (NEW.{c} IS NOT NULL) EXECUTE FUNCTION atomik.mark_new({args})",
            q = t.qualified,
            c = t.col
        ),
        &[],
    )?;
    exec(
        &format!(
            "CREATE TRIGGER {on_update} AFTER UPDATE OF {c}, {key_list} ON {q} FOR EACH ROW
               WHEN (NEW.{c} IS NOT NULL AND (OLD.{c} IS NULL OR ROW({old}) IS DISTINCT FROM ROW({new})))
               EXECUTE FUNCTION atomik.mark_new({args})",
            q = t.qualified,
            c = t.col,
            key_list = t.keys.join(", "),
            old = keys("OLD"),
            new = keys("NEW")
        ),
        &[],
    )?;
    exec(
        &format!(
            "CREATE TRIGGER {on_accum} AFTER UPDATE OF {c} ON {q} FOR EACH ROW
               WHEN (atomik.dirtied(OLD.{c}, NEW.{c})) EXECUTE FUNCTION atomik.mark_dirty({args})",
            q = t.qualified,
            c = t.col
        ),
        &[],
    )?;
    Ok(())
}

/// `atomik_track(table, column)`: put an atomik column of a table with a
/// primary key under replication, in the group of its existing cells (add
/// when it has none). Existing non-NULL cells are marked new, so they ship
/// at the next seal. Returns 1, or 0 when the column was already tracked
/// (and nothing was done), as in SQLite.
#[pg_extern(requires = ["state_tables"])]
fn atomik_track(table: &str, column: &str) -> i64 {
    i64::from(or_raise(track(table, column, None)))
}

/// `atomik_track(table, column, group)`: the same, fixing the column's
/// group (`'add'` or `'xor'`); every existing cell must be in it.
#[pg_extern(name = "atomik_track", requires = ["state_tables"])]
fn atomik_track_group(table: &str, column: &str, group: &str) -> i64 {
    i64::from(or_raise(track(table, column, Some(group))))
}

/// The name of the check constraint that keeps a tracked column in its group.
fn group_constraint(column: &str) -> String {
    quote_identifier(format!("atomik_group_{column}"))
}

/// The group a column is tracked in: `wanted`, which every existing cell
/// must be in; else the one group its cells are in; else add.
fn fixed_group(target: &Target, wanted: Option<Group>) -> Result<Group> {
    let found: Vec<Group> = rows(
        &format!(
            "SELECT DISTINCT atomik.group_code(t.{c}) FROM {q} t WHERE t.{c} IS NOT NULL ORDER BY 1",
            c = quote_identifier(&target.column),
            q = target.qualified
        ),
        &[],
        |r| Ok(group_of(get::<i32>(r, 1)?)),
    )?;
    atomik_core::store::tracked_group(&target.relname, &target.column, wanted, &found)
        .or_else(|message| raise(PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH, message))
}

/// Track the column; `false` if it already was (in that group).
fn track(table: &str, column: &str, group: Option<&str>) -> Result<bool> {
    let group: Option<Group> = group
        .map(|g| g.parse::<Group>().map_err(ProtocolError::Value))
        .transpose()?;
    lock()?;
    let target = resolve(table, column)?;
    let existing = rows(
        "SELECT relid::oid, grp FROM atomik.tracked WHERE table_name = $1 AND column_name = $2",
        &[
            DatumWithOid::from(target.relname.as_str()),
            DatumWithOid::from(column),
        ],
        |r| Ok((get::<Oid>(r, 1)?, group_of(get::<i32>(r, 2)?))),
    )?;
    match existing.first() {
        Some((relid, tracked)) if *relid == target.relid => {
            return match group {
                Some(g) if g != *tracked => raise(
                    PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                    format!(
                        "column \"{}\".\"{column}\" is already tracked as {tracked}; a tracked column's group cannot change (atomik_untrack it first)",
                        target.relname
                    ),
                ),
                _ => Ok(false),
            };
        }
        Some(_) => raise(
            PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
            format!(
                "another table named \"{}\" already has column \"{column}\" tracked; wire names are unqualified table names and must be unique",
                target.relname
            ),
        ),
        None => {}
    }
    let fixed = fixed_group(&target, group)?;
    exec(
        "INSERT INTO atomik.tracked (table_name, column_name, relid, key_columns, key_kinds, grp)
         VALUES ($1, $2, $3::oid::regclass, $4, $5, $6)",
        &[
            DatumWithOid::from(target.relname.as_str()),
            DatumWithOid::from(column),
            DatumWithOid::from(target.relid),
            DatumWithOid::from(target.key_columns.clone()),
            DatumWithOid::from(target.kinds.as_str()),
            DatumWithOid::from(i32::from(fixed.code())),
        ],
    )?;
    // Every write of the column is checked from now on (the cells were
    // checked above, so the constraint need not scan them again).
    exec(
        &format!(
            "ALTER TABLE {q} ADD CONSTRAINT {name} CHECK (atomik.in_group({c}, {code}, {tbl}, {col})) NOT VALID",
            q = target.qualified,
            name = group_constraint(column),
            c = quote_identifier(column),
            code = fixed.code(),
            tbl = quote_literal(&target.relname),
            col = quote_literal(column),
        ),
        &[],
    )?;
    let t = target.as_tracked(fixed);
    create_triggers(&t, &target.relname, &target.key_columns)?;
    let key_texts = t
        .keys
        .iter()
        .map(|k| format!("t.{k}::text"))
        .collect::<Vec<_>>()
        .join(", ");
    exec(
        &format!(
            "INSERT INTO atomik.new_cells (table_name, column_name, key)
             SELECT $1, $2, ARRAY[{key_texts}] FROM {q} t WHERE t.{c} IS NOT NULL
             ON CONFLICT DO NOTHING",
            q = t.qualified,
            c = t.col
        ),
        &[
            DatumWithOid::from(target.relname.as_str()),
            DatumWithOid::from(column),
        ],
    )?;
    Ok(true)
}

/// `atomik_untrack(table, column)`: stop replicating a column. Its values
/// stay; unsealed "new" and "dirty" marks and parked deltas for it are
/// dropped (tracking it again marks every cell new).
/// Returns 1, or 0 when the column was not tracked (and nothing was done),
/// as in SQLite.
#[pg_extern(requires = ["state_tables"])]
fn atomik_untrack(table: &str, column: &str) -> i64 {
    i64::from(or_raise(untrack(table, column)))
}

/// Stop tracking the column; `false` if it was not tracked.
fn untrack(table: &str, column: &str) -> Result<bool> {
    lock()?;
    let target = resolve(table, column)?;
    // Deferred deltas are local writes: apply them while still tracked.
    crate::deferred::fold_before_protocol(crate::deferred::fold::Wait::Block)?;
    let removed = exec(
        "DELETE FROM atomik.tracked WHERE relid = $1::oid::regclass AND column_name = $2",
        &[DatumWithOid::from(target.relid), DatumWithOid::from(column)],
    )?;
    if removed == 0 {
        return Ok(false);
    }
    for trigger in trigger_names(column) {
        exec(
            &format!("DROP TRIGGER IF EXISTS {trigger} ON {}", target.qualified),
            &[],
        )?;
    }
    exec(
        &format!(
            "ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}",
            target.qualified,
            group_constraint(column)
        ),
        &[],
    )?;
    for state in ["atomik.new_cells", "atomik.dirty", "atomik.parked"] {
        exec(
            &format!("DELETE FROM {state} WHERE table_name = $1 AND column_name = $2"),
            &[
                DatumWithOid::from(target.relname.as_str()),
                DatumWithOid::from(column),
            ],
        )?;
    }
    Ok(true)
}

/// `atomik_digest(table, column)`: the order-independent digest of
/// (primary key, read value) over every non-NULL cell — the same number on
/// SQLite and PostgreSQL for the same content.
#[pg_extern(requires = ["state_tables"])]
fn atomik_digest(table: &str, column: &str) -> i64 {
    or_raise(digest(table, column))
}

fn digest(table: &str, column: &str) -> Result<i64> {
    // (The digest reads keys and values, never the tracked group.)
    let t = resolve(table, column)?.as_tracked(Group::Add);
    // Deferred deltas are part of the value (a no-op when none is
    // buffered). A read-only transaction (a standby) cannot fold: its
    // digest covers the folded values only.
    // SAFETY: reads a flag of the current transaction.
    if !unsafe { pgrx::pg_sys::XactReadOnly } {
        crate::deferred::fold_before_protocol(crate::deferred::fold::Wait::Block)?;
    }
    let n = t.keys.len();
    let mut d = Digest::new();
    rows(
        &format!(
            "SELECT {keys}, atomik.group_code(t.{c}), atomik.read(t.{c})
               FROM {q} t WHERE t.{c} IS NOT NULL",
            keys = t.key_select(),
            c = t.col,
            q = t.qualified
        ),
        &[],
        |r| {
            let key = t.read_key(r, 1)?;
            let value = AtomikValue::load(
                group_of(get::<i32>(r, n + 1)?),
                get::<i64>(r, n + 2)? as u64,
            );
            d.add(&key, &value);
            Ok(())
        },
    )
    .map_err(|e: ProtocolError| e)?;
    Ok(d.value())
}

pgrx::extension_sql!(
    r#"
COMMENT ON FUNCTION atomik_track(text, text) IS 'put an atomik column of a table with a primary key under replication, in the group of its cells (add when it has none)';
COMMENT ON FUNCTION atomik_track(text, text, text) IS 'put an atomik column under replication, fixing its group (add or xor)';
COMMENT ON FUNCTION atomik_untrack(text, text) IS 'stop replicating a column';
COMMENT ON FUNCTION atomik_digest(text, text) IS 'order-independent digest of (primary key, read value) of a column';
"#,
    name = "tracking_comments",
    requires = [
        atomik_track,
        atomik_track_group,
        atomik_untrack,
        atomik_digest
    ]
);
