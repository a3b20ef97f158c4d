//! `atomik_inspect(message)`: the rows of a real sync request and response,
//! and the exact error of every bad argument.

mod common;
use common::*;

/// kind, site, position, origin, seq, key, delta.
type RequestRow = (String, String, Option<i64>, String, i64, String, i64);

#[test]
fn a_request_and_its_response_as_rows() {
    let device = mem();
    let hub = mem();
    for c in [&device, &hub] {
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB); SELECT atomik_track('t', 'n');",
        )
        .unwrap();
    }
    device
        .execute_batch("INSERT INTO t VALUES (1, atomik_add(5)), (2, atomik_add(-3));")
        .unwrap();
    let request = blob(&device, "SELECT atomik_sync_request()");
    let site = text(&device, "SELECT atomik_site_id()");
    let rows: Vec<RequestRow> = device
        .prepare(
            "SELECT kind, site, position, origin, seq, key, delta FROM atomik_inspect(?1) ORDER BY key",
        )
        .unwrap()
        .query_map([&request], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                "request".into(),
                site.clone(),
                None,
                site.clone(),
                1,
                "1".into(),
                5
            ),
            (
                "request".into(),
                site.clone(),
                None,
                site.clone(),
                1,
                "2".into(),
                -3
            ),
        ]
    );
    let response: Vec<u8> = hub
        .query_row("SELECT atomik_sync(?1)", [&request], |r| r.get(0))
        .unwrap();
    let (kind, to, ack, cells): (String, String, i64, i64) = hub
        .query_row(
            "SELECT min(kind), min(site), min(ack), count(key) FROM atomik_inspect(?1)",
            [&response],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((kind.as_str(), to, ack), ("response (snapshot)", site, 1));
    assert_eq!(cells, 2, "the snapshot holds both cells");
    assert_eq!(
        int(&hub, "SELECT count(*) FROM atomik_inspect(NULL)"),
        0,
        "NULL in, no rows out"
    );
}

#[test]
fn bad_arguments_are_refused() {
    let c = mem();
    assert_eq!(
        err(&c, "SELECT * FROM atomik_inspect(x'41')"),
        "atomik_inspect: atomik message is too short (1 bytes) to be a message"
    );
    assert_eq!(
        err(&c, "SELECT * FROM atomik_inspect('hello')"),
        "atomik_inspect: the message must be a BLOB, got Text"
    );
    assert_eq!(
        err(&c, "SELECT * FROM atomik_inspect"),
        "atomik_inspect: give it the message: SELECT * FROM atomik_inspect(bytes)"
    );
    assert!(
        err(&c, "SELECT * FROM atomik_inspect(x'00112233445566778899')")
            .starts_with("atomik_inspect: not an atomik message")
    );
}
