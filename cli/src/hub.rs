//! Where a hub is: an SQLite file, a PostgreSQL database, or an
//! `atomik serve` endpoint over HTTP.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::replica::{PgReplica, Replica, SqliteReplica};

/// The largest sync request or response the HTTP path accepts (64 MiB).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A parsed `--hub` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubUrl {
    /// `sqlite:PATH`, or a plain path: an SQLite hub database.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
    /// `http://…` or `https://…`: an `atomik serve` endpoint.
    Http(String),
}

impl HubUrl {
    /// Parse a `--hub` argument.
    ///
    /// # Errors
    /// An empty argument.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            bail!("--hub is empty: give a path, sqlite:PATH, postgres://… or http://…");
        }
        Ok(
            if s.starts_with("postgres://") || s.starts_with("postgresql://") {
                HubUrl::Postgres(s.to_string())
            } else if s.starts_with("http://") || s.starts_with("https://") {
                HubUrl::Http(s.trim_end_matches('/').to_string())
            } else {
                HubUrl::Sqlite(PathBuf::from(s.strip_prefix("sqlite:").unwrap_or(s)))
            },
        )
    }

    /// Open a hub that serves requests in this process (SQLite or
    /// PostgreSQL; an HTTP hub is served elsewhere).
    ///
    /// # Errors
    /// An HTTP URL, or a database that cannot be opened.
    pub fn open_local(&self) -> Result<Box<dyn Replica + Send>> {
        Ok(match self {
            HubUrl::Sqlite(path) => Box::new(SqliteReplica::open_existing(path)?),
            HubUrl::Postgres(url) => Box::new(PgReplica::connect(url)?),
            HubUrl::Http(url) => bail!("{url} is an HTTP endpoint, not a database"),
        })
    }
}

/// How the client reaches an `atomik serve` endpoint.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// The bearer token (`--token-file`), sent as `Authorization: Bearer`.
    pub token: Option<String>,
    /// `--ca-file`: trust only these certificates for `https://` (a private
    /// CA or a self-signed hub); default: the public web PKI.
    pub ca_file: Option<PathBuf>,
}

impl HttpOptions {
    /// Read the token of `--token-file` (surrounding whitespace dropped).
    ///
    /// # Errors
    /// An unreadable or empty file.
    pub fn read_token(path: &std::path::Path) -> Result<String> {
        let token = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let token = token.trim();
        if token.is_empty() {
            bail!("the token file {} is empty", path.display());
        }
        Ok(token.to_string())
    }

    fn agent(&self) -> Result<ureq::Agent> {
        let mut builder =
            ureq::AgentBuilder::new().timeout_connect(std::time::Duration::from_secs(30));
        if let Some(ca) = &self.ca_file {
            builder = builder.tls_config(crate::serve::tls::client_config(ca)?);
        }
        Ok(builder.build())
    }
}

/// Send one sync request to a hub and return its response.
///
/// # Errors
/// Transport errors, or the hub's refusal with its reason.
#[cfg(test)]
pub fn exchange(hub: &HubUrl, request: &[u8]) -> Result<Vec<u8>> {
    exchange_with(hub, request, &HttpOptions::default())
}

/// Send one sync request to a hub, over HTTP with `options`, and return
/// its response.
///
/// # Errors
/// Transport errors (TLS included), or the hub's refusal: its status, code
/// and message.
pub fn exchange_with(hub: &HubUrl, request: &[u8], options: &HttpOptions) -> Result<Vec<u8>> {
    match hub {
        HubUrl::Http(url) => {
            let endpoint = format!("{url}/sync");
            let mut post = options
                .agent()?
                .post(&endpoint)
                .set("Content-Type", "application/octet-stream");
            if let Some(token) = &options.token {
                post = post.set("Authorization", &format!("Bearer {token}"));
            }
            match post.send_bytes(request) {
                Ok(resp) => {
                    let mut body = Vec::new();
                    std::io::Read::read_to_end(
                        &mut resp.into_reader().take(MAX_MESSAGE_BYTES as u64 + 1),
                        &mut body,
                    )
                    .with_context(|| format!("reading the response of {endpoint}"))?;
                    if body.len() > MAX_MESSAGE_BYTES {
                        bail!(
                            "the response of {endpoint} is larger than {MAX_MESSAGE_BYTES} bytes"
                        );
                    }
                    Ok(body)
                }
                Err(ureq::Error::Status(status, resp)) => {
                    let retry = resp.header("Retry-After").map(str::to_string);
                    let reason = resp.into_string().unwrap_or_default();
                    Err(refusal(&endpoint, status, &reason, retry.as_deref()))
                }
                Err(e) => Err(e).with_context(|| format!("cannot reach {endpoint}")),
            }
        }
        local => {
            let mut replica = local.open_local()?;
            replica.serve_sync(request, now_secs())
        }
    }
}

/// `GET /watch?after=N&wait=SECS` of an `atomik serve` endpoint: wait
/// until the hub's log is past `after` (or `wait_secs` pass); the log's
/// position then.
///
/// # Errors
/// A hub that is not HTTP; transport errors; the hub's refusal.
pub fn watch(hub: &HubUrl, after: u64, wait_secs: u64, options: &HttpOptions) -> Result<u64> {
    #[derive(serde::Deserialize)]
    struct Answer {
        position: u64,
    }
    let HubUrl::Http(url) = hub else {
        bail!("--watch needs an atomik serve hub (http:// or https://): a database has nothing to watch over the network");
    };
    let endpoint = format!("{url}/watch");
    let mut get = options
        .agent()?
        .get(&endpoint)
        .query("after", &after.to_string())
        .query("wait", &wait_secs.to_string())
        .timeout(std::time::Duration::from_secs(wait_secs + 30));
    if let Some(token) = &options.token {
        get = get.set("Authorization", &format!("Bearer {token}"));
    }
    match get.call() {
        Ok(resp) => {
            let text = resp
                .into_string()
                .with_context(|| format!("reading the answer of {endpoint}"))?;
            let answer: Answer = serde_json::from_str(&text)
                .with_context(|| format!("{endpoint} answered {text:?}, not a position"))?;
            Ok(answer.position)
        }
        Err(ureq::Error::Status(status, resp)) => {
            let retry = resp.header("Retry-After").map(str::to_string);
            let reason = resp.into_string().unwrap_or_default();
            Err(refusal(&endpoint, status, &reason, retry.as_deref()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot reach {endpoint}")),
    }
}

/// A refusal as the user reads it: the hub's message, then its status and
/// code (`{"error":"<code>","message":"…"}`; older hubs answer text).
fn refusal(endpoint: &str, status: u16, reason: &str, retry: Option<&str>) -> anyhow::Error {
    #[derive(serde::Deserialize)]
    struct Reply {
        error: String,
        message: String,
    }
    let mut text = match serde_json::from_str::<Reply>(reason) {
        Ok(r) => format!("{} ({status} {})", r.message, r.error),
        Err(_) => {
            let reason: String = reason.trim().chars().take(300).collect();
            format!("{reason} ({status})")
        }
    };
    if let Some(after) = retry {
        text.push_str(&format!("; retry after {after} s"));
    }
    if status == 401 {
        text.push_str("; give `atomik sync` a valid token with --token-file");
    }
    anyhow::anyhow!("hub {endpoint} refused the request: {text}")
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind() {
        assert_eq!(
            HubUrl::parse("hub.sqlite").unwrap(),
            HubUrl::Sqlite("hub.sqlite".into())
        );
        assert_eq!(
            HubUrl::parse("sqlite:/tmp/h.db").unwrap(),
            HubUrl::Sqlite("/tmp/h.db".into())
        );
        assert!(matches!(
            HubUrl::parse("postgres://u@localhost/db").unwrap(),
            HubUrl::Postgres(_)
        ));
        assert_eq!(
            HubUrl::parse("http://127.0.0.1:8080/").unwrap(),
            HubUrl::Http("http://127.0.0.1:8080".into())
        );
        assert!(HubUrl::parse("  ").is_err());
    }

    #[test]
    fn refusals_show_message_status_and_code() {
        let e = refusal(
            "http://h/sync",
            403,
            r#"{"error":"forged_origin","message":"no"}"#,
            None,
        );
        assert_eq!(
            e.to_string(),
            "hub http://h/sync refused the request: no (403 forged_origin)"
        );
        let e = refusal(
            "http://h/sync",
            429,
            "{\"error\":\"rate_limited\",\"message\":\"slow\"}",
            Some("2"),
        );
        assert!(
            e.to_string()
                .ends_with("slow (429 rate_limited); retry after 2 s"),
            "{e}"
        );
        let e = refusal("http://h/sync", 502, "bad gateway\n", None);
        assert!(e.to_string().ends_with("bad gateway (502)"), "{e}");
    }
}
