//! The tracked cells themselves, in the application's tables: seal,
//! receive, snapshot references and install, and parked deltas.
//!
//! Every statement here addresses a table and column taken from
//! [`TrackedTable`] (catalog names, quoted), binds keys and deltas as
//! arrays, and handles a whole column in one statement.

use std::collections::BTreeMap;

use atomik_core::error::Result;
use atomik_core::{Changes, ColumnId, Group, Key, ProtocolError};
use pgrx::datum::DatumWithOid;

use super::spi::{exec, get, rows};
use super::tracked::{key_arrays, key_from_texts, key_texts, TrackedTable};
use crate::internal_fns::atomik::group_of;
use crate::subxact;

/// Mark the rest of this transaction's writes as remote applies (the
/// new-cell triggers skip them) or as local again.
fn set_applying(on: bool) -> Result<()> {
    exec(
        "SELECT pg_catalog.set_config('atomik.applying', $1, true)",
        &[DatumWithOid::from(if on { "on" } else { "off" })],
    )?;
    Ok(())
}

/// The tracked entry a wire column names, or [`ProtocolError::Untracked`].
pub fn find<'a>(tracked: &'a [TrackedTable], id: &ColumnId) -> Result<&'a TrackedTable> {
    tracked
        .iter()
        .find(|t| t.table == id.table && t.column == id.column)
        .ok_or_else(|| ProtocolError::Untracked {
            table: id.table.clone(),
            column: id.column.clone(),
        })
}

/// The record of written cells, taken whole (deleted, in this
/// transaction): per (wire table, column), each recorded key and whether
/// it is marked new (rule 3). Committed records only: a write still in
/// flight is recorded (and sealed) once it commits.
type Record = BTreeMap<(String, String), BTreeMap<Vec<String>, bool>>;

fn take_record() -> Result<Record> {
    let mut record: Record = BTreeMap::new();
    for (table, new) in [("atomik.new_cells", true), ("atomik.dirty", false)] {
        let taken = rows(
            &format!("DELETE FROM {table} RETURNING table_name, column_name, key"),
            &[],
            |r| {
                Ok((
                    get::<String>(r, 1)?,
                    get::<String>(r, 2)?,
                    get::<Vec<String>>(r, 3)?,
                ))
            },
        )?;
        for (t, c, key) in taken {
            let mark = record.entry((t, c)).or_default().entry(key).or_insert(new);
            *mark |= new;
        }
    }
    Ok(record)
}

/// Whether any written cell is recorded (committed, or this
/// transaction's own).
pub fn anything_recorded() -> Result<bool> {
    let found = rows(
        "SELECT EXISTS (SELECT 1 FROM atomik.dirty) OR EXISTS (SELECT 1 FROM atomik.new_cells)",
        &[],
        |r| get::<bool>(r, 1),
    )?;
    Ok(found.first().copied().unwrap_or(false))
}

/// Seal step: for every cell recorded as written (`atomik.new_cells`,
/// `atomik.dirty` — the tables themselves are never scanned), move a
/// non-zero accumulator into its reference, and return the moved deltas
/// (a zero delta for a cell marked new whose accumulator is the
/// identity). The record is cleared. Records of columns no longer tracked
/// are dropped (tracking a column again marks all its cells new).
///
/// Rows are locked (`FOR UPDATE`) before they are read, so a concurrent
/// `atomik_accum` to a recorded cell either commits before (and is sealed
/// now) or waits and lands in the accumulator afterwards, where its
/// trigger records the cell again (sealed next time): no delta is lost or
/// counted twice.
pub fn take_pending(tracked: &[TrackedTable]) -> Result<Changes> {
    let mut out = Changes::new();
    let mut record = take_record()?;
    for t in tracked {
        let Some(marks) = record.remove(&(t.table.clone(), t.column.clone())) else {
            continue;
        };
        let mut keys: BTreeMap<Key, bool> = BTreeMap::new();
        for (texts, new) in marks {
            // Two texts of one integer key ("07", "7") are one cell. A
            // record the triggers cannot have written (a key of another
            // shape, written by hand) names no cell: it is dropped, not
            // kept to fail every later seal.
            match key_from_texts(&t.shape, &texts) {
                Ok(key) => *keys.entry(key).or_default() |= new,
                Err(e) => pgrx::warning!(
                    "pg_atomik: dropped a record of a written cell of {}.{} with the malformed key {texts:?}: {e}",
                    t.table,
                    t.column
                ),
            }
        }
        let n = t.keys.len();
        let cells = rows(
            &format!(
                "SELECT {keys}, atomik.pending(t.{c}), atomik.group_code(t.{c})
                   FROM {q} t, {unnest} WHERE {join} AND t.{c} IS NOT NULL
                 FOR UPDATE OF t",
                keys = t.key_select(),
                c = t.col,
                q = t.qualified,
                unnest = t.unnest(1, false),
                join = t.key_join()
            ),
            &key_arrays(&t.shape, keys.keys().map(|k| (k, 0)), false),
            |r| {
                Ok((
                    t.read_key(r, 1)?,
                    group_of(get::<i32>(r, n + 2)?),
                    get::<i64>(r, n + 1)? as u64,
                ))
            },
        )?;
        let pending: Vec<&(Key, Group, u64)> = cells.iter().filter(|(_, _, d)| *d != 0).collect();
        if !pending.is_empty() {
            exec(
                &format!(
                    "UPDATE {q} t SET {c} = atomik.sealed(t.{c}) FROM {unnest} WHERE {join}",
                    c = t.col,
                    q = t.qualified,
                    unnest = t.unnest(1, false),
                    join = t.key_join()
                ),
                &key_arrays(&t.shape, pending.iter().map(|(k, _, d)| (k, *d)), false),
            )?;
        }
        for (key, group, delta) in cells {
            if delta == 0 && !keys.get(&key).copied().unwrap_or(false) {
                continue;
            }
            let id = ColumnId::new(t.table.clone(), t.column.clone(), group);
            out.add(&id, &t.shape, key, delta)
                .map_err(|e| ProtocolError::store(e.to_string()))?;
        }
    }
    Ok(out)
}

/// Fold received deltas into references (rule 1), creating missing rows
/// with column defaults, or parking the deltas where a row cannot be
/// created. Returns the number of deltas applied or parked.
pub fn receive(tracked: &[TrackedTable], changes: &Changes) -> Result<u64> {
    set_applying(true)?;
    let mut n = 0;
    for (id, block) in changes.columns() {
        let t = find(tracked, id)?;
        if block.cells.is_empty() {
            continue;
        }
        n += receive_block(t, id.group, &block.cells)?;
    }
    set_applying(false)?;
    Ok(n)
}

/// The trailing arguments of `atomik.receive`: group, table, column.
fn receive_args(t: &TrackedTable, group: Group) -> [DatumWithOid<'static>; 3] {
    [
        DatumWithOid::from(i32::from(group.code())),
        DatumWithOid::from(t.table.clone()),
        DatumWithOid::from(t.column.clone()),
    ]
}

fn receive_block(t: &TrackedTable, group: Group, cells: &BTreeMap<Key, u64>) -> Result<u64> {
    let n = t.keys.len();
    let mut args = key_arrays(&t.shape, cells.iter().map(|(k, d)| (k, *d)), true);
    args.extend(receive_args(t, group));
    let updated = exec(
        &format!(
            "UPDATE {q} t SET {c} = atomik.receive(t.{c}, ${g}, d.delta, ${tb}, ${co})
               FROM {unnest} WHERE {join}",
            q = t.qualified,
            c = t.col,
            g = n + 2,
            tb = n + 3,
            co = n + 4,
            unnest = t.unnest(1, true),
            join = t.key_join()
        ),
        &args,
    )?;
    if updated < cells.len() as u64 {
        create_missing(t, group, cells, updated)?;
    }
    Ok(cells.len() as u64)
}

/// Insert rows for deltas whose row is missing; park them when the row
/// cannot be created (a constraint of the other columns fails). A row that
/// exists but was not updated (`updated` of the cells were) was hidden from
/// the caller's `UPDATE` — by row-level security, a rule or a trigger —
/// and its delta would be lost: the message is refused
/// ([`ProtocolError::WriteRefused`]).
fn create_missing(
    t: &TrackedTable,
    group: Group,
    cells: &BTreeMap<Key, u64>,
    updated: u64,
) -> Result<()> {
    let n = t.keys.len();
    let missing = rows(
        &format!(
            "SELECT {dkeys}, d.delta FROM {unnest}
              WHERE NOT EXISTS (SELECT 1 FROM {q} t WHERE {join})",
            dkeys = (1..=n)
                .map(|i| format!("d.k{i}"))
                .collect::<Vec<_>>()
                .join(", "),
            unnest = t.unnest(1, true),
            q = t.qualified,
            join = t.key_join()
        ),
        &key_arrays(&t.shape, cells.iter().map(|(k, d)| (k, *d)), true),
        |r| Ok((t.read_key(r, 1)?, get::<i64>(r, n + 1)? as u64)),
    )?;
    let skipped = (cells.len() - missing.len()) as u64 - updated.min(cells.len() as u64);
    if updated + (missing.len() as u64) < cells.len() as u64 {
        return Err(ProtocolError::WriteRefused {
            table: t.table.clone(),
            column: t.column.clone(),
            rows: skipped,
        });
    }
    if missing.is_empty() {
        return Ok(());
    }
    let mut args = key_arrays(&t.shape, missing.iter().map(|(k, d)| (k, *d)), true);
    args.extend(receive_args(t, group));
    let sql = format!(
        "INSERT INTO {q} ({keys}, {c})
         SELECT {dkeys}, atomik.receive(NULL, ${g}, d.delta, ${tb}, ${co}) FROM {unnest}",
        q = t.qualified,
        keys = t.keys.join(", "),
        c = t.col,
        dkeys = (1..=n)
            .map(|i| format!("d.k{i}"))
            .collect::<Vec<_>>()
            .join(", "),
        g = n + 2,
        tb = n + 3,
        co = n + 4,
        unnest = t.unnest(1, true),
    );
    let inserted = subxact::run(std::panic::AssertUnwindSafe(|| exec(&sql, &args)));
    match inserted {
        Ok(r) => r.map(|_| ()),
        Err(e) if subxact::error_code(&e).is_some_and(subxact::is_constraint_violation) => {
            for (key, delta) in &missing {
                park(t, group, key, *delta)?;
            }
            Ok(())
        }
        Err(e) => e.rethrow(),
    }
}

/// Keep a delta for a row that cannot be created, combined with any delta
/// already parked for the same cell.
fn park(t: &TrackedTable, group: Group, key: &Key, delta: u64) -> Result<()> {
    let key_arg = || DatumWithOid::from(key_texts(key));
    let table = || DatumWithOid::from(t.table.as_str());
    let column = || DatumWithOid::from(t.column.as_str());
    let existing = rows(
        "SELECT grp, delta FROM atomik.parked
          WHERE table_name = $1 AND column_name = $2 AND key = $3 FOR UPDATE",
        &[table(), column(), key_arg()],
        |r| Ok((group_of(get::<i32>(r, 1)?), get::<i64>(r, 2)? as u64)),
    )?;
    let combined = match existing.first() {
        Some((g, _)) if *g != group => {
            return Err(ProtocolError::GroupMismatch {
                table: t.table.clone(),
                column: t.column.clone(),
                key: key.to_string(),
                cell: *g,
                delta: group,
            })
        }
        Some((_, d)) => group.combine(*d, delta),
        None => {
            let parked = rows("SELECT count(*) FROM atomik.parked", &[], |r| {
                get::<i64>(r, 1)
            })?;
            let limit = super::state::setting(atomik_core::store::MAX_PARKED)?;
            atomik_core::store::check_parked_room(
                parked.first().copied().unwrap_or(0) as u64,
                limit,
            )?;
            delta
        }
    };
    exec(
        "INSERT INTO atomik.parked (table_name, column_name, grp, key, delta)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (table_name, column_name, key) DO UPDATE SET delta = EXCLUDED.delta",
        &[
            table(),
            column(),
            DatumWithOid::from(i32::from(group.code())),
            key_arg(),
            DatumWithOid::from(combined as i64),
        ],
    )?;
    Ok(())
}

/// Apply parked deltas whose row now exists, and forget them.
pub fn flush_parked(tracked: &[TrackedTable]) -> Result<u64> {
    let parked = rows(
        "SELECT table_name, column_name, grp, key, delta FROM atomik.parked
          ORDER BY table_name, column_name, key FOR UPDATE SKIP LOCKED",
        &[],
        |r| {
            Ok((
                get::<String>(r, 1)?,
                get::<String>(r, 2)?,
                group_of(get::<i32>(r, 3)?),
                get::<Vec<String>>(r, 4)?,
                get::<i64>(r, 5)? as u64,
            ))
        },
    )?;
    if parked.is_empty() {
        return Ok(0);
    }
    let mut by_column: BTreeMap<ColumnId, BTreeMap<Key, u64>> = BTreeMap::new();
    for (table, column, group, key, delta) in parked {
        let id = ColumnId::new(table, column, group);
        let t = find(tracked, &id)?;
        let key = key_from_texts(&t.shape, &key)?;
        by_column.entry(id).or_default().insert(key, delta);
    }
    set_applying(true)?;
    let mut applied = 0;
    for (id, cells) in &by_column {
        let t = find(tracked, id)?;
        let n = t.keys.len();
        let mut args = key_arrays(&t.shape, cells.iter().map(|(k, d)| (k, *d)), true);
        args.extend(receive_args(t, id.group));
        let done = rows(
            &format!(
                "UPDATE {q} t SET {c} = atomik.receive(t.{c}, ${g}, d.delta, ${tb}, ${co})
                   FROM {unnest} WHERE {join} RETURNING {keys}",
                q = t.qualified,
                c = t.col,
                g = n + 2,
                tb = n + 3,
                co = n + 4,
                unnest = t.unnest(1, true),
                join = t.key_join(),
                keys = t.key_select()
            ),
            &args,
            |r| t.read_key(r, 1),
        )?;
        for key in &done {
            exec(
                "DELETE FROM atomik.parked WHERE table_name = $1 AND column_name = $2 AND key = $3",
                &[
                    DatumWithOid::from(t.table.as_str()),
                    DatumWithOid::from(t.column.as_str()),
                    DatumWithOid::from(key_texts(key)),
                ],
            )?;
        }
        applied += done.len() as u64;
    }
    set_applying(false)?;
    Ok(applied)
}

/// Every tracked cell's reference (and every parked delta), as changes
/// from the identity: a snapshot's payload.
pub fn references(tracked: &[TrackedTable]) -> Result<Changes> {
    let mut out = Changes::new();
    for t in tracked {
        let n = t.keys.len();
        let cells = rows(
            &format!(
                "SELECT {keys}, atomik.reference(t.{c}), atomik.group_code(t.{c})
                   FROM {q} t WHERE t.{c} IS NOT NULL",
                keys = t.key_select(),
                c = t.col,
                q = t.qualified
            ),
            &[],
            |r| {
                Ok((
                    t.read_key(r, 1)?,
                    get::<i64>(r, n + 1)? as u64,
                    group_of(get::<i32>(r, n + 2)?),
                ))
            },
        )?;
        for (key, reference, group) in cells {
            let id = ColumnId::new(t.table.clone(), t.column.clone(), group);
            out.add(&id, &t.shape, key, reference)
                .map_err(|e| ProtocolError::store(e.to_string()))?;
        }
    }
    let parked = rows(
        "SELECT table_name, column_name, grp, key, delta FROM atomik.parked",
        &[],
        |r| {
            Ok((
                get::<String>(r, 1)?,
                get::<String>(r, 2)?,
                group_of(get::<i32>(r, 3)?),
                get::<Vec<String>>(r, 4)?,
                get::<i64>(r, 5)? as u64,
            ))
        },
    )?;
    for (table, column, group, key, delta) in parked {
        let id = ColumnId::new(table, column, group);
        let t = find(tracked, &id)?;
        let key = key_from_texts(&t.shape, &key)?;
        out.add(&id, &t.shape, key, delta)
            .map_err(|e| ProtocolError::store(e.to_string()))?;
    }
    Ok(out)
}

/// Replace every tracked cell's reference with the snapshot's value (the
/// identity where absent), keeping accumulators; clear parked deltas.
pub fn install_references(tracked: &[TrackedTable], values: &Changes) -> Result<()> {
    exec("DELETE FROM atomik.parked", &[])?;
    for t in tracked {
        exec(
            &format!(
                "UPDATE {q} t SET {c} = atomik.rebase(t.{c}) WHERE atomik.reference(t.{c}) <> 0",
                q = t.qualified,
                c = t.col
            ),
            &[],
        )?;
    }
    receive(tracked, values)?;
    Ok(())
}
