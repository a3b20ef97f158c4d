//! The accept loop of `atomik serve`: hyper's HTTP/1.1 server with a
//! header read timeout (which also closes idle kept-alive connections), a
//! cap on open connections (a semaphore: past it, new connections wait in
//! the kernel's accept queue), optional TLS (tokio-rustls, the handshake
//! bounded by the header timeout), and a graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use axum::body::Body;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

use super::limits::{HttpService, Limits};

/// The address a request came from (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// How long open connections get to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);

/// Serve `service` on `listener` until `shutdown` completes, then let open
/// connections finish their requests (at most 10 s).
///
/// # Errors
/// None today: accept errors (out of file descriptors) are logged and
/// retried after a pause.
pub async fn serve(
    listener: TcpListener,
    service: HttpService,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            p = slots.clone().acquire_owned() => p?,
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    log!("atomik serve: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            http: http.clone(),
            service: service.clone(),
            peer: Peer(peer),
            watcher: graceful.watcher(),
        };
        let tls = tls.clone();
        let handshake = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            connection.run(stream, tls, handshake).await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    Ok(())
}

/// One accepted connection.
struct Connection {
    http: hyper::server::conn::http1::Builder,
    service: HttpService,
    peer: Peer,
    watcher: Watcher,
}

impl Connection {
    async fn run(
        self,
        stream: TcpStream,
        tls: Option<tokio_rustls::TlsAcceptor>,
        handshake: Duration,
    ) {
        match tls {
            None => self.http(stream).await,
            Some(acceptor) => {
                if let Ok(Ok(stream)) =
                    tokio::time::timeout(handshake, acceptor.accept(stream)).await
                {
                    self.http(stream).await;
                }
            }
        }
    }

    async fn http<IO>(self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let service =
            self.service
                .map_request(move |req: axum::http::Request<hyper::body::Incoming>| {
                    let mut req = req.map(Body::new);
                    req.extensions_mut().insert(peer);
                    req
                });
        let conn = self
            .http
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        // Header timeouts and peers that vanish end here; nothing to log.
        let _ = self.watcher.watch(conn).await;
    }
}
