//! The check every incoming message passes before anything of it is
//! applied: its columns must be tracked here, in the group `atomik_track`
//! fixed for them, with the table's key shape.

use crate::changes::Changes;
use crate::error::{ProtocolError, Result};
use crate::store::TrackedColumn;

/// Check every column of `changes` against the tracked set: the table and
/// column must be tracked here, its deltas of the column's fixed group (so
/// that nobody can claim unwritten cells in another group and block their
/// later writers), and keys must have the table's key shape. Names from a
/// message are only ever compared, never spliced into SQL.
///
/// # Errors
/// [`ProtocolError::Untracked`], [`ProtocolError::ColumnGroup`] or
/// [`ProtocolError::KeyShape`].
pub fn check_tracked(tracked: &[TrackedColumn], changes: &Changes) -> Result<()> {
    for (id, block) in changes.columns() {
        let Some(t) = tracked
            .iter()
            .find(|t| t.table == id.table && t.column == id.column)
        else {
            return Err(ProtocolError::Untracked {
                table: id.table.clone(),
                column: id.column.clone(),
            });
        };
        if t.group != id.group {
            return Err(ProtocolError::ColumnGroup {
                table: id.table.clone(),
                column: id.column.clone(),
                tracked: t.group,
                delta: id.group,
            });
        }
        if t.shape != block.shape {
            let key = block
                .cells
                .keys()
                .next()
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(ProtocolError::KeyShape {
                table: id.table.clone(),
                key,
                why: format!(
                    "the message has key columns {:?}, the table has {:?}",
                    block.shape.kinds(),
                    t.shape.kinds()
                ),
            });
        }
    }
    Ok(())
}
