//! Sets of per-cell deltas — the payload of batches, downloads and snapshots.
//!
//! A [`Changes`] holds at most one delta per cell: adding a second delta for
//! the same cell group-combines it into the first, so a thousand increments
//! to one cell travel as one delta.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use crate::group::Group;
use crate::key::{Key, KeyShape};

/// A tracked column as named on the wire: table, column, group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColumnId {
    /// Table name.
    pub table: String,
    /// Column name.
    pub column: String,
    /// The group of the cells' values.
    pub group: Group,
}

impl ColumnId {
    /// A column id.
    pub fn new(table: impl Into<String>, column: impl Into<String>, group: Group) -> Self {
        ColumnId {
            table: table.into(),
            column: column.into(),
            group,
        }
    }
}

/// The deltas of one column: the key shape and one delta per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDeltas {
    /// The shape of the table's primary key.
    pub shape: KeyShape,
    /// Delta per key, in key order.
    pub cells: BTreeMap<Key, u64>,
}

/// Deltas for many columns, at most one per cell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    columns: BTreeMap<ColumnId, ColumnDeltas>,
}

/// A key or block does not fit the key shape of its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError(pub String);

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ShapeError {}

impl Changes {
    /// No changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Combine `delta` into the cell `(column, key)`. A zero delta still
    /// creates the cell entry (rule 3: new cells ship even at the identity).
    ///
    /// # Errors
    /// When the key does not fit `shape`, or the column is already present
    /// with another key shape.
    pub fn add(
        &mut self,
        column: &ColumnId,
        shape: &KeyShape,
        key: Key,
        delta: u64,
    ) -> Result<(), ShapeError> {
        shape.check(&key).map_err(|why| {
            ShapeError(format!(
                "key {key} does not fit {}.{}: {why}",
                column.table, column.column
            ))
        })?;
        let block = self.block_mut(column, shape)?;
        match block.cells.entry(key) {
            Entry::Vacant(v) => {
                v.insert(delta);
            }
            Entry::Occupied(mut o) => {
                let merged = column.group.combine(*o.get(), delta);
                o.insert(merged);
            }
        }
        Ok(())
    }

    /// The block of `column`, created empty with `shape` if absent.
    ///
    /// # Errors
    /// When the column is present with another key shape.
    pub fn block_mut(
        &mut self,
        column: &ColumnId,
        shape: &KeyShape,
    ) -> Result<&mut ColumnDeltas, ShapeError> {
        if !self.columns.contains_key(column) {
            self.columns.insert(
                column.clone(),
                ColumnDeltas {
                    shape: shape.clone(),
                    cells: BTreeMap::new(),
                },
            );
        }
        let block = self
            .columns
            .get_mut(column)
            .expect("inserted just above when absent");
        if &block.shape != shape {
            return Err(ShapeError(format!(
                "column {}.{} has key shape {:?} here and {:?} in the added changes",
                column.table,
                column.column,
                block.shape.kinds(),
                shape.kinds()
            )));
        }
        Ok(block)
    }

    /// Group-combine every delta of `other` into `self` (coalescing).
    ///
    /// # Errors
    /// On a key-shape conflict for a column present in both.
    pub fn merge(&mut self, other: &Changes) -> Result<(), ShapeError> {
        for (column, block) in &other.columns {
            let group = column.group;
            let mine = self.block_mut(column, &block.shape)?;
            for (key, delta) in &block.cells {
                match mine.cells.entry(key.clone()) {
                    Entry::Vacant(v) => {
                        v.insert(*delta);
                    }
                    Entry::Occupied(mut o) => {
                        let merged = group.combine(*o.get(), *delta);
                        o.insert(merged);
                    }
                }
            }
        }
        Ok(())
    }

    /// Group-combine the inverse of every delta of `other` into `self`, so
    /// that `a.merge(b); a.subtract(b)` leaves `a` as it was (cells that
    /// become the identity stay present).
    ///
    /// # Errors
    /// On a key-shape conflict for a column present in both.
    pub fn subtract(&mut self, other: &Changes) -> Result<(), ShapeError> {
        let mut inverse = other.clone();
        for (column, block) in &mut inverse.columns {
            for delta in block.cells.values_mut() {
                *delta = column.group.inverse(*delta);
            }
        }
        self.merge(&inverse)
    }

    /// Insert a whole column block (used by the decoder). Replaces any
    /// existing block of the same column.
    pub fn insert_block(&mut self, column: ColumnId, block: ColumnDeltas) {
        self.columns.insert(column, block);
    }

    /// Iterate over columns and their deltas, in column order.
    pub fn columns(&self) -> impl Iterator<Item = (&ColumnId, &ColumnDeltas)> {
        self.columns.iter()
    }

    /// The deltas of one column, if present.
    pub fn column(&self, column: &ColumnId) -> Option<&ColumnDeltas> {
        self.columns.get(column)
    }

    /// Iterate over every cell: column, key, delta.
    pub fn cells(&self) -> impl Iterator<Item = (&ColumnId, &Key, u64)> {
        self.columns
            .iter()
            .flat_map(|(c, b)| b.cells.iter().map(move |(k, d)| (c, k, *d)))
    }

    /// Number of cells (deltas).
    pub fn cell_count(&self) -> usize {
        self.columns.values().map(|b| b.cells.len()).sum()
    }

    /// True when there are no cells (and no empty column blocks).
    pub fn is_empty(&self) -> bool {
        self.columns.values().all(|b| b.cells.is_empty())
    }

    /// Drop column blocks that hold no cells.
    pub fn prune_empty(&mut self) {
        self.columns.retain(|_, b| !b.cells.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_delta_per_cell() {
        let col = ColumnId::new("t", "c", Group::Add);
        let mut ch = Changes::new();
        for _ in 0..1000 {
            ch.add(&col, &KeyShape::int(), Key::int(7), 1).unwrap();
        }
        ch.add(&col, &KeyShape::int(), Key::int(8), 0).unwrap();
        assert_eq!(ch.cell_count(), 2);
        assert_eq!(ch.column(&col).unwrap().cells[&Key::int(7)], 1000);
        assert_eq!(ch.column(&col).unwrap().cells[&Key::int(8)], 0);
        assert!(ch.add(&col, &KeyShape::text(), Key::text("a"), 1).is_err());
    }

    #[test]
    fn merge_coalesces() {
        let col = ColumnId::new("t", "f", Group::Xor);
        let mut a = Changes::new();
        a.add(&col, &KeyShape::int(), Key::int(1), 0b01).unwrap();
        let mut b = Changes::new();
        b.add(&col, &KeyShape::int(), Key::int(1), 0b11).unwrap();
        b.add(&col, &KeyShape::int(), Key::int(2), 0b11).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a.column(&col).unwrap().cells[&Key::int(1)], 0b10);
        assert_eq!(a.cell_count(), 2);
    }
}
