//! The golden cross-engine script: `golden/script.sql` run on SQLite and
//! on PostgreSQL must both print exactly `golden/script.out`.
//!
//! `ATOMIK_BLESS=1` writes the SQLite output as the new golden file (review
//! the diff: the PostgreSQL run must then agree with it).

use atomik_cross_engine::golden::{first_difference, run_script, Engine};
use atomik_cross_engine::pg_node::PgCluster;

const SCRIPT: &str = include_str!("../golden/script.sql");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/script.out");

fn check(engine_name: &str, actual: &str) {
    let expected = std::fs::read_to_string(GOLDEN).unwrap_or_default();
    if let Some(diff) = first_difference(actual, &expected) {
        let saved = std::env::temp_dir().join(format!("atomik-golden-{engine_name}.out"));
        let _ = std::fs::write(&saved, actual);
        panic!(
            "{engine_name} output differs from golden/script.out at {diff}\n\
             (the whole output is in {})",
            saved.display()
        );
    }
}

#[test]
fn golden_script_on_sqlite() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    sqlite_atomik::register(&conn).unwrap();
    let out = run_script(SCRIPT, &mut Engine::Sqlite(conn));
    if std::env::var_os("ATOMIK_BLESS").is_some() {
        std::fs::write(GOLDEN, &out).unwrap();
    }
    check("SQLite", &out);
}

#[test]
#[ignore = "needs PostgreSQL with pg_atomik: run tests/cross-engine.sh"]
fn golden_script_on_postgres() {
    let pg = PgCluster::from_env()
        .unwrap()
        .expect("ATOMIK_PG_HOST is not set: run tests/cross-engine.sh");
    let mut admin = postgres::Client::connect(&pg.url("postgres"), postgres::NoTls).unwrap();
    // Two calls: DROP DATABASE cannot run in the implicit transaction of a
    // multi-statement batch.
    admin
        .batch_execute("DROP DATABASE IF EXISTS atomik_golden")
        .unwrap();
    admin
        .batch_execute("CREATE DATABASE atomik_golden")
        .unwrap();
    let mut client = postgres::Client::connect(&pg.url("atomik_golden"), postgres::NoTls).unwrap();
    client
        .batch_execute("SET client_min_messages = warning; CREATE EXTENSION pg_atomik")
        .unwrap();
    let out = run_script(SCRIPT, &mut Engine::Postgres(client));
    check("PostgreSQL", &out);
}
