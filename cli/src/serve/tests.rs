//! `atomik serve` over real HTTP on loopback, with a SQLite hub: devices
//! converge; tokens, site and origin checks, write and read scopes, rate
//! limits, timeouts, connection caps, load shedding and TLS.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atomik_core::codec::v2::{decode_request, encode_request, Request as SyncRequest};
use atomik_core::SiteId;
use jsonwebtoken::Algorithm;

use super::limits::Rate;
use super::*;
use crate::hub::{exchange, exchange_with, HttpOptions, HubUrl};
use crate::replica::{Replica, SqliteReplica};

const SECRET: &[u8] = b"test secret: 32 bytes or more, ok";

/// `atomik serve` on a loopback port, in its own runtime; stopped (and
/// its runtime shut down) when dropped.
struct TestServer {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    fn start(
        hub: Box<dyn Replica + Send>,
        auth: bool,
        limits: Limits,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let state = ServeState {
            backend: Backend::local(hub),
            auth: auth.then(|| {
                Arc::new(Verifier::from_key_bytes(SECRET, &AuthOptions::default()).unwrap())
            }),
            rate: limits.rate.map(|r| Arc::new(RateLimits::new(r))),
            watch: LogWatch::new(limits.max_watchers),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let scheme = if tls.is_some() { "https" } else { "http" };
        runtime.spawn(async move {
            serve_on(listener, state, &limits, tls, async {
                let _ = stopped.await;
            })
            .await
        });
        TestServer {
            url: format!("{scheme}://{addr}"),
            stop: Some(stop),
            runtime: Some(runtime),
        }
    }

    fn hub(&self) -> HubUrl {
        HubUrl::parse(&self.url).unwrap()
    }

    fn addr(&self) -> String {
        self.url.split("://").nth(1).unwrap().to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// A reply: status, the JSON code (if any), message, Retry-After.
#[derive(Debug)]
struct Reply {
    status: u16,
    code: String,
    message: String,
    retry_after: Option<String>,
}

fn reply(answer: Result<ureq::Response, ureq::Error>) -> Reply {
    let resp = match answer {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let status = resp.status();
    let retry_after = resp.header("Retry-After").map(str::to_string);
    let text = resp.into_string().unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    Reply {
        status,
        code: json["error"].as_str().unwrap_or("").to_string(),
        message: json["message"].as_str().unwrap_or(&text).to_string(),
        retry_after,
    }
}

fn post(server: &TestServer, body: &[u8], token: Option<&str>) -> Reply {
    let mut req = ureq::post(&format!("{}/sync", server.url));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    reply(req.send_bytes(body))
}

fn claims(sub: &str, site: &str) -> Claims {
    Claims {
        sub: sub.to_string(),
        exp: crate::hub::now_secs() + 600,
        atomik_site: Some(site.to_string()),
        atomik_relay: false,
        role: None,
        atomik_write: None,
        atomik_read: None,
    }
}

fn token(sub: &str, site: &str) -> String {
    mint_hmac(SECRET, Algorithm::HS256, &claims(sub, site)).unwrap()
}

/// One sync of `device` through `hub`; the deltas it applied.
fn sync_with(device: &mut SqliteReplica, hub: &HubUrl, options: &HttpOptions) -> Result<u64> {
    let req = device.sync_request(0)?;
    let resp = exchange_with(hub, &req, options)?;
    device.finish_sync(&resp, 0)
}

fn sync(device: &mut SqliteReplica, hub: &HubUrl) -> u64 {
    let req = device.sync_request(0).unwrap();
    let resp = exchange(hub, &req).unwrap();
    device.finish_sync(&resp, 0).unwrap()
}

fn as_token(t: &str) -> HttpOptions {
    HttpOptions {
        token: Some(t.to_string()),
        ca_file: None,
    }
}

/// What a hub file holds, read on a connection of its own: every cell's
/// value, the registry and the number of log entries.
#[derive(Debug, PartialEq, Eq)]
struct HubState {
    values: Vec<(i64, i64)>,
    registry: Vec<(String, i64)>,
    log: i64,
}

fn hub_state(path: &Path) -> HubState {
    let conn = rusqlite::Connection::open(path).unwrap();
    sqlite_atomik::register(&conn).unwrap();
    let rows = |sql: &str| -> Vec<(rusqlite::types::Value, i64)> {
        let mut st = conn.prepare(sql).unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let values = rows("SELECT sku, atomik_read(qty) FROM inventory ORDER BY sku")
        .into_iter()
        .map(|(k, v)| match k {
            rusqlite::types::Value::Integer(k) => (k, v),
            other => panic!("{other:?}"),
        })
        .collect();
    let registry = rows("SELECT hex(site), seq FROM atomik_registry ORDER BY site")
        .into_iter()
        .map(|(s, seq)| match s {
            rusqlite::types::Value::Text(s) => (s.to_lowercase(), seq),
            other => panic!("{other:?}"),
        })
        .collect();
    let log = conn
        .query_row("SELECT count(*) FROM atomik_log", [], |r| r.get(0))
        .unwrap();
    HubState {
        values,
        registry,
        log,
    }
}

fn reads(device: &mut SqliteReplica) -> Vec<(i64, [u8; 17])> {
    device.values().unwrap()
}

/// A hub file, and its path.
fn new_hub(dir: &Path) -> (Box<dyn Replica + Send>, PathBuf) {
    let path = dir.join("hub.sqlite");
    (Box::new(SqliteReplica::open(&path).unwrap()), path)
}

fn small_limits() -> Limits {
    Limits {
        max_body: 1 << 20,
        ..Limits::default()
    }
}

#[test]
fn devices_converge_through_http() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _) = new_hub(dir.path());
    let server = TestServer::start(hub, false, small_limits(), None);
    let hub_url = server.hub();
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
    let health = ureq::get(&format!("{}/health", server.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(health.starts_with("ok atomik"), "{health}");
    let missing = reply(ureq::get(&format!("{}/nope", server.url)).call());
    assert_eq!((missing.status, missing.code.as_str()), (404, "not_found"));
}

#[test]
fn bad_requests_get_a_code_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, hub_path) = new_hub(dir.path());
    let limits = Limits {
        max_body: 1024,
        ..Limits::default()
    };
    let server = TestServer::start(hub, false, limits, None);
    let before = hub_state(&hub_path);
    let r = post(&server, b"", None);
    assert_eq!((r.status, r.code.as_str()), (400, "bad_request"));
    assert!(r.message.contains("empty request"), "{r:?}");
    let r = post(&server, b"GET / HTTP/1.1 definitely not atomik", None);
    assert_eq!((r.status, r.code.as_str()), (422, "refused"), "{r:?}");
    assert!(r.message.contains("not an atomik message"), "{r:?}");
    assert!(
        !r.message.contains("atomik_sync") && !r.message.contains('\n'),
        "one short line, no error chain: {r:?}"
    );
    let r = post(&server, &vec![0u8; 4096], None);
    assert_eq!((r.status, r.code.as_str()), (413, "too_large"), "{r:?}");
    assert_eq!(hub_state(&hub_path), before);
    // The hub still serves a real device afterwards, from scratch.
    let mut d = SqliteReplica::open(&dir.path().join("d.sqlite")).unwrap();
    d.accum(3, 1).unwrap();
    assert_eq!(
        sync(&mut d, &server.hub()),
        1,
        "a first sync: a snapshot of its own cell"
    );
}

#[test]
fn forged_origin_is_refused_and_honest_devices_still_converge() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, hub_path) = new_hub(dir.path());
    let server = TestServer::start(hub, true, small_limits(), None);
    let mut a = SqliteReplica::open(&dir.path().join("a.sqlite")).unwrap();
    let mut b = SqliteReplica::open(&dir.path().join("b.sqlite")).unwrap();
    let (site_a, site_b) = (a.site_id().unwrap(), b.site_id().unwrap());
    let (token_a, token_b) = (token("device-a", &site_a), token("device-b", &site_b));
    a.accum(1, 5).unwrap();
    sync_with(&mut a, &server.hub(), &as_token(&token_a)).unwrap();
    b.accum(1, 7).unwrap();
    b.accum(2, 3).unwrap();
    let before = hub_state(&hub_path);

    // A, holding its own token, sends B's batch (B's site, B's next seq)
    // as if relaying it: refused before the hub sees it.
    let b_request = decode_request(&b.sync_request(0).unwrap()).unwrap();
    assert!(!b_request.uploads.is_empty());
    let forged = SyncRequest {
        site: site_a.parse().unwrap(),
        relays: true,
        cursor: None,
        uploads: b_request.uploads.clone(),
    };
    let r = post(&server, &encode_request(&forged), Some(&token_a));
    assert_eq!((r.status, r.code.as_str()), (403, "forged_origin"), "{r:?}");
    // B's own request bytes, with A's token: another site.
    let b_bytes = encode_request(&b_request);
    let r = post(&server, &b_bytes, Some(&token_a));
    assert_eq!(
        (r.status, r.code.as_str()),
        (403, "forbidden_site"),
        "{r:?}"
    );
    // A asking as a relay, uploading only its own: not a relay.
    let relay_ask = SyncRequest {
        site: site_a.parse().unwrap(),
        relays: true,
        cursor: None,
        uploads: vec![],
    };
    let r = post(&server, &encode_request(&relay_ask), Some(&token_a));
    assert_eq!((r.status, r.code.as_str()), (403, "not_a_relay"), "{r:?}");
    assert_eq!(hub_state(&hub_path), before, "nothing reached the hub");

    // The honest devices converge, exactly: B's batch is applied once, as
    // B's.
    let with = |t: &str| as_token(t);
    sync_with(&mut b, &server.hub(), &with(&token_b)).unwrap();
    sync_with(&mut a, &server.hub(), &with(&token_a)).unwrap();
    sync_with(&mut b, &server.hub(), &with(&token_b)).unwrap();
    let after = hub_state(&hub_path);
    assert_eq!(after.values, vec![(1, 12), (2, 3)]);
    assert_eq!(
        after.registry,
        {
            let mut r = vec![(site_a.clone(), 1), (site_b.clone(), 1)];
            r.sort();
            r
        },
        "one batch per device, each under its own origin"
    );
    assert_eq!(reads(&mut a), reads(&mut b));
    assert_eq!(a.digest().unwrap(), b.digest().unwrap());
}

#[test]
fn missing_expired_and_wrongly_signed_tokens_get_401() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, hub_path) = new_hub(dir.path());
    let server = TestServer::start(hub, true, small_limits(), None);
    let mut a = SqliteReplica::open(&dir.path().join("a.sqlite")).unwrap();
    let site = a.site_id().unwrap();
    a.accum(1, 1).unwrap();
    let request = a.sync_request(0).unwrap();
    let before = hub_state(&hub_path);
    let expired = mint_hmac(
        SECRET,
        Algorithm::HS256,
        &Claims {
            exp: crate::hub::now_secs() - 3600,
            ..claims("a", &site)
        },
    )
    .unwrap();
    let other_key = mint_hmac(&[9u8; 32], Algorithm::HS256, &claims("a", &site)).unwrap();
    let no_site = mint_hmac(
        SECRET,
        Algorithm::HS256,
        &Claims {
            atomik_site: None,
            ..claims("a", &site)
        },
    )
    .unwrap();
    for (what, t) in [
        ("missing", None),
        ("expired", Some(expired.as_str())),
        ("wrongly signed", Some(other_key.as_str())),
        ("garbage", Some("not.a.jwt")),
        ("no atomik_site", Some(no_site.as_str())),
    ] {
        let r = post(&server, &request, t);
        assert_eq!(
            (r.status, r.code.as_str()),
            (401, "unauthenticated"),
            "{what}: {r:?}"
        );
    }
    let r = reply(
        ureq::post(&format!("{}/sync", server.url))
            .set("Authorization", "Basic YTpi")
            .send_bytes(&request),
    );
    assert_eq!(r.status, 401);
    assert_eq!(hub_state(&hub_path), before);
    // The client shows the code and message.
    let err = sync_with(&mut a, &server.hub(), &HttpOptions::default()).unwrap_err();
    assert!(err.to_string().contains("(401 unauthenticated)"), "{err:#}");
    // And a valid token syncs.
    sync_with(&mut a, &server.hub(), &as_token(&token("a", &site))).unwrap();
    assert_eq!(hub_state(&hub_path).values, vec![(1, 1)]);
}

#[test]
fn a_relay_token_may_upload_other_origins() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, hub_path) = new_hub(dir.path());
    let server = TestServer::start(hub, true, small_limits(), None);
    let mut b = SqliteReplica::open(&dir.path().join("b.sqlite")).unwrap();
    let site_b = b.site_id().unwrap();
    b.accum(4, 40).unwrap();
    let b_request = decode_request(&b.sync_request(0).unwrap()).unwrap();
    let relay = SiteId::random().unwrap();
    let relayed = SyncRequest {
        site: relay,
        relays: true,
        cursor: None,
        uploads: b_request.uploads.clone(),
    };
    // As a device's token: forged. As a relay's: carried.
    let r = post(
        &server,
        &encode_request(&relayed),
        Some(&token("relay", &relay.to_string())),
    );
    assert_eq!((r.status, r.code.as_str()), (403, "forged_origin"), "{r:?}");
    let relay_token = mint_hmac(
        SECRET,
        Algorithm::HS256,
        &Claims {
            atomik_relay: true,
            ..claims("relay", &relay.to_string())
        },
    )
    .unwrap();
    let r = post(&server, &encode_request(&relayed), Some(&relay_token));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(hub_state(&hub_path).registry, vec![(site_b.clone(), 1)]);
    // B's own upload of the same batch is a harmless duplicate.
    sync_with(&mut b, &server.hub(), &as_token(&token("b", &site_b))).unwrap();
    let state = hub_state(&hub_path);
    assert_eq!(state.values, vec![(4, 40)]);
    assert_eq!(state.registry, vec![(site_b, 1)]);
}

#[test]
fn a_principal_over_its_rate_gets_429() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _) = new_hub(dir.path());
    let limits = Limits {
        rate: Some(Rate {
            per_sec: NonZeroU32::new(1).unwrap(),
            burst: NonZeroU32::new(2).unwrap(),
        }),
        ..small_limits()
    };
    let server = TestServer::start(hub, true, limits, None);
    let site = SiteId::random().unwrap().to_string();
    let t = token("busy", &site);
    // Empty bodies: the rate is counted before the body is read. The
    // burst passes; the next is refused (within a second, as long as the
    // machine is not very slow: up to 10 tries).
    assert_eq!(post(&server, b"", Some(&t)).status, 400);
    assert_eq!(post(&server, b"", Some(&t)).status, 400);
    let r = (0..10)
        .map(|_| post(&server, b"", Some(&t)))
        .find(|r| r.status != 400)
        .expect("a 429 within 10 tries");
    assert_eq!((r.status, r.code.as_str()), (429, "rate_limited"), "{r:?}");
    let after: u64 = r.retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&after), "{after}");
    // Another principal has its own budget.
    let other = token("quiet", &SiteId::random().unwrap().to_string());
    assert_eq!(post(&server, b"", Some(&other)).status, 400);
}

/// Wait until the server closes `stream` (EOF or reset); how long it took.
fn time_to_close(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("still open after {:?}: {e}", start.elapsed()),
        }
    }
}

#[test]
fn a_slow_header_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _) = new_hub(dir.path());
    let limits = Limits {
        header_timeout: Duration::from_millis(300),
        ..small_limits()
    };
    let server = TestServer::start(hub, false, limits, None);
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    slow.write_all(b"POST /sync HTTP/1.1\r\nHost: x\r\nContent-Le")
        .unwrap();
    // Still open well before the timeout...
    slow.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let early = slow.read(&mut [0u8; 16]).unwrap_err();
    assert!(
        matches!(
            early.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{early}"
    );
    // ...closed soon after it.
    let closed = time_to_close(&mut slow, Duration::from_secs(3));
    assert!(closed < Duration::from_secs(2), "{closed:?}");
    // A kept-alive connection that stays idle is closed the same way.
    let mut idle = TcpStream::connect(server.addr()).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let closed = time_to_close(&mut idle, Duration::from_secs(3));
    assert!(closed < Duration::from_secs(2), "{closed:?}");
}

#[test]
fn idle_connections_beyond_the_cap_do_not_stop_health() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _) = new_hub(dir.path());
    let limits = Limits {
        header_timeout: Duration::from_millis(250),
        max_connections: 4,
        ..small_limits()
    };
    let server = TestServer::start(hub, false, limits, None);
    // Five times the cap of connections that never send a byte.
    let idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(server.addr()).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let start = Instant::now();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(8))
        .build();
    let health = agent
        .get(&format!("{}/health", server.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(health.starts_with("ok atomik"), "{health}");
    // 20 idle connections, 4 at a time, each closed after 250 ms.
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    drop(idle);
}

/// Open a connection that sends a request's headers and part of its body,
/// then stalls.
fn stalled_upload(server: &TestServer) -> TcpStream {
    let mut slow = TcpStream::connect(server.addr()).unwrap();
    slow.write_all(b"POST /sync HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nAK")
        .unwrap();
    slow
}

#[test]
fn requests_past_the_concurrency_limit_are_shed() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _) = new_hub(dir.path());
    let limits = Limits {
        concurrency: 1,
        request_timeout: Duration::from_secs(30),
        ..small_limits()
    };
    let server = TestServer::start(hub, false, limits, None);
    // A request whose body never finishes holds the one slot, so another
    // is shed at once. (If the other came first, the stalled one was shed
    // instead: try again, up to 5 s.)
    let health = || reply(ureq::get(&format!("{}/health", server.url)).call());
    let deadline = Instant::now() + Duration::from_secs(5);
    let (slow, r) = loop {
        let slow = stalled_upload(&server);
        std::thread::sleep(Duration::from_millis(100));
        let r = health();
        if r.status != 200 || Instant::now() > deadline {
            break (slow, r);
        }
    };
    assert_eq!((r.status, r.code.as_str()), (503, "overloaded"), "{r:?}");
    assert_eq!(r.retry_after.as_deref(), Some("1"));
    // Once it goes away, the slot is free again.
    drop(slow);
    let deadline = Instant::now() + Duration::from_secs(5);
    while health().status != 200 {
        assert!(Instant::now() < deadline, "the slot was never freed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_slow_upload_times_out_with_408() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _) = new_hub(dir.path());
    let limits = Limits {
        request_timeout: Duration::from_millis(300),
        ..small_limits()
    };
    let server = TestServer::start(hub, false, limits, None);
    let mut slow = stalled_upload(&server);
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let start = Instant::now();
    let mut answer = vec![0u8; 512];
    let n = slow.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""error":"timeout""#), "{answer}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn tls_round_trip_with_a_self_signed_hub() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let tls = tls::server_config(&cert_pem, &key_pem).unwrap();
    let (hub, hub_path) = new_hub(dir.path());
    let server = TestServer::start(hub, true, small_limits(), Some(tls));
    assert!(server.url.starts_with("https://"));
    let mut a = SqliteReplica::open(&dir.path().join("a.sqlite")).unwrap();
    let mut b = SqliteReplica::open(&dir.path().join("b.sqlite")).unwrap();
    a.accum(1, 2).unwrap();
    b.accum(1, 3).unwrap();
    let options = |d: &mut SqliteReplica| HttpOptions {
        token: Some(token("d", &d.site_id().unwrap())),
        ca_file: Some(cert_pem.clone()),
    };
    let (oa, ob) = (options(&mut a), options(&mut b));
    sync_with(&mut a, &server.hub(), &oa).unwrap();
    sync_with(&mut b, &server.hub(), &ob).unwrap();
    sync_with(&mut a, &server.hub(), &oa).unwrap();
    assert_eq!(hub_state(&hub_path).values, vec![(1, 5)]);
    assert_eq!(reads(&mut a), reads(&mut b));
    // Without the CA the hub is not trusted; plain HTTP is not served.
    let untrusted = HttpOptions {
        ca_file: None,
        ..oa.clone()
    };
    let err = sync_with(&mut a, &server.hub(), &untrusted).unwrap_err();
    assert!(format!("{err:#}").contains("cannot reach"), "{err:#}");
    let plain = HubUrl::parse(&server.url.replace("https://", "http://")).unwrap();
    assert!(sync_with(&mut a, &plain, &oa).is_err());
}

#[test]
fn only_loopback_without_auth() {
    assert!(check_listen("127.0.0.1:0", false, false).is_ok());
    assert!(check_listen("[::1]:0", false, false).is_ok());
    let err = check_listen("0.0.0.0:0", false, false).unwrap_err();
    assert!(err.to_string().contains("--auth-key"), "{err}");
    assert!(check_listen("0.0.0.0:0", true, false).is_ok());
    assert!(check_listen("0.0.0.0:0", false, true).is_ok());
}

/// The rows of `stock`: sku, q, r (`None` for a cell never written or
/// received).
type StockRows = Vec<(i64, Option<i64>, Option<i64>)>;

/// A device (or hub) file with a table of two tracked columns,
/// `stock (sku, q, r)`, driven through the SQL functions.
struct StockDb {
    conn: rusqlite::Connection,
}

impl StockDb {
    fn open(path: &Path) -> Self {
        let conn = rusqlite::Connection::open(path).unwrap();
        sqlite_atomik::register(&conn).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS stock (sku INTEGER PRIMARY KEY, q BLOB, r BLOB);
             SELECT atomik_track('stock', 'q');
             SELECT atomik_track('stock', 'r');",
        )
        .unwrap();
        StockDb { conn }
    }

    /// Open `path`'s hub for `atomik serve`, with the stock table tracked.
    fn hub(path: &Path) -> Box<dyn Replica + Send> {
        drop(StockDb::open(path));
        Box::new(SqliteReplica::open_existing(path).unwrap())
    }

    fn site(&self) -> String {
        self.conn
            .query_row("SELECT atomik_site_id()", [], |r| r.get(0))
            .unwrap()
    }

    /// Add `delta` to `column` of row `sku` (a NULL cell starts at 0).
    fn add(&self, column: &str, sku: i64, delta: i64) {
        self.conn
            .execute(
                &format!(
                    "INSERT INTO stock (sku, {column}) VALUES (?1, atomik_add(?2))
                     ON CONFLICT (sku) DO UPDATE SET {column} = CASE WHEN {column} IS NULL
                         THEN atomik_add(?2) ELSE atomik_accum({column}, ?2) END"
                ),
                [sku, delta],
            )
            .unwrap();
    }

    fn request(&self) -> Vec<u8> {
        self.conn
            .query_row("SELECT atomik_sync_request()", [], |r| r.get(0))
            .unwrap()
    }

    /// One sync through `server` with `token`: the deltas it applied.
    fn sync(&self, server: &TestServer, token: &str) -> Result<i64> {
        let resp = exchange_with(&server.hub(), &self.request(), &as_token(token))?;
        Ok(self
            .conn
            .query_row("SELECT atomik_sync_finish(?1)", [resp], |r| r.get(0))?)
    }

    /// Every row.
    fn values(&self) -> StockRows {
        let mut st = self
            .conn
            .prepare("SELECT sku, atomik_read(q), atomik_read(r) FROM stock ORDER BY sku")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// The digests of q and r.
    fn digests(&self) -> (i64, i64) {
        let digest = |c: &str| -> i64 {
            self.conn
                .query_row(&format!("SELECT atomik_digest('stock', '{c}')"), [], |r| {
                    r.get(0)
                })
                .unwrap()
        };
        (digest("q"), digest("r"))
    }
}

/// A hub's values and digests, read on a connection of its own (that
/// writes nothing).
fn stock_hub(path: &Path) -> (StockRows, (i64, i64)) {
    let conn = rusqlite::Connection::open(path).unwrap();
    sqlite_atomik::register(&conn).unwrap();
    let hub = StockDb { conn };
    (hub.values(), hub.digests())
}

/// The bytes of a SQLite file and its write-ahead log.
fn file_bytes(path: &Path) -> (Vec<u8>, Option<Vec<u8>>) {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    (std::fs::read(path).unwrap(), std::fs::read(wal).ok())
}

/// Assert a reply's status, code and message, exactly.
fn assert_reply(r: &Reply, status: u16, code: &str, message: &str) {
    assert_eq!(
        (r.status, r.code.as_str(), r.message.as_str()),
        (status, code, message),
        "{r:?}"
    );
}

/// A device's claims limited to `write` and `read` patterns (`None`: no
/// claim).
fn scoped_claims(sub: &str, site: &str, write: Option<&[&str]>, read: Option<&[&str]>) -> Claims {
    let list = |p: Option<&[&str]>| p.map(|p| p.iter().map(|s| s.to_string()).collect());
    Claims {
        atomik_write: list(write),
        atomik_read: list(read),
        ..claims(sub, site)
    }
}

/// A token of [`scoped_claims`].
fn scoped(sub: &str, site: &str, write: Option<&[&str]>, read: Option<&[&str]>) -> String {
    mint_hmac(
        SECRET,
        Algorithm::HS256,
        &scoped_claims(sub, site, write, read),
    )
    .unwrap()
}

#[test]
fn a_write_outside_the_token_scope_is_refused_and_applies_nothing() {
    use atomik_core::{ColumnId, Group, Key, KeyShape};
    let dir = tempfile::tempdir().unwrap();
    let hub_path = dir.path().join("hub.sqlite");
    let server = TestServer::start(StockDb::hub(&hub_path), true, small_limits(), None);
    let (a, b) = (
        StockDb::open(&dir.path().join("a.sqlite")),
        StockDb::open(&dir.path().join("b.sqlite")),
    );
    let w = StockDb::open(&dir.path().join("w.sqlite"));
    let (ta, tb) = (token("a", &a.site()), token("b", &b.site()));
    let tw = scoped("w", &w.site(), Some(&["stock.q"]), None);
    a.add("q", 1, 5);
    a.add("r", 1, 7);
    a.sync(&server, &ta).unwrap();
    b.add("q", 2, 1);
    b.sync(&server, &tb).unwrap();
    assert_eq!(
        w.sync(&server, &tw).unwrap(),
        3,
        "a snapshot of all 3 cells"
    );

    // W's honest batch (q only), with a cell of r slipped in: refused
    // whole, before the hub sees it.
    w.add("q", 1, 3);
    let honest = decode_request(&w.request()).unwrap();
    assert_eq!(honest.uploads.len(), 1);
    let mut forged = honest.clone();
    forged.uploads[0]
        .changes
        .add(
            &ColumnId::new("stock", "r", Group::Add),
            &KeyShape::int(),
            Key::int(1),
            100,
        )
        .unwrap();
    let (bytes, state) = (file_bytes(&hub_path), stock_hub(&hub_path));
    let r = post(&server, &encode_request(&forged), Some(&tw));
    assert_reply(
        &r,
        403,
        "forbidden_column",
        "the request writes stock.r, which this token may not write",
    );
    // The same cells with a token that may write only other tables.
    let other = scoped("w", &w.site(), Some(&["orders.*"]), None);
    let r = post(&server, &encode_request(&honest), Some(&other));
    assert_reply(
        &r,
        403,
        "forbidden_column",
        "the request writes stock.q, which this token may not write",
    );
    assert_eq!(
        file_bytes(&hub_path),
        bytes,
        "the hub's files are unchanged"
    );
    assert_eq!(stock_hub(&hub_path), state);

    // The same device's allowed change is applied.
    assert_eq!(w.sync(&server, &tw).unwrap(), 0, "nothing new to receive");
    let hub = vec![(1, Some(8), Some(7)), (2, Some(1), None)];
    assert_eq!(stock_hub(&hub_path).0, hub);

    // A device that really wrote r is refused on every sync (its batch
    // stays in its outbox), and nothing of it reaches the hub.
    w.add("r", 2, 50);
    w.add("q", 2, 1);
    let (bytes, state) = (file_bytes(&hub_path), stock_hub(&hub_path));
    let err = w.sync(&server, &tw).unwrap_err();
    assert!(
        format!("{err:#}").contains(
            "the request writes stock.r, which this token may not write (403 forbidden_column)"
        ),
        "{err:#}"
    );
    assert_eq!(file_bytes(&hub_path), bytes);
    assert_eq!(stock_hub(&hub_path), state);

    // The honest devices converge, exactly, to the hub.
    a.sync(&server, &ta).unwrap();
    b.sync(&server, &tb).unwrap();
    let (values, digests) = stock_hub(&hub_path);
    assert_eq!(values, hub);
    for d in [&a, &b] {
        assert_eq!(d.values(), hub);
        assert_eq!(d.digests(), digests);
    }
}

#[test]
fn a_device_reads_only_the_columns_of_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let hub_path = dir.path().join("hub.sqlite");
    let server = TestServer::start(StockDb::hub(&hub_path), true, small_limits(), None);
    let full = StockDb::open(&dir.path().join("full.sqlite"));
    let q_only = StockDb::open(&dir.path().join("q.sqlite"));
    let tf = token("full", &full.site());
    let tq = scoped("q", &q_only.site(), None, Some(&["stock.q"]));
    full.add("q", 1, 5);
    full.add("r", 1, 7);
    full.sync(&server, &tf).unwrap();
    // Its first sync is a snapshot: only q's cell comes down.
    assert_eq!(q_only.sync(&server, &tq).unwrap(), 1);
    assert_eq!(q_only.values(), vec![(1, Some(5), None)]);
    // It may write r (its write scope is everything).
    q_only.add("r", 1, 2);
    q_only.add("q", 2, 4);
    assert_eq!(q_only.sync(&server, &tq).unwrap(), 0);
    full.add("r", 1, 10);
    full.add("q", 1, 1);
    assert_eq!(
        full.sync(&server, &tf).unwrap(),
        2,
        "q_only's r +2 and q +4"
    );
    assert_eq!(q_only.sync(&server, &tq).unwrap(), 1, "q's +1, not r's +10");

    let (hub, digests) = stock_hub(&hub_path);
    assert_eq!(hub, vec![(1, Some(6), Some(19)), (2, Some(4), None)]);
    assert_eq!(full.values(), hub);
    assert_eq!(full.digests(), digests);
    // Its r is only its own writes; its q is the hub's.
    assert_eq!(
        q_only.values(),
        vec![(1, Some(6), Some(2)), (2, Some(4), None)]
    );
    assert_eq!(q_only.digests().0, digests.0);
    assert_ne!(q_only.digests().1, digests.1);

    // On the wire: the same request, as a full token and as a q-only one.
    let fresh = StockDb::open(&dir.path().join("fresh.sqlite"));
    let request = fresh.request();
    let down = |t: &str| {
        let bytes = exchange_with(&server.hub(), &request, &as_token(t)).unwrap();
        atomik_core::codec::v2::decode_response(&bytes).unwrap()
    };
    let everything = down(&token("fresh", &fresh.site()));
    let mut only_q = down(&scoped("fresh", &fresh.site(), None, Some(&["stock.q"])));
    let nothing = down(&scoped("fresh", &fresh.site(), None, Some(&[])));
    use atomik_core::codec::v2::Payload;
    let Payload::Snapshot(all) = &everything.payload else {
        panic!("{:?}", everything.payload)
    };
    assert_eq!(all.cell_count(), 3);
    let q_cells: Vec<_> = all.cells().filter(|(c, _, _)| c.column == "q").collect();
    let Payload::Snapshot(q) = &only_q.payload else {
        panic!("{:?}", only_q.payload)
    };
    assert_eq!(q.cells().collect::<Vec<_>>(), q_cells);
    assert_eq!(
        nothing.payload,
        Payload::Snapshot(atomik_core::Changes::new())
    );
    // Apart from the payload, the answers are the hub's.
    only_q.payload = everything.payload.clone();
    assert_eq!(only_q, everything);

    // A snapshot resets what the device holds of a column it may not read
    // to what the hub has not acknowledged yet: its own first writes of r,
    // acknowledged by that same answer, read 0 afterwards.
    let late = StockDb::open(&dir.path().join("late.sqlite"));
    late.add("r", 3, 9);
    let tl = scoped("late", &late.site(), None, Some(&["stock.q"]));
    assert_eq!(late.sync(&server, &tl).unwrap(), 2);
    assert_eq!(
        late.values(),
        vec![(1, Some(6), None), (2, Some(4), None), (3, None, Some(0))]
    );
    assert_eq!(stock_hub(&hub_path).0[2], (3, None, Some(9)));
}

#[test]
fn scoped_relay_tokens_and_bad_patterns_get_401() {
    let dir = tempfile::tempdir().unwrap();
    let hub_path = dir.path().join("hub.sqlite");
    let server = TestServer::start(StockDb::hub(&hub_path), true, small_limits(), None);
    let relay = SiteId::random().unwrap();
    let ask = encode_request(&SyncRequest {
        site: relay,
        relays: true,
        cursor: None,
        uploads: vec![],
    });
    let relay_token = |write: Option<&[&str]>, read: Option<&[&str]>| {
        let c = Claims {
            atomik_relay: true,
            ..scoped_claims("relay", &relay.to_string(), write, read)
        };
        mint_hmac(SECRET, Algorithm::HS256, &c).unwrap()
    };
    let bytes = file_bytes(&hub_path);
    let refused = "a relay token cannot have an `atomik_write` or `atomik_read` scope";
    for t in [
        relay_token(Some(&["stock.q"]), None),
        relay_token(None, Some(&["stock.*"])),
        relay_token(Some(&[]), Some(&["*"])),
    ] {
        let r = post(&server, &ask, Some(&t));
        assert_reply(&r, 401, "unauthenticated", refused);
    }
    let site = SiteId::random().unwrap().to_string();
    let leaf = encode_request(&SyncRequest {
        site: site.parse().unwrap(),
        relays: false,
        cursor: None,
        uploads: vec![],
    });
    for (claim, t) in [
        ("atomik_write", scoped("d", &site, Some(&["stock"]), None)),
        (
            "atomik_write",
            scoped("d", &site, Some(&["stock.q", "*.q"]), None),
        ),
        ("atomik_read", scoped("d", &site, None, Some(&["a.b.c"]))),
        ("atomik_read", scoped("d", &site, None, Some(&[""]))),
    ] {
        let r = post(&server, &leaf, Some(&t));
        let message = format!(
            "the token's `{claim}` claim is not a list of \"table.column\", \"table.*\" or \"*\" patterns"
        );
        assert_reply(&r, 401, "unauthenticated", &message);
    }
    assert_eq!(file_bytes(&hub_path), bytes, "nothing reached the hub");
    // A relay may say "everything", and a leaf "nothing".
    let r = post(
        &server,
        &ask,
        Some(&relay_token(Some(&["*"]), Some(&["*"]))),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(
        &server,
        &leaf,
        Some(&scoped("d", &site, Some(&[]), Some(&[]))),
    );
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn an_announced_oversized_body_is_refused_before_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, hub_path) = new_hub(dir.path());
    let limits = Limits {
        max_body: 1024,
        request_timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let server = TestServer::start(hub, false, limits, None);
    let before = hub_state(&hub_path);
    // Headers only: a Content-Length past --max-body and not one byte of
    // the body. The answer must come without waiting for it.
    let mut conn = TcpStream::connect(server.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn.write_all(b"POST /sync HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("}") {
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("no answer before the body was sent: {e}"),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"too_large\""), "{answer}");
    assert!(answer.contains("1000000000"), "names the size: {answer}");
    assert_eq!(hub_state(&hub_path), before);
}

#[test]
fn a_body_that_trickles_in_holds_none_of_the_in_flight_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _) = new_hub(dir.path());
    let limits = Limits {
        max_body: 2048,
        max_in_flight: 2048,
        request_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let server = TestServer::start(hub, false, limits, None);
    // Two uploads announce the whole budget each and send half of it.
    let stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut c = TcpStream::connect(server.addr()).unwrap();
            c.write_all(b"POST /sync HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n")
                .unwrap();
            c.write_all(&[0u8; 1000]).unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A real sync goes through meanwhile, well before the stalled ones
    // time out.
    let mut device = SqliteReplica::open(&dir.path().join("d.sqlite")).unwrap();
    device.accum(1, 5).unwrap();
    let request = device.sync_request(0).unwrap();
    let hub_url = server.hub();
    let (done, answered) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(exchange(&hub_url, &request)));
    let response = answered
        .recv_timeout(Duration::from_secs(20))
        .expect("a sync waited behind bodies that were not in yet")
        .unwrap();
    device.finish_sync(&response, 0).unwrap();
    assert_eq!(device.values().unwrap().len(), 1);
    drop(stalled);
}

#[test]
fn in_flight_shares_wait_for_each_other() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let budget = InFlight::new(4096);
        let first = budget.reserve(3000).await;
        // 3,000 bytes hold 3 KiB of 4: 2 KiB more must wait, and so does a
        // later 1 KiB (first come, first served: large shares do not
        // starve).
        let second = budget.reserve(2000);
        tokio::pin!(second);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut second)
                .await
                .is_err(),
            "a share was granted past the budget"
        );
        let third = budget.reserve(1000);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut third)
                .await
                .is_err(),
            "a later share overtook a waiting one"
        );
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the waiting share is granted once the first is given back");
        let third = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("and the one after it, within the budget");
        drop((second, third));
        // A body past the whole budget waits for all of it, not forever.
        let all = tokio::time::timeout(Duration::from_secs(5), budget.reserve(1 << 30))
            .await
            .expect("clamped to the budget");
        drop(all);
    });
}

/// `GET /watch` of `server` (with a token if given).
fn watch_reply(server: &TestServer, query: &str, token: Option<&str>) -> Reply {
    let mut req = ureq::get(&format!("{}/watch?{query}", server.url));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    reply(req.call())
}

#[test]
fn a_watch_answers_when_another_devices_sync_moves_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _) = new_hub(dir.path());
    let server = TestServer::start(hub, false, small_limits(), None);
    let hub_url = server.hub();
    let mut seller = SqliteReplica::open(&dir.path().join("seller.sqlite")).unwrap();
    let mut online = SqliteReplica::open(&dir.path().join("online.sqlite")).unwrap();
    seller.accum(1, 5).unwrap();
    sync(&mut seller, &hub_url);
    sync(&mut online, &hub_url);
    let options = HttpOptions::default();
    let cursor = crate::hub::watch(&hub_url, 0, 1, &options).unwrap();
    assert_eq!(cursor, 1, "the log holds the seller's first batch");
    // Nothing new: the watch waits out its second and says where the log is.
    assert_eq!(crate::hub::watch(&hub_url, cursor, 1, &options).unwrap(), 1);
    // The online device holds a watch; the seller syncs; the watch
    // answers with the new position long before its 30 s are up.
    let watching = {
        let hub_url = hub_url.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let p = crate::hub::watch(&hub_url, cursor, 30, &HttpOptions::default()).unwrap();
            (p, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    seller.accum(1, -2).unwrap();
    sync(&mut seller, &hub_url);
    let (position, waited) = watching.join().unwrap();
    assert_eq!(position, 2, "the seller's second batch");
    assert!(
        waited < Duration::from_secs(30),
        "answered by the sync, not by the wait running out"
    );
    assert_eq!(
        sync(&mut online, &hub_url),
        1,
        "then the online device syncs"
    );
    assert_eq!(online.values().unwrap(), seller.values().unwrap());
}

#[test]
fn bad_watches_are_refused_with_a_code() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _) = new_hub(dir.path());
    let server = TestServer::start(
        hub,
        true,
        Limits {
            max_watchers: 1,
            concurrency: 1,
            ..small_limits()
        },
        None,
    );
    let t = token("till-1", &"ab".repeat(16));
    assert_eq!(watch_reply(&server, "after=0&wait=1", None).status, 401);
    let r = watch_reply(&server, "wait=1", Some(&t));
    assert_reply(
        &r,
        400,
        "bad_request",
        "GET /watch needs after=N: the log position you have (0 for none)",
    );
    assert_eq!(
        watch_reply(&server, "after=-1", Some(&t)).code,
        "bad_request"
    );
    let r = watch_reply(&server, "after=0&wait=61", Some(&t));
    assert_reply(
        &r,
        400,
        "bad_request",
        "wait=61: a watch waits at most 60 seconds",
    );
    // One watch at most: the second is shed while the first waits.
    let waiting = {
        let url = server.url.clone();
        let t = t.clone();
        std::thread::spawn(move || {
            ureq::get(&format!("{url}/watch?after=0&wait=3"))
                .set("Authorization", &format!("Bearer {t}"))
                .call()
                .map(|r| r.status())
                .map_err(|e| e.to_string())
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let r = watch_reply(&server, "after=0&wait=1", Some(&t));
    assert_eq!((r.status, r.code.as_str()), (503, "overloaded"));
    // The waiting watch holds no slot of the request concurrency (1 here):
    // other requests still pass.
    let health = ureq::get(&format!("{}/health", server.url)).call().unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(waiting.join().unwrap().unwrap(), 200);
}
