//! `atomik serve`: a thin HTTP endpoint in front of a hub database, so that
//! mobile apps have a real place to sync with.
//!
//! * `POST /sync` — body: the bytes of `atomik_sync_request()`; answer: the
//!   bytes of `atomik_sync(request)` (`application/octet-stream`). A request
//!   that is empty, too large, or refused by the hub gets a 4xx with the
//!   reason as text; the hub applies nothing of it.
//! * `GET /health` — `ok`, the version, and the hub's site id.
//!
//! A SQLite hub is one connection, used by one sync at a time. A
//! PostgreSQL hub is served from a pool of connections (deadpool-postgres
//! over tokio-postgres), so syncs of different devices run on different
//! connections, and a connection that broke (the database restarted) is
//! replaced: a sync that meets a broken connection is retried once on a
//! fresh one — safe, because a repeated sync request is a harmless
//! duplicate (uploads apply exactly once, a stale answer is a no-op).

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::hub::{now_secs, HubUrl, MAX_MESSAGE_BYTES};
use crate::replica::Replica;

/// What `atomik serve` serves from.
#[derive(Clone)]
pub enum Backend {
    /// A hub opened in this process (SQLite), one sync at a time.
    Local(Arc<Mutex<Box<dyn Replica + Send>>>),
    /// A pool of connections to a PostgreSQL hub.
    Pool(deadpool_postgres::Pool),
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
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(size)
            .build()
            .context("cannot build the connection pool")?;
        Ok(Backend::Pool(pool))
    }
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Local(_) => f.write_str("Backend::Local"),
            Backend::Pool(p) => write!(f, "Backend::Pool({:?})", p.status()),
        }
    }
}

/// Why a sync or health check failed.
enum Failure {
    /// The hub refused the request (it applied nothing): 422.
    Refused(String),
    /// The hub could not be reached: 503.
    Unavailable(String),
    /// A bug: 500.
    Internal(String),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Refused(m) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{m}\n")),
            Failure::Unavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("hub unavailable: {m}\n"),
            ),
            Failure::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{m}\n")),
        }
        .into_response()
    }
}

/// The router over a backend, refusing bodies over `max_body` bytes.
pub fn router(backend: Backend, max_body: usize) -> Router {
    Router::new()
        .route("/sync", post(sync))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(backend)
}

/// Serve `hub` on `listen` until interrupted.
///
/// # Errors
/// The hub cannot be opened or the address cannot be bound.
pub fn run(hub: &HubUrl, listen: &str, pool: usize) -> Result<()> {
    let backend = match hub {
        HubUrl::Postgres(url) => Backend::postgres(url, pool)?,
        other => Backend::local(other.open_local()?),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!("atomik serve: {hub:?} on http://{}", listener.local_addr()?);
        axum::serve(listener, router(backend, MAX_MESSAGE_BYTES))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}

async fn sync(State(backend): State<Backend>, body: Bytes) -> Response {
    if body.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "empty request: POST the bytes of atomik_sync_request()\n",
        )
            .into_response();
    }
    let answer = match backend {
        Backend::Local(hub) => local_call(hub, move |h| h.serve_sync(&body, now_secs())).await,
        Backend::Pool(pool) => pool_call(&pool, "SELECT atomik_sync($1)", Some(&body))
            .await
            .map(|row| row.get::<_, Vec<u8>>(0)),
    };
    match answer {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(f) => f.into_response(),
    }
}

async fn health(State(backend): State<Backend>) -> Response {
    let site = match backend {
        Backend::Local(hub) => local_call(hub, |h| h.site_id()).await,
        Backend::Pool(pool) => pool_call(&pool, "SELECT atomik_site_id()", None)
            .await
            .map(|row| row.get::<_, String>(0)),
    };
    match site {
        Ok(site) => format!("ok atomik {} site {site}\n", atomik_core::VERSION).into_response(),
        Err(Failure::Refused(m)) => Failure::Unavailable(m).into_response(),
        Err(f) => f.into_response(),
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
        Ok(Err(e)) => Err(Failure::Refused(format!("{e:#}"))),
        Err(e) => Err(Failure::Internal(format!("sync task failed: {e}"))),
    }
}

/// Attempts of one statement: a broken connection or a transient
/// conflict (a deadlock or serialization failure that PostgreSQL resolved
/// by rolling the statement back whole) is retried.
const ATTEMPTS: usize = 4;

/// Run one statement (with the request as `$1`, if any) on a pooled
/// connection. A connection that turns out broken (the server restarted)
/// is dropped and the statement retried on a fresh one; a statement that
/// PostgreSQL rolled back as a deadlock victim or a serialization failure
/// is retried after a short pause (parallel serves that met in opposite
/// orders on hot rows). A repeated sync request is a harmless duplicate.
async fn pool_call(
    pool: &deadpool_postgres::Pool,
    sql: &str,
    arg: Option<&Bytes>,
) -> Result<tokio_postgres::Row, Failure> {
    use tokio_postgres::error::SqlState;
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        let client = match pool.get().await {
            Ok(c) => c,
            Err(e) => return Err(Failure::Unavailable(e.to_string())),
        };
        let result = match arg {
            Some(body) => client.query_one(sql, &[&body.as_ref()]).await,
            None => client.query_one(sql, &[]).await,
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
                        return Err(Failure::Refused(db.message().to_string()));
                    }
                    last = db.message().to_string();
                    tokio::time::sleep(std::time::Duration::from_millis(5 << attempt)).await;
                    continue;
                }
                last = e.to_string();
                if !client.is_closed() {
                    return Err(Failure::Unavailable(last));
                }
                // deadpool drops a broken connection on return; take it
                // out now and try a new one.
                drop(deadpool_postgres::Object::take(client));
            }
        }
    }
    Err(Failure::Unavailable(last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::{exchange, HubUrl};
    use crate::replica::SqliteReplica;

    /// Serve `hub` on a loopback port in a background runtime.
    fn spawn(hub: Box<dyn Replica + Send>, max_body: usize) -> (String, tokio::runtime::Runtime) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, router(Backend::local(hub), max_body)).await });
        (format!("http://{addr}"), rt)
    }

    fn sync(device: &mut SqliteReplica, hub: &HubUrl) -> u64 {
        let req = device.sync_request(0).unwrap();
        let resp = exchange(hub, &req).unwrap();
        device.finish_sync(&resp, 0).unwrap()
    }

    #[test]
    fn devices_converge_through_http() {
        let dir = tempfile::tempdir().unwrap();
        let hub = SqliteReplica::open(&dir.path().join("hub.sqlite")).unwrap();
        let (url, _rt) = spawn(Box::new(hub), 1 << 20);
        let hub_url = HubUrl::parse(&url).unwrap();
        let mut d1 = SqliteReplica::open(&dir.path().join("d1.sqlite")).unwrap();
        let mut d2 = SqliteReplica::open(&dir.path().join("d2.sqlite")).unwrap();
        d1.accum(1, 5).unwrap();
        d2.accum(1, -2).unwrap();
        d2.accum(2, 9).unwrap();
        sync(&mut d1, &hub_url);
        // d2 is new: it holds no cursor into the hub's log, so it
        // bootstraps from a snapshot of both cells.
        assert_eq!(sync(&mut d2, &hub_url), 2);
        assert_eq!(sync(&mut d1, &hub_url), 2, "d1 gets cell 1's -2 and cell 2");
        assert_eq!(d1.values().unwrap(), d2.values().unwrap());
        assert_eq!(d1.digest().unwrap(), d2.digest().unwrap());
        let health = ureq::get(&format!("{url}/health"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        assert!(health.starts_with("ok atomik"), "{health}");
    }

    #[test]
    fn bad_requests_get_a_reason_and_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let hub = SqliteReplica::open(&dir.path().join("hub.sqlite")).unwrap();
        let (url, _rt) = spawn(Box::new(hub), 1024);
        let post = |body: &[u8]| match ureq::post(&format!("{url}/sync")).send_bytes(body) {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("{e}"),
        };
        let (code, reason) = post(b"");
        assert_eq!(code, 400);
        assert!(reason.contains("empty request"), "{reason}");
        let (code, reason) = post(b"GET / HTTP/1.1 definitely not atomik");
        assert_eq!(code, 422);
        assert!(reason.contains("not an atomik message"), "{reason}");
        let (code, _) = post(&vec![0u8; 4096]);
        assert_eq!(code, 413, "oversized");
        // The hub still serves a real device afterwards, from scratch.
        let mut d = SqliteReplica::open(&dir.path().join("d.sqlite")).unwrap();
        d.accum(3, 1).unwrap();
        assert_eq!(
            sync(&mut d, &HubUrl::parse(&url).unwrap()),
            1,
            "a first sync: a snapshot of its own cell"
        );
    }
}
