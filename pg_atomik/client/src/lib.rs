//! Shared helpers of the pg_atomik client-side tests and benchmarks.

use tokio_postgres::{Client, NoTls};

/// Connect to database `db` of the cluster named by `ATOMIK_PG`
/// (a libpq-style string without `dbname`, e.g. `host=/tmp/x port=5432 user=postgres`).
///
/// # Panics
/// When `ATOMIK_PG` is unset or the connection fails: these programs are
/// test drivers and must fail loudly.
pub async fn connect(db: &str) -> Client {
    let base =
        std::env::var("ATOMIK_PG").expect("set ATOMIK_PG to the cluster's connection string");
    let (client, conn) = tokio_postgres::connect(&format!("{base} dbname={db}"), NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {db}: {e}"));
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("connection error: {e}");
        }
    });
    client
}

/// Drop and create database `db`, with the extension installed.
pub async fn fresh_database(db: &str) -> Client {
    let admin = connect("postgres").await;
    for sql in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
    ] {
        admin.batch_execute(&sql).await.expect("create database");
    }
    let c = connect(db).await;
    c.batch_execute("CREATE EXTENSION pg_atomik")
        .await
        .expect("create extension");
    c
}

/// True for errors a client retries: serialization failure, deadlock.
pub fn retryable(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
            || *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
    })
}
