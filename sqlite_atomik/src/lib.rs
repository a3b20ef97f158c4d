//! atomik for SQLite (work in progress; see issue 3).
