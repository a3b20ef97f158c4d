//! Device keys in the protocol ([`crate::auth`]): which messages must carry
//! a tag, and whose key checks it.
//!
//! * A hub with a key enrolled for the asking site accepts its request
//!   only with a tag that verifies with that key, and tags its answer with
//!   it. A request with a tag but no enrolled key is refused (it cannot be
//!   checked); with [`settings::REQUIRE_KEYS`] set, so is every request of a
//!   site without an enrolled key.
//! * A replica with a key of its own (stored under its own site id) tags
//!   its requests and accepts only responses whose tag verifies with it.
//!
//! Checks run before anything of the message is applied.

use crate::auth::DeviceKey;
use crate::codec::v2::Tagged;
use crate::error::{ProtocolError, Result};
use crate::log_store::LogStore;
use crate::site::SiteId;

use super::{flag, settings};

/// On a hub: check the authentication of a request from `site`; the key
/// to tag the answer with, if the site has one.
pub(super) fn check_request<S: LogStore + ?Sized>(
    store: &mut S,
    site: SiteId,
    tagged: Option<Tagged<'_>>,
) -> Result<Option<DeviceKey>> {
    let refuse = |why| Err(ProtocolError::Unauthenticated { site, why });
    match (store.device_key(site)?, tagged) {
        (Some(key), Some(t)) if t.verifies(&key) => Ok(Some(key)),
        (Some(_), Some(_)) => refuse("its tag does not verify with the device key enrolled here"),
        (Some(_), None) => {
            refuse("a device key is enrolled here for it, and the request carries no tag")
        }
        (None, Some(_)) => {
            refuse("it carries a device-key tag, but no device key is enrolled here for it")
        }
        (None, None) if flag(store, settings::REQUIRE_KEYS)? => {
            refuse("this hub accepts only sites with an enrolled device key")
        }
        (None, None) => Ok(None),
    }
}

/// On the replica `site` that asked: check the authentication of a
/// response from `from`.
pub(super) fn check_response<S: LogStore + ?Sized>(
    store: &mut S,
    site: SiteId,
    from: SiteId,
    tagged: Option<Tagged<'_>>,
) -> Result<()> {
    let refuse = |why| Err(ProtocolError::UnauthenticatedResponse { from, why });
    match (store.device_key(site)?, tagged) {
        (Some(key), Some(t)) if t.verifies(&key) => Ok(()),
        (Some(_), Some(_)) => refuse("its tag does not verify with this replica's device key"),
        (Some(_), None) => refuse("this replica has a device key, and the response carries no tag"),
        (None, Some(_)) => {
            refuse("it carries a device-key tag, but this replica has no device key")
        }
        (None, None) => Ok(()),
    }
}

/// `atomik_set_device_key(site, key)`: on a hub, enroll `key` for the
/// device `site` (hex), or with `None` remove its key; on a device, the
/// same with its own site id (`atomik_site_id()`) sets the key it tags its
/// requests with. Returns whether anything changed.
///
/// # Errors
/// A site that is not 32 hex digits, a key that is not 32 bytes; store
/// errors.
pub fn set_device_key<S: LogStore + ?Sized>(
    store: &mut S,
    site: &str,
    key: Option<&[u8]>,
) -> Result<bool> {
    let site: SiteId = site.parse().map_err(ProtocolError::BadSiteId)?;
    let key = key.map(DeviceKey::from_bytes).transpose()?;
    if store.device_key(site)? == key {
        return Ok(false);
    }
    store.set_device_key(site, key.as_ref())?;
    Ok(true)
}

/// `atomik_require_device_keys([on])`: whether this hub serves only sites
/// with an enrolled device key, after setting it when `on` is given.
///
/// # Errors
/// Store errors.
pub fn require_device_keys<S: LogStore + ?Sized>(store: &mut S, on: Option<bool>) -> Result<bool> {
    if let Some(on) = on {
        store.set_setting(settings::REQUIRE_KEYS, on.then_some(1))?;
    }
    flag(store, settings::REQUIRE_KEYS)
}

/// This replica's own device key, to tag its requests with.
pub(super) fn own_key<S: LogStore + ?Sized>(store: &mut S) -> Result<Option<DeviceKey>> {
    let site = store.site_id()?;
    store.device_key(site)
}
