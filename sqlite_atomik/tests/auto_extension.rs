//! Static registration for Rust apps through SQLite's auto-extension list
//! (its own test binary: the registration is process-wide).

use rusqlite::Connection;

#[test]
fn auto_extension_registers_every_new_connection() {
    sqlite_atomik::register_auto_extension().unwrap();
    sqlite_atomik::register_auto_extension().unwrap();
    let c = Connection::open_in_memory().unwrap();
    let names: Vec<(String, i64)> = {
        let mut s = c
            .prepare("SELECT name, narg FROM pragma_function_list WHERE name LIKE 'atomik%'")
            .unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(names.len(), sqlite_atomik::SQL_FUNCTIONS.len());
    let v: i64 = c
        .query_row("SELECT atomik_read(atomik_add(4))", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 4);
}
