//! `GET /watch?after=N[&wait=SECS]`: a long poll that answers as soon as
//! the hub's log moves past position `N` (the device's cursor,
//! `atomik_sync_request`'s, or a feed consumer's), or after `wait` seconds
//! (default 25, at most 60) with where it stands. The answer is
//! `{"position":P}`; `P > N` means "sync now". Live push without a
//! connection protocol of its own: a device holds one watch open, syncs
//! when it returns with news, and watches again from its new cursor.
//!
//! Where the position comes from ([`LogWatch`]): every watch first asks
//! the hub (`atomik_log_position()`), so a watch never waits for news the
//! hub already has; then this serve's own syncs move it — a SQLite hub
//! numbers a sync's entries as it applies them; a PostgreSQL hub numbers
//! them at its next serve, so serve calls `atomik_publish()` after syncs
//! (coalesced, see [`publisher`]) — and, on PostgreSQL, `LISTEN
//! atomik_log` ([`listener`]) brings the syncs of other serves and of SQL
//! clients of the same database.
//!
//! Watches are not in the request concurrency limit (each holds its
//! connection while it waits): they have their own, `--max-watchers`
//! (503 `overloaded` past it), and count towards `--max-connections`.
//! With `--auth-key` a watch needs a valid token, like a sync; it learns
//! only a position.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use tokio::sync::{watch, Notify, Semaphore};

use super::errors::{Code, Failure};
use super::listener::Peer;
use super::{admit, Backend, ServeState};

/// Default `wait`, in seconds.
pub const DEFAULT_WAIT_SECS: u64 = 25;
/// The longest `wait` a watch may ask for.
pub const MAX_WAIT_SECS: u64 = 60;
/// Default `--max-watchers`.
pub const DEFAULT_MAX_WATCHERS: usize = 256;
/// The shortest pause between two `atomik_publish()` calls of one serve:
/// the syncs of a burst share one.
const PUBLISH_SPACING: Duration = Duration::from_millis(10);

/// The hub log's position as this serve last learnt it, the watches
/// waiting on it, and the publisher's doorbell.
#[derive(Debug, Clone)]
pub struct LogWatch {
    position: Arc<watch::Sender<u64>>,
    slots: Arc<Semaphore>,
    publish: Arc<Notify>,
}

impl LogWatch {
    /// A watch of up to `max_watchers` waiting requests.
    pub fn new(max_watchers: usize) -> Self {
        LogWatch {
            position: Arc::new(watch::channel(0).0),
            slots: Arc::new(Semaphore::new(max_watchers)),
            publish: Arc::new(Notify::new()),
        }
    }

    /// The log has reached `position` (positions only grow; an older one
    /// changes nothing).
    pub fn advance(&self, position: u64) {
        self.position.send_if_modified(|p| {
            let newer = position > *p;
            if newer {
                *p = position;
            }
            newer
        });
    }

    /// Ask the publisher to number what the last syncs appended (a
    /// PostgreSQL hub; a ring without a publisher is never answered).
    pub fn ring(&self) {
        self.publish.notify_one();
    }
}

/// The query of `GET /watch`.
#[derive(Debug, Deserialize)]
pub struct WatchQuery {
    /// The position the caller has: answer once the log is past it.
    after: Option<u64>,
    /// Seconds to wait at most.
    wait: Option<u64>,
}

/// The answer of `GET /watch`.
#[derive(Debug, serde::Serialize)]
struct WatchAnswer {
    position: u64,
}

/// `GET /watch?after=N[&wait=SECS]`.
pub async fn watch(
    State(state): State<ServeState>,
    peer: Option<Extension<Peer>>,
    query: Result<Query<WatchQuery>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
) -> Response {
    // Any valid token may watch: the answer is only a position.
    let who = match admit(&state, &headers, peer.map(|p| p.0)) {
        Ok((_, who)) => who,
        Err(refused) => return *refused,
    };
    let query = match query {
        Ok(Query(q)) => q,
        Err(rejection) => {
            return Failure::new(
                Code::BadRequest,
                "GET /watch?after=N[&wait=SECS]: after is the position you have (a non-negative integer), wait the seconds to wait at most",
            )
            .detail(rejection.body_text())
            .reply(&who)
        }
    };
    let Some(after) = query.after else {
        return Failure::new(
            Code::BadRequest,
            "GET /watch needs after=N: the log position you have (0 for none)",
        )
        .reply(&who);
    };
    let wait = query.wait.unwrap_or(DEFAULT_WAIT_SECS);
    if wait > MAX_WAIT_SECS {
        return Failure::new(
            Code::BadRequest,
            format!("wait={wait}: a watch waits at most {MAX_WAIT_SECS} seconds"),
        )
        .reply(&who);
    }
    let Ok(_slot) = state.watch.slots.clone().try_acquire_owned() else {
        return Failure::new(
            Code::Overloaded,
            "this hub holds as many watches as it may (--max-watchers): retry shortly, or poll",
        )
        .retry_after(Duration::from_secs(1))
        .reply(&who);
    };
    // Subscribe first, then ask the hub: news that lands in between is
    // seen either way.
    let mut moved = state.watch.position.subscribe();
    match state.backend.log_position().await {
        Ok(p) => state.watch.advance(p),
        Err(f) => return f.reply(&who),
    }
    let news = tokio::time::timeout(Duration::from_secs(wait), async {
        moved.wait_for(|p| *p > after).await.map(|p| *p)
    })
    .await;
    let position = match news {
        Ok(Ok(p)) => p,
        // Timed out (or the serve is stopping): where the log stands.
        _ => *moved.borrow(),
    };
    Json(WatchAnswer { position }).into_response()
}

/// Number what syncs appended on a PostgreSQL hub, so that watches (and
/// the feed) see it: one `atomik_publish()` per ring, at most one per
/// [`PUBLISH_SPACING`], forever.
pub async fn publisher(backend: Backend, watch: LogWatch) {
    loop {
        watch.publish.notified().await;
        match backend.publish().await {
            Ok(p) => watch.advance(p),
            Err(f) => log!("atomik serve: atomik_publish failed: {}", f.message),
        }
        tokio::time::sleep(PUBLISH_SPACING).await;
    }
}

/// `LISTEN atomik_log` on a PostgreSQL hub: positions that others' syncs
/// and publishes commit. Reconnects after a second when the connection
/// breaks, forever.
pub async fn listener(config: tokio_postgres::Config, watch: LogWatch) {
    use futures_util::StreamExt as _;
    loop {
        match config.connect(tokio_postgres::NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let listen = client.batch_execute("LISTEN atomik_log");
                tokio::pin!(listen);
                let mut listening = false;
                loop {
                    tokio::select! {
                        r = &mut listen, if !listening => {
                            if let Err(e) = r {
                                log!("atomik serve: LISTEN atomik_log failed: {e}");
                                break;
                            }
                            listening = true;
                        }
                        m = messages.next() => match m {
                            Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                                if let Ok(p) = n.payload().parse::<u64>() {
                                    watch.advance(p);
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                log!("atomik serve: LISTEN atomik_log connection: {e}");
                                break;
                            }
                            None => break,
                        }
                    }
                }
            }
            Err(e) => log!("atomik serve: cannot LISTEN atomik_log: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
