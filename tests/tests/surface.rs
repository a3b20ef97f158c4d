//! Both engines expose the same SQL surface: every public `atomik_*`
//! function of pg_atomik (name and each number of arguments it can be
//! called with, defaults included; aggregates too) is a function or a
//! table-valued function of sqlite_atomik with that name and arity, and the
//! other way round — except the engine-specific ones listed here, each
//! with its reason. A function added to one engine only fails this test
//! until it is added to the other or listed.
//!
//! Needs the cross-engine cluster (`tests/cross-engine.sh` sets
//! `ATOMIK_PG_HOST` and `ATOMIK_PG_PORT`).

use std::collections::BTreeSet;

use atomik_cross_engine::pg_node::PgCluster;

const DB: &str = "atomik_surface";

/// Only in PostgreSQL, and why.
const PG_ONLY: &[(&str, i32, &str)] = &[
    ("atomik_in", 1, "the atomik type's input function"),
    ("atomik_out", 1, "the atomik type's output function"),
    ("atomik_recv", 1, "the atomik type's binary input"),
    ("atomik_send", 1, "the atomik type's binary output"),
    ("atomik_eq", 2, "the = operator of the type"),
    ("atomik_ne", 2, "the <> operator of the type"),
    ("atomik_hash", 1, "the type's hash opclass"),
    (
        "atomik_combine",
        2,
        "atomik_fold's step and combine function",
    ),
    (
        "atomik_defer",
        4,
        "the deferred path: lock-free hot counters (PostgreSQL's row locks)",
    ),
    (
        "atomik_live",
        3,
        "the deferred path: a cell with its unfolded deltas",
    ),
    (
        "atomik_fold_deferred",
        0,
        "the deferred path: fold the buffered deltas",
    ),
    (
        "atomik_publish",
        0,
        "numbers committed log entries: only PostgreSQL numbers its log late",
    ),
];

/// Only in SQLite, and why.
const SQLITE_ONLY: &[(&str, i32, &str)] = &[
    (
        "atomik_text",
        1,
        "a value's text form: PostgreSQL has the type's own (atomik::text)",
    ),
    (
        "atomik_internal_receive",
        3,
        "the apply step: PostgreSQL's is atomik.receive, outside the public schema",
    ),
];

#[test]
#[ignore = "needs PostgreSQL with pg_atomik: run tests/cross-engine.sh"]
fn both_engines_expose_the_same_functions() {
    let pg = PgCluster::from_env()
        .unwrap()
        .expect("ATOMIK_PG_HOST is not set: run tests/cross-engine.sh");
    pg.reset_database(DB).unwrap();
    let mut client = postgres::Client::connect(&pg.url(DB), postgres::NoTls).unwrap();
    client
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_atomik")
        .unwrap();
    let mut postgres: BTreeSet<(String, i32)> = BTreeSet::new();
    for row in client
        .query(
            "SELECT p.proname::text, p.pronargs::int, p.pronargdefaults::int
               FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
              WHERE n.nspname = 'public' AND p.proname LIKE 'atomik%'",
            &[],
        )
        .unwrap()
    {
        let (name, args, defaults): (String, i32, i32) = (row.get(0), row.get(1), row.get(2));
        for n in args - defaults..=args {
            postgres.insert((name.clone(), n));
        }
    }
    let mut sqlite: BTreeSet<(String, i32)> = sqlite_atomik::SQL_FUNCTIONS
        .iter()
        .map(|(name, n)| (name.to_string(), *n))
        .collect();
    // A table-valued function takes the arities PostgreSQL's set-returning
    // function of the same name does; its name must be there.
    for module in sqlite_atomik::SQL_MODULES {
        let arities: Vec<i32> = postgres
            .iter()
            .filter(|(name, _)| name == module)
            .map(|(_, n)| *n)
            .collect();
        assert!(
            !arities.is_empty(),
            "sqlite_atomik's table-valued function {module} has no PostgreSQL counterpart"
        );
        sqlite.extend(arities.into_iter().map(|n| (module.to_string(), n)));
    }
    let listed = |list: &[(&str, i32, &str)]| -> BTreeSet<(String, i32)> {
        list.iter().map(|(n, a, _)| (n.to_string(), *a)).collect()
    };
    let only_pg: BTreeSet<_> = postgres.difference(&sqlite).cloned().collect();
    let only_sqlite: BTreeSet<_> = sqlite.difference(&postgres).cloned().collect();
    assert_eq!(
        only_pg,
        listed(PG_ONLY),
        "functions only PostgreSQL has (add them to SQLite, or to PG_ONLY with a reason)"
    );
    assert_eq!(
        only_sqlite,
        listed(SQLITE_ONLY),
        "functions only SQLite has (add them to PostgreSQL, or to SQLITE_ONLY with a reason)"
    );
}
