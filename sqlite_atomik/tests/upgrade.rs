//! Databases written by the previous release (schema version 1, protocol
//! v1) open in this one: they are upgraded in place to the current schema
//! version (3) and keep replicating. The fixtures are the hub and one device of an
//! `atomik demo --devices 2 --rounds 2 --skus 40` run of atomik 0.1.0
//! (commit cd10d3f), converged.

mod common;
use common::*;

fn copy(name: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let to = dir.join(name);
    std::fs::copy(from, &to).unwrap();
    to
}

#[test]
fn v1_databases_upgrade_and_keep_syncing() {
    let dir = temp_dir("upgrade");
    let hub = file(&copy("v1_hub.sqlite", &dir));
    let device = file(&copy("v1_device.sqlite", &dir));
    let digest = "SELECT atomik_digest('inventory', 'qty')";
    // Nothing is lost: the same values before and after the upgrade (the
    // digest reads the cells; the first atomik call upgrades).
    let (hub_site, device_site) = (
        text(&hub, "SELECT atomik_site_id()"),
        text(&device, "SELECT atomik_site_id()"),
    );
    assert_eq!(hub_site.len(), 32);
    assert_ne!(hub_site, device_site);
    for c in [&hub, &device] {
        assert_eq!(
            int(
                c,
                "SELECT value FROM atomik_meta WHERE key = 'schema_version'"
            ),
            5
        );
        assert_eq!(
            text(c, "SELECT group_concat(grp) FROM atomik_tracked"),
            "add",
            "the group of the column's cells is fixed"
        );
        assert_eq!(
            int(c, "SELECT count(*) FROM atomik_vector"),
            0,
            "v1 state emptied"
        );
    }
    assert_eq!(int(&hub, digest), int(&device, digest), "converged in v1");
    // The hub's registry is its v1 vector: the device's batches are known.
    let device_seq = int(
        &hub,
        &format!("SELECT seq FROM atomik_registry WHERE hex(site) = upper('{device_site}')"),
    );
    assert!(device_seq > 0);
    assert_eq!(
        int(
            &device,
            "SELECT value FROM atomik_settings WHERE name = 'v2_own_seq'"
        ),
        device_seq,
        "the device continues its own seqs"
    );
    assert_eq!(
        int(
            &hub,
            "SELECT count(*) FROM atomik_settings WHERE name IN ('v2_hub', 'v2_root')"
        ),
        2,
        "a v1 hub without upstream is a v2 root"
    );
    // Both keep replicating: a new sale on the device, a restock on the
    // hub; the device's first v2 sync is a snapshot (no cursor yet).
    device
        .execute(
            "UPDATE inventory SET qty = atomik_accum(qty, -2) WHERE sku = 3",
            [],
        )
        .unwrap();
    hub.execute(
        "UPDATE inventory SET qty = atomik_accum(qty, 50) WHERE sku = 5",
        [],
    )
    .unwrap();
    let before = int(
        &device,
        "SELECT atomik_read(qty) FROM inventory WHERE sku = 3",
    );
    sync(&device, &hub);
    assert_eq!(
        int(&hub, "SELECT atomik_read(qty) FROM inventory WHERE sku = 3"),
        before,
        "the sale reached the hub once"
    );
    assert_eq!(int(&hub, digest), int(&device, digest));
    assert_eq!(
        int(
            &device,
            "SELECT atomik_pending(qty) FROM inventory WHERE sku = 3"
        ),
        0
    );
    assert_eq!(
        int(
            &hub,
            &format!("SELECT seq FROM atomik_registry WHERE hex(site) = upper('{device_site}')")
        ),
        device_seq + 1,
        "one more batch of the device, exactly once"
    );
}

/// Schema version 2 to 3: each tracked column's group is fixed from its
/// cells (add for a column without cells), and writes of the other group
/// are refused from then on.
#[test]
fn version_2_databases_get_fixed_column_groups() {
    let dir = temp_dir("upgrade-2-3");
    let path = dir.join("v2.sqlite");
    {
        let c = file(&path);
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB, f BLOB, e BLOB);
             SELECT atomik_track('t', 'n'); SELECT atomik_track('t', 'f', 'xor');
             SELECT atomik_track('t', 'e');
             INSERT INTO t VALUES (1, atomik_add(2), atomik_xor(5), NULL);
             -- What a version 2 database holds: no group column.
             ALTER TABLE atomik_tracked DROP COLUMN grp;
             UPDATE atomik_meta SET value = 2 WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let c = file(&path);
    assert_eq!(
        int(&c, "SELECT atomik_seal()"),
        1,
        "the first call upgrades"
    );
    assert_eq!(
        int(
            &c,
            "SELECT value FROM atomik_meta WHERE key = 'schema_version'"
        ),
        5
    );
    assert_eq!(
        text(
            &c,
            "SELECT group_concat(col || ' ' || grp, ', ') FROM atomik_tracked"
        ),
        "n add, f xor, e add"
    );
    assert_eq!(
        err(&c, "INSERT INTO t VALUES (2, NULL, atomik_add(1), NULL)"),
        "atomik: column \"t\".\"f\" is tracked as xor; a value of another group cannot be written to it"
    );
}

/// Version 3 databases get the device-key table (schema version 4) on
/// first use, and keep everything else.
#[test]
fn version_3_databases_get_device_keys() {
    let dir = temp_dir("upgrade-3-4");
    let path = dir.join("v3.sqlite");
    {
        let c = file(&path);
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB);
             SELECT atomik_track('t', 'n');
             INSERT INTO t VALUES (1, atomik_add(2));
             -- What a version 3 database holds: no device keys.
             DROP TABLE atomik_device_keys;
             UPDATE atomik_meta SET value = 3 WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let c = file(&path);
    assert_eq!(
        int(&c, "SELECT atomik_seal()"),
        1,
        "the first call upgrades"
    );
    assert_eq!(
        int(
            &c,
            "SELECT value FROM atomik_meta WHERE key = 'schema_version'"
        ),
        5
    );
    assert_eq!(
        int(
            &c,
            "SELECT atomik_set_device_key(atomik_site_id(), atomik_new_device_key())"
        ),
        1
    );
    assert_eq!(int(&c, "SELECT count(*) FROM atomik_device_keys"), 1);
}

/// Version 4 databases get write triggers that refuse a plain value in a
/// tracked column (schema version 5) on first use.
#[test]
fn version_4_databases_refuse_plain_values() {
    let dir = temp_dir("upgrade-4-5");
    let path = dir.join("v4.sqlite");
    {
        let c = file(&path);
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, n BLOB);
             SELECT atomik_track('t', 'n');
             INSERT INTO t VALUES (1, atomik_add(2));
             -- What a version 4 database lacks: triggers that refuse.
             DROP TRIGGER atomik_written_1;
             DROP TRIGGER atomik_rewritten_1;
             UPDATE atomik_meta SET value = 4 WHERE key = 'schema_version';",
        )
        .unwrap();
    }
    let c = file(&path);
    assert_eq!(
        int(&c, "SELECT atomik_seal()"),
        1,
        "the first call upgrades"
    );
    assert_eq!(
        int(
            &c,
            "SELECT value FROM atomik_meta WHERE key = 'schema_version'"
        ),
        5
    );
    assert!(
        err(&c, "UPDATE t SET n = 7 WHERE id = 1").contains("is tracked and holds atomik values")
    );
    c.execute_batch("UPDATE t SET n = atomik_accum(n, 3) WHERE id = 1")
        .unwrap();
    assert_eq!(
        int(&c, "SELECT atomik_seal()"),
        2,
        "writes are recorded again"
    );
}
