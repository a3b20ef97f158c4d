//! The pure value functions and the `atomik_fold` aggregate: results,
//! STRICT NULL handling, and the exact text of every bad-input error.

mod common;
use common::*;

const ADD5: &str = "x'1100000000000000000500000000000000'";

#[test]
fn constructors_and_readers() {
    let c = mem();
    assert_eq!(
        blob(&c, "SELECT atomik_add(5)"),
        [0x11, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(blob(&c, "SELECT atomik_xor(-1)")[0], 0x12);
    assert_eq!(blob(&c, "SELECT atomik_xor(-1)")[9..], [0xFF; 8]);
    assert_eq!(int(&c, "SELECT atomik_read(atomik_add(5))"), 5);
    assert_eq!(int(&c, "SELECT atomik_pending(atomik_add(5))"), 5);
    assert_eq!(
        int(&c, "SELECT atomik_read(atomik_accum(atomik_add(5), -7))"),
        -2
    );
    assert_eq!(
        int(&c, "SELECT atomik_read(atomik_accum(atomik_xor(12), 10))"),
        6
    );
    assert_eq!(
        int(&c, "SELECT atomik_read(atomik_set(atomik_add(5), 42))"),
        42
    );
    assert_eq!(
        int(&c, "SELECT atomik_pending(atomik_set(atomik_add(5), 42))"),
        42
    );
    assert_eq!(text(&c, "SELECT atomik_group(atomik_add(1))"), "add");
    assert_eq!(text(&c, "SELECT atomik_group(atomik_xor(1))"), "xor");
    assert_eq!(
        text(&c, "SELECT atomik_text(atomik_add(-3))"),
        "add:-3;pending=-3"
    );
    assert_eq!(
        blob(&c, &format!("SELECT atomik_bytes({ADD5})")),
        blob(&c, "SELECT atomik_add(5)")
    );
    assert_eq!(
        blob(&c, &format!("SELECT atomik_from_bytes({ADD5})")),
        blob(&c, "SELECT atomik_add(5)")
    );
    assert_eq!(
        int(
            &c,
            "SELECT atomik_read(atomik_accum(atomik_add(9223372036854775807), 1))"
        ),
        i64::MIN,
        "add wraps like two's complement"
    );
    assert_eq!(
        text(&c, "SELECT atomik_version()"),
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn strict_null_in_null_out() {
    let c = mem();
    for sql in [
        "SELECT atomik_add(NULL)",
        "SELECT atomik_xor(NULL)",
        "SELECT atomik_accum(atomik_add(1), NULL)",
        "SELECT atomik_set(NULL, 1)",
        "SELECT atomik_read(NULL)",
        "SELECT atomik_pending(NULL)",
        "SELECT atomik_group(NULL)",
        "SELECT atomik_text(NULL)",
        "SELECT atomik_bytes(NULL)",
        "SELECT atomik_from_bytes(NULL)",
        "SELECT atomik_fold(NULL)",
        "SELECT atomik_fold(x) FROM (SELECT 1 AS x WHERE 0)",
    ] {
        let v: rusqlite::types::Value = c.query_row(sql, [], |r| r.get(0)).unwrap();
        assert_eq!(v, rusqlite::types::Value::Null, "{sql}");
    }
}

/// A NULL cell counts from the identity of `add`, so that a counter column
/// without a default counts (the one exception to NULL in, NULL out); in a
/// tracked xor column the group check refuses the result.
#[test]
fn accum_counts_a_null_cell_from_zero() {
    let c = mem();
    assert_eq!(
        text(&c, "SELECT atomik_text(atomik_accum(NULL, 3))"),
        "add:3;pending=3"
    );
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB, f BLOB);
         SELECT atomik_track('t', 'n'); SELECT atomik_track('t', 'f', 'xor');
         INSERT INTO t(id) VALUES (1);
         UPDATE t SET n = atomik_accum(n, 1);
         UPDATE t SET n = atomik_accum(n, 1);",
    )
    .unwrap();
    assert_eq!(int(&c, "SELECT atomik_read(n) FROM t"), 2);
    assert_eq!(int(&c, "SELECT atomik_seal()"), 1, "the new cell ships");
    assert_eq!(
        err(&c, "UPDATE t SET f = atomik_accum(f, 1)"),
        "atomik: column \"t\".\"f\" is tracked as xor; a value of another group cannot be written to it"
    );
}

#[test]
fn fold_combines_groups_and_skips_nulls() {
    let c = mem();
    c.execute_batch(
        "CREATE TABLE v(g TEXT, a BLOB);
         INSERT INTO v VALUES ('s', atomik_add(5)), ('s', atomik_add(-2)), ('s', NULL),
                              ('x', atomik_xor(6)), ('x', atomik_xor(3));",
    )
    .unwrap();
    assert_eq!(
        int(
            &c,
            "SELECT atomik_read(atomik_fold(a)) FROM v WHERE g = 's'"
        ),
        3
    );
    assert_eq!(
        int(
            &c,
            "SELECT atomik_pending(atomik_fold(a)) FROM v WHERE g = 's'"
        ),
        3
    );
    assert_eq!(
        int(
            &c,
            "SELECT atomik_read(atomik_fold(a)) FROM v WHERE g = 'x'"
        ),
        5
    );
    assert_eq!(
        err(&c, "SELECT atomik_fold(a) FROM v"),
        "atomik_fold: cannot combine atomik values of different groups: add and xor"
    );
}

#[test]
fn bad_values_are_named() {
    let c = mem();
    let cases = [
        ("SELECT atomik_read(x'1100')", "atomik_read: argument 1: atomik value must be 17 bytes, got 2"),
        (
            "SELECT atomik_read(zeroblob(18))",
            "atomik_read: argument 1: atomik value must be 17 bytes, got 18",
        ),
        (
            "SELECT atomik_read(x'2100000000000000000000000000000000')",
            "atomik_read: argument 1: atomik value has format version 2 (tag 0x21); this build reads version 1",
        ),
        (
            "SELECT atomik_pending(x'1300000000000000000000000000000000')",
            "atomik_pending: argument 1: atomik value has unknown group code 3 (tag 0x13)",
        ),
        (
            "SELECT atomik_read('add:5')",
            "atomik_read: argument 1 must be an atomik value (a 17-byte BLOB), got TEXT",
        ),
        (
            "SELECT atomik_accum(5, 1)",
            "atomik_accum: argument 1 must be an atomik value (a 17-byte BLOB), got INTEGER",
        ),
        (
            "SELECT atomik_accum(atomik_add(1), '1')",
            "atomik_accum: argument 2 must be an INTEGER, got TEXT",
        ),
        ("SELECT atomik_add(1.5)", "atomik_add: argument 1 must be an INTEGER, got REAL"),
        ("SELECT atomik_xor(x'01')", "atomik_xor: argument 1 must be an INTEGER, got BLOB"),
        (
            "SELECT atomik_set(atomik_add(1), 2.0)",
            "atomik_set: argument 2 must be an INTEGER, got REAL",
        ),
        (
            "SELECT atomik_group(x'00')",
            "atomik_group: argument 1: atomik value must be 17 bytes, got 1",
        ),
        (
            "SELECT atomik_bytes('x')",
            "atomik_bytes: argument 1 must be an atomik value (a 17-byte BLOB), got TEXT",
        ),
        (
            "SELECT atomik_from_bytes(x'1200')",
            "atomik_from_bytes: argument 1: atomik value must be 17 bytes, got 2",
        ),
        (
            "SELECT atomik_text(x'')",
            "atomik_text: argument 1: atomik value must be 17 bytes, got 0",
        ),
        (
            "SELECT atomik_fold('add:1')",
            "atomik_fold: argument 1 must be an atomik value (a 17-byte BLOB), got TEXT",
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(err(&c, sql), want, "{sql}");
    }
}

#[test]
fn usable_in_index_and_check() {
    // DETERMINISTIC | INNOCUOUS: allowed in an expression index and CHECK.
    let c = mem();
    c.execute_batch(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB CHECK (atomik_group(n) = 'add'));
         CREATE INDEX t_read ON t(atomik_read(n));
         INSERT INTO t VALUES (1, atomik_add(3));",
    )
    .unwrap();
    assert!(
        err(&c, "INSERT INTO t VALUES (2, atomik_xor(3)) RETURNING id")
            .contains("CHECK constraint failed")
    );
    assert_eq!(int(&c, "SELECT id FROM t WHERE atomik_read(n) = 3"), 1);
}
