//! `#[pg_test]`s for internals that the golden files do not show.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::store::tracked::{key_from_texts, key_texts, load_all, shape_from_kinds};

    #[pg_test]
    fn type_is_17_bytes() {
        let size = Spi::get_one::<i32>("SELECT pg_column_size('add:1'::atomik)").unwrap();
        assert_eq!(size, Some(17));
    }

    #[pg_test]
    fn odd_identifiers_are_quoted_never_spliced() {
        Spi::run(
            r#"CREATE TABLE "Odd ""Name""" ("Key; DROP" text PRIMARY KEY, "c c" atomik);
           SELECT atomik_track('"Odd ""Name"""', 'c c');
           INSERT INTO "Odd ""Name""" VALUES ('k''1', atomik_add(3));"#,
        )
        .unwrap();
        let tracked = load_all().unwrap();
        let t = tracked.iter().find(|t| t.column == "c c").expect("tracked");
        assert_eq!(t.table, "Odd \"Name\"");
        assert_eq!(t.col, "\"c c\"");
        assert_eq!(t.keys, vec!["\"Key; DROP\"".to_string()]);
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_seal()").unwrap(),
            Some(1)
        );
        let v = Spi::get_one::<String>(r#"SELECT "c c"::text FROM "Odd ""Name""""#).unwrap();
        assert_eq!(v.as_deref(), Some("add:3"));
    }

    #[pg_test]
    fn stored_keys_round_trip() {
        let shape = shape_from_kinds("it").unwrap();
        let key = atomik_core::Key(vec![
            atomik_core::KeyPart::Int(-7),
            atomik_core::KeyPart::Text("a,b\"{}".into()),
        ]);
        assert_eq!(key_from_texts(&shape, &key_texts(&key)).unwrap(), key);
        assert!(key_from_texts(&shape, &["x".into(), "y".into()]).is_err());
        assert!(shape_from_kinds("iq").is_err());
    }

    #[pg_test]
    fn seal_moves_pending_and_marks_nothing_twice() {
        Spi::run(
            "CREATE TABLE s (id int PRIMARY KEY, c atomik);
         SELECT atomik_track('s', 'c');
         INSERT INTO s VALUES (1, atomik_add(0)), (2, atomik_add(5));",
        )
        .unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM atomik.new_cells").unwrap(),
            Some(2)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_seal()").unwrap(),
            Some(1)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM atomik.new_cells").unwrap(),
            Some(0)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT sum(atomik_pending(c))::bigint FROM s").unwrap(),
            Some(0)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_seal()").unwrap(),
            Some(0)
        );
    }

    /// The core's conformance kit for protocol v2 storage, on a fresh
    /// store (each `#[pg_test]` runs in its own transaction, rolled back).
    #[pg_test]
    fn log_store_conforms() {
        let mut store = crate::store::PgStore::new();
        if let Err(why) = atomik_core::log_store::conformance::log_primitives(&mut store) {
            panic!("PgStore fails the LogStore conformance kit: {why}");
        }
        // What the kit wrote is in the tables, not only in the call's cache.
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM atomik.log").unwrap(),
            Some(1)
        );
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT value FROM atomik.settings WHERE name = 'log_trimmed_through'"
            )
            .unwrap(),
            Some(5)
        );
    }

    /// Local writes are recorded by the triggers, once per cell between
    /// two seals; remote applies and seals record nothing.
    #[pg_test]
    fn the_dirty_record_holds_each_written_cell_once() {
        Spi::run(
            "CREATE TABLE w (id int PRIMARY KEY, c atomik, note text);
             SELECT atomik_track('w', 'c');
             INSERT INTO w SELECT i, atomik_add(0) FROM generate_series(1, 5) i;
             SELECT atomik_seal();",
        )
        .unwrap();
        let count = |sql: &str| Spi::get_one::<i64>(sql).unwrap().unwrap();
        let dirty = || count("SELECT count(*) FROM atomik.dirty");
        assert_eq!(dirty(), 0);
        Spi::run("UPDATE w SET c = atomik_accum(c, 2) WHERE id <= 2").unwrap();
        assert_eq!(dirty(), 2);
        // Later writes to dirty cells, writes of other columns and writes
        // that leave the accumulator at the identity record nothing more.
        Spi::run(
            "UPDATE w SET c = c + 3 WHERE id <= 2;
             UPDATE w SET note = 'x';
             UPDATE w SET c = c + 0 WHERE id = 3;",
        )
        .unwrap();
        assert_eq!(dirty(), 2);
        assert_eq!(
            Spi::get_one::<String>(
                "SELECT string_agg(key[1], ',' ORDER BY key[1]) FROM atomik.dirty"
            )
            .unwrap()
            .as_deref(),
            Some("1,2")
        );
        assert_eq!(count("SELECT atomik_seal()"), 2);
        assert_eq!(dirty(), 0);
        assert_eq!(count("SELECT sum(atomik_pending(c))::bigint FROM w"), 0);
        assert_eq!(count("SELECT atomik_seal()"), 0);
        // A cell written back to the identity before a seal ships nothing.
        Spi::run("UPDATE w SET c = c + 4 WHERE id = 4; UPDATE w SET c = c + -4 WHERE id = 4;")
            .unwrap();
        assert_eq!(dirty(), 1);
        assert_eq!(count("SELECT atomik_seal()"), 0);
        assert_eq!(dirty(), 0);
        // A key change makes a new cell at the new key (rule 3).
        Spi::run("UPDATE w SET c = c + 1 WHERE id = 5; UPDATE w SET id = 50 WHERE id = 5;")
            .unwrap();
        assert_eq!(
            count("SELECT count(*) FROM atomik.new_cells WHERE key = '{50}'"),
            1
        );
        assert_eq!(count("SELECT atomik_seal()"), 3);
        // Not a hub yet: every own batch waits in the outbox (position = seq).
        assert_eq!(
            count("SELECT count(*) FROM atomik.outbox WHERE position = seq"),
            3
        );
    }

    /// The dirty record needs no privilege on `atomik.dirty` (0.5.0: none
    /// for PUBLIC): a role that may update a tracked table records its
    /// writes, and the seal ships them.
    #[pg_test]
    fn a_writer_records_without_privileges_on_the_record() {
        Spi::run(
            "CREATE TABLE g (id int PRIMARY KEY, c atomik);
             SELECT atomik_track('g', 'c');
             INSERT INTO g VALUES (1, atomik_add(0));
             SELECT atomik_seal();
             CREATE ROLE atomik_writer;
             GRANT SELECT, UPDATE ON g TO atomik_writer;
             SET LOCAL ROLE atomik_writer;
             UPDATE g SET c = c + 1;
             RESET ROLE;",
        )
        .unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT count(*) FROM atomik.dirty").unwrap(),
            Some(1)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_seal()").unwrap(),
            Some(2)
        );
    }

    /// A trigger of a role's own that calls `atomik.mark_dirty()` with a
    /// tracked table's name (to record cells of a table it may not write)
    /// is refused: only `atomik_track`'s triggers record.
    #[pg_test(
        error = "atomik.mark_dirty(): this trigger does not record column \"c\" of table \"g\" as atomik_track made it; only atomik_track may create atomik triggers"
    )]
    fn a_forged_dirty_trigger_is_refused() {
        Spi::run(
            "CREATE TABLE g (id int PRIMARY KEY, c atomik);
             SELECT atomik_track('g', 'c');
             CREATE TABLE mine (id text PRIMARY KEY, c atomik);
             CREATE TRIGGER forged AFTER UPDATE ON mine FOR EACH ROW
               EXECUTE FUNCTION atomik.mark_dirty('g', 'c', 'id');
             INSERT INTO mine VALUES ('not an integer', atomik_add(0));
             UPDATE mine SET c = c + 1;",
        )
        .unwrap();
    }

    /// The same for `atomik.mark_new()`.
    #[pg_test(
        error = "atomik.mark_new(): this trigger does not record column \"c\" of table \"g\" as atomik_track made it; only atomik_track may create atomik triggers"
    )]
    fn a_forged_new_cell_trigger_is_refused() {
        Spi::run(
            "CREATE TABLE g (id int PRIMARY KEY, c atomik);
             SELECT atomik_track('g', 'c');
             CREATE TABLE mine (id text PRIMARY KEY, c atomik);
             CREATE TRIGGER forged AFTER INSERT ON mine FOR EACH ROW
               EXECUTE FUNCTION atomik.mark_new('g', 'c', 'id');
             INSERT INTO mine VALUES ('not an integer', atomik_add(0));",
        )
        .unwrap();
    }

    /// A malformed record (written by hand, by a role that may) does not
    /// wedge the seal: it is dropped with a warning, the rest is sealed.
    #[pg_test]
    fn a_malformed_record_is_dropped_not_kept() {
        Spi::run(
            "CREATE TABLE g (id int PRIMARY KEY, c atomik);
             SELECT atomik_track('g', 'c');
             INSERT INTO g VALUES (1, atomik_add(0));
             SELECT atomik_seal();
             UPDATE g SET c = c + 5;
             INSERT INTO atomik.dirty VALUES ('g', 'c', '{not-an-integer}');
             INSERT INTO atomik.new_cells VALUES ('g', 'c', '{1,2}');",
        )
        .unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_seal()").unwrap(),
            Some(2)
        );
        assert_eq!(
            Spi::get_one::<i64>(
                "SELECT (SELECT count(*) FROM atomik.dirty) + (SELECT count(*) FROM atomik.new_cells)"
            )
            .unwrap(),
            Some(0)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_pending(c) FROM g").unwrap(),
            Some(0)
        );
    }

    /// Seal reads the record, not the tables: a pending accumulator that
    /// no trigger recorded (written with triggers disabled) is not sealed.
    #[pg_test]
    fn seal_reads_the_record_not_the_tables() {
        Spi::run(
            "CREATE TABLE u (id int PRIMARY KEY, c atomik);
             SELECT atomik_track('u', 'c');
             INSERT INTO u VALUES (1, atomik_add(0));
             SELECT atomik_seal();
             SET LOCAL session_replication_role = replica;
             UPDATE u SET c = c + 7;
             SET LOCAL session_replication_role = origin;",
        )
        .unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_seal()").unwrap(),
            Some(0)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_pending(c) FROM u").unwrap(),
            Some(7)
        );
    }

    #[pg_test]
    fn offload_group_sums_equal_a_plain_fold() {
        use crate::deferred::fold::group_sums;
        use std::collections::BTreeMap;
        // 700 distinct cells (more than the engine's 256 slots, so several
        // rounds), each hit several times, both groups, wrapping deltas.
        let mut deltas = Vec::new();
        let mut want: BTreeMap<(String, String, i32, Vec<String>), u64> = BTreeMap::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..5_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let grp = if i % 3 == 0 { 2 } else { 1 };
            let cell = (
                "t".to_string(),
                "c".to_string(),
                grp,
                vec![(x % 700).to_string()],
            );
            let e = want.entry(cell.clone()).or_insert(0);
            *e = if grp == 1 { e.wrapping_add(x) } else { *e ^ x };
            deltas.push((cell, x));
        }
        assert_eq!(group_sums(deltas).unwrap(), want);
    }

    #[pg_test]
    fn deferred_deltas_fold_exactly_once() {
        Spi::run(
            "CREATE TABLE d (id int PRIMARY KEY, c atomik, x atomik);
             SELECT atomik_track('d', 'c'), atomik_track('d', 'x', 'xor');
             INSERT INTO d VALUES (1, atomik_add(0), NULL), (2, NULL, atomik_xor(0));
             SELECT atomik_defer('d', 'c', 1, i) FROM generate_series(2, 1000, 2) i;
             SELECT atomik_defer('d', 'x', 2, i) FROM generate_series(1, 999, 2) i;",
        )
        .unwrap();
        let xor: i64 = (1..=1000).filter(|i| i % 2 == 1).fold(0, |a, i| a ^ i);
        let add: i64 = (1..=1000).filter(|i| i % 2 == 0).sum();
        let live = |column: &str, id: i64| {
            Spi::get_one::<i64>(&format!(
                "SELECT atomik_live('d', '{column}', {id}::bigint)"
            ))
            .unwrap()
            .unwrap()
        };
        assert_eq!((live("c", 1), live("x", 2)), (add, xor));
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_fold_deferred()").unwrap(),
            Some(1000)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_fold_deferred()").unwrap(),
            Some(0)
        );
        assert_eq!((live("c", 1), live("x", 2)), (add, xor));
        assert_eq!(
            Spi::get_one::<i64>("SELECT sum(atomik_pending(c))::bigint FROM d WHERE id = 1")
                .unwrap(),
            Some(add)
        );
    }

    #[pg_test]
    fn plan_cache_follows_ddl() {
        Spi::run(
            "CREATE TABLE r (id int PRIMARY KEY, c atomik);
             SELECT atomik_track('r', 'c');
             INSERT INTO r VALUES (1, atomik_add(0));
             SELECT atomik_defer('r', 'c', 1, 1);
             ALTER TABLE r RENAME TO r2;
             SELECT atomik_defer('r2', 'c', 1, 1);
             ALTER TABLE r2 ADD COLUMN extra int;
             SELECT atomik_defer('r2', 'c', 1, 1);",
        )
        .unwrap();
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_live('r2', 'c', 1::bigint)").unwrap(),
            Some(3)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_fold_deferred()").unwrap(),
            Some(3)
        );
        assert_eq!(
            Spi::get_one::<String>("SELECT c::text FROM r2")
                .unwrap()
                .as_deref(),
            Some("add:3;pending=3")
        );
    }
}
