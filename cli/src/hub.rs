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

/// Send one sync request to a hub and return its response.
///
/// # Errors
/// Transport errors, or the hub's refusal with its reason.
pub fn exchange(hub: &HubUrl, request: &[u8]) -> Result<Vec<u8>> {
    match hub {
        HubUrl::Http(url) => {
            let endpoint = format!("{url}/sync");
            match ureq::post(&endpoint)
                .set("Content-Type", "application/octet-stream")
                .send_bytes(request)
            {
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
                Err(ureq::Error::Status(code, resp)) => {
                    let reason = resp.into_string().unwrap_or_default();
                    bail!(
                        "hub {endpoint} refused the request ({code}): {}",
                        reason.trim()
                    )
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
}
