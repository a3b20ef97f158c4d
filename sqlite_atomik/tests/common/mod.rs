//! Helpers shared by the integration tests.
#![allow(dead_code)]

use rusqlite::Connection;

/// An in-memory connection with atomik registered.
pub fn mem() -> Connection {
    let c = Connection::open_in_memory().unwrap();
    sqlite_atomik::register(&c).unwrap();
    c
}

/// A file connection with atomik registered. `synchronous = OFF`: the
/// tests kill processes, they do not cut power, so fsync only costs time.
pub fn file(path: &std::path::Path) -> Connection {
    let c = Connection::open(path).unwrap();
    c.execute_batch("PRAGMA synchronous = OFF").unwrap();
    sqlite_atomik::register(&c).unwrap();
    c
}

/// One integer.
pub fn int(c: &Connection, sql: &str) -> i64 {
    c.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// One BLOB.
pub fn blob(c: &Connection, sql: &str) -> Vec<u8> {
    c.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// One text.
pub fn text(c: &Connection, sql: &str) -> String {
    c.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The error message of a statement that must fail.
pub fn err(c: &Connection, sql: &str) -> String {
    match c.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0)) {
        Ok(v) => panic!("{sql} succeeded with {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// The error message of a one-parameter statement that must fail.
pub fn err_with(c: &Connection, sql: &str, p: impl rusqlite::ToSql) -> String {
    match c.query_row(sql, [p], |r| r.get::<_, rusqlite::types::Value>(0)) {
        Ok(v) => panic!("{sql} succeeded with {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// Call a one-argument BLOB function.
pub fn call_blob(
    c: &Connection,
    sql: &str,
    arg: &[u8],
) -> rusqlite::Result<rusqlite::types::Value> {
    c.query_row(sql, [arg], |r| r.get(0))
}

/// Every (key, value bytes) of `t.c`, in key order.
pub fn cells(c: &Connection, sql: &str) -> Vec<(i64, Vec<u8>)> {
    let mut s = c.prepare(sql).unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Every row of every table, rendered: to prove a failed call changed
/// nothing.
pub fn dump(c: &Connection) -> Vec<String> {
    let tables: Vec<String> = {
        let mut s = c
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        s.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let mut out = Vec::new();
    for t in tables {
        let mut s = c
            .prepare(&format!("SELECT * FROM \"{t}\" ORDER BY 1"))
            .unwrap();
        let n = s.column_count();
        let mut rows = s.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let vals: Vec<rusqlite::types::Value> = (0..n).map(|i| r.get(i).unwrap()).collect();
            out.push(format!("{t}: {vals:?}"));
        }
    }
    out
}

/// The outbox entries (position, seq) of this replica, in order.
pub fn outbox(c: &Connection) -> Vec<(i64, i64)> {
    let mut s = c
        .prepare("SELECT position, seq FROM atomik_outbox ORDER BY position")
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// `atomik_sync(request)` on `hub`.
pub fn serve(hub: &Connection, request: &[u8]) -> rusqlite::Result<Vec<u8>> {
    hub.query_row("SELECT atomik_sync(?1)", [request], |r| r.get(0))
}

/// `atomik_sync_finish(response)` on `device`.
pub fn finish(device: &Connection, response: &[u8]) -> rusqlite::Result<i64> {
    device.query_row("SELECT atomik_sync_finish(?1)", [response], |r| r.get(0))
}

/// `atomik_apply(bytes)`.
pub fn apply(c: &Connection, bytes: &[u8]) -> rusqlite::Result<i64> {
    c.query_row("SELECT atomik_apply(?1)", [bytes], |r| r.get(0))
}

/// One sync round trip of `device` with `hub`; returns deltas applied.
pub fn sync(device: &Connection, hub: &Connection) -> i64 {
    let req = blob(device, "SELECT atomik_sync_request()");
    let resp: Vec<u8> = hub
        .query_row("SELECT atomik_sync(?1)", [&req], |r| r.get(0))
        .unwrap();
    device
        .query_row("SELECT atomik_sync_finish(?1)", [&resp], |r| r.get(0))
        .unwrap()
}

/// A fresh empty directory under the system temp dir, for database files.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("atomik-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
