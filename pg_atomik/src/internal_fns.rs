//! Helpers the replication store calls from its SQL, in schema `atomik`.
//! Not part of the user-facing surface of DESIGN.md §4.

/// The internal helper functions, created in schema `atomik`.
#[pgrx::pg_schema]
pub mod atomik {
    use atomik_core::{AtomikValue, Group};
    use pgrx::prelude::*;
    use pgrx::PgSqlErrorCode;

    use crate::datum::Atomik;
    use crate::errors::raise;

    /// The group whose wire code is `code`.
    pub(crate) fn group_of(code: i32) -> Group {
        u8::try_from(code)
            .ok()
            .and_then(Group::from_code)
            .unwrap_or_else(|| {
                raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!("{code} is not an atomik group code (1 add, 2 xor)"),
                )
            })
    }

    /// The check constraint `atomik_track` puts on a tracked column: true
    /// for NULL or a value of the column's fixed group `grp`; a value of
    /// another group raises an error naming the column (the same message
    /// as SQLite's).
    #[pg_extern(immutable, parallel_safe, requires = ["atomik_type"])]
    fn in_group(cell: Option<Atomik>, grp: i32, tbl: &str, col: &str) -> bool {
        let group = group_of(grp);
        match cell {
            Some(c) if c.0.group() != group => raise(
                PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
                format!(
                    "atomik: column \"{tbl}\".\"{col}\" is tracked as {group}; a value of another group cannot be written to it"
                ),
            ),
            _ => true,
        }
    }

    /// Fold a received delta into the reference of `cell` (rule 1). A NULL
    /// cell is created in the delta's group; a cell of another group is an
    /// error naming the column.
    #[pg_extern(immutable, parallel_safe, requires = ["atomik_type"])]
    fn receive(cell: Option<Atomik>, grp: i32, delta: i64, tbl: &str, col: &str) -> Atomik {
        let group = group_of(grp);
        let cell = cell.map_or(AtomikValue::identity(group), |c| c.0);
        if cell.group() != group {
            raise(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                format!(
                    "group mismatch on {tbl}.{col}: cell is {}, delta is {group}",
                    cell.group()
                ),
            );
        }
        Atomik(cell.receive(delta as u64))
    }

    /// Apply a folded deferred delta as `atomik_accum` does; a NULL cell
    /// becomes a new value in the delta's group with the delta pending.
    #[pg_extern(immutable, parallel_safe, requires = ["atomik_type"])]
    fn defer_apply(cell: Option<Atomik>, grp: i32, delta: i64) -> Atomik {
        let group = group_of(grp);
        match cell {
            None => Atomik(AtomikValue::new_pending(group, delta as u64)),
            Some(c) if c.0.group() == group => Atomik(c.0.accum(delta as u64)),
            Some(c) => raise(
                PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
                format!(
                    "group mismatch: cell is {}, deferred delta is {group}",
                    c.0.group()
                ),
            ),
        }
    }

    /// The value with its accumulator moved into its reference (seal).
    #[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
    fn sealed(cell: Atomik) -> Atomik {
        Atomik(cell.0.seal().0)
    }

    /// True when a write took the cell's accumulator from the identity to
    /// something else: the first local write since the cell was sealed,
    /// the one that must record it as dirty (the `WHEN` clause of the
    /// `atomik_acc_<column>` triggers; NULL cells are the new-cell
    /// triggers' business, so strict).
    #[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
    fn dirtied(old: Atomik, new: Atomik) -> bool {
        old.0.pending() == 0 && new.0.pending() != 0
    }

    /// Trigger function of the `atomik_acc_<column>` triggers that
    /// `atomik_track` installs: records the written cell in `atomik.dirty`
    /// with a heap insert (see [`crate::record`]). Arguments: wire table
    /// name, column name, key column names.
    #[pg_trigger]
    fn mark_dirty<'a>(
        trigger: &'a pgrx::PgTrigger<'a>,
    ) -> Result<
        Option<pgrx::heap_tuple::PgHeapTuple<'a, pgrx::AllocatedByPostgres>>,
        pgrx::PgTriggerError,
    > {
        crate::record::record_dirty(trigger.trigger_data());
        Ok(None)
    }

    /// Trigger function of the `atomik_new_<column>` and
    /// `atomik_set_<column>` triggers that `atomik_track` installs: marks
    /// a cell created by a local INSERT (or an UPDATE from NULL, or one
    /// that changes the row's key) as new in `atomik.new_cells` (see
    /// [`crate::record`]). Arguments as for `mark_dirty`.
    #[pg_trigger]
    fn mark_new<'a>(
        trigger: &'a pgrx::PgTrigger<'a>,
    ) -> Result<
        Option<pgrx::heap_tuple::PgHeapTuple<'a, pgrx::AllocatedByPostgres>>,
        pgrx::PgTriggerError,
    > {
        crate::record::record_new(trigger.trigger_data());
        Ok(None)
    }

    /// The reference word.
    #[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
    fn reference(cell: Atomik) -> i64 {
        cell.0.reference() as i64
    }

    /// The accumulator word (`atomik_pending`, reachable whatever the
    /// caller's `search_path`).
    #[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
    fn pending(cell: Atomik) -> i64 {
        cell.0.pending() as i64
    }

    /// The read value (`atomik_read`, reachable whatever the caller's
    /// `search_path`).
    #[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
    fn read(cell: Atomik) -> i64 {
        cell.0.read_i64()
    }

    /// The value with its reference reset to the identity and its
    /// accumulator kept (before installing a snapshot).
    #[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
    fn rebase(cell: Atomik) -> Atomik {
        Atomik(AtomikValue::from_parts(
            cell.0.group(),
            0,
            cell.0.accumulator(),
        ))
    }

    /// The group's wire code (1 add, 2 xor).
    #[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
    fn group_code(cell: Atomik) -> i32 {
        i32::from(cell.0.group().code())
    }
}

// The schema's state tables and the trigger functions that record written
// cells.
pgrx::extension_sql_file!(
    "state_tables.sql",
    name = "state_tables",
    requires = ["atomik_type"]
);
