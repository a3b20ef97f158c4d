//! The check every incoming message passes before anything of it is
//! applied: its columns must be tracked here, with the table's key shape.

use crate::changes::Changes;
use crate::error::{ProtocolError, Result};
use crate::store::TrackedColumn;

/// Check every column of `changes` against the tracked set: the table and
/// column must be tracked here and keys must have the table's key shape.
/// Names from a message are only ever compared, never spliced into SQL.
///
/// # Errors
/// [`ProtocolError::Untracked`] or [`ProtocolError::KeyShape`].
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
