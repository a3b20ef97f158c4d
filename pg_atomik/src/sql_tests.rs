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
}
