//! `atomik token`: mint an HS256 device token from a shared secret, for
//! tests and development (in production the app's backend mints them),
//! optionally limited to some columns (`--write`, `--read`).

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
    /// A column it may write: `table.column`, `table.*` or `*`
    /// (repeatable; without it, every column).
    #[arg(long = "write", value_name = "PATTERN")]
    write: Vec<String>,
    /// It may write no column (an empty `atomik_write`).
    #[arg(long, conflicts_with = "write")]
    write_none: bool,
    /// A column it may read: `table.column`, `table.*` or `*`
    /// (repeatable; without it, every column).
    #[arg(long = "read", value_name = "PATTERN")]
    read: Vec<String>,
    /// It may read no column (an empty `atomik_read`).
    #[arg(long, conflicts_with = "read")]
    read_none: bool,
    /// HS256, HS384 or HS512.
    #[arg(long, default_value = "HS256", value_parser = parse_alg)]
    alg: Algorithm,
}

impl TokenArgs {
    /// Mint and print the token.
    ///
    /// # Errors
    /// An unreadable or short secret, a bad site id, role or pattern, a
    /// relay with a scope, an unreadable device database.
    pub fn run(&self) -> Result<()> {
        let secret = read_secret(&self.key)?;
        let claims = self.claims()?;
        println!("{}", mint_hmac(&secret, self.alg, &claims)?);
        Ok(())
    }

    /// The claims to sign, checked as `atomik serve` checks them.
    fn claims(&self) -> Result<Claims> {
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
            atomik_write: scope_claim(&self.write, self.write_none),
            atomik_read: scope_claim(&self.read, self.read_none),
        };
        // What `atomik serve` would refuse is not minted.
        claims
            .scopes()
            .map_err(|f| anyhow::anyhow!("{} ({})", f.message, f.detail))?;
        Ok(claims)
    }
}

/// A scope claim from `--write`/`--read` patterns and `--*-none`: absent
/// (every column) when neither is given.
fn scope_claim(patterns: &[String], none: bool) -> Option<Vec<String>> {
    (none || !patterns.is_empty()).then(|| patterns.to_vec())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        token: TokenArgs,
    }

    const SITE: &str = "00112233445566778899aabbccddeeff";

    fn claims(args: &[&str]) -> Result<Claims> {
        let base = ["atomik", "--key", "k", "--sub", "d", "--site", SITE];
        let cli = Cli::try_parse_from(base.iter().chain(args))?;
        cli.token.claims()
    }

    #[test]
    fn scopes_are_minted_as_given_and_checked() {
        let c = claims(&[]).unwrap();
        assert_eq!((c.atomik_write, c.atomik_read), (None, None));
        let c = claims(&["--write", "stock.q", "--write", "orders.*", "--read-none"]).unwrap();
        assert_eq!(
            c.atomik_write,
            Some(vec!["stock.q".to_string(), "orders.*".to_string()])
        );
        assert_eq!(c.atomik_read, Some(vec![]));
        let c = claims(&["--read", "*", "--write-none"]).unwrap();
        assert_eq!(c.atomik_read, Some(vec!["*".to_string()]));
        assert_eq!(c.atomik_write, Some(vec![]));
        let err = claims(&["--write", "stock"]).unwrap_err().to_string();
        assert!(
            err.contains(r#"atomik_write: pattern "stock" is not"#),
            "{err}"
        );
        let err = claims(&["--relay", "--read", "stock.q"])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("a relay token cannot have"), "{err}");
        assert!(claims(&["--write", "stock.q", "--write-none"]).is_err());
    }
}
