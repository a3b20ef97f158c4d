//! One SQL script of `atomik_*` calls, run on SQLite and on PostgreSQL:
//! both outputs must equal the golden file, so both engines give identical
//! results for the same calls.
//!
//! The script (`tests/golden/script.sql`) is plain SQL with two
//! placeholders for the only dialect differences: `{atomik}` (the column
//! type: `atomik` in PostgreSQL, `BLOB` in SQLite) and `{int}` (`bigint` /
//! `INTEGER`). Statements end with `;` at the end of a line; `--` lines are
//! copied to the output. Each result is printed under its statement: one
//! line per row, columns separated by ` | `, BLOBs / `bytea` as `\x` and
//! lowercase hex, NULL as `NULL`; an error as `ERROR: ` and its message.
//!
//! Site ids (32 hex digits, random per replica) in error messages are
//! shown as `<site>`. One difference is normalised, because it is each
//! engine's convention:
//! SQLite has no error context, so sqlite_atomik starts every message with
//! the function's name (and `argument N: ` where one argument is at fault);
//! PostgreSQL names the function in the error's CONTEXT instead. The
//! golden file holds the message without that prefix; the SQLite run checks
//! that the prefix is there.

use anyhow::Result;

/// An engine the script runs on.
pub enum Engine {
    /// An SQLite connection with atomik registered.
    Sqlite(rusqlite::Connection),
    /// A PostgreSQL connection to a database where pg_atomik was created.
    Postgres(postgres::Client),
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Engine::Sqlite(_) => "Engine::Sqlite",
            Engine::Postgres(_) => "Engine::Postgres",
        })
    }
}

/// A statement's outcome: rows of rendered columns, or an error message.
type Outcome = std::result::Result<Vec<Vec<String>>, String>;

impl Engine {
    fn dialect(&self, statement: &str) -> String {
        let (atomik, int) = match self {
            Engine::Sqlite(_) => ("BLOB", "INTEGER"),
            Engine::Postgres(_) => ("atomik", "bigint"),
        };
        statement.replace("{atomik}", atomik).replace("{int}", int)
    }

    fn run(&mut self, statement: &str) -> Outcome {
        let sql = self.dialect(statement);
        match self {
            Engine::Sqlite(c) => run_sqlite(c, &sql).map_err(|e| sites(&sqlite_message(&e))),
            Engine::Postgres(c) => run_postgres(c, &sql).map_err(|e| sites(&postgres_message(&e))),
        }
    }
}

/// `message` with every site id (32 hex digits, random per replica) shown
/// as `<site>`, so that errors that name this replica compare.
fn sites(message: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |out: &mut String, run: &mut String| {
        if run.len() == 32 {
            out.push_str("<site>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in message.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut out, &mut run);
            out.push(c);
        }
    }
    flush(&mut out, &mut run);
    out
}

fn run_sqlite(c: &rusqlite::Connection, sql: &str) -> rusqlite::Result<Vec<Vec<String>>> {
    use rusqlite::types::ValueRef;
    let mut stmt = c.prepare(sql)?;
    let columns = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let mut rendered = Vec::with_capacity(columns);
        for i in 0..columns {
            rendered.push(match row.get_ref(i)? {
                ValueRef::Null => "NULL".to_string(),
                ValueRef::Integer(n) => n.to_string(),
                ValueRef::Real(x) => x.to_string(),
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Blob(b) => format!("\\x{}", hex::encode(b)),
            });
        }
        out.push(rendered);
    }
    Ok(out)
}

fn run_postgres(c: &mut postgres::Client, sql: &str) -> Result<Vec<Vec<String>>, postgres::Error> {
    let mut out = Vec::new();
    for message in c.simple_query(sql)? {
        if let postgres::SimpleQueryMessage::Row(row) = message {
            out.push(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_string())
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// The message of an SQLite error without its `atomik_fn: ` (and
/// `argument N: `) prefix; a message of an atomik function without that
/// prefix is reported as such, so that the convention is checked too.
fn sqlite_message(e: &rusqlite::Error) -> String {
    let message = match e {
        rusqlite::Error::SqliteFailure(_, Some(m)) => m.clone(),
        other => other.to_string(),
    };
    let Some((function, rest)) = message.split_once(": ") else {
        return format!("(no function prefix) {message}");
    };
    if !function.starts_with("atomik_") || function.contains(' ') {
        return format!("(no function prefix) {message}");
    }
    match rest.split_once(": ") {
        Some((arg, tail))
            if arg
                .strip_prefix("argument ")
                .is_some_and(|n| n.parse::<u8>().is_ok()) =>
        {
            tail.to_string()
        }
        _ => rest.to_string(),
    }
}

/// The primary message of a PostgreSQL error (what follows `ERROR:`).
fn postgres_message(e: &postgres::Error) -> String {
    e.as_db_error()
        .map(|db| db.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Split a script into its `--` comment lines and statements.
fn statements(script: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        if current.is_empty() && (line.trim().is_empty() || line.starts_with("--")) {
            out.push((false, line.to_string()));
            continue;
        }
        if !current.is_empty() {
            current.push('\n');
        }
        current.push_str(line);
        if line.trim_end().ends_with(';') {
            out.push((true, std::mem::take(&mut current)));
        }
    }
    if !current.is_empty() {
        out.push((true, current));
    }
    out
}

/// Run `script` on `engine` and render the output (see the module docs).
pub fn run_script(script: &str, engine: &mut Engine) -> String {
    let mut out = String::new();
    for (is_statement, text) in statements(script) {
        out.push_str(&text);
        out.push('\n');
        if !is_statement {
            continue;
        }
        match engine.run(&text) {
            Ok(rows) => {
                for row in rows {
                    out.push_str("  ");
                    out.push_str(&row.join(" | "));
                    out.push('\n');
                }
            }
            Err(message) => {
                out.push_str("  ERROR: ");
                out.push_str(&message);
                out.push('\n');
            }
        }
    }
    out
}

/// The first line where `actual` and `expected` differ, with its number.
pub fn first_difference(actual: &str, expected: &str) -> Option<String> {
    let mut a = actual.lines();
    let mut e = expected.lines();
    for n in 1.. {
        match (a.next(), e.next()) {
            (None, None) => return None,
            (x, y) if x == y => {}
            (x, y) => {
                return Some(format!(
                    "line {n}:\n  expected: {}\n  actual:   {}",
                    y.unwrap_or("(end)"),
                    x.unwrap_or("(end)")
                ))
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_and_comments() {
        let s = statements("-- a\nSELECT 1;\nSELECT\n  2;\n\n");
        assert_eq!(
            s,
            vec![
                (false, "-- a".to_string()),
                (true, "SELECT 1;".to_string()),
                (true, "SELECT\n  2;".to_string()),
                (false, String::new()),
            ]
        );
    }

    #[test]
    fn reports_the_first_differing_line() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
        let d = first_difference("a\nc\n", "a\nb\n").unwrap();
        assert!(d.starts_with("line 2"), "{d}");
        assert!(first_difference("a\n", "a\nb\n").is_some());
    }
}
