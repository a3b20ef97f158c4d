//! `atomik serve`: a thin HTTP endpoint in front of a hub database, so that
//! mobile apps have a real place to sync with.
//!
//! * `POST /sync` — body: the bytes of `atomik_sync_request()`; answer: the
//!   bytes of `atomik_sync(request)` (`application/octet-stream`). Every
//!   failure answers `{"error":"<code>","message":"…"}` (`errors.rs`) and
//!   the hub applies nothing of the request.
//! * `GET /health` — `ok`, the version, and the hub's site id (no cells).
//! * `GET /watch?after=N` — a long poll that answers `{"position":P}` once
//!   the hub's log is past `N` (`watch.rs`): live push for online devices.
//!
//! With `--auth-key`, a sync carries `Authorization: Bearer <token>`
//! (`auth.rs`): serve verifies it, decodes the request itself and refuses a
//! request of another site than the token's, uploads of other origins
//! from a principal that is not a relay, or writes of columns outside the
//! token's `atomik_write` scope, before the hub sees a byte; the answer
//! loses every cell of a column outside its `atomik_read` scope
//! (`scope.rs`).
//! Without `--auth-key`, serve listens on loopback addresses only (unless
//! `--insecure-no-auth`). TLS (`tls.rs`), connection and request limits
//! (`listener.rs`, `limits.rs`).

/// One line on stderr, like `eprintln!`, except that a closed stderr (a
/// parent that stopped reading) is ignored instead of panicking.
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod args;
mod auth;
mod backend;
mod errors;
mod limits;
mod listener;
mod scope;
#[cfg(test)]
mod tests;
pub(crate) mod tls;
mod watch;

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use atomik_core::codec::v2::decode_request;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};

pub use args::ServeArgs;
pub use auth::{
    mint_hmac, parse_alg, read_secret, validate_role, AuthOptions, Claims, Principal, Verifier,
};
pub use backend::Backend;
pub use errors::{Code, Failure};
pub use limits::{InFlight, Limits, RateLimits};
pub use listener::Peer;
pub use scope::Scope;
pub use watch::{LogWatch, DEFAULT_WAIT_SECS as WATCH_WAIT_SECS};

use crate::hub::HubUrl;

/// Everything `atomik serve` is told besides the hub.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// `--listen`.
    pub listen: String,
    /// `--pool`: connections to a PostgreSQL hub.
    pub pool: usize,
    /// `--auth-key` and the `--auth-*` options.
    pub auth: Option<(PathBuf, AuthOptions)>,
    /// `--insecure-no-auth`: listen beyond loopback without tokens.
    pub insecure_no_auth: bool,
    /// `--tls-cert` and `--tls-key`.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// The limits.
    pub limits: Limits,
}

/// `--max-body`, for the check of a request's announced length, and the
/// budget of `--max-in-flight`.
#[derive(Debug, Clone)]
struct BodyLimits {
    max_body: usize,
    in_flight: InFlight,
}

/// What one running `atomik serve` shares between requests.
#[derive(Debug, Clone)]
pub struct ServeState {
    /// The hub.
    pub backend: Backend,
    /// The token verifier, with `--auth-key`.
    pub auth: Option<Arc<Verifier>>,
    /// Per-principal rate limits, if any.
    pub rate: Option<Arc<RateLimits>>,
    /// The hub log's position and the watches waiting on it.
    pub watch: LogWatch,
}

/// Refuse to listen beyond loopback without authentication.
///
/// # Errors
/// A listen address that does not resolve, or one that is not loopback
/// while there is no `--auth-key` and no `--insecure-no-auth`.
pub fn check_listen(listen: &str, authenticated: bool, insecure_no_auth: bool) -> Result<()> {
    let addrs: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .with_context(|| format!("--listen {listen} is not an address"))?
        .collect();
    let exposed = addrs.iter().any(|a| !a.ip().is_loopback());
    if exposed && !authenticated && !insecure_no_auth {
        bail!(
            "refusing to listen on {listen} without --auth-key: anyone who can reach a \
             non-loopback address could write as any device. Give --auth-key FILE (see \
             README, Security), listen on 127.0.0.1, or pass --insecure-no-auth if every \
             client that can reach this address is trusted"
        );
    }
    Ok(())
}

/// The router: `POST /sync`, `GET /health`, JSON 404 for anything else;
/// bodies over `limits.max_body` bytes are refused (413), and a request
/// body waits for its share of `limits.max_in_flight` before it is decoded.
pub fn router(state: ServeState, limits: &Limits) -> Router {
    Router::new()
        .route("/sync", post(sync))
        .route("/health", get(health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limits.max_body))
        .layer(Extension(BodyLimits {
            max_body: limits.max_body,
            in_flight: InFlight::new(limits.max_in_flight),
        }))
        .with_state(state)
}

/// The shared state of a serve over `backend` with `options`' key and
/// rate limits (the default rate with `--auth-key`).
///
/// # Errors
/// An auth key that cannot be loaded.
pub fn state(backend: Backend, options: &ServeOptions) -> Result<ServeState> {
    let auth = match &options.auth {
        Some((path, o)) => Some(Arc::new(Verifier::load(path, o)?)),
        None => None,
    };
    Ok(ServeState {
        backend,
        auth,
        rate: options.limits.rate.map(|r| Arc::new(RateLimits::new(r))),
        watch: LogWatch::new(options.limits.max_watchers),
    })
}

/// Serve `state` on `listener` with `limits` (and TLS if given) until
/// `shutdown` completes.
///
/// # Errors
/// As [`listener::serve`].
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: ServeState,
    limits: &Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    if let Some(rate) = state.rate.clone() {
        // Forget principals whose budget is full again, now and then.
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                rate.forget_idle();
            }
        });
    }
    if let Backend::Pool(_, config) = &state.backend {
        tokio::spawn(watch::publisher(state.backend.clone(), state.watch.clone()));
        tokio::spawn(watch::listener((**config).clone(), state.watch.clone()));
    }
    let waiting = Router::new()
        .route("/watch", get(watch::watch))
        .with_state(state.clone());
    let service = limits::harden(router(state, limits), ("/watch", waiting), limits);
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    listener::serve(listener, service, tls, limits, shutdown).await
}

/// Serve `hub` with `options` until interrupted.
///
/// # Errors
/// The hub, key or certificate cannot be opened, the address cannot be
/// bound, or it is not loopback and there is no authentication.
pub fn run(hub: &HubUrl, options: &ServeOptions) -> Result<()> {
    check_listen(
        &options.listen,
        options.auth.is_some(),
        options.insecure_no_auth,
    )?;
    let tls = match &options.tls {
        Some((cert, key)) => Some(tls::server_config(cert, key)?),
        None => None,
    };
    let backend = match hub {
        HubUrl::Postgres(url) => Backend::postgres(url, options.pool)?,
        other => Backend::local(other.open_local()?),
    };
    let state = state(backend, options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&options.listen)
            .await
            .with_context(|| format!("cannot listen on {}", options.listen))?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        // The first line names the URL last: scripts and tests read it.
        log!("atomik serve: {hub:?} on {scheme}://{addr}");
        describe(&state, options, addr);
        serve_on(listener, state, &options.limits, tls, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })
}

/// Say on stderr how this serve is protected (after the first line).
fn describe(state: &ServeState, options: &ServeOptions, addr: SocketAddr) {
    match &state.auth {
        Some(v) => log!(
            "atomik serve: POST /sync needs a bearer token signed with {:?}",
            v.algorithm()
        ),
        None if addr.ip().is_loopback() => {
            log!("atomik serve: no --auth-key: any local process can write as any device")
        }
        None => log!(
            "atomik serve: --insecure-no-auth: anyone who reaches {addr} can write as any device"
        ),
    }
    if state.auth.is_some() && options.tls.is_none() && !addr.ip().is_loopback() {
        log!("atomik serve: no --tls-cert: tokens travel in clear unless a TLS proxy is in front");
    }
    let l = &options.limits;
    let rate = l.rate.map_or("off".to_string(), |r| {
        format!("{}/s burst {}", r.per_sec, r.burst)
    });
    log!(
        "atomik serve: limits: body {} B, {} B of bodies in flight, header {:?}, request {:?}, {} connections, {} in flight, {} watches, rate {rate}",
        l.max_body, l.max_in_flight, l.header_timeout, l.request_timeout, l.max_connections, l.concurrency, l.max_watchers
    );
}

/// Who a request is from, for the log.
fn who(principal: Option<&Principal>, peer: Option<Peer>) -> String {
    let peer = peer.map_or("-".to_string(), |p| p.0.to_string());
    match principal {
        Some(p) => format!("principal={:?} site={} peer={peer}", p.sub, p.site),
        None => format!("principal=- peer={peer}"),
    }
}

/// Admit a request by its headers: its token (with `--auth-key`), then its
/// principal's rate. The principal and who it is, for the log; or the
/// refusal, already logged.
fn admit(
    state: &ServeState,
    headers: &axum::http::HeaderMap,
    peer: Option<Peer>,
) -> Result<(Option<Principal>, String), Box<Response>> {
    let principal = match &state.auth {
        Some(verifier) => match verifier.authenticate(headers) {
            Ok(p) => Some(p),
            Err(f) => return Err(Box::new(f.reply(&who(None, peer)))),
        },
        None => None,
    };
    let who = who(principal.as_ref(), peer);
    if let Some(rate) = &state.rate {
        let key = match (&principal, peer) {
            (Some(p), _) => p.sub.clone(),
            (None, Some(peer)) => peer.0.ip().to_string(),
            (None, None) => "-".to_string(),
        };
        if let Err(f) = rate.check(&key) {
            return Err(Box::new(f.reply(&who)));
        }
    }
    Ok((principal, who))
}

/// The request's `Content-Length`, when it has one that is a number.
fn announced_length(headers: &axum::http::HeaderMap) -> Option<usize> {
    let value = headers.get(header::CONTENT_LENGTH)?;
    // Past usize is past any limit.
    Some(
        value
            .to_str()
            .ok()?
            .trim()
            .parse::<u128>()
            .ok()?
            .try_into()
            .unwrap_or(usize::MAX),
    )
}

/// `POST /sync`: authenticate (headers only), rate-limit, read the body,
/// wait for its share of the in-flight budget, check the request against
/// the token (identity, write scope), hand it to the hub, and send down
/// what the token's read scope lets through.
async fn sync(
    State(state): State<ServeState>,
    peer: Option<Extension<Peer>>,
    Extension(BodyLimits {
        max_body,
        in_flight,
    }): Extension<BodyLimits>,
    request: Request,
) -> Response {
    let (principal, who) = match admit(&state, request.headers(), peer.map(|p| p.0)) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    // A body announced past the limit is refused before any of it is read
    // (the body limit alone would read up to the limit first).
    if let Some(announced) = announced_length(request.headers()).filter(|n| *n > max_body) {
        return Failure::new(
            Code::TooLarge,
            format!("the request announces {announced} bytes; this hub accepts at most {max_body}"),
        )
        .reply(&who);
    }
    let body = match Bytes::from_request(request, &state).await {
        Ok(b) => b,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Failure::new(
                Code::TooLarge,
                "the request is larger than this hub accepts",
            )
            .detail(rejection.body_text())
            .reply(&who)
        }
        Err(rejection) => {
            return Failure::new(Code::BadRequest, "the request body could not be read")
                .detail(rejection.body_text())
                .reply(&who)
        }
    };
    if body.is_empty() {
        return Failure::new(
            Code::BadRequest,
            "empty request: POST the bytes of atomik_sync_request()",
        )
        .reply(&who);
    }
    // Held until the answer is built: decoding the body (here and in the
    // hub) may take up to 512x its size. Taken once the body is in, so a
    // body that trickles in holds none of the budget.
    let _share = in_flight.reserve(body.len()).await;
    let (role, read) = match principal {
        Some(p) => {
            let decoded = match decode_request(&body) {
                Ok(r) => r,
                Err(e) => {
                    return Failure::new(Code::Refused, errors::safe_message(&e.to_string()))
                        .reply(&who)
                }
            };
            let checked = auth::check_request(&p, &decoded)
                .and_then(|()| scope::check_writes(&p.write, &decoded));
            if let Err(f) = checked {
                return f.reply(&who);
            }
            (p.role, p.read)
        }
        None => (None, Scope::all()),
    };
    let answer = match state.backend.sync(body, role).await {
        Ok((bytes, position)) => {
            match position {
                Some(p) => state.watch.advance(p),
                None => state.watch.ring(),
            }
            readable(read, bytes).await
        }
        Err(f) => Err(f),
    };
    match answer {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
        Err(f) => f.reply(&who),
    }
}

/// The hub's answer as `read` lets it down ([`scope::filter_response`]),
/// off the async threads when it has to be decoded (a snapshot may be the
/// whole hub).
async fn readable(read: Scope, bytes: Vec<u8>) -> Result<Vec<u8>, Failure> {
    if read.is_all() {
        return Ok(bytes);
    }
    tokio::task::spawn_blocking(move || scope::filter_response(&read, bytes))
        .await
        .unwrap_or_else(|e| {
            Err(Failure::new(Code::Internal, "internal error")
                .detail(format!("read filter task failed: {e}")))
        })
}

/// `GET /health`.
async fn health(State(state): State<ServeState>, peer: Option<Extension<Peer>>) -> Response {
    match state.backend.site_id().await {
        Ok(site) => format!("ok atomik {} site {site}\n", atomik_core::VERSION).into_response(),
        Err(f) => f.reply(&who(None, peer.map(|p| p.0))),
    }
}

async fn not_found(peer: Option<Extension<Peer>>, request: Request) -> Response {
    Failure::new(
        Code::NotFound,
        "no such endpoint: POST /sync, GET /watch or GET /health",
    )
    .detail(format!("{} {}", request.method(), request.uri().path()))
    .reply(&who(None, peer.map(|p| p.0)))
}
