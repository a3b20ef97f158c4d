//! The SQL surface is pinned: after registration the `atomik_*` functions
//! present are exactly `sqlite_atomik::SQL_FUNCTIONS`, with the flags the
//! docs promise.

use rusqlite::Connection;

const DETERMINISTIC: i64 = 0x800;
const DIRECTONLY: i64 = 0x80000;
const INNOCUOUS: i64 = 0x200000;

/// (name, narg, type, flags) of every atomik function on `c`.
fn functions(c: &Connection) -> Vec<(String, i64, String, i64)> {
    let mut s = c
        .prepare(
            "SELECT name, narg, type, flags FROM pragma_function_list \
             WHERE name LIKE 'atomik%' ORDER BY name, narg",
        )
        .unwrap();
    s.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

const PURE: &[&str] = &[
    "atomik_accum",
    "atomik_add",
    "atomik_bytes",
    "atomik_fold",
    "atomik_from_bytes",
    "atomik_group",
    "atomik_internal_receive",
    "atomik_pending",
    "atomik_read",
    "atomik_set",
    "atomik_text",
    "atomik_version",
    "atomik_xor",
];

#[test]
fn surface_equals_declared_list() {
    let c = Connection::open_in_memory().unwrap();
    assert!(functions(&c).is_empty(), "nothing before registration");
    sqlite_atomik::register(&c).unwrap();
    let got = functions(&c);
    let names: Vec<(&str, i32)> = got.iter().map(|f| (f.0.as_str(), f.1 as i32)).collect();
    assert_eq!(names, sqlite_atomik::SQL_FUNCTIONS);
    let modules: Vec<String> = c
        .prepare("SELECT name FROM pragma_module_list WHERE name LIKE 'atomik%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(modules, sqlite_atomik::SQL_MODULES);
    // Every function of DESIGN.md §4 is in the list.
    for f in [
        "atomik_add",
        "atomik_xor",
        "atomik_accum",
        "atomik_read",
        "atomik_set",
        "atomik_pending",
        "atomik_group",
        "atomik_bytes",
        "atomik_from_bytes",
        "atomik_fold",
        "atomik_track",
        "atomik_untrack",
        "atomik_site_id",
        "atomik_seal",
        "atomik_vector",
        "atomik_changes",
        "atomik_apply",
        "atomik_sync_request",
        "atomik_sync",
        "atomik_sync_finish",
        "atomik_digest",
        "atomik_version",
        "atomik_make_relay",
    ] {
        assert!(names.iter().any(|n| n.0 == f), "{f} missing");
    }
    for (name, _, kind, flags) in &got {
        let want_kind = if name == "atomik_fold" { "a" } else { "s" };
        assert_eq!(kind, want_kind, "{name} type");
        if PURE.contains(&name.as_str()) {
            assert_eq!(
                flags & (DETERMINISTIC | INNOCUOUS | DIRECTONLY),
                DETERMINISTIC | INNOCUOUS,
                "{name}"
            );
        } else {
            assert_eq!(
                flags & (DETERMINISTIC | INNOCUOUS | DIRECTONLY),
                DIRECTONLY,
                "{name}"
            );
        }
    }
}
