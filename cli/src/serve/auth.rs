//! Who may sync: bearer tokens (JWT) minted by the app's backend for one
//! device, verified by `atomik serve --auth-key FILE`.
//!
//! Enrollment: the device reports its `atomik_site_id()` to the app's
//! backend, which mints a token with `sub` (the principal), `exp`, and
//! `atomik_site` (that site id); `atomik sync --token-file` (or the app)
//! sends it as `Authorization: Bearer <token>`. A token with
//! `atomik_relay: true` belongs to a relay hub, which uploads batches of
//! other origins; `role` names the PostgreSQL role the sync runs as;
//! `atomik_write` and `atomik_read` limit the columns it may write and
//! read (`scope.rs`).
//!
//! The key file is an HS256 shared secret (the file's raw bytes, at least
//! 32) or a PEM public key: RSA (RS256), EC P-256 (ES256), EC P-384
//! (ES384) or Ed25519 (EdDSA), told apart by the PEM label and the key's
//! algorithm identifier; `--auth-alg` picks another algorithm of the same
//! family (HS384, RS512, PS256, …).

use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use atomik_core::codec::v2::Request;
use atomik_core::SiteId;
use axum::http::{header, HeaderMap};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::errors::{Code, Failure};
use super::scope::Scope;

/// The shortest HMAC secret accepted (256 bits, as HS256 needs).
pub const MIN_SECRET_BYTES: usize = 32;

/// The claims of an atomik token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The principal: any string the backend chooses (a user or device id).
    pub sub: String,
    /// Expiry, seconds since the epoch (required).
    pub exp: u64,
    /// The device's site id, 32 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub atomik_site: Option<String>,
    /// True for a relay hub, which may upload batches of other origins.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub atomik_relay: bool,
    /// The PostgreSQL role the sync runs as (a PostgreSQL hub only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The columns it may write: `"table.column"`, `"table.*"` or `"*"`
    /// patterns. Absent: every column; `[]`: none; `null` is refused.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub atomik_write: Option<Vec<String>>,
    /// The columns it may read, as `atomik_write`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub atomik_read: Option<Vec<String>>,
}

/// A scope claim that is there must be a list: `null` does not pass for
/// "absent" (which grants everything).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Vec::deserialize(d).map(Some)
}

impl Claims {
    /// The write and read scopes the claims grant.
    ///
    /// # Errors
    /// `unauthenticated`: a pattern that is not `table.column`, `table.*`
    /// or `*` (the detail names it), or a relay's claims with a scope (a
    /// relay's payloads cannot lose cells without breaking exactly-once).
    pub fn scopes(&self) -> Result<(Scope, Scope), Failure> {
        let scope = |name: &str, claim: &Option<Vec<String>>| {
            Scope::from_claim(claim.as_deref()).map_err(|why| {
                Failure::new(
                    Code::Unauthenticated,
                    format!(
                        "the token's `{name}` claim is not a list of \"table.column\", \"table.*\" or \"*\" patterns"
                    ),
                )
                .detail(format!("sub {:?}: {name}: {why}", self.sub))
            })
        };
        let write = scope("atomik_write", &self.atomik_write)?;
        let read = scope("atomik_read", &self.atomik_read)?;
        if self.atomik_relay && !(write.is_all() && read.is_all()) {
            return Err(Failure::new(
                Code::Unauthenticated,
                "a relay token cannot have an `atomik_write` or `atomik_read` scope",
            )
            .detail(format!(
                "sub {:?}: atomik_relay with a scope: a relay's payloads (per-origin batches, \
                 relay snapshots) cannot lose cells without breaking exactly-once",
                self.sub
            )));
        }
        Ok((write, read))
    }
}

/// A verified token's holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The `sub` claim.
    pub sub: String,
    /// The `atomik_site` claim: the only site it may sync as.
    pub site: SiteId,
    /// The `atomik_relay` claim.
    pub relay: bool,
    /// The `role` claim, validated as a role name.
    pub role: Option<String>,
    /// The `atomik_write` claim: what its uploads may write.
    pub write: Scope,
    /// The `atomik_read` claim: what its downloads carry.
    pub read: Scope,
}

/// Checks bearer tokens against one key.
pub struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({:?})", self.validation.algorithms)
    }
}

/// What `--auth-*` says.
#[derive(Debug, Clone, Default)]
pub struct AuthOptions {
    /// `--auth-alg`: the algorithm, when the key's own is not wanted.
    pub alg: Option<Algorithm>,
    /// `--auth-audience`: the `aud` a token must carry (unchecked if unset).
    pub audience: Option<String>,
    /// `--auth-issuer`: the `iss` a token must carry (unchecked if unset).
    pub issuer: Option<String>,
}

/// The family of a key file's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl Family {
    fn default_alg(self) -> Algorithm {
        match self {
            Family::Hmac => Algorithm::HS256,
            Family::Rsa => Algorithm::RS256,
            Family::EcP256 => Algorithm::ES256,
            Family::EcP384 => Algorithm::ES384,
            Family::Ed25519 => Algorithm::EdDSA,
        }
    }

    fn allows(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Family::Hmac => matches!(alg, HS256 | HS384 | HS512),
            Family::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Family::EcP256 => alg == ES256,
            Family::EcP384 => alg == ES384,
            Family::Ed25519 => alg == EdDSA,
        }
    }
}

/// Parse an `--auth-alg` value (HS256, RS256, ES256, EdDSA, …).
///
/// # Errors
/// An unknown name.
pub fn parse_alg(s: &str) -> Result<Algorithm, String> {
    Algorithm::from_str(s).map_err(|_| {
        format!("\"{s}\" is not a JWT algorithm (HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)")
    })
}

/// DER of the algorithm identifiers a SubjectPublicKeyInfo starts with.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

fn pem_label(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.find("-----BEGIN ")? + "-----BEGIN ".len();
    let end = text[start..].find("-----")?;
    Some(text[start..start + end].to_string())
}

/// Which key a file holds.
fn family_of(bytes: &[u8]) -> Result<Family> {
    let Some(label) = pem_label(bytes) else {
        if bytes.len() < MIN_SECRET_BYTES {
            bail!(
                "an HS256 secret must be at least {MIN_SECRET_BYTES} bytes, this one is {}",
                bytes.len()
            );
        }
        return Ok(Family::Hmac);
    };
    match label.as_str() {
        "RSA PUBLIC KEY" => Ok(Family::Rsa),
        "PUBLIC KEY" => {
            use rustls_pki_types::pem::PemObject;
            let spki = rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(bytes)
                .map_err(|e| anyhow::anyhow!("cannot read the PEM public key: {e}"))?;
            // The algorithm identifier is at the start of the DER.
            let head = &spki.as_ref()[..spki.as_ref().len().min(32)];
            let has = |oid: &[u8]| head.windows(oid.len()).any(|w| w == oid);
            if has(OID_RSA) {
                Ok(Family::Rsa)
            } else if has(OID_P256) {
                Ok(Family::EcP256)
            } else if has(OID_P384) {
                Ok(Family::EcP384)
            } else if has(OID_ED25519) {
                Ok(Family::Ed25519)
            } else {
                bail!("the PEM public key is neither RSA, EC P-256, EC P-384 nor Ed25519")
            }
        }
        l if l.contains("PRIVATE KEY") => {
            bail!("the key file holds a private key: give `atomik serve` the public key")
        }
        other => bail!("a PEM \"{other}\" is not a public key (want \"PUBLIC KEY\")"),
    }
}

impl Verifier {
    /// Load `--auth-key FILE`.
    ///
    /// # Errors
    /// An unreadable file, a short secret, a PEM that is not a supported
    /// public key, or an `--auth-alg` of another family.
    pub fn load(path: &Path, options: &AuthOptions) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the auth key {}", path.display()))?;
        Self::from_key_bytes(&bytes, options)
            .with_context(|| format!("--auth-key {}", path.display()))
    }

    /// A verifier for a key file's contents.
    ///
    /// # Errors
    /// As [`Verifier::load`].
    pub fn from_key_bytes(bytes: &[u8], options: &AuthOptions) -> Result<Self> {
        let family = family_of(bytes)?;
        let alg = options.alg.unwrap_or(family.default_alg());
        if !family.allows(alg) {
            bail!("--auth-alg {alg:?} does not fit a {family:?} key");
        }
        let key = match family {
            Family::Hmac => DecodingKey::from_secret(bytes)?,
            Family::Rsa => DecodingKey::from_rsa_pem(bytes)?,
            Family::EcP256 | Family::EcP384 => DecodingKey::from_ec_pem(bytes)?,
            Family::Ed25519 => DecodingKey::from_ed_pem(bytes)?,
        };
        let mut validation = Validation::new(alg);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_exp = true;
        match &options.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &options.issuer {
            validation.set_issuer(&[iss]);
        }
        Ok(Verifier { key, validation })
    }

    /// The algorithm tokens must be signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.validation.algorithms[0]
    }

    /// Verify the request's `Authorization: Bearer` token.
    ///
    /// # Errors
    /// `unauthenticated`, saying briefly what is wrong.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Failure> {
        let token = bearer(headers)?;
        self.verify(token)
    }

    /// Verify one token.
    ///
    /// # Errors
    /// `unauthenticated`, saying briefly what is wrong.
    pub fn verify(&self, token: &str) -> Result<Principal, Failure> {
        let unauthenticated = |m: &str| Failure::new(Code::Unauthenticated, m);
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
                let m = match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired".to_string(),
                    ErrorKind::ImmatureSignature => "the token is not valid yet".to_string(),
                    ErrorKind::InvalidSignature => {
                        "the token's signature does not verify".to_string()
                    }
                    ErrorKind::InvalidAlgorithm => {
                        format!("the token is not signed with {:?}", self.algorithm())
                    }
                    ErrorKind::MissingRequiredClaim(c) => format!("the token has no `{c}` claim"),
                    ErrorKind::InvalidAudience => "the token is for another audience".to_string(),
                    ErrorKind::InvalidIssuer => "the token is from another issuer".to_string(),
                    _ => "the token is not a valid JWT for this hub".to_string(),
                };
                unauthenticated(&m).detail(format!("{m} ({e})"))
            })?;
        let claims = data.claims;
        let site = claims
            .atomik_site
            .as_deref()
            .and_then(|s| (s.len() == 32).then(|| SiteId::from_str(s).ok()).flatten())
            .ok_or_else(|| {
                unauthenticated("the token has no valid `atomik_site` claim (32 hex digits)")
                    .detail(format!(
                        "sub {:?}: atomik_site {:?} is not a site id",
                        claims.sub, claims.atomik_site
                    ))
            })?;
        if let Some(role) = &claims.role {
            validate_role(role).map_err(|why| {
                unauthenticated("the token's `role` claim is not a valid role name")
                    .detail(format!("sub {:?}: {why}", claims.sub))
            })?;
        }
        let (write, read) = claims.scopes()?;
        Ok(Principal {
            sub: claims.sub,
            site,
            relay: claims.atomik_relay,
            role: claims.role,
            write,
            read,
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header.
///
/// # Errors
/// `unauthenticated` when there is none.
pub fn bearer(headers: &HeaderMap) -> Result<&str, Failure> {
    let missing = || {
        Failure::new(
            Code::Unauthenticated,
            "this hub needs an `Authorization: Bearer <token>` header",
        )
    };
    let value = headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let value = value.to_str().map_err(|_| missing())?;
    let (scheme, token) = value.trim().split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(missing());
    }
    Ok(token.trim())
}

/// May `principal` send `request`? Its site must be the token's; a
/// principal that is not a relay may upload only its own batches and may
/// not ask as a relay. Checked before the hub sees anything.
///
/// # Errors
/// `forbidden_site`, `forged_origin` or `not_a_relay`.
pub fn check_request(principal: &Principal, request: &Request) -> Result<(), Failure> {
    if request.site != principal.site {
        return Err(Failure::new(
            Code::ForbiddenSite,
            "the request's site is not the one this token was issued for",
        )
        .detail(format!(
            "request site {} != token atomik_site {}",
            request.site, principal.site
        )));
    }
    if principal.relay {
        return Ok(());
    }
    if let Some(u) = request.uploads.iter().find(|u| u.origin != principal.site) {
        return Err(Failure::new(
            Code::ForgedOrigin,
            "the request uploads a batch of another site: only a relay token may",
        )
        .detail(format!(
            "upload of origin {} seq {} with a token for site {}",
            u.origin, u.seq, principal.site
        )));
    }
    if request.relays {
        return Err(Failure::new(
            Code::NotARelay,
            "the request asks as a relay hub, and this token is not a relay's",
        ));
    }
    Ok(())
}

/// The longest PostgreSQL identifier (NAMEDATALEN - 1).
const MAX_ROLE_BYTES: usize = 63;

/// Is `role` a plain role name? ASCII letters, digits, `_`, `-`, `$` and
/// `.`, starting with a letter or `_`, at most 63 bytes.
///
/// # Errors
/// Why it is not.
pub fn validate_role(role: &str) -> Result<(), String> {
    let first_ok = role
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || role.len() > MAX_ROLE_BYTES {
        return Err(format!(
            "role {role:?} must start with a letter or _ and be at most {MAX_ROLE_BYTES} bytes"
        ));
    }
    if let Some(c) = role
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$' | '.')))
    {
        return Err(format!("role {role:?} has the character {c:?}"));
    }
    Ok(())
}

/// `role` quoted as an SQL identifier.
pub fn quote_ident(role: &str) -> String {
    format!("\"{}\"", role.replace('"', "\"\""))
}

/// Read an HMAC secret file (its raw bytes).
///
/// # Errors
/// An unreadable file, a PEM file, or one under 32 bytes.
pub fn read_secret(path: &Path) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read the key {}", path.display()))?;
    if family_of(&bytes).with_context(|| path.display().to_string())? != Family::Hmac {
        bail!(
            "{} is a PEM key: `atomik token` mints HS256/HS384/HS512 tokens from a shared secret",
            path.display()
        );
    }
    Ok(bytes)
}

/// Mint a token signed with an HMAC secret (`atomik token`, tests, dev).
///
/// # Errors
/// An algorithm that is not HS256, HS384 or HS512.
pub fn mint_hmac(secret: &[u8], alg: Algorithm, claims: &Claims) -> Result<String> {
    if !Family::Hmac.allows(alg) {
        bail!("`atomik token` signs with HS256, HS384 or HS512, not {alg:?}");
    }
    Ok(jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret)?,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn claims(site: &str, exp: u64) -> Claims {
        Claims {
            sub: "dev1".into(),
            exp,
            atomik_site: Some(site.into()),
            atomik_relay: false,
            role: Some("authenticated".into()),
            atomik_write: None,
            atomik_read: None,
        }
    }

    fn later() -> u64 {
        jsonwebtoken::get_current_timestamp() + 600
    }

    #[test]
    fn hmac_tokens_round_trip_and_expire() {
        let v = Verifier::from_key_bytes(SECRET, &AuthOptions::default()).unwrap();
        assert_eq!(v.algorithm(), Algorithm::HS256);
        let site = "00112233445566778899aabbccddeeff";
        let t = mint_hmac(SECRET, Algorithm::HS256, &claims(site, later())).unwrap();
        let p = v.verify(&t).unwrap();
        assert_eq!(p.site.to_string(), site);
        assert_eq!(p.role.as_deref(), Some("authenticated"));
        let old = mint_hmac(SECRET, Algorithm::HS256, &claims(site, 1000)).unwrap();
        assert!(v.verify(&old).unwrap_err().message.contains("expired"));
        let bad_site = mint_hmac(SECRET, Algorithm::HS256, &claims("zz", later())).unwrap();
        assert!(v
            .verify(&bad_site)
            .unwrap_err()
            .message
            .contains("atomik_site"));
        let other = mint_hmac(&[7u8; 32], Algorithm::HS256, &claims(site, later())).unwrap();
        assert!(v.verify(&other).unwrap_err().message.contains("signature"));
        let hs512 = mint_hmac(SECRET, Algorithm::HS512, &claims(site, later())).unwrap();
        assert!(v.verify(&hs512).unwrap_err().message.contains("HS256"));
    }

    #[test]
    fn scope_claims_are_checked_when_the_token_is() {
        let v = Verifier::from_key_bytes(SECRET, &AuthOptions::default()).unwrap();
        let site = "00112233445566778899aabbccddeeff";
        let with = |write: Option<&[&str]>, read: Option<&[&str]>, relay: bool| {
            let list = |p: Option<&[&str]>| p.map(|p| p.iter().map(|s| s.to_string()).collect());
            let c = Claims {
                atomik_write: list(write),
                atomik_read: list(read),
                atomik_relay: relay,
                ..claims(site, later())
            };
            v.verify(&mint_hmac(SECRET, Algorithm::HS256, &c).unwrap())
        };
        let p = with(Some(&["stock.q"]), Some(&[]), false).unwrap();
        assert!(p.write.allows("stock", "q") && !p.write.allows("stock", "r"));
        assert!(!p.read.allows("stock", "q"));
        let p = with(None, None, false).unwrap();
        assert!(p.write.is_all() && p.read.is_all());
        // A relay may say "everything" explicitly, and nothing less.
        assert!(with(Some(&["*"]), None, true).unwrap().relay);
        for (write, read) in [(Some(&["stock.q"][..]), None), (None, Some(&[][..]))] {
            let f = with(write, read, true).unwrap_err();
            assert_eq!(f.code, Code::Unauthenticated);
            assert_eq!(
                f.message,
                "a relay token cannot have an `atomik_write` or `atomik_read` scope"
            );
        }
        let f = with(None, Some(&["stock.q", "stock"]), false).unwrap_err();
        assert_eq!(f.code, Code::Unauthenticated);
        assert_eq!(
            f.message,
            r#"the token's `atomik_read` claim is not a list of "table.column", "table.*" or "*" patterns"#
        );
        assert!(
            f.detail.contains(r#"atomik_read: pattern "stock" is not"#),
            "{}",
            f.detail
        );
        // `null` is not "absent" (which would grant everything).
        let null = serde_json::json!({
            "sub": "dev1", "exp": later(), "atomik_site": site, "atomik_write": null
        });
        let t = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &null,
            &EncodingKey::from_secret(SECRET).unwrap(),
        )
        .unwrap();
        let f = v.verify(&t).unwrap_err();
        assert_eq!(f.code, Code::Unauthenticated);
        assert!(f.detail.contains("null"), "{}", f.detail);
    }

    #[test]
    fn short_secrets_and_private_keys_are_refused() {
        assert!(Verifier::from_key_bytes(b"short", &AuthOptions::default()).is_err());
        let kp = rcgen::KeyPair::generate().unwrap();
        let err = Verifier::from_key_bytes(kp.serialize_pem().as_bytes(), &AuthOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
    }

    #[test]
    fn public_keys_are_told_apart_and_verify() {
        for (alg, want) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, Algorithm::ES384),
            (&rcgen::PKCS_ED25519, Algorithm::EdDSA),
        ] {
            let kp = rcgen::KeyPair::generate_for(alg).unwrap();
            let v =
                Verifier::from_key_bytes(kp.public_key_pem().as_bytes(), &AuthOptions::default())
                    .unwrap();
            assert_eq!(v.algorithm(), want);
            let signing = match want {
                Algorithm::EdDSA => EncodingKey::from_ed_pem(kp.serialize_pem().as_bytes()),
                _ => EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()),
            }
            .unwrap();
            let site = "00112233445566778899aabbccddeeff";
            let t =
                jsonwebtoken::encode(&Header::new(want), &claims(site, later()), &signing).unwrap();
            assert_eq!(v.verify(&t).unwrap().sub, "dev1");
            // A token signed with the public key as an HMAC secret (the
            // classic algorithm confusion) does not pass.
            let confused = mint_hmac(
                kp.public_key_pem().as_bytes(),
                Algorithm::HS256,
                &claims(site, later()),
            )
            .unwrap();
            assert!(v.verify(&confused).is_err());
        }
        let rsa = Verifier::from_key_bytes(RSA_PUBLIC.as_bytes(), &AuthOptions::default()).unwrap();
        assert_eq!(rsa.algorithm(), Algorithm::RS256);
        let ps = AuthOptions {
            alg: Some(Algorithm::PS512),
            ..AuthOptions::default()
        };
        assert_eq!(
            Verifier::from_key_bytes(RSA_PUBLIC.as_bytes(), &ps)
                .unwrap()
                .algorithm(),
            Algorithm::PS512
        );
        let es = AuthOptions {
            alg: Some(Algorithm::ES256),
            ..AuthOptions::default()
        };
        assert!(Verifier::from_key_bytes(RSA_PUBLIC.as_bytes(), &es).is_err());
    }

    #[test]
    fn roles_are_plain_names_quoted_as_identifiers() {
        for ok in ["authenticated", "anon", "_svc", "app-device.v2$"] {
            validate_role(ok).unwrap();
        }
        for bad in ["", "1x", "a b", "x\"; DROP ROLE y; --", &"r".repeat(64)] {
            assert!(validate_role(bad).is_err(), "{bad:?}");
        }
        assert_eq!(quote_ident("authenticated"), "\"authenticated\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn bearer_header_is_required() {
        let mut h = HeaderMap::new();
        assert!(bearer(&h).is_err());
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(bearer(&h).is_err());
        h.insert(header::AUTHORIZATION, "Bearer abc.def.ghi".parse().unwrap());
        assert_eq!(bearer(&h).unwrap(), "abc.def.ghi");
    }

    /// A 2048-bit RSA public key (`openssl genrsa 2048 | openssl rsa -pubout`).
    const RSA_PUBLIC: &str = include_str!("testdata/rsa_public.pem");
}
