//! The limits of `atomik serve` and the tower layers that enforce the
//! per-request ones: a whole-request timeout (408 `timeout`), a
//! concurrency limit with load shedding (503 `overloaded`), panics as 500
//! `internal`, and per-principal rate limits (429 `rate_limited`,
//! governor's GCRA keyed by principal). The per-connection limits (header
//! read timeout, connection cap) are the listener's (`listener.rs`).

use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Extension, Router};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::util::BoxCloneService;
use tower::{ServiceBuilder, ServiceExt as _};

use super::errors::{Code, Failure};
use super::listener::Peer;

/// Every limit of `atomik serve`, with its flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `--max-body`: the largest request body (413 `too_large` past it).
    pub max_body: usize,
    /// `--max-in-flight`: request bytes being decoded and answered at once,
    /// across every request: a request whose body is in waits for its
    /// share before anything decodes it. Decoding may take up to `codec::MAX_DECODE_EXPANSION`
    /// (512) × the body before refusing hostile input, so this bounds what
    /// all requests together can make the hub allocate. At least
    /// `max_body`.
    pub max_in_flight: usize,
    /// `--header-timeout`: how long a connection may take to send a
    /// request's headers, counted from its opening and, on a kept-alive
    /// connection, from the end of the previous response — so it is also
    /// the keep-alive idle timeout. Past it the connection is closed.
    pub header_timeout: Duration,
    /// `--request-timeout`: the longest a request may take, body upload
    /// and hub work included (408 `timeout`).
    pub request_timeout: Duration,
    /// `--max-connections`: open connections at once; past it new ones
    /// wait in the kernel's accept queue until one closes.
    pub max_connections: usize,
    /// `--concurrency`: requests in flight at once; past it a request is
    /// answered 503 `overloaded` at once (load shedding), not queued.
    pub concurrency: usize,
    /// `--rate-per-sec` and `--rate-burst`: per principal (the token's
    /// `sub`; the peer's IP address without `--auth-key`).
    pub rate: Option<Rate>,
    /// `--max-watchers`: `GET /watch` requests waiting at once (outside
    /// `concurrency`); past it a watch is answered 503 `overloaded`.
    pub max_watchers: usize,
}

/// A sustained rate and a burst, per principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Syncs per second, sustained.
    pub per_sec: NonZeroU32,
    /// Syncs allowed at once after a quiet spell.
    pub burst: NonZeroU32,
}

/// Default `--max-body`: 16 MiB (a device's upload of millions of cells).
pub const DEFAULT_MAX_BODY: usize = 16 << 20;
/// Default `--max-in-flight`: 16 MiB, so hostile requests together cannot
/// make the hub allocate more than 8 GiB while they are decoded.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16 << 20;
/// Default `--header-timeout` in seconds.
pub const DEFAULT_HEADER_TIMEOUT_SECS: f64 = 10.0;
/// Default `--request-timeout` in seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: f64 = 120.0;
/// Default `--max-connections` (keep it under the process's open-file
/// limit, `ulimit -n`, typically 1,024).
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default `--concurrency`.
pub const DEFAULT_CONCURRENCY: usize = 256;
/// Default `--rate-per-sec` when `--auth-key` is given (without it, no
/// rate limit unless asked for).
pub const DEFAULT_RATE_PER_SEC: u32 = 10;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: DEFAULT_MAX_BODY,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            header_timeout: Duration::from_secs_f64(DEFAULT_HEADER_TIMEOUT_SECS),
            request_timeout: Duration::from_secs_f64(DEFAULT_REQUEST_TIMEOUT_SECS),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            concurrency: DEFAULT_CONCURRENCY,
            rate: None,
            max_watchers: super::watch::DEFAULT_MAX_WATCHERS,
        }
    }
}

/// The budget of `--max-in-flight`: request bytes being decoded and
/// answered at once, counted in KiB.
#[derive(Debug, Clone)]
pub struct InFlight {
    kib: Arc<Semaphore>,
    total: u32,
}

/// A request's share of [`InFlight`], given back when dropped.
#[derive(Debug)]
pub struct Share {
    _permits: OwnedSemaphorePermit,
}

impl InFlight {
    /// A budget of `bytes` (at least 1 KiB).
    pub fn new(bytes: usize) -> Self {
        let total = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        InFlight {
            kib: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Wait until `bytes` of the budget are free and hold them (at most the
    /// whole budget: serve refuses `--max-in-flight` below `--max-body`).
    pub async fn reserve(&self, bytes: usize) -> Share {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total);
        let permits = Arc::clone(&self.kib)
            .acquire_many_owned(kib)
            .await
            .expect("the in-flight semaphore is never closed");
        Share { _permits: permits }
    }
}

/// Per-principal rate limits.
#[derive(Debug)]
pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl RateLimits {
    /// Limits of `rate` per key.
    pub fn new(rate: Rate) -> Self {
        let quota = Quota::per_second(rate.per_sec).allow_burst(rate.burst);
        RateLimits {
            limiter: RateLimiter::keyed(quota),
        }
    }

    /// Count one request of `key`.
    ///
    /// # Errors
    /// `rate_limited`, with when to retry.
    pub fn check(&self, key: &str) -> Result<(), Failure> {
        self.limiter
            .check_key(&key.to_string())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                Failure::new(
                    Code::RateLimited,
                    "too many syncs from this principal: retry after the time in Retry-After",
                )
                .detail(format!("rate limit, next allowed in {wait:?}"))
                .retry_after(wait)
            })
    }

    /// Forget keys whose budget is full again (call now and then: the
    /// table would otherwise keep every principal ever seen).
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// The service every connection runs: the router behind the per-request
/// limits.
pub type HttpService = BoxCloneService<Request, Response, Infallible>;

/// Wrap `router` in the per-request limits of `limits`, outermost first:
/// panics → 500 `internal`; tower errors → JSON replies; load shedding
/// (503 `overloaded`) over a concurrency limit; the whole-request timeout
/// (408 `timeout`). One concurrency limit for all of `router`'s routes.
///
/// Requests for a path of `waiting` (routes that hold a request while
/// they wait for news, and bound their own wait and number, such as
/// `GET /watch`) go to `waiting` instead, behind the panic guard only.
pub fn harden(router: Router, waiting: (&'static str, Router), limits: &Limits) -> HttpService {
    let timeout = limits.request_timeout;
    let limited = ServiceBuilder::new()
        .map_response(|r: axum::http::Response<_>| r.map(Body::new))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .layer(HandleErrorLayer::new(
            move |peer: Option<Extension<Peer>>, err: BoxError| async move {
                on_error(peer.map(|p| p.0), err, timeout)
            },
        ))
        .load_shed()
        .concurrency_limit(limits.concurrency)
        .timeout(timeout)
        .service(router)
        .boxed_clone();
    let (path, waiting) = waiting;
    let waiting: HttpService = ServiceBuilder::new()
        .map_response(|r: axum::http::Response<_>| r.map(Body::new))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(on_panic))
        .service(waiting)
        .boxed_clone();
    tower::service_fn(move |request: Request| {
        let service = if request.uri().path() == path {
            waiting.clone()
        } else {
            limited.clone()
        };
        service.oneshot(request)
    })
    .boxed_clone()
}

fn on_panic(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    Failure::new(Code::Internal, "internal error")
        .detail(format!("panic: {what}"))
        .reply("principal=- peer=-")
}

fn on_error(peer: Option<Peer>, err: BoxError, timeout: Duration) -> Response {
    let who = format!(
        "principal=- peer={}",
        peer.map_or("-".to_string(), |p| p.0.to_string())
    );
    if err.is::<tower::load_shed::error::Overloaded>() {
        Failure::new(
            Code::Overloaded,
            "the hub is at its concurrency limit: retry shortly",
        )
        .retry_after(Duration::from_secs(1))
        .reply(&who)
    } else if err.is::<tower::timeout::error::Elapsed>() {
        Failure::new(
            Code::Timeout,
            format!("the request took longer than {} s", timeout.as_secs_f64()),
        )
        .reply(&who)
    } else {
        Failure::new(Code::Internal, "internal error")
            .detail(err.to_string())
            .reply(&who)
    }
    .into_response()
}
