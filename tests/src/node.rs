//! What a replica offers the cross-engine tests, whatever engine keeps it.

use anyhow::Result;

use crate::schema::Delta;

/// One row of the W4 table: key, canonical bytes of `n`, of `f`.
pub type Row = (i64, [u8; 17], [u8; 17]);

/// A replica of the W4 table, driven through the `atomik_*` SQL calls.
pub trait Node {
    /// Apply `deltas` as one local transaction that also records `id` in
    /// the ledger.
    fn write(&mut self, id: u64, deltas: &[Delta]) -> Result<()>;
    /// `atomik_make_relay()`: this replica will serve others and sync to
    /// an upstream hub.
    fn make_relay(&mut self) -> Result<()>;
    /// `atomik_sync_request()`.
    fn sync_request(&mut self) -> Result<Vec<u8>>;
    /// `atomik_sync(request)`.
    fn serve_sync(&mut self, request: &[u8]) -> Result<Vec<u8>>;
    /// `atomik_sync_finish(response)`: deltas newly applied.
    fn finish_sync(&mut self, response: &[u8]) -> Result<u64>;
    /// Every row, in key order.
    fn rows(&mut self) -> Result<Vec<Row>>;
    /// `atomik_digest` of `n` and of `f`.
    fn digests(&mut self) -> Result<(i64, i64)>;
    /// Deltas parked for rows that could not be created.
    fn parked(&mut self) -> Result<i64>;
}

/// Whether an error is one the protocol legitimately raises under chaos
/// and that leaves the replica unchanged (the same list as the core
/// simulation): a device that roamed to the other hub before its earlier
/// batches got there (`gap in batches`), or a snapshot older than what
/// this replica already dropped (`snapshot from site …`).
pub fn is_transient(error: &anyhow::Error) -> bool {
    let text = format!("{error:#}");
    text.contains("gap in batches from site") || text.contains("snapshot from site")
}

/// Decode a canonical value column into its fixed 17 bytes.
///
/// # Errors
/// Any other length.
pub fn fixed17(bytes: Vec<u8>) -> Result<[u8; 17]> {
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| anyhow::anyhow!("atomik_bytes returned {} bytes, not 17", b.len()))
}
