//! The table of workload W4, the same on every replica: 1,000 cells, each
//! with an `add` column `n` and an `xor` column `f`, plus a ledger that
//! commits with every local write so that a killed writer's outcome can be
//! read back.

use atomik_core::Group;

/// The tracked table.
pub const TABLE: &str = "cells";

/// One of the two tracked columns of [`TABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Column {
    /// `n`, group add.
    N,
    /// `f`, group xor.
    F,
}

impl Column {
    /// Both columns.
    pub const ALL: [Column; 2] = [Column::N, Column::F];

    /// The column's SQL name.
    pub fn name(self) -> &'static str {
        match self {
            Column::N => "n",
            Column::F => "f",
        }
    }

    /// The column's group.
    pub fn group(self) -> Group {
        match self {
            Column::N => Group::Add,
            Column::F => Group::Xor,
        }
    }

    /// The SQL constructor of a new value in the column's group.
    pub fn constructor(self) -> &'static str {
        match self {
            Column::N => "atomik_add",
            Column::F => "atomik_xor",
        }
    }
}

/// One local change: add or xor `delta` into (`key`, `column`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    /// Primary key of the cell's row.
    pub key: i64,
    /// Which column.
    pub column: Column,
    /// The delta, as 64 bits (two's complement for `add`).
    pub delta: u64,
}

/// Schema of a replica in SQLite. The columns default to the identity of
/// their group (`atomik_add(0)` / `atomik_xor(0)` as literal 17-byte
/// BLOBs), so a row created by one column's delta has a usable other
/// column.
pub const SQLITE_SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS cells (
        id INTEGER PRIMARY KEY,
        n BLOB NOT NULL DEFAULT (X'1100000000000000000000000000000000'),
        f BLOB NOT NULL DEFAULT (X'1200000000000000000000000000000000'));
    CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY);
    SELECT atomik_track('cells', 'n');
    SELECT atomik_track('cells', 'f', 'xor');";

/// Schema of a replica in PostgreSQL (after `CREATE EXTENSION pg_atomik`).
pub const PG_SCHEMA: &str = "
    CREATE TABLE cells (
        id bigint PRIMARY KEY,
        n atomik NOT NULL DEFAULT atomik_add(0),
        f atomik NOT NULL DEFAULT atomik_xor(0));
    CREATE TABLE ledger (id bigint PRIMARY KEY);
    SELECT atomik_track('cells', 'n');
    SELECT atomik_track('cells', 'f', 'xor');";

/// The upsert of one delta, with `$1`/`?1` the key and `$2`/`?2` the delta.
/// `placeholder` is `'$'` (PostgreSQL) or `'?'` (SQLite).
pub fn upsert_sql(column: Column, placeholder: char) -> String {
    let (c, make) = (column.name(), column.constructor());
    let p = placeholder;
    format!(
        "INSERT INTO cells (id, {c}) VALUES ({p}1, {make}({p}2)) \
         ON CONFLICT (id) DO UPDATE SET {c} = atomik_accum(cells.{c}, {p}2)"
    )
}

/// Every row: key and the canonical 17 bytes of `n` and `f`.
pub const ROWS_SQL: &str = "SELECT id, atomik_bytes(n), atomik_bytes(f) FROM cells ORDER BY id";

/// Both columns' digests.
pub const DIGESTS_SQL: &str = "SELECT atomik_digest('cells', 'n'), atomik_digest('cells', 'f')";

#[cfg(test)]
mod tests {
    use super::*;
    use atomik_core::AtomikValue;

    #[test]
    fn sqlite_defaults_are_the_identities() {
        for (col, lit) in [
            (Column::N, "1100000000000000000000000000000000"),
            (Column::F, "1200000000000000000000000000000000"),
        ] {
            let identity = AtomikValue::identity(col.group()).to_bytes();
            assert_eq!(hex::encode(identity), lit);
            assert!(SQLITE_SCHEMA.contains(&lit.to_uppercase()));
        }
    }
}
