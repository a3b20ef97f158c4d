//! `atomik_inspect(message)`: one row per cell of a sync message, with its
//! header (`atomik_core::inspect`) — `SELECT * FROM atomik_inspect(bytes)`,
//! the same SQL as in SQLite. Reads only its argument.

use atomik_core::inspect::inspect;
use atomik_core::ProtocolError;
use pgrx::prelude::*;

use crate::errors::protocol_error;

/// The rows of a v2 sync message (or a v1 batch); malformed input is
/// refused with the decoder's error (SQLSTATE 22000).
#[pg_extern(immutable, strict, parallel_safe)]
#[allow(clippy::type_complexity)]
fn atomik_inspect(
    message: &[u8],
) -> TableIterator<
    'static,
    (
        name!(kind, String),
        name!(site, Option<String>),
        name!(hub, Option<String>),
        name!(position, Option<i64>),
        name!(base, Option<i64>),
        name!(ack, Option<i64>),
        name!(origin, Option<String>),
        name!(seq, Option<i64>),
        name!(tbl, Option<String>),
        name!(col, Option<String>),
        name!(grp, Option<String>),
        name!(key, Option<String>),
        name!(delta, Option<i64>),
    ),
> {
    let rows = inspect(message).unwrap_or_else(|e| protocol_error(ProtocolError::Decode(e)));
    // Positions and seqs are at most 2^63 - 1 (the decoder checks).
    let int = |v: Option<u64>| v.map(|v| v as i64);
    TableIterator::new(rows.into_iter().map(move |r| {
        (
            r.kind,
            r.site.map(|s| s.to_string()),
            r.hub.map(|s| s.to_string()),
            int(r.position),
            int(r.base),
            int(r.ack),
            r.origin.map(|s| s.to_string()),
            int(r.seq),
            r.table,
            r.column,
            r.group,
            r.key,
            r.delta,
        )
    }))
}
