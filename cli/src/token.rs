//! `atomik token`: mint an HS256 device token from a shared secret, for
//! tests and development (in production the app's backend mints them).

use std::path::PathBuf;
use std::str::FromStr;

use anyhow::{bail, Result};
use atomik_core::SiteId;
use jsonwebtoken::Algorithm;

use crate::replica::{Replica, SqliteReplica};
use crate::serve::{mint_hmac, parse_alg, read_secret, Claims};

/// `atomik token`: print a signed token for one device on stdout.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The shared secret file (the same as `atomik serve --auth-key`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The principal (`sub`): any string naming the user or device.
    #[arg(long)]
    sub: String,
    /// The device's site id (`SELECT atomik_site_id()` on the device).
    #[arg(
        long,
        value_name = "HEX",
        required_unless_present = "site_of",
        conflicts_with = "site_of"
    )]
    site: Option<String>,
    /// Read the site id from this device database instead.
    #[arg(long, value_name = "DB")]
    site_of: Option<PathBuf>,
    /// Seconds until the token expires.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=31_536_000))]
    ttl: u64,
    /// A relay hub's token: it may upload batches of other origins.
    #[arg(long)]
    relay: bool,
    /// The PostgreSQL role the sync runs as (`SET LOCAL ROLE`).
    #[arg(long)]
    role: Option<String>,
    /// HS256, HS384 or HS512.
    #[arg(long, default_value = "HS256", value_parser = parse_alg)]
    alg: Algorithm,
}

impl TokenArgs {
    /// Mint and print the token.
    ///
    /// # Errors
    /// An unreadable or short secret, a bad site id or role, an unreadable
    /// device database.
    pub fn run(&self) -> Result<()> {
        let secret = read_secret(&self.key)?;
        let site = match (&self.site, &self.site_of) {
            (Some(hex), _) => hex.clone(),
            (None, Some(db)) => SqliteReplica::open_existing(db)?.site_id()?,
            (None, None) => bail!("give --site HEX or --site-of DB"),
        };
        let site = SiteId::from_str(&site).map_err(anyhow::Error::msg)?;
        if let Some(role) = &self.role {
            crate::serve::validate_role(role).map_err(anyhow::Error::msg)?;
        }
        let claims = Claims {
            sub: self.sub.clone(),
            exp: crate::hub::now_secs() + self.ttl,
            atomik_site: Some(site.to_string()),
            atomik_relay: self.relay,
            role: self.role.clone(),
        };
        println!("{}", mint_hmac(&secret, self.alg, &claims)?);
        Ok(())
    }
}
