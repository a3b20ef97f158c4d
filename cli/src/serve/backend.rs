//! What `atomik serve` serves from: a SQLite hub opened in this process
//! (one sync at a time) or a pool of connections to a PostgreSQL hub.
//!
//! A PostgreSQL connection that broke (the database restarted) is
//! replaced: a sync that meets a broken connection is retried on a fresh
//! one — safe, because a repeated sync request is a harmless duplicate
//! (uploads apply exactly once, a stale answer is a no-op). So is one that
//! PostgreSQL rolled back as a deadlock victim or a serialization failure.
//! A token's `role` runs the sync as `BEGIN; SET LOCAL ROLE "role";
//! SELECT atomik_sync($1); COMMIT`, so that GRANTs and row-level security
//! apply to the device's writes.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::body::Bytes;

use super::auth::quote_ident;
use super::errors::{safe_message, Code, Failure};
use crate::hub::now_secs;
use crate::replica::Replica;

/// What `atomik serve` serves from.
#[derive(Clone)]
pub enum Backend {
    /// A hub opened in this process (SQLite), one sync at a time.
    Local(Arc<Mutex<Box<dyn Replica + Send>>>),
    /// A pool of connections to a PostgreSQL hub, and the configuration
    /// they were made from (for the `LISTEN` connection of watches).
    Pool(deadpool_postgres::Pool, Arc<tokio_postgres::Config>),
}

impl Backend {
    /// A backend for one opened hub.
    pub fn local(hub: Box<dyn Replica + Send>) -> Self {
        Backend::Local(Arc::new(Mutex::new(hub)))
    }

    /// A pool of up to `size` connections to the PostgreSQL hub at `url`
    /// (connections open on first use).
    ///
    /// # Errors
    /// A URL that is not a valid connection string.
    pub fn postgres(url: &str, size: usize) -> Result<Self> {
        let config: tokio_postgres::Config = url
            .parse()
            .with_context(|| format!("{url} is not a PostgreSQL connection URL"))?;
        let manager = deadpool_postgres::Manager::from_config(
            config.clone(),
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(size)
            .build()
            .context("cannot build the connection pool")?;
        Ok(Backend::Pool(pool, Arc::new(config)))
    }

    /// `atomik_sync(request)`, as `role` on a PostgreSQL hub (a SQLite hub
    /// has no roles: `role` is ignored there); with the hub log's position
    /// after it where the hub numbers a sync's entries as it applies them
    /// (SQLite; a PostgreSQL hub numbers them later, see
    /// [`Backend::publish`]).
    ///
    /// # Errors
    /// `refused`, `forbidden`, `unavailable` or `internal`.
    pub async fn sync(
        &self,
        request: Bytes,
        role: Option<String>,
    ) -> Result<(Vec<u8>, Option<u64>), Failure> {
        match self {
            Backend::Local(hub) => {
                local_call(hub.clone(), move |h| {
                    let answer = h.serve_sync(&request, now_secs())?;
                    // The answer stands whether or not this read works.
                    Ok((answer, h.log_position().ok()))
                })
                .await
            }
            Backend::Pool(pool, _) => pool_call(
                pool,
                "SELECT atomik_sync($1)",
                Some(&request),
                role.as_deref(),
            )
            .await
            .map(|row| (row.get::<_, Vec<u8>>(0), None)),
        }
    }

    /// `atomik_log_position()`: where the hub's log ends.
    ///
    /// # Errors
    /// `unavailable` or `internal` (a replica that is not a hub: `refused`).
    pub async fn log_position(&self) -> Result<u64, Failure> {
        match self {
            Backend::Local(hub) => local_call(hub.clone(), |h| h.log_position()).await,
            Backend::Pool(pool, _) => pool_call(pool, "SELECT atomik_log_position()", None, None)
                .await
                .map(|row| row.get::<_, i64>(0) as u64),
        }
    }

    /// `atomik_publish()` on a PostgreSQL hub: number the committed log
    /// entries that are not numbered yet; the log's position. A SQLite hub
    /// numbers entries as it appends them: its position.
    ///
    /// # Errors
    /// As [`Backend::log_position`].
    pub async fn publish(&self) -> Result<u64, Failure> {
        match self {
            Backend::Local(_) => self.log_position().await,
            Backend::Pool(pool, _) => pool_call(pool, "SELECT atomik_publish()", None, None)
                .await
                .map(|row| row.get::<_, i64>(0) as u64),
        }
    }

    /// `atomik_site_id()`.
    ///
    /// # Errors
    /// `unavailable` or `internal`.
    pub async fn site_id(&self) -> Result<String, Failure> {
        let site = match self {
            Backend::Local(hub) => local_call(hub.clone(), |h| h.site_id()).await,
            Backend::Pool(pool, _) => pool_call(pool, "SELECT atomik_site_id()", None, None)
                .await
                .map(|row| row.get::<_, String>(0)),
        };
        site.map_err(|f| match f.code {
            Code::Refused | Code::Forbidden => Failure {
                code: Code::Unavailable,
                message: "the hub cannot answer".to_string(),
                ..f
            },
            _ => f,
        })
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Local(_) => f.write_str("Backend::Local"),
            Backend::Pool(p, _) => write!(f, "Backend::Pool({:?})", p.status()),
        }
    }
}

/// Run `f` on the local hub, off the async threads.
async fn local_call<T: Send + 'static>(
    hub: Arc<Mutex<Box<dyn Replica + Send>>>,
    f: impl FnOnce(&mut Box<dyn Replica + Send>) -> Result<T> + Send + 'static,
) -> Result<T, Failure> {
    let r = tokio::task::spawn_blocking(move || {
        let mut hub = hub
            .lock()
            .map_err(|_| anyhow::anyhow!("hub lock poisoned"))?;
        f(&mut hub)
    })
    .await;
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Failure::refused(&e)),
        Err(e) => {
            Err(Failure::new(Code::Internal, "internal error")
                .detail(format!("sync task failed: {e}")))
        }
    }
}

/// Attempts of one statement: a broken connection or a transient
/// conflict (a deadlock or serialization failure that PostgreSQL resolved
/// by rolling the statement back whole) is retried.
const ATTEMPTS: usize = 4;

fn unavailable(detail: String) -> Failure {
    Failure::new(
        Code::Unavailable,
        "the hub's database cannot be reached: retry later",
    )
    .detail(detail)
    .retry_after(std::time::Duration::from_secs(1))
}

/// Run one statement (with the request as `$1`, if any) on a pooled
/// connection, as `role` if one is given (in a transaction, after `SET
/// LOCAL ROLE`). A connection that turns out broken (the server restarted)
/// is dropped and the statement retried on a fresh one; a statement that
/// PostgreSQL rolled back as a deadlock victim or a serialization failure
/// is retried after a short pause (parallel serves that met in opposite
/// orders on hot rows). A repeated sync request is a harmless duplicate.
async fn pool_call(
    pool: &deadpool_postgres::Pool,
    sql: &str,
    arg: Option<&Bytes>,
    role: Option<&str>,
) -> Result<tokio_postgres::Row, Failure> {
    use tokio_postgres::error::SqlState;
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        let mut client = match pool.get().await {
            Ok(c) => c,
            Err(e) => return Err(unavailable(e.to_string())),
        };
        let body = arg.map(|b| b.as_ref());
        let result = match role {
            None => match body {
                Some(body) => client.query_one(sql, &[&body]).await,
                None => client.query_one(sql, &[]).await,
            },
            Some(role) => as_role(&mut client, role, sql, body).await,
        };
        match result {
            Ok(row) => return Ok(row),
            Err(e) => {
                if let Some(db) = e.as_db_error() {
                    let transient = [
                        SqlState::T_R_DEADLOCK_DETECTED,
                        SqlState::T_R_SERIALIZATION_FAILURE,
                    ]
                    .contains(db.code());
                    if !transient {
                        let code = if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE {
                            Code::Forbidden
                        } else {
                            Code::Refused
                        };
                        let mut detail =
                            format!("{} (SQLSTATE {})", db.message(), db.code().code());
                        // pg_atomik's errors raised through a Rust panic carry
                        // its backtrace as DETAIL: not for the log.
                        if let Some(d) = db.detail().filter(|d| !is_backtrace(d)) {
                            detail.push_str(&format!("; detail: {d}"));
                        }
                        if let Some(role) = role {
                            detail.push_str(&format!("; as role {role}"));
                        }
                        return Err(Failure::new(code, safe_message(db.message())).detail(detail));
                    }
                    last = db.message().to_string();
                    tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                    continue;
                }
                last = e.to_string();
                if !client.is_closed() {
                    return Err(unavailable(last));
                }
                // deadpool drops a broken connection on return; take it
                // out now and try a new one.
                drop(deadpool_postgres::Object::take(client));
            }
        }
    }
    Err(unavailable(last))
}

/// Whether a DETAIL is a Rust backtrace (frames `0: …`, `1: …`).
fn is_backtrace(detail: &str) -> bool {
    detail.trim_start().starts_with("0: ")
}

/// `BEGIN; SET LOCAL ROLE "role"; <sql>; COMMIT` (the role name was
/// validated when the token was).
async fn as_role(
    client: &mut deadpool_postgres::Object,
    role: &str,
    sql: &str,
    body: Option<&[u8]>,
) -> Result<tokio_postgres::Row, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("SET LOCAL ROLE {}", quote_ident(role)))
        .await?;
    let row = match body {
        Some(body) => tx.query_one(sql, &[&body]).await?,
        None => tx.query_one(sql, &[]).await?,
    };
    tx.commit().await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    #[test]
    fn backtraces_are_told_from_details() {
        assert!(super::is_backtrace(
            "\n   0: std::thread::local::LocalKey<T>::with\n   1: pgrx"
        ));
        assert!(!super::is_backtrace("Key (id)=(5) already exists."));
    }
}
