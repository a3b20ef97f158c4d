//! The flags of `atomik serve`.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Result};
use jsonwebtoken::Algorithm;

use super::limits::{self, Limits, Rate};
use super::{AuthOptions, ServeOptions};
use crate::hub::HubUrl;

/// `atomik serve`: serve a hub database over HTTP(S).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The hub database: an SQLite path (or sqlite:PATH) or postgres://….
    #[arg(long)]
    hub: String,
    /// Address to listen on. Without --auth-key only loopback addresses
    /// are allowed (see --insecure-no-auth).
    #[arg(long, default_value = "127.0.0.1:8787")]
    listen: String,
    /// Connections in the pool to a PostgreSQL hub (a SQLite hub is one
    /// connection).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pool: u16,
    /// Require `Authorization: Bearer <JWT>` on POST /sync, verified with
    /// this key: an HS256 shared secret (the file's raw bytes, at least 32)
    /// or a PEM public key (RSA → RS256, EC P-256 → ES256, P-384 → ES384,
    /// Ed25519 → EdDSA).
    #[arg(long, value_name = "FILE")]
    auth_key: Option<PathBuf>,
    /// The token algorithm, when not the key's default (HS384, HS512,
    /// RS384, RS512, PS256, PS384, PS512).
    #[arg(long, value_name = "ALG", requires = "auth_key", value_parser = super::parse_alg)]
    auth_alg: Option<Algorithm>,
    /// Tokens must carry this `aud` (unchecked if not given).
    #[arg(long, value_name = "AUD", requires = "auth_key")]
    auth_audience: Option<String>,
    /// Tokens must carry this `iss` (unchecked if not given).
    #[arg(long, value_name = "ISS", requires = "auth_key")]
    auth_issuer: Option<String>,
    /// Listen on a non-loopback address without --auth-key: anyone who
    /// reaches it can write as any device.
    #[arg(long, conflicts_with = "auth_key")]
    insecure_no_auth: bool,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Largest request body in bytes (413 `too_large` past it).
    #[arg(long, value_name = "BYTES", default_value_t = limits::DEFAULT_MAX_BODY)]
    max_body: usize,
    /// Request bytes decoded at once across all requests (at least
    /// --max-body): a request whose body is in waits for its share before
    /// it is decoded. Decoding hostile input may take up to 512x this.
    #[arg(long, value_name = "BYTES", default_value_t = limits::DEFAULT_MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Seconds a connection gets to send a request's headers, from its
    /// opening or from the end of its previous response (so also the
    /// keep-alive idle timeout); then it is closed.
    #[arg(long, value_name = "SECS", default_value_t = limits::DEFAULT_HEADER_TIMEOUT_SECS, value_parser = parse_secs)]
    header_timeout: f64,
    /// Seconds a whole request may take, upload and hub work included
    /// (408 `timeout`).
    #[arg(long, value_name = "SECS", default_value_t = limits::DEFAULT_REQUEST_TIMEOUT_SECS, value_parser = parse_secs)]
    request_timeout: f64,
    /// Open connections at once; more wait to be accepted.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_CONNECTIONS as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Requests in flight at once; more are answered 503 `overloaded`.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_CONCURRENCY as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    concurrency: u32,
    /// Syncs per second per principal (token `sub`; peer IP without
    /// --auth-key), 429 `rate_limited` past it. Default: 10 with
    /// --auth-key, off without; 0 turns it off.
    #[arg(long, value_name = "N")]
    rate_per_sec: Option<u32>,
    /// Syncs a principal may send at once after a quiet spell (default:
    /// twice --rate-per-sec).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    rate_burst: Option<u32>,
    /// `GET /watch` long polls waiting at once (outside --concurrency; each
    /// holds a connection, so keep --max-connections above it); more are
    /// answered 503 `overloaded`.
    #[arg(long, value_name = "N", default_value_t = super::watch::DEFAULT_MAX_WATCHERS as u32, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_watchers: u32,
}

/// A number of seconds in (0, 86400].
fn parse_secs(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 86_400.0 => Ok(v),
        _ => Err(format!("\"{s}\" is not a number of seconds in (0, 86400]")),
    }
}

impl ServeArgs {
    /// The limits these flags set.
    fn limits(&self) -> Result<Limits> {
        let per_sec = match self.rate_per_sec {
            Some(n) => n,
            None if self.auth_key.is_some() => limits::DEFAULT_RATE_PER_SEC,
            None => 0,
        };
        let rate = match NonZeroU32::new(per_sec) {
            None => {
                if self.rate_burst.is_some() {
                    bail!("--rate-burst needs a rate: give --rate-per-sec N");
                }
                None
            }
            Some(per_sec) => Some(Rate {
                per_sec,
                burst: self
                    .rate_burst
                    .and_then(NonZeroU32::new)
                    .or_else(|| NonZeroU32::new(per_sec.get().saturating_mul(2)))
                    .unwrap_or(per_sec),
            }),
        };
        if self.max_in_flight < self.max_body {
            bail!(
                "--max-in-flight {} is below --max-body {}: a request of --max-body bytes could never be read",
                self.max_in_flight,
                self.max_body
            );
        }
        Ok(Limits {
            max_body: self.max_body,
            max_in_flight: self.max_in_flight,
            header_timeout: Duration::from_secs_f64(self.header_timeout),
            request_timeout: Duration::from_secs_f64(self.request_timeout),
            max_connections: self.max_connections as usize,
            concurrency: self.concurrency as usize,
            rate,
            max_watchers: self.max_watchers as usize,
        })
    }

    /// Run `atomik serve` until interrupted.
    ///
    /// # Errors
    /// As [`super::run`].
    pub fn run(&self) -> Result<()> {
        let options = ServeOptions {
            listen: self.listen.clone(),
            pool: usize::from(self.pool),
            auth: self.auth_key.clone().map(|key| {
                (
                    key,
                    AuthOptions {
                        alg: self.auth_alg,
                        audience: self.auth_audience.clone(),
                        issuer: self.auth_issuer.clone(),
                    },
                )
            }),
            insecure_no_auth: self.insecure_no_auth,
            tls: self.tls_cert.clone().zip(self.tls_key.clone()),
            limits: self.limits()?,
        };
        super::run(&HubUrl::parse(&self.hub)?, &options)
    }
}
