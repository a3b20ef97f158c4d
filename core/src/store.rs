//! The storage a replica keeps, as a trait the protocol runs over.
//!
//! The SQLite and PostgreSQL extensions implement [`Store`] over their own
//! tables; [`crate::memory::MemoryStore`] implements it in memory for tests
//! and simulations. Every protocol call in [`crate::protocol`] must run
//! inside one transaction of the store: when a call returns an error, the
//! caller rolls the transaction back, so nothing of it is applied.

use crate::changes::Changes;
use crate::error::{ProtocolError, Result};
use crate::group::Group;
use crate::key::KeyShape;
use crate::site::SiteId;

/// A column under replication.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrackedColumn {
    /// Table name.
    pub table: String,
    /// Column name.
    pub column: String,
    /// Kinds of the table's primary-key columns.
    pub shape: KeyShape,
    /// The column's group, fixed when it was tracked: deltas of another
    /// group are refused.
    pub group: Group,
}

/// Storage of one replica: its identity, its tracked cells and a few
/// settings. All methods run inside the caller's transaction.
///
/// Every cell is a value `(group, reference, accumulator)` plus a "new"
/// mark set when a tracked cell is created locally (so it ships at the
/// next seal even at the identity, rule 3). Protocol v2 adds
/// [`crate::log_store::LogStore`].
pub trait Store {
    /// This replica's site id, created on first use.
    fn site_id(&mut self) -> Result<SiteId>;

    /// The tracked columns.
    fn tracked(&mut self) -> Result<Vec<TrackedColumn>>;

    /// Seal step: for every tracked cell written locally since the last
    /// seal whose accumulator is not the identity or that is marked new,
    /// move the accumulator into the reference, clear the mark, and return
    /// the moved deltas (zero deltas for new cells). Protocol v2 requires
    /// this to read a record of written cells, not to scan the tables.
    fn take_pending(&mut self) -> Result<Changes>;

    /// Fold received deltas into references, never accumulators (rule 1).
    /// A cell that is missing or NULL is created in the delta's group; a
    /// row that cannot be created is parked and applied when it appears.
    /// Returns how many deltas were applied or parked.
    ///
    /// # Errors
    /// [`crate::ProtocolError::GroupMismatch`] when a delta's group differs
    /// from its cell's.
    fn receive(&mut self, changes: &Changes) -> Result<u64>;

    /// Every tracked cell's reference, as changes from the identity (a
    /// snapshot's payload), and every parked delta. Accumulators are not
    /// included.
    fn references(&mut self) -> Result<Changes>;

    /// Replace every tracked cell's reference with the value in `values`
    /// (the identity of the cell's group where absent), creating cells as
    /// `receive` does, and clear parked deltas. Accumulators are kept.
    fn install_references(&mut self, values: &Changes) -> Result<()>;

    /// A numeric setting (see [`crate::protocol::v2::settings`]).
    fn setting(&mut self, name: &str) -> Result<Option<u64>>;
    /// Set or clear a numeric setting.
    fn set_setting(&mut self, name: &str, value: Option<u64>) -> Result<()>;
}

/// The group `atomik_track` fixes for `table.column`, whose non-NULL cells
/// are of the groups `found`: `wanted` if given (every cell must be in
/// it), else the one group the cells are in, else add. The same rule, and
/// the same error text, in every engine.
///
/// # Errors
/// The message for cells of another group than `wanted`, or of both
/// groups when none is given.
pub fn tracked_group(
    table: &str,
    column: &str,
    wanted: Option<Group>,
    found: &[Group],
) -> std::result::Result<Group, String> {
    let names = || {
        let mut names: Vec<&str> = found.iter().map(|g| g.name()).collect();
        names.sort_unstable();
        names.dedup();
        names.join(" and ")
    };
    match wanted {
        Some(g) if found.iter().all(|f| *f == g) => Ok(g),
        Some(g) => Err(format!(
            "column \"{table}\".\"{column}\" holds {} values: it cannot be tracked as {g}",
            names()
        )),
        None => match found.first() {
            None => Ok(Group::Add),
            Some(first) if found.iter().all(|f| f == first) => Ok(*first),
            Some(_) => Err(format!(
                "column \"{table}\".\"{column}\" holds both add and xor values: give its group, atomik_track('{table}', '{column}', 'add') or 'xor', after rewriting the cells of the other group"
            )),
        },
    }
}

/// The setting that bounds how many cells a replica keeps parked (deltas
/// for rows it cannot create): each sync re-checks them all, and a hostile
/// uploader could otherwise grow them without end.
pub const MAX_PARKED: &str = "max_parked";

/// The bound when [`MAX_PARKED`] is not set.
pub const DEFAULT_MAX_PARKED: u64 = 10_000;

/// Whether one more cell may be parked, with `parked` cells parked already
/// and the [`MAX_PARKED`] setting `limit` (a delta for a cell already
/// parked combines with it and needs no room).
///
/// # Errors
/// [`ProtocolError::ParkedFull`]: the message is refused whole.
pub fn check_parked_room(parked: u64, limit: Option<u64>) -> Result<()> {
    let limit = limit.unwrap_or(DEFAULT_MAX_PARKED);
    if parked >= limit {
        return Err(ProtocolError::ParkedFull { limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::tracked_group;
    use crate::Group::{Add, Xor};

    #[test]
    fn tracked_group_is_given_found_or_add() {
        assert_eq!(tracked_group("t", "c", None, &[]), Ok(Add));
        assert_eq!(tracked_group("t", "c", None, &[Xor]), Ok(Xor));
        assert_eq!(tracked_group("t", "c", Some(Xor), &[]), Ok(Xor));
        assert_eq!(tracked_group("t", "c", Some(Add), &[Add]), Ok(Add));
        assert_eq!(
            tracked_group("t", "c", Some(Xor), &[Add]),
            Err("column \"t\".\"c\" holds add values: it cannot be tracked as xor".to_string())
        );
        assert!(tracked_group("t", "c", None, &[Add, Xor])
            .unwrap_err()
            .starts_with("column \"t\".\"c\" holds both add and xor values"));
    }
}
