//! `atomik_feed(after [, max_entries])` and `atomik_log_position()`: the
//! rows of a real hub's log, the exact error of every bad cursor, and a
//! consumer killed at random points that still sees every delta exactly
//! once (`ATOMIK_FEED_CRASH_POINTS` kills, default 25).

mod common;
use common::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rusqlite::types::Value;
use rusqlite::Connection;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const SCHEMA: &str = "CREATE TABLE stock(sku INTEGER PRIMARY KEY, qty BLOB);
                      SELECT atomik_track('stock', 'qty');";

/// position, origin, seq, tbl, col, grp, key, delta.
type FeedRow = (i64, String, i64, String, String, String, Value, i64);

fn feed(c: &Connection, sql: &str, after: i64) -> Vec<FeedRow> {
    c.prepare(sql)
        .unwrap()
        .query_map([after], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn sell(device: &Connection, sku: i64, n: i64) {
    device
        .execute(
            "INSERT INTO stock VALUES (?1, atomik_add(-?2)) \
             ON CONFLICT(sku) DO UPDATE SET qty = atomik_accum(qty, -?2)",
            [sku, n],
        )
        .unwrap();
}

#[test]
fn the_feed_lists_every_devices_deltas_after_the_cursor() {
    let hub = mem();
    let (a, b) = (mem(), mem());
    for c in [&hub, &a, &b] {
        c.execute_batch(SCHEMA).unwrap();
    }
    assert_eq!(int(&hub, "SELECT atomik_log_position()"), 0, "an empty log");
    assert_eq!(
        int(&hub, "SELECT count(*) FROM atomik_feed(0)"),
        0,
        "nothing yet"
    );
    sell(&a, 7, 2);
    sell(&a, 9, 1);
    sync(&a, &hub);
    sell(&b, 7, 3);
    sync(&b, &hub);
    let (site_a, site_b) = (
        text(&a, "SELECT atomik_site_id()"),
        text(&b, "SELECT atomik_site_id()"),
    );
    let all = feed(
        &hub,
        "SELECT * FROM atomik_feed(?1) ORDER BY position, key",
        0,
    );
    let row = |p, site: &str, key, delta| {
        (
            p,
            site.to_string(),
            1,
            "stock".to_string(),
            "qty".to_string(),
            "add".to_string(),
            Value::Integer(key),
            delta,
        )
    };
    assert_eq!(
        all,
        vec![
            row(1, &site_a, 7, -2),
            row(1, &site_a, 9, -1),
            row(2, &site_b, 7, -3)
        ]
    );
    assert_eq!(int(&hub, "SELECT atomik_log_position()"), 2);
    // Paged in whole entries; the last row's position is the next cursor.
    let page = feed(
        &hub,
        "SELECT * FROM atomik_feed(?1, 1) ORDER BY position, key",
        0,
    );
    assert_eq!(page.len(), 2, "the first entry, both of its cells");
    let rest = feed(&hub, "SELECT * FROM atomik_feed(?1, 1)", page[1].0);
    assert_eq!(rest, vec![row(2, &site_b, 7, -3)]);
    assert!(feed(&hub, "SELECT * FROM atomik_feed(?1)", 2).is_empty());
    // A single-column key is its SQL value: it joins with the table.
    assert_eq!(
        int(
            &hub,
            "SELECT sum(f.delta) FROM atomik_feed(0) f JOIN stock s ON s.sku = f.key WHERE s.sku = 7"
        ),
        -5
    );
    // The hub's own writes are in the log once sealed.
    sell(&hub, 9, 4);
    assert_eq!(int(&hub, "SELECT atomik_seal()"), 1);
    let own = feed(&hub, "SELECT * FROM atomik_feed(?1)", 2);
    assert_eq!(
        own,
        vec![row(3, &text(&hub, "SELECT atomik_site_id()"), 9, -4)]
    );
}

#[test]
fn composite_and_text_keys_are_shown_as_json_and_text() {
    let hub = mem();
    let d = mem();
    for c in [&hub, &d] {
        c.execute_batch(
            "CREATE TABLE bins(store TEXT, sku INTEGER, n BLOB, PRIMARY KEY(store, sku));
             CREATE TABLE tags(name TEXT PRIMARY KEY, n BLOB);
             SELECT atomik_track('bins', 'n'); SELECT atomik_track('tags', 'n');",
        )
        .unwrap();
    }
    d.execute_batch(
        "INSERT INTO bins VALUES ('north \"1\"', 4, atomik_add(2));
         INSERT INTO tags VALUES ('red', atomik_add(1));",
    )
    .unwrap();
    sync(&d, &hub);
    let keys: Vec<(String, String, String)> = hub
        .prepare("SELECT tbl, typeof(key), key FROM atomik_feed(0) ORDER BY tbl")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        keys,
        vec![
            ("bins".into(), "text".into(), r#"["north \"1\"",4]"#.into()),
            ("tags".into(), "text".into(), "red".into()),
        ]
    );
    assert_eq!(
        text(
            &hub,
            "SELECT json_extract(key, '$[0]') FROM atomik_feed(0) WHERE tbl = 'bins'"
        ),
        "north \"1\""
    );
}

#[test]
fn bad_cursors_and_arguments_are_refused() {
    let hub = mem();
    let d = mem();
    for c in [&hub, &d] {
        c.execute_batch(SCHEMA).unwrap();
    }
    sell(&d, 1, 1);
    sync(&d, &hub);
    assert_eq!(
        err(&hub, "SELECT * FROM atomik_feed(5)"),
        "atomik_feed: feed cursor 5 is past the end of this hub's log (position 1): it comes \
         from another hub, or this database was restored from an older backup; rebuild the \
         consumer from the tables and resume from atomik_log_position()"
    );
    assert_eq!(
        err(&hub, "SELECT * FROM atomik_feed(-1)"),
        "atomik_feed: after must not be negative, got -1"
    );
    assert_eq!(
        err(&hub, "SELECT * FROM atomik_feed('x')"),
        "atomik_feed: after must be an INTEGER, got TEXT"
    );
    assert_eq!(
        err(&hub, "SELECT * FROM atomik_feed(0, 0)"),
        "atomik_feed: max_entries must be at least 1"
    );
    assert!(err(&hub, "SELECT * FROM atomik_feed").starts_with("atomik_feed: give it the cursor"));
    assert_eq!(
        int(&hub, "SELECT count(*) FROM atomik_feed(NULL)"),
        0,
        "NULL in, no rows out"
    );
    // A device keeps no log.
    let site = text(&d, "SELECT atomik_site_id()");
    let not_a_hub = format!(
        "replica {site} is not a hub (it has served no sync), so it keeps no log to answer from; ask a hub"
    );
    assert_eq!(
        err(&d, "SELECT * FROM atomik_feed(0)"),
        format!("atomik_feed: {not_a_hub}")
    );
    assert_eq!(
        err(&d, "SELECT atomik_log_position()"),
        format!("atomik_log_position: {not_a_hub}")
    );
    // It reads replica state: not from a view or a trigger.
    hub.execute_batch("CREATE VIEW everything AS SELECT * FROM atomik_feed(0)")
        .unwrap();
    assert!(
        err(&hub, "SELECT count(*) FROM everything").contains("unsafe use of virtual table"),
        "direct-only"
    );
    // A plain SQLite file has an empty feed and no atomik tables after it.
    let plain = mem();
    assert_eq!(int(&plain, "SELECT count(*) FROM atomik_feed(0)"), 0);
    assert_eq!(
        int(
            &plain,
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'atomik%'"
        ),
        0
    );
}

/// The consumer of the crash test: its own effects (`events`) and its
/// cursor commit in one transaction, one log entry at a time.
const CONSUMER: &str = "CREATE TABLE IF NOT EXISTS events(position INTEGER, sku INTEGER, delta INTEGER);
                        CREATE TABLE IF NOT EXISTS feed_cursor(position INTEGER NOT NULL);
                        INSERT INTO feed_cursor SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM feed_cursor);";

fn open(path: &Path) -> Connection {
    let c = file(path);
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

/// One sync with the hub in `BEGIN IMMEDIATE`: another process (the
/// consumer) writes the hub file too, and a deferred transaction that
/// reads before it writes would be refused at once (SQLITE_BUSY) rather
/// than wait.
fn sync_immediate(device: &Connection, hub: &Connection) {
    let req = blob(device, "SELECT atomik_sync_request()");
    hub.execute_batch("BEGIN IMMEDIATE").unwrap();
    let resp = serve(hub, &req).unwrap();
    hub.execute_batch("COMMIT").unwrap();
    finish(device, &resp).unwrap();
}

/// Consume one page; false when the feed had nothing.
fn consume_page(hub: &Connection) -> bool {
    hub.execute_batch("BEGIN IMMEDIATE").unwrap();
    let after = int(hub, "SELECT position FROM feed_cursor");
    let rows: Vec<(i64, i64, i64)> = hub
        .prepare("SELECT position, key, delta FROM atomik_feed(?1, 1)")
        .unwrap()
        .query_map([after], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (position, sku, delta) in &rows {
        hub.execute(
            "INSERT INTO events VALUES (?1, ?2, ?3)",
            [position, sku, delta],
        )
        .unwrap();
    }
    if let Some((last, _, _)) = rows.last() {
        hub.execute("UPDATE feed_cursor SET position = ?1", [last])
            .unwrap();
    }
    hub.execute_batch("COMMIT").unwrap();
    !rows.is_empty()
}

/// The child: consume forever.
#[test]
fn feed_consumer_child() {
    let Ok(dir) = std::env::var("ATOMIK_FEED_CHILD") else {
        return;
    };
    let hub = open(&Path::new(&dir).join("hub.db"));
    hub.execute_batch(CONSUMER).unwrap();
    std::fs::write(
        Path::new(&dir).join(format!("ready-{}", std::process::id())),
        b"",
    )
    .unwrap();
    loop {
        if !consume_page(&hub) {
            std::thread::sleep(Duration::from_micros(300));
        }
    }
}

#[test]
fn a_consumer_killed_at_random_points_sees_each_delta_exactly_once() {
    let points: usize = std::env::var("ATOMIK_FEED_CRASH_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(25);
    let dir = temp_dir("feed-crash");
    let hub_path = dir.join("hub.db");
    let hub = open(&hub_path);
    hub.execute_batch(SCHEMA).unwrap();
    hub.execute_batch(CONSUMER).unwrap();
    let devices: Vec<Connection> = (0..3)
        .map(|_| {
            let d = mem();
            d.execute_batch(SCHEMA).unwrap();
            d
        })
        .collect();
    let exe = std::env::current_exe().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    for _ in 0..points {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "feed_consumer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("ATOMIK_FEED_CHILD", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let ready = dir.join(format!("ready-{}", child.id()));
        let start = std::time::Instant::now();
        while !ready.exists() && child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "child never got ready"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = std::fs::remove_file(&ready);
        // Devices sync while the consumer runs; then it is killed.
        for _ in 0..rng.random_range(1..6) {
            let d = &devices[rng.random_range(0..devices.len())];
            for _ in 0..rng.random_range(1..4) {
                sell(d, rng.random_range(1..20), rng.random_range(1..5));
            }
            sync_immediate(d, &hub);
        }
        std::thread::sleep(Duration::from_micros(rng.random_range(0..5_000)));
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("child exited by itself ({status}): {err}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let by_child = int(&hub, "SELECT position FROM feed_cursor");
    assert!(by_child > 0, "the killed consumers consumed something");
    // Drain what is left, then compare the events with the log itself and
    // with the hub's values.
    while consume_page(&hub) {}
    let events: Vec<(i64, i64, i64)> = hub
        .prepare("SELECT position, sku, delta FROM events ORDER BY position, sku")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let log: Vec<(i64, i64, i64)> = hub
        .prepare("SELECT position, key, delta FROM atomik_feed(0) ORDER BY position, key")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(log.len() > points, "the devices synced during the kills");
    assert_eq!(events, log, "every delta exactly once, in log order");
    let mut sums: BTreeMap<i64, i64> = BTreeMap::new();
    for (_, sku, delta) in &events {
        *sums.entry(*sku).or_default() += delta;
    }
    let values: BTreeMap<i64, i64> = hub
        .prepare("SELECT sku, atomik_read(qty) FROM stock")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(sums, values, "the events add up to the hub's values");
    eprintln!(
        "feed crash test: {points} kills, {} log entries ({by_child} consumed before the last kill), {} events",
        int(&hub, "SELECT atomik_log_position()"),
        events.len()
    );
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README's consumer job, statement for statement.
#[test]
fn the_readme_job_keeps_inventory_events() {
    let hub = mem();
    let d = mem();
    for c in [&hub, &d] {
        c.execute_batch(
            "CREATE TABLE inventory(sku INTEGER PRIMARY KEY, qty BLOB, flags BLOB);
             SELECT atomik_track('inventory', 'qty'); SELECT atomik_track('inventory', 'flags', 'xor');",
        )
        .unwrap();
    }
    hub.execute_batch(
        "CREATE TABLE inventory_events (position INTEGER, origin TEXT, sku INTEGER, delta INTEGER);
         CREATE TABLE inventory_cursor (position INTEGER NOT NULL);
         INSERT INTO inventory_cursor SELECT atomik_log_position();",
    )
    .unwrap();
    let job = "BEGIN IMMEDIATE;
        CREATE TEMP TABLE feed_page AS
          SELECT * FROM atomik_feed((SELECT position FROM inventory_cursor), 100);
        INSERT INTO inventory_events
          SELECT position, origin, key, delta FROM feed_page WHERE tbl = 'inventory' AND col = 'qty';
        UPDATE inventory_cursor SET position = coalesce((SELECT max(position) FROM feed_page), position);
        DROP TABLE feed_page;
        COMMIT;";
    for round in 1..=3 {
        d.execute(
            "INSERT INTO inventory VALUES (?1, atomik_add(-?1), atomik_xor(1)) \
             ON CONFLICT(sku) DO UPDATE SET qty = atomik_accum(qty, -?1)",
            [round],
        )
        .unwrap();
        sync(&d, &hub);
        hub.execute_batch(job).unwrap();
        hub.execute_batch(job).unwrap(); // nothing new: nothing twice
    }
    let events: Vec<(i64, String, i64, i64)> = hub
        .prepare("SELECT position, origin, sku, delta FROM inventory_events ORDER BY position")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let site = text(&d, "SELECT atomik_site_id()");
    assert_eq!(
        events,
        vec![
            (1, site.clone(), 1, -1),
            (2, site.clone(), 2, -2),
            (3, site, 3, -3)
        ],
        "one event per qty delta, none of the flags column"
    );
    assert_eq!(int(&hub, "SELECT position FROM inventory_cursor"), 3);
}
