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
            "CREATE TABLE d (id int PRIMARY KEY, c atomik);
             SELECT atomik_track('d', 'c');
             INSERT INTO d VALUES (1, atomik_add(0)), (2, atomik_xor(0));
             SELECT atomik_defer('d', 'c', i % 2 + 1, i) FROM generate_series(1, 1000) i;",
        )
        .unwrap();
        let xor: i64 = (1..=1000).filter(|i| i % 2 == 1).fold(0, |a, i| a ^ i);
        let add: i64 = (1..=1000).filter(|i| i % 2 == 0).sum();
        let live = |id: i64| {
            Spi::get_one::<i64>(&format!("SELECT atomik_live('d', 'c', {id}::bigint)"))
                .unwrap()
                .unwrap()
        };
        assert_eq!((live(1), live(2)), (add, xor));
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_fold_deferred()").unwrap(),
            Some(1000)
        );
        assert_eq!(
            Spi::get_one::<i64>("SELECT atomik_fold_deferred()").unwrap(),
            Some(0)
        );
        assert_eq!((live(1), live(2)), (add, xor));
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
