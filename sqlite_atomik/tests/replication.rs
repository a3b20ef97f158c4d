//! Tracking, sealing, exactly-once apply, missing rows, the hub role, and
//! the exact error of every bad input — each failed call leaves the
//! database unchanged.

mod common;
use common::*;
use rusqlite::Connection;

fn replica(schema: &str) -> Connection {
    let c = mem();
    c.execute_batch(schema).unwrap();
    c
}

const T: &str = "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB, f BLOB);
                 SELECT atomik_track('t', 'n'); SELECT atomik_track('t', 'f', 'xor');";

#[test]
fn track_checks_the_table() {
    let c = mem();
    c.execute_batch(
        "CREATE TABLE nopk(a INTEGER, n BLOB);
         CREATE TABLE real_pk(k REAL PRIMARY KEY, n BLOB);
         CREATE TABLE junk(id INTEGER PRIMARY KEY, n BLOB);
         INSERT INTO junk VALUES (1, 'hello');
         CREATE TABLE ok(id INTEGER PRIMARY KEY, n BLOB);",
    )
    .unwrap();
    let cases = [
        ("SELECT atomik_track('missing', 'n')", "atomik_track: table \"missing\" does not exist"),
        ("SELECT atomik_track('ok', 'zz')", "atomik_track: column \"zz\" of table \"ok\" does not exist"),
        (
            "SELECT atomik_track('nopk', 'n')",
            "atomik_track: table \"nopk\" has no primary key; atomik needs one (integer, text or composite)",
        ),
        (
            "SELECT atomik_track('real_pk', 'n')",
            "atomik_track: primary key column \"k\" of \"real_pk\" has type \"REAL\"; atomik keys are INTEGER or TEXT columns",
        ),
        (
            "SELECT atomik_track('ok', 'id')",
            "atomik_track: column \"id\" is part of the primary key of \"ok\"; track a value column",
        ),
        (
            "SELECT atomik_track('junk', 'n')",
            "atomik_track: column \"junk\".\"n\" holds a text of 5 bytes that is not an atomik value; store atomik_add(..) or atomik_xor(..) values",
        ),
        ("SELECT atomik_track(NULL, 'n')", "atomik_track: argument 1 (table) must be TEXT, got NULL"),
        ("SELECT atomik_track('ok', x'00')", "atomik_track: argument 2 (column) must be TEXT, got BLOB"),
    ];
    for (sql, want) in cases {
        assert_eq!(err(&c, sql), want, "{sql}");
    }
    assert_eq!(int(&c, "SELECT atomik_track('OK', 'N')"), 1);
    assert_eq!(
        int(&c, "SELECT atomik_track('ok', 'n')"),
        0,
        "already tracked"
    );
    assert_eq!(
        text(&c, "SELECT tbl || '.' || col FROM atomik_tracked"),
        "ok.n"
    );
    assert_eq!(int(&c, "SELECT atomik_untrack('ok', 'n')"), 1);
    assert_eq!(int(&c, "SELECT atomik_untrack('ok', 'n')"), 0);
    assert_eq!(
        int(
            &c,
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"
        ),
        0
    );
}

#[test]
fn schema_version_is_recorded_and_checked() {
    let c = mem();
    let site = text(&c, "SELECT atomik_site_id()");
    assert_eq!(site.len(), 32);
    assert_eq!(text(&c, "SELECT atomik_site_id()"), site, "stable");
    assert_eq!(
        int(
            &c,
            "SELECT value FROM atomik_meta WHERE key = 'schema_version'"
        ),
        5
    );
    c.execute(
        "UPDATE atomik_meta SET value = 7 WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    assert_eq!(
        err(&c, "SELECT atomik_seal()"),
        format!(
            "atomik_seal: this database was written by a newer atomik (schema version 7); atomik {} reads schema versions up to 5: upgrade the extension",
            sqlite_atomik::VERSION
        )
    );
}

#[test]
fn seal_ships_new_cells_and_pending_only() {
    let c = replica(T);
    assert_eq!(int(&c, "SELECT atomik_seal()"), 0, "nothing pending");
    c.execute_batch(
        "INSERT INTO t VALUES (1, atomik_add(0), NULL), (2, atomik_add(5), NULL);
         UPDATE t SET n = atomik_accum(n, 1) WHERE id = 2;",
    )
    .unwrap();
    assert_eq!(int(&c, "SELECT atomik_seal()"), 1);
    assert_eq!(
        int(&c, "SELECT atomik_pending(n) FROM t WHERE id = 2"),
        0,
        "sealed into the reference"
    );
    assert_eq!(int(&c, "SELECT atomik_read(n) FROM t WHERE id = 2"), 6);
    assert_eq!(int(&c, "SELECT atomik_seal()"), 0);
    assert_eq!(int(&c, "SELECT count(*) FROM atomik_dirty"), 0);
    // A NULL cell set later is a new cell too, even at the identity.
    c.execute("UPDATE t SET f = atomik_xor(0) WHERE id = 1", [])
        .unwrap();
    assert_eq!(int(&c, "SELECT atomik_seal()"), 2);
    assert_eq!(outbox(&c), [(1, 1), (2, 2)]);
    // Through a hub, the batches reach another replica: cells created,
    // zero deltas too.
    let hub = replica(T);
    assert_eq!(
        sync(&c, &hub),
        3,
        "a first sync is a snapshot: c's own three cells, as the hub has them"
    );
    assert!(outbox(&c).is_empty(), "acknowledged");
    let d = replica(T);
    assert_eq!(sync(&d, &hub), 3, "a snapshot of three cells");
    assert_eq!(text(&d, "SELECT group_concat(id || ':' || atomik_text(n) || ':' || ifnull(atomik_text(f), '-'), ' ') FROM t"), "1:add:0:xor:0x0000000000000000 2:add:6:-");
    for col in ["n", "f"] {
        let q = format!("SELECT atomik_digest('t', '{col}')");
        assert_eq!(int(&d, &q), int(&c, &q));
        assert_eq!(int(&hub, &q), int(&c, &q));
    }
    // A remote apply is not captured as a local change: not in the hub's
    // own seal, nor in the device's.
    assert_eq!(int(&d, "SELECT atomik_seal()"), 0);
    assert_eq!(int(&hub, "SELECT atomik_seal()"), 0);
    // Primary keys of tracked rows do not change.
    assert!(err(&c, "UPDATE t SET id = 9 WHERE id = 1 RETURNING id")
        .contains("the primary key of a row of tracked table \"t\" cannot change"));
}

#[test]
fn writes_of_every_kind_are_recorded_for_the_seal() {
    let c = replica(T);
    // A plain UPDATE with atomik_accum, an upsert, INSERT OR REPLACE, and
    // a write through a connection that has not loaded the extension
    // (the triggers are plain SQL).
    c.execute_batch(
        "INSERT INTO t VALUES (1, atomik_add(1), NULL); SELECT atomik_seal();
         UPDATE t SET n = atomik_accum(n, 2) WHERE id = 1;
         INSERT INTO t VALUES (2, atomik_add(3), NULL)
             ON CONFLICT(id) DO UPDATE SET n = atomik_accum(n, 3);
         INSERT INTO t VALUES (2, atomik_add(4), NULL)
             ON CONFLICT(id) DO UPDATE SET n = atomik_accum(n, 4);
         INSERT OR REPLACE INTO t VALUES (3, atomik_add(5), NULL);",
    )
    .unwrap();
    assert_eq!(
        int(&c, "SELECT count(*) FROM atomik_dirty"),
        3,
        "one record per cell"
    );
    let hub = replica(T);
    sync(&c, &hub);
    assert_eq!(
        text(
            &hub,
            "SELECT group_concat(id || '=' || atomik_read(n), ' ') FROM t"
        ),
        "1=3 2=7 3=5"
    );
    // Writes that cancel out ship nothing; a hot cell records once.
    c.execute_batch(
        "UPDATE t SET n = atomik_accum(n, 9) WHERE id = 1;
         UPDATE t SET n = atomik_accum(n, -9) WHERE id = 1;",
    )
    .unwrap();
    assert_eq!(int(&c, "SELECT atomik_seal()"), 0);
    for _ in 0..5 {
        c.execute("UPDATE t SET n = atomik_accum(n, 1) WHERE id = 2", [])
            .unwrap();
    }
    assert_eq!(int(&c, "SELECT count(*) FROM atomik_dirty"), 1);
    // Untracking forgets the records and the triggers.
    assert_eq!(int(&c, "SELECT atomik_untrack('t', 'n')"), 1);
    assert_eq!(int(&c, "SELECT count(*) FROM atomik_dirty"), 0);
    c.execute("UPDATE t SET n = atomik_accum(n, 1) WHERE id = 2", [])
        .unwrap();
    assert_eq!(int(&c, "SELECT count(*) FROM atomik_dirty"), 0);
}

#[test]
fn atomik_track_fixes_the_column_group() {
    let c = mem();
    c.execute_batch(
        "CREATE TABLE g(id INTEGER PRIMARY KEY, n BLOB, f BLOB, e BLOB);
         INSERT INTO g VALUES (1, atomik_xor(3), NULL, atomik_add(1));",
    )
    .unwrap();
    // Given, taken from the cells, or add for a column without cells.
    assert_eq!(int(&c, "SELECT atomik_track('g', 'n')"), 1);
    assert_eq!(int(&c, "SELECT atomik_track('g', 'f', 'xor')"), 1);
    assert_eq!(int(&c, "SELECT atomik_track('g', 'f', 'xor')"), 0);
    assert_eq!(
        text(
            &c,
            "SELECT group_concat(col || ' ' || grp, ', ') FROM atomik_tracked"
        ),
        "n xor, f xor"
    );
    let cases = [
        (
            "SELECT atomik_track('g', 'f', 'add')",
            "atomik_track: column \"g\".\"f\" is already tracked as xor; a tracked column's group cannot change (atomik_untrack it first)",
        ),
        (
            "SELECT atomik_track('g', 'e', 'xor')",
            "atomik_track: column \"g\".\"e\" holds add values: it cannot be tracked as xor",
        ),
        (
            "SELECT atomik_track('g', 'e', 'max')",
            "atomik_track: unknown atomik group \"max\" (expected \"add\" or \"xor\")",
        ),
        (
            "INSERT INTO g VALUES (2, atomik_add(1), NULL, NULL)",
            "atomik: column \"g\".\"n\" is tracked as xor; a value of another group cannot be written to it",
        ),
        (
            "UPDATE g SET f = atomik_add(1) WHERE id = 1",
            "atomik: column \"g\".\"f\" is tracked as xor; a value of another group cannot be written to it",
        ),
    ];
    for (sql, want) in cases {
        assert_eq!(err(&c, sql), want, "{sql}");
    }
    assert_eq!(int(&c, "SELECT count(*) FROM g"), 1, "nothing written");
    // A cell already dirty (no trigger fires) overwritten with a value of
    // the other group: the seal refuses to ship it.
    c.execute_batch("UPDATE g SET n = atomik_accum(n, 5) WHERE id = 1; UPDATE g SET n = atomik_add(7) WHERE id = 1")
        .unwrap();
    assert_eq!(
        err(&c, "SELECT atomik_seal()"),
        "atomik_seal: column \"g\".\"n\" is tracked as xor; deltas of group add for it are refused"
    );
}

#[test]
fn deltas_of_another_group_than_the_column_are_refused() {
    // A stranger's replica tracks t.n as xor and uploads xor deltas for keys
    // nobody has written: the hub refuses the whole message, and later add
    // writers of those keys are not blocked.
    let hub = replica(T);
    let honest = replica(T);
    let stranger = replica(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB, f BLOB); SELECT atomik_track('t', 'n', 'xor');",
    );
    stranger
        .execute_batch("INSERT INTO t VALUES (5, atomik_xor(255), NULL)")
        .unwrap();
    let req = blob(&stranger, "SELECT atomik_sync_request()");
    let before = dump(&hub);
    assert_eq!(
        serve(&hub, &req).unwrap_err().to_string(),
        "atomik_sync: column \"t\".\"n\" is tracked as add; deltas of group xor for it are refused"
    );
    assert_eq!(dump(&hub), before, "nothing of the message applied");
    honest
        .execute_batch("INSERT INTO t VALUES (5, atomik_add(2), NULL)")
        .unwrap();
    sync(&honest, &hub);
    assert_eq!(int(&hub, "SELECT atomik_read(n) FROM t WHERE id = 5"), 2);
}

#[test]
fn uploads_are_exactly_once_and_gaps_wait() {
    use atomik_core::codec::v2::{decode_request, decode_response, encode_request};
    let a = replica(T);
    let hub = replica(T);
    a.execute_batch("INSERT INTO t VALUES (1, atomik_add(1), NULL)")
        .unwrap();
    assert_eq!(int(&a, "SELECT atomik_seal()"), 1);
    a.execute_batch("UPDATE t SET n = atomik_accum(n, 10)")
        .unwrap();
    let full = blob(&a, "SELECT atomik_sync_request()");
    // The same request without its first batch: seq 2 waits for seq 1.
    let mut req = decode_request(&full).unwrap();
    assert_eq!(req.uploads.len(), 2);
    req.uploads.remove(0);
    let resp = decode_response(&serve(&hub, &encode_request(&req)).unwrap()).unwrap();
    assert_eq!(resp.ack, 0, "nothing of a applied");
    assert_eq!(int(&hub, "SELECT count(*) FROM t"), 0);
    // The whole request applies both; again, nothing more.
    let resp = serve(&hub, &full).unwrap();
    assert_eq!(decode_response(&resp).unwrap().ack, 2);
    assert_eq!(int(&hub, "SELECT atomik_read(n) FROM t"), 11);
    let again = serve(&hub, &full).unwrap();
    assert_eq!(decode_response(&again).unwrap().ack, 2);
    assert_eq!(int(&hub, "SELECT atomik_read(n) FROM t"), 11, "duplicate");
    assert_eq!(int(&hub, "SELECT atomik_pending(n) FROM t"), 0);
    assert_eq!(int(&hub, "SELECT count(*) FROM atomik_log"), 2);
    // The device applies the first response and drops what it acked; the
    // duplicate applies nothing.
    assert_eq!(finish(&a, &resp).unwrap(), 1, "a snapshot of one cell");
    assert!(outbox(&a).is_empty());
    assert_eq!(finish(&a, &again).unwrap(), 0);
    assert_eq!(int(&a, "SELECT atomik_read(n) FROM t"), 11);
}

#[test]
fn bad_messages_are_named_and_change_nothing() {
    let hub = replica(T);
    let a = replica(T);
    let b = replica(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB, f BLOB); SELECT atomik_track('t', 'n');",
    );
    a.execute_batch("INSERT INTO t VALUES (1, atomik_add(1), atomik_xor(2))")
        .unwrap();
    sync(&a, &hub);
    let req = blob(&b, "SELECT atomik_sync_request()");
    let resp = serve(&hub, &req).unwrap();
    let before = dump(&b);
    let mut corrupt = resp.clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0x40;
    let position = blob(&a, "SELECT atomik_vector()");
    let v1_batch = atomik_core::codec::encode(&atomik_core::Message::Batch(atomik_core::Batch {
        origin: atomik_core::SiteId([7; 16]),
        seq: 1,
        changes: atomik_core::codec::v2::decode_response(&resp)
            .map(|r| match r.payload {
                atomik_core::codec::v2::Payload::Snapshot(c) => c,
                other => panic!("{other:?}"),
            })
            .unwrap(),
    }));
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            resp[..resp.len() - 3].to_vec(),
            "atomik_apply: atomik message checksum mismatch".into(),
        ),
        (
            corrupt,
            "atomik_apply: atomik message checksum mismatch".into(),
        ),
        (
            b"hello world, not atomik".to_vec(),
            "atomik_apply: not an atomik message (bad magic bytes [68, 65])".into(),
        ),
        (
            b"AK".to_vec(),
            "atomik_apply: atomik message is too short (2 bytes) to be a message".into(),
        ),
        (
            position,
            "atomik_apply: expected an atomik v2 sync response message, got a v2 sync request message"
                .into(),
        ),
        (
            v1_batch,
            "atomik_apply: atomik message has wire format version 1; this call reads version 2 (protocol v2 sync messages)"
                .into(),
        ),
        (
            resp.clone(),
            "atomik_apply: table \"t\" column \"f\" is not tracked here (atomik_track it first)"
                .into(),
        ),
    ];
    for (bytes, want) in cases {
        let e = apply(&b, &bytes).unwrap_err().to_string();
        assert!(e.starts_with(&want), "got {e:?}, want {want:?}");
        assert_eq!(dump(&b), before);
    }
    // A message of another group than a column's: see
    // deltas_of_another_group_than_the_column_are_refused.
    // NULL and TEXT where a message belongs.
    let before = dump(&b);
    for f in [
        "atomik_apply",
        "atomik_sync",
        "atomik_sync_finish",
        "atomik_changes",
    ] {
        assert_eq!(
            err(&b, &format!("SELECT {f}(NULL)")),
            format!("{f}: argument 1 must be an atomik message (a BLOB), got NULL")
        );
        assert_eq!(
            err(&b, &format!("SELECT {f}('x')")),
            format!("{f}: argument 1 must be an atomik message (a BLOB), got TEXT")
        );
    }
    assert_eq!(dump(&b), before);
}

#[test]
fn missing_rows_are_created_or_parked() {
    const S: &str = "CREATE TABLE s(sku TEXT PRIMARY KEY, name TEXT NOT NULL, q BLOB); SELECT atomik_track('s', 'q');
         CREATE TABLE c(k1 INTEGER, k2 TEXT, v BLOB, note TEXT DEFAULT 'auto', PRIMARY KEY (k1, k2)); SELECT atomik_track('c', 'v', 'xor');";
    let a = replica(S);
    let hub = replica(S);
    let b = replica(S);
    a.execute_batch(
        "INSERT INTO s VALUES ('o''k', 'apple', atomik_add(4));
         INSERT INTO c VALUES (1, 'x', atomik_xor(3), 'mine');
         SELECT atomik_seal();
         UPDATE s SET q = atomik_accum(q, 2);",
    )
    .unwrap();
    // The hub cannot create s's row either (name NOT NULL): it parks.
    sync(&a, &hub);
    assert_eq!(int(&hub, "SELECT count(*) FROM atomik_parked"), 1);
    assert_eq!(
        sync(&b, &hub),
        2,
        "a snapshot: c's cell and the parked delta"
    );
    // c's row was created with its defaults; s's row cannot be.
    assert_eq!(
        text(&b, "SELECT k1 || k2 || note || atomik_read(v) FROM c"),
        "1xauto3"
    );
    assert_eq!(int(&b, "SELECT count(*) FROM s"), 0);
    assert_eq!(
        text(&b, "SELECT tbl || ' ' || col || ' ' || grp || ' ' || key_text || ' ' || delta FROM atomik_parked"),
        "s q add 'o''k' 6"
    );
    // The row appears; the next seal (or apply) applies the parked delta,
    // into the reference: it is not shipped again.
    b.execute("INSERT INTO s(sku, name) VALUES ('o''k', 'apple')", [])
        .unwrap();
    assert_eq!(int(&b, "SELECT atomik_seal()"), 0);
    assert_eq!(int(&b, "SELECT count(*) FROM atomik_parked"), 0);
    assert_eq!(text(&b, "SELECT atomik_text(q) FROM s"), "add:6");
    assert_eq!(
        int(&b, "SELECT atomik_digest('s', 'q')"),
        int(&a, "SELECT atomik_digest('s', 'q')")
    );
    assert_eq!(
        int(&b, "SELECT atomik_digest('c', 'v')"),
        int(&a, "SELECT atomik_digest('c', 'v')")
    );
}

#[test]
fn digest_matches_core() {
    use atomik_core::{digest::Digest, AtomikValue, Group, Key, KeyPart};
    let c = replica("CREATE TABLE c(k1 INTEGER, k2 TEXT, v BLOB, PRIMARY KEY (k1, k2));");
    c.execute_batch(
        "INSERT INTO c VALUES (1, 'a', atomik_add(5)), (2, 'b', atomik_xor(9)), (3, 'c', NULL)",
    )
    .unwrap();
    let mut d = Digest::new();
    d.add(
        &Key(vec![KeyPart::Int(1), KeyPart::Text("a".into())]),
        &AtomikValue::load(Group::Add, 5),
    );
    d.add(
        &Key(vec![KeyPart::Int(2), KeyPart::Text("b".into())]),
        &AtomikValue::load(Group::Xor, 9),
    );
    assert_eq!(int(&c, "SELECT atomik_digest('c', 'v')"), d.value());
    assert_eq!(
        err(&c, "SELECT atomik_digest('c', 'zz')"),
        "atomik_digest: column \"zz\" of table \"c\" does not exist"
    );
}

#[test]
fn hub_serves_ranges_and_bootstraps() {
    let hub = replica(T);
    let a = replica(T);
    let b = replica(T);
    a.execute_batch("INSERT INTO t VALUES (1, atomik_add(3), NULL)")
        .unwrap();
    hub.execute_batch("INSERT INTO t VALUES (2, atomik_add(100), NULL)")
        .unwrap();
    assert_eq!(sync(&a, &hub), 2, "a snapshot: the hub's cell and a's own");
    assert_eq!(sync(&b, &hub), 2);
    // Now both hold a cursor: the next download is the log range since it,
    // less the asker's own entries.
    a.execute_batch("UPDATE t SET n = atomik_accum(n, 4) WHERE id = 1")
        .unwrap();
    assert_eq!(sync(&a, &hub), 0, "nothing new for a but its own");
    assert_eq!(sync(&b, &hub), 1, "a's delta, as one range");
    assert_eq!(int(&b, "SELECT atomik_read(n) FROM t WHERE id = 1"), 7);
    let cursor = int(
        &b,
        "SELECT value FROM atomik_meta WHERE key = 'link_position'",
    );
    assert_eq!(
        cursor,
        int(&hub, "SELECT value FROM atomik_meta WHERE key = 'log_end'")
    );
    // A late, duplicated response is a no-op.
    let req = blob(&a, "SELECT atomik_sync_request()");
    let resp = serve(&hub, &req).unwrap();
    assert_eq!(finish(&a, &resp).unwrap(), 0);
    assert_eq!(finish(&a, &resp).unwrap(), 0);
    // A response for another replica is rejected.
    let e = finish(&b, &resp).unwrap_err().to_string();
    assert!(
        e.starts_with("atomik_sync_finish: this response answers site "),
        "{e}"
    );
    // A new device bootstraps from a snapshot.
    let c = replica(T);
    c.execute_batch("INSERT INTO t VALUES (3, atomik_add(7), NULL)")
        .unwrap();
    sync(&c, &hub);
    assert_eq!(
        text(
            &c,
            "SELECT group_concat(id || '=' || atomik_text(n), ' ') FROM t"
        ),
        "1=add:7 2=add:100 3=add:7"
    );
    for r in [&a, &b] {
        sync(r, &hub);
    }
    let d = int(&hub, "SELECT atomik_digest('t', 'n')");
    for r in [&a, &b, &c] {
        assert_eq!(int(r, "SELECT atomik_digest('t', 'n')"), d);
    }
    // atomik_changes answers a position without applying anything.
    let v = blob(&a, "SELECT atomik_vector()");
    let log = int(&hub, "SELECT count(*) FROM atomik_log");
    let ch: Vec<u8> = hub
        .query_row("SELECT atomik_changes(?1)", [&v], |r| r.get(0))
        .unwrap();
    assert_eq!(int(&hub, "SELECT count(*) FROM atomik_log"), log);
    assert_eq!(apply(&a, &ch).unwrap(), 0, "nothing lacking");
    // Only a hub answers atomik_changes.
    let e = err_with(&b, "SELECT atomik_changes(?1)", &v);
    assert!(e.contains("is not a hub (it has served no sync)"), "{e}");
    // A replica refuses its own request; a device refuses to serve.
    let own = blob(&a, "SELECT atomik_sync_request()");
    let e = serve(&a, &own).unwrap_err().to_string();
    assert!(
        e.starts_with("atomik_sync: this sync request was made by this replica"),
        "{e}"
    );
    let e = serve(&a, &blob(&b, "SELECT atomik_sync_request()"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("syncs to an upstream hub as a device, so it cannot serve others"),
        "{e}"
    );
    // A hub that served first is a root: it cannot sync upward.
    assert!(err(&hub, "SELECT atomik_sync_request()").contains("is a root hub"));
}

#[test]
fn relays_bootstrap_then_serve() {
    let root = replica(T);
    let relay = replica(T);
    let a = replica(T);
    assert_eq!(int(&relay, "SELECT atomik_make_relay()"), 1);
    assert_eq!(int(&relay, "SELECT atomik_make_relay()"), 0);
    root.execute_batch("INSERT INTO t VALUES (1, atomik_add(5), NULL)")
        .unwrap();
    a.execute_batch("INSERT INTO t VALUES (2, atomik_add(6), NULL)")
        .unwrap();
    sync(&a, &relay);
    sync(&relay, &root);
    sync(&relay, &root);
    sync(&a, &relay);
    for r in [&root, &relay, &a] {
        assert_eq!(
            text(
                r,
                "SELECT group_concat(id || '=' || atomik_read(n), ' ') FROM t"
            ),
            "1=5 2=6"
        );
    }
    // A device that already synced must bootstrap as a relay before it
    // serves anyone.
    let d = replica(T);
    sync(&d, &root);
    assert_eq!(int(&d, "SELECT atomik_make_relay()"), 1);
    let e = serve(&d, &blob(&a, "SELECT atomik_sync_request()"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("has not yet bootstrapped from its upstream"),
        "{e}"
    );
    sync(&d, &root);
    serve(&d, &blob(&a, "SELECT atomik_sync_request()")).unwrap();
    assert!(err(&root, "SELECT atomik_make_relay()").contains("is a root hub"));
}

#[test]
fn horizon_companion() {
    let c = mem();
    assert_eq!(int(&c, "SELECT atomik_horizon()"), 30 * 24 * 3600);
    assert_eq!(int(&c, "SELECT atomik_horizon(3600)"), 3600);
    assert_eq!(int(&c, "SELECT atomik_horizon()"), 3600);
    assert_eq!(
        err(&c, "SELECT atomik_horizon(0)"),
        "atomik_horizon: the horizon must be a positive number of seconds, got 0"
    );
}

#[test]
fn calls_inside_a_transaction_roll_back_with_it() {
    let a = replica(T);
    a.execute_batch("INSERT INTO t VALUES (1, atomik_add(1), NULL)")
        .unwrap();
    a.execute_batch("BEGIN; SELECT atomik_seal(); ROLLBACK;")
        .unwrap();
    assert_eq!(int(&a, "SELECT atomik_pending(n) FROM t"), 1);
    assert_eq!(int(&a, "SELECT atomik_seal()"), 1);
}

#[test]
fn identity_cells_ship_once_for_every_key_kind() {
    let a = replica(
        "CREATE TABLE i(k INTEGER PRIMARY KEY, v BLOB); SELECT atomik_track('i', 'v');
         CREATE TABLE s(k TEXT PRIMARY KEY, v BLOB); SELECT atomik_track('s', 'v');
         CREATE TABLE c(a INTEGER, b TEXT, v BLOB, PRIMARY KEY (a, b)); SELECT atomik_track('c', 'v');",
    );
    a.execute_batch(
        "INSERT INTO i VALUES (1, atomik_add(0)), (2, atomik_add(0));
         INSERT INTO s VALUES ('x', atomik_add(0)), ('y''z', atomik_add(0));
         INSERT INTO c VALUES (1, 'p', atomik_add(0)), (1, 'q', atomik_add(0));",
    )
    .unwrap();
    assert_eq!(int(&a, "SELECT atomik_seal()"), 1);
    assert_eq!(
        int(&a, "SELECT atomik_seal()"),
        0,
        "known now: not shipped again"
    );
    // Back to the identity after shipping a delta: not new either.
    a.execute_batch("UPDATE s SET v = atomik_accum(v, 5) WHERE k = 'x'")
        .unwrap();
    assert_eq!(int(&a, "SELECT atomik_seal()"), 2);
    a.execute_batch("UPDATE s SET v = atomik_accum(v, -5) WHERE k = 'x'")
        .unwrap();
    assert_eq!(int(&a, "SELECT atomik_seal()"), 3);
    assert_eq!(int(&a, "SELECT atomik_seal()"), 0);
    a.execute_batch(
        "UPDATE s SET v = atomik_accum(v, 5) WHERE k = 'x'; UPDATE s SET v = atomik_accum(v, -5) WHERE k = 'x'",
    )
    .unwrap();
    assert_eq!(int(&a, "SELECT atomik_seal()"), 0, "writes that cancel out");
    // A cell set from NULL later is new.
    a.execute_batch(
        "INSERT INTO c VALUES (2, 'r', NULL); UPDATE c SET v = atomik_add(0) WHERE a = 2",
    )
    .unwrap();
    assert_eq!(int(&a, "SELECT atomik_seal()"), 4);
    assert_eq!(int(&a, "SELECT atomik_seal()"), 0);
    let b = replica(
        "CREATE TABLE i(k INTEGER PRIMARY KEY, v BLOB); SELECT atomik_track('i', 'v');
         CREATE TABLE s(k TEXT PRIMARY KEY, v BLOB); SELECT atomik_track('s', 'v');
         CREATE TABLE c(a INTEGER, b TEXT, v BLOB, PRIMARY KEY (a, b)); SELECT atomik_track('c', 'v');",
    );
    let hub = replica(
        "CREATE TABLE i(k INTEGER PRIMARY KEY, v BLOB); SELECT atomik_track('i', 'v');
         CREATE TABLE s(k TEXT PRIMARY KEY, v BLOB); SELECT atomik_track('s', 'v');
         CREATE TABLE c(a INTEGER, b TEXT, v BLOB, PRIMARY KEY (a, b)); SELECT atomik_track('c', 'v');",
    );
    sync(&a, &hub);
    sync(&b, &hub);
    assert_eq!(
        int(&hub, "SELECT atomik_seal()"),
        0,
        "received cells are not new"
    );
    assert_eq!(
        int(&b, "SELECT atomik_seal()"),
        0,
        "received cells are not new"
    );
    for t in ["i", "s", "c"] {
        let q = format!("SELECT atomik_digest('{t}', 'v')");
        assert_eq!(int(&a, &q), int(&b, &q), "{t}");
    }
    assert_eq!(int(&b, "SELECT count(*) FROM c"), 3);
}

/// Device keys over SQLite: an enrolled device's requests and its hub's
/// answers are tagged; a request of the device without its tag (what a
/// forger without the key sends), a tampered request and a forged answer
/// are refused with the exact error, and leave both files unchanged.
#[test]
fn device_keys_authenticate_sync_messages() {
    let hub = replica(T);
    let device = replica(T);
    hub.execute_batch("INSERT INTO t VALUES (1, atomik_add(100), NULL)")
        .unwrap();
    let key = blob(&device, "SELECT atomik_new_device_key()");
    assert_eq!(key.len(), 32);
    let site = text(&device, "SELECT atomik_site_id()");
    for c in [&hub, &device] {
        let n: i64 = c
            .query_row("SELECT atomik_set_device_key(?1, ?2)", (&site, &key), |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(n, 1);
    }
    device
        .execute_batch("INSERT INTO t VALUES (2, atomik_add(5), NULL)")
        .unwrap();
    let req = blob(&device, "SELECT atomik_sync_request()");
    assert_eq!(req[2], 0x23, "an authenticated request");

    // The same request untagged, as a forger without the key would send it.
    let (plain, _) = atomik_core::codec::v2::decode_request_tagged(&req).unwrap();
    let forged = atomik_core::codec::v2::encode_request(&plain);
    let before = dump(&hub);
    assert_eq!(
        serve(&hub, &forged).unwrap_err().to_string(),
        format!("atomik_sync: the request of site {site} is refused: a device key is enrolled here for it, and the request carries no tag")
    );
    let mut tampered = req.clone();
    let at = tampered.len() - 20;
    tampered[at] ^= 0x40;
    assert!(serve(&hub, &tampered).is_err());
    assert_eq!(dump(&hub), before, "nothing of a refused request applied");

    let resp = serve(&hub, &req).unwrap();
    assert_eq!(resp[2], 0x24, "an authenticated response");
    let (answer, _) = atomik_core::codec::v2::decode_response_tagged(&resp).unwrap();
    let forged = atomik_core::codec::v2::encode_response(&answer);
    let before = dump(&device);
    let hub_site = text(&hub, "SELECT atomik_site_id()");
    assert_eq!(
        finish(&device, &forged).unwrap_err().to_string(),
        format!("atomik_sync_finish: the response from site {hub_site} is refused: this replica has a device key, and the response carries no tag")
    );
    assert_eq!(dump(&device), before);
    assert_eq!(finish(&device, &resp).unwrap(), 2);
    assert_eq!(
        int(&device, "SELECT atomik_read(n) FROM t WHERE id = 1"),
        100
    );

    // Bad input to the key functions, and a hub that requires keys.
    let cases = [
        ("SELECT atomik_set_device_key('zz', atomik_new_device_key())", "atomik_set_device_key: \"zz\" is not a site id (32 hex digits)"),
        ("SELECT atomik_set_device_key(atomik_site_id(), x'0011')", "atomik_set_device_key: a device key is 32 bytes, not 2"),
        ("SELECT atomik_set_device_key(atomik_site_id(), 'secret')", "atomik_set_device_key: argument 2 must be a device key (a 32-byte BLOB) or NULL, got TEXT"),
        ("SELECT atomik_require_device_keys(2)", "atomik_require_device_keys: argument 1 must be 1 (require) or 0 (do not), got Some(2)"),
    ];
    for (sql, want) in cases {
        assert_eq!(err(&hub, sql), want, "{sql}");
    }
    assert_eq!(int(&hub, "SELECT atomik_require_device_keys()"), 0);
    assert_eq!(int(&hub, "SELECT atomik_require_device_keys(1)"), 1);
    let stranger = replica(T);
    stranger
        .execute_batch("INSERT INTO t VALUES (3, atomik_add(1), NULL)")
        .unwrap();
    let req = blob(&stranger, "SELECT atomik_sync_request()");
    let stranger_site = text(&stranger, "SELECT atomik_site_id()");
    assert_eq!(
        serve(&hub, &req).unwrap_err().to_string(),
        format!("atomik_sync: the request of site {stranger_site} is refused: this hub accepts only sites with an enrolled device key")
    );
    assert_eq!(
        hub.query_row("SELECT atomik_set_device_key(?1, NULL)", [&site], |r| r
            .get::<_, i64>(0))
            .unwrap(),
        1,
        "a key is removed with NULL"
    );
}

/// A row a received delta creates was not written here — not the cell the
/// delta is for, nor the other tracked columns' defaults: the next seal
/// ships nothing (a read-only device uploads nothing, ever).
#[test]
fn rows_created_by_received_deltas_do_not_ship_again() {
    let schema = "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB DEFAULT (atomik_add(0)), f BLOB DEFAULT (atomik_xor(0)));
                  SELECT atomik_track('t', 'n'); SELECT atomik_track('t', 'f', 'xor');";
    let hub = replica(schema);
    let writer = replica(schema);
    let reader = replica(schema);
    writer
        .execute_batch("INSERT INTO t(id, n) VALUES (1, atomik_add(4))")
        .unwrap();
    sync(&writer, &hub);
    sync(&reader, &hub);
    assert_eq!(int(&reader, "SELECT atomik_read(n) FROM t WHERE id = 1"), 4);
    assert_eq!(int(&reader, "SELECT count(*) FROM atomik_dirty"), 0);
    assert_eq!(int(&reader, "SELECT atomik_seal()"), 0, "nothing to ship");
    // A range download that creates a row, likewise.
    writer
        .execute_batch("INSERT INTO t(id, n) VALUES (2, atomik_add(1))")
        .unwrap();
    sync(&writer, &hub);
    sync(&reader, &hub);
    assert_eq!(int(&reader, "SELECT atomik_read(n) FROM t WHERE id = 2"), 1);
    assert_eq!(int(&reader, "SELECT atomik_seal()"), 0);
    assert_eq!(int(&hub, "SELECT atomik_seal()"), 0, "the hub neither");
    assert!(outbox(&reader).is_empty());
}

/// Parked deltas (for rows a hub cannot create) are bounded: a message
/// that would park more than `atomik_max_parked()` cells is refused whole,
/// so no uploader can grow what every sync re-checks without end.
#[test]
fn parked_deltas_are_bounded() {
    let schema = "CREATE TABLE p(id INTEGER PRIMARY KEY, n BLOB, label TEXT NOT NULL);
                  SELECT atomik_track('p', 'n');";
    let hub = replica(schema);
    let device = replica(schema);
    assert_eq!(int(&hub, "SELECT atomik_max_parked()"), 10_000);
    assert_eq!(int(&hub, "SELECT atomik_max_parked(2)"), 2);
    assert_eq!(
        err(&hub, "SELECT atomik_max_parked(0)"),
        "atomik_max_parked: the parked-delta limit must be a positive number, got 0"
    );
    device
        .execute_batch(
            "INSERT INTO p VALUES (1, atomik_add(1), 'a'), (2, atomik_add(2), 'b'), (3, atomik_add(3), 'c')",
        )
        .unwrap();
    let before = dump(&hub);
    let req = blob(&device, "SELECT atomik_sync_request()");
    assert_eq!(
        serve(&hub, &req).unwrap_err().to_string(),
        "atomik_sync: this replica already holds 2 parked deltas (deltas for rows it cannot create, re-checked at every sync); refusing more: create those rows, or raise the limit with atomik_max_parked(n)"
    );
    assert_eq!(dump(&hub), before, "nothing of the message applied");
    assert_eq!(int(&hub, "SELECT atomik_max_parked(3)"), 3);
    serve(&hub, &req).unwrap();
    assert_eq!(int(&hub, "SELECT count(*) FROM atomik_parked"), 3);
}

/// Ordinary SQL that writes a plain value into a tracked column fails at
/// its statement, names the column, and changes nothing: before, it
/// succeeded and every later seal of the file failed.
#[test]
fn a_plain_value_in_a_tracked_column_is_refused_at_its_statement() {
    let c = replica(T);
    c.execute_batch(
        "INSERT INTO t VALUES (1, atomik_add(4), atomik_xor(0)), (2, atomik_add(1), NULL);",
    )
    .unwrap();
    assert_eq!(int(&c, "SELECT atomik_seal()"), 1);
    let state = "SELECT group_concat(hex(n) || hex(f), ',') || '/' || count(*) FROM t";
    let before = text(&c, state);
    let refused_n = "atomik: column \"t\".\"n\" is tracked and holds atomik values (17-byte BLOBs): write n = atomik_accum(n, delta), or atomik_add(n) for a new row, not a plain value";
    let refused_f = "atomik: column \"t\".\"f\" is tracked and holds atomik values (17-byte BLOBs): write f = atomik_accum(f, delta), or atomik_xor(n) for a new row, not a plain value";
    for (sql, message) in [
        ("UPDATE t SET n = n + 1", refused_n),
        ("UPDATE t SET n = 5 WHERE id = 1", refused_n),
        ("UPDATE t SET n = 'five' WHERE id = 1", refused_n),
        ("UPDATE t SET n = x'1100' WHERE id = 1", refused_n),
        ("UPDATE t SET f = 3 WHERE id = 2", refused_f),
        // One good row and one bad in one statement: neither is written.
        (
            "UPDATE t SET n = CASE id WHEN 1 THEN atomik_accum(n, 1) ELSE 9 END",
            refused_n,
        ),
        ("INSERT INTO t VALUES (3, 1, NULL)", refused_n),
        ("INSERT INTO t(id, f) VALUES (4, 2.5)", refused_f),
    ] {
        assert_eq!(err(&c, sql), message, "{sql}");
    }
    assert_eq!(text(&c, state), before);
    assert_eq!(int(&c, "SELECT atomik_seal()"), 0, "nothing was recorded");
    c.execute_batch("UPDATE t SET n = atomik_accum(n, 1); UPDATE t SET n = NULL WHERE id = 2;")
        .unwrap();
    assert_eq!(
        int(&c, "SELECT atomik_seal()"),
        2,
        "atomik writes still seal"
    );
}
