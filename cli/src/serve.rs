//! `atomik serve`: a thin HTTP endpoint in front of a hub database, so that
//! mobile apps have a real place to sync with.
//!
//! * `POST /sync` — body: the bytes of `atomik_sync_request()`; answer: the
//!   bytes of `atomik_sync(request)` (`application/octet-stream`). A request
//!   that is empty, too large, or refused by the hub gets a 4xx with the
//!   reason as text; the hub applies nothing of it.
//! * `GET /health` — `ok`, the version, and the hub's site id.

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

type SharedHub = Arc<Mutex<Box<dyn Replica + Send>>>;

/// The router over an opened hub, refusing bodies over `max_body` bytes.
pub fn router(hub: Box<dyn Replica + Send>, max_body: usize) -> Router {
    let state: SharedHub = Arc::new(Mutex::new(hub));
    Router::new()
        .route("/sync", post(sync))
        .route("/health", get(health))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Serve `hub` on `listen` until interrupted.
///
/// # Errors
/// The hub cannot be opened or the address cannot be bound.
pub fn run(hub: &HubUrl, listen: &str) -> Result<()> {
    let replica = hub.open_local()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!("atomik serve: {hub:?} on http://{}", listener.local_addr()?);
        axum::serve(listener, router(replica, MAX_MESSAGE_BYTES))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}

async fn sync(State(hub): State<SharedHub>, body: Bytes) -> Response {
    if body.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "empty request: POST the bytes of atomik_sync_request()\n",
        )
            .into_response();
    }
    let answer = tokio::task::spawn_blocking(move || {
        let mut hub = hub
            .lock()
            .map_err(|_| anyhow::anyhow!("hub lock poisoned"))?;
        hub.serve_sync(&body, now_secs())
    })
    .await;
    match answer {
        Ok(Ok(bytes)) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        Ok(Err(e)) => (StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}\n")).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("sync task failed: {e}\n"),
        )
            .into_response(),
    }
}

async fn health(State(hub): State<SharedHub>) -> Response {
    let site = tokio::task::spawn_blocking(move || {
        hub.lock()
            .map_err(|_| anyhow::anyhow!("hub lock poisoned"))
            .and_then(|mut h| h.site_id())
    })
    .await;
    match site {
        Ok(Ok(site)) => format!("ok atomik {} site {site}\n", atomik_core::VERSION).into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("hub unavailable: {e:#}\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
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
        rt.spawn(async move { axum::serve(listener, router(hub, max_body)).await });
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
