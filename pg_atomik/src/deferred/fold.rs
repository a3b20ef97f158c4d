//! The fold: move committed deferred deltas from `atomik.deferred` into
//! their rows' accumulators, exactly once.
//!
//! One fold runs in one transaction: it deletes a batch of buffered rows
//! (`DELETE ... RETURNING`, the rows picked with `FOR UPDATE SKIP LOCKED`),
//! group-sums them per cell with the `atomik-offload` engine (cpu backend),
//! and applies each sum to its row as `atomik_accum` does. Commit makes the
//! delete and the updates durable together, so a crash anywhere (an
//! immediate shutdown mid-fold included) leaves either both or neither:
//! no delta is lost, none is applied twice. Rows written by transactions
//! still in flight are invisible to the delete and are folded by a later
//! fold. Folds serialize on the fold lock ([`crate::locks::fold`]), so two
//! folds never wait on each other's row locks in opposite orders.

use std::collections::{BTreeMap, HashMap};

use atomik_core::error::Result;
use atomik_core::{Group, Key, ProtocolError};
use atomik_offload::{open_engine, Backend, Engine, Op};
use pgrx::datum::DatumWithOid;
use pgrx::PgSqlErrorCode;

use crate::internal_fns::atomik::group_of;
use crate::store::tracked::{key_arrays, key_from_texts, key_texts, load_all, TrackedTable};
use crate::store::{exec, get, rows};
use crate::subxact;

/// What a fold does when another fold holds the fold lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Wait for it (SQL callers, seal).
    Block,
    /// Fold nothing and return `None` (the background worker).
    Skip,
}

/// A buffered delta's cell: wire table, column, group code, key texts.
type CellId = (String, String, i32, Vec<String>);

/// Summed deltas of one (table, column, group): key texts and sums.
type ColumnSums = BTreeMap<(String, String, i32), Vec<(Vec<String>, u64)>>;

/// Fold committed deferred deltas in the current transaction: batches of
/// `batch` buffered rows until none is left or `max_rows` were taken.
/// Returns the number of buffered deltas applied, or `None` when `wait`
/// is [`Wait::Skip`] and another fold is running.
pub fn fold(max_rows: Option<u64>, batch: u64, wait: Wait) -> Result<Option<u64>> {
    // The lock is taken even when nothing is buffered: then every
    // multi-row update of tracked rows by pg_atomik (folds, seals, applies)
    // holds it, and they cannot deadlock with one another.
    let locked = crate::locks::fold(wait == Wait::Block)?;
    if !locked {
        return Ok(None);
    }
    let any = rows("SELECT EXISTS (SELECT 1 FROM atomik.deferred)", &[], |r| {
        get::<bool>(r, 1)
    })?;
    if !any.first().copied().unwrap_or(false) {
        return Ok(Some(0));
    }
    let tracked = load_all()?;
    let mut applied = 0;
    let mut taken = 0;
    let mut stuck = Vec::new();
    loop {
        let want = match max_rows {
            Some(m) => batch.min(m - taken),
            None => batch,
        };
        if want == 0 {
            break;
        }
        let claimed = claim(want)?;
        let n = claimed.len() as u64;
        taken += n;
        let mut rows_per_cell: HashMap<CellId, u64> = HashMap::new();
        for (cell, _) in &claimed {
            *rows_per_cell.entry(cell.clone()).or_default() += 1;
        }
        let before = stuck.len();
        apply(&tracked, group_sums(claimed)?, &mut stuck)?;
        let not_applied: u64 = stuck[before..]
            .iter()
            .map(|(cell, _)| rows_per_cell.get(cell).copied().unwrap_or(0))
            .sum();
        applied += n - not_applied;
        if n < want {
            break;
        }
    }
    // Deltas that could not be applied go back into the buffer, after the
    // loop so that this fold does not claim them again.
    for ((table, column, grp, key), delta) in &stuck {
        exec(
            "INSERT INTO atomik.deferred (table_name, column_name, key, grp, delta)
             VALUES ($1, $2, $3, $4, $5)",
            &[
                DatumWithOid::from(table.as_str()),
                DatumWithOid::from(column.as_str()),
                DatumWithOid::from(key.clone()),
                DatumWithOid::from(*grp),
                DatumWithOid::from(*delta as i64),
            ],
        )?;
    }
    Ok(Some(applied))
}

/// Delete up to `n` committed buffered rows; their cells and deltas.
fn claim(n: u64) -> Result<Vec<(CellId, u64)>> {
    rows(
        "DELETE FROM atomik.deferred
          WHERE ctid = ANY (ARRAY (SELECT ctid FROM atomik.deferred LIMIT $1 FOR UPDATE SKIP LOCKED))
         RETURNING table_name, column_name, grp, key, delta",
        &[DatumWithOid::from(i64::try_from(n).unwrap_or(i64::MAX))],
        |r| {
            Ok((
                (
                    get::<String>(r, 1)?,
                    get::<String>(r, 2)?,
                    get::<i32>(r, 3)?,
                    get::<Vec<String>>(r, 4)?,
                ),
                get::<i64>(r, 5)? as u64,
            ))
        },
    )
}

fn offload_err(e: atomik_offload::OffloadError) -> ProtocolError {
    ProtocolError::store(format!("offload engine: {e}"))
}

fn engine_group(code: i32) -> atomik_offload::Group {
    match group_of(code) {
        Group::Add => atomik_offload::Group::Add,
        Group::Xor => atomik_offload::Group::Xor,
    }
}

/// The group-sum of the deltas per cell, computed by the offload engine
/// (cpu backend): one engine slot per distinct cell, `Load 0`, one
/// `Accum` per delta, one `Read` per slot; more distinct cells than the
/// engine has slots are summed in several rounds.
pub fn group_sums(deltas: Vec<(CellId, u64)>) -> Result<BTreeMap<CellId, u64>> {
    let mut engine = open_engine(Backend::Cpu, 1).map_err(offload_err)?;
    let capacity = (engine.banks() * engine.slots_per_bank()) as usize;
    let mut out = BTreeMap::new();
    let mut slots: HashMap<CellId, u32> = HashMap::new();
    let mut ops = Vec::new();
    for (cell, delta) in deltas {
        if !slots.contains_key(&cell) && slots.len() == capacity {
            drain(engine.as_mut(), &mut slots, &mut ops, &mut out)?;
        }
        let next = slots.len() as u32;
        let slot = *slots.entry(cell.clone()).or_insert_with(|| {
            ops.push(Op::Load {
                slot: next,
                value: 0,
            });
            next
        });
        ops.push(Op::Accum {
            slot,
            group: engine_group(cell.2),
            delta,
        });
    }
    drain(engine.as_mut(), &mut slots, &mut ops, &mut out)?;
    Ok(out)
}

/// Run the queued ops, read every slot and combine the sums into `out`.
fn drain(
    engine: &mut dyn Engine,
    slots: &mut HashMap<CellId, u32>,
    ops: &mut Vec<Op>,
    out: &mut BTreeMap<CellId, u64>,
) -> Result<()> {
    if slots.is_empty() {
        return Ok(());
    }
    let cells: Vec<(CellId, u32)> = slots.drain().collect();
    ops.extend(cells.iter().map(|(cell, slot)| Op::Read {
        slot: *slot,
        group: engine_group(cell.2),
    }));
    let mut results = Vec::with_capacity(cells.len());
    engine.execute(ops, &mut results).map_err(offload_err)?;
    ops.clear();
    if results.len() != cells.len() {
        return Err(ProtocolError::store(
            "offload engine returned too few reads",
        ));
    }
    for ((cell, _), sum) in cells.into_iter().zip(results) {
        let group = group_of(cell.2);
        let e = out.entry(cell).or_insert(0);
        *e = group.combine(*e, sum);
    }
    Ok(())
}

/// Apply summed deltas to their rows; what cannot be applied (a column no
/// longer tracked, a cell whose group changed, a missing row that cannot
/// be created) is added to `stuck`.
fn apply(
    tracked: &[TrackedTable],
    sums: BTreeMap<CellId, u64>,
    stuck: &mut Vec<(CellId, u64)>,
) -> Result<()> {
    // Per (table, column, group): one statement, one source row per target.
    let mut by_column: ColumnSums = BTreeMap::new();
    for ((table, column, grp, key), delta) in sums {
        by_column
            .entry((table, column, grp))
            .or_default()
            .push((key, delta));
    }
    for ((table, column, grp), cells) in by_column {
        let Some(t) = tracked
            .iter()
            .find(|t| t.table == table && t.column == column)
        else {
            pgrx::warning!(
                "pg_atomik: {} deferred deltas for {table}.{column}, which is not tracked, stay buffered",
                cells.len()
            );
            stuck.extend(
                cells
                    .into_iter()
                    .map(|(k, d)| ((table.clone(), column.clone(), grp, k), d)),
            );
            continue;
        };
        let mut keyed = BTreeMap::new();
        for (texts, delta) in cells {
            // A buffer row only atomik_defer writes cannot have a key of
            // the wrong shape; one written by hand is dropped, not kept to
            // fail every later fold.
            match key_from_texts(&t.shape, &texts) {
                Ok(key) => {
                    keyed.insert(key, delta);
                }
                Err(e) => pgrx::warning!(
                    "pg_atomik: dropped a deferred delta {delta} for {table}.{column} with the malformed key {texts:?}: {e}"
                ),
            }
        }
        let group = group_of(grp);
        let done = update_cells(t, grp, &keyed)?;
        let mut rest: BTreeMap<Key, u64> = keyed
            .into_iter()
            .filter(|(k, _)| !done.contains(k))
            .collect();
        if !rest.is_empty() {
            let created = insert_missing(t, grp, &rest)?;
            rest.retain(|k, _| !created.contains(k));
        }
        if !rest.is_empty() {
            pgrx::warning!(
                "pg_atomik: {} deferred {group} deltas for {}.{} stay buffered: the cell is not in group {group} or the row cannot be created",
                rest.len(),
                t.table,
                t.column
            );
            stuck.extend(
                rest.into_iter()
                    .map(|(k, d)| ((t.table.clone(), t.column.clone(), grp, key_texts(&k)), d)),
            );
        }
    }
    Ok(())
}

/// `atomik_accum` each existing cell of group `grp` (or create a NULL
/// cell); the keys updated.
fn update_cells(t: &TrackedTable, grp: i32, cells: &BTreeMap<Key, u64>) -> Result<Vec<Key>> {
    let n = t.keys.len();
    let mut args = key_arrays(&t.shape, cells.iter().map(|(k, d)| (k, *d)), true);
    args.push(DatumWithOid::from(grp));
    rows(
        &format!(
            "UPDATE {q} t SET {c} = atomik.defer_apply(t.{c}, ${g}, d.delta)
               FROM {unnest}
              WHERE {join} AND (t.{c} IS NULL OR atomik.group_code(t.{c}) = ${g})
             RETURNING {keys}",
            q = t.qualified,
            c = t.col,
            g = n + 2,
            unnest = t.unnest(1, true),
            join = t.key_join(),
            keys = t.key_select()
        ),
        &args,
        |r| t.read_key(r, 1),
    )
}

/// Create rows (column defaults, the cell holding the delta pending) for
/// keys whose row was deleted after the delta was deferred; the keys
/// created. A row that cannot be created (a constraint) creates nothing.
fn insert_missing(t: &TrackedTable, grp: i32, cells: &BTreeMap<Key, u64>) -> Result<Vec<Key>> {
    let n = t.keys.len();
    let mut args = key_arrays(&t.shape, cells.iter().map(|(k, d)| (k, *d)), true);
    args.push(DatumWithOid::from(grp));
    let sql = format!(
        "INSERT INTO {q} AS t ({keys}, {c})
         SELECT {dkeys}, atomik.defer_apply(NULL, ${g}, d.delta) FROM {unnest}
         ON CONFLICT DO NOTHING RETURNING {tkeys}",
        q = t.qualified,
        keys = t.keys.join(", "),
        c = t.col,
        dkeys = (1..=n)
            .map(|i| format!("d.k{i}"))
            .collect::<Vec<_>>()
            .join(", "),
        g = n + 2,
        unnest = t.unnest(1, true),
        tkeys = t.key_select()
    );
    let inserted = subxact::run(std::panic::AssertUnwindSafe(|| {
        rows(&sql, &args, |r| t.read_key(r, 1))
    }));
    match inserted {
        Ok(r) => r,
        // A unique violation cannot come from the primary key here (ON
        // CONFLICT DO NOTHING): it is another unique index, and is raised.
        Err(e)
            if subxact::error_code(&e).is_some_and(|code| {
                code != PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION
                    && subxact::is_constraint_violation(code)
            }) =>
        {
            Ok(Vec::new())
        }
        Err(e) => e.rethrow(),
    }
}
