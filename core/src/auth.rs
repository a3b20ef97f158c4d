//! Device keys: message authentication for transports without TLS and
//! tokens (a file on a USB stick, a queue, `atomik_sync` called in SQL).
//!
//! A device and its hub share a 32-byte key. The device's sync requests
//! then end in a 16-byte tag — HMAC-SHA-256 of every byte before it,
//! truncated to 128 bits — in place of the 4-byte checksum (so a message
//! costs 12 bytes more), and so does the hub's response to it. A hub with
//! a key enrolled for a site refuses that site's requests without a tag
//! that verifies, and can refuse every site without an enrolled key; a
//! device with a key refuses responses without a tag that verifies with
//! it. Replays stay harmless as over HTTP: a replayed request's uploads
//! are duplicates, its answer a no-op.
//!
//! Keys are stored per site (a hub: one per enrolled device; a device: its
//! own, under its own site id) by [`crate::log_store::LogStore`].

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::ProtocolError;

/// Bytes in a device key.
pub const KEY_LEN: usize = 32;

/// Bytes in a message's tag.
pub const TAG_LEN: usize = 16;

/// A device's secret key, shared with its hub.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKey([u8; KEY_LEN]);

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceKey(..)")
    }
}

impl DeviceKey {
    /// A key from its 32 bytes.
    ///
    /// # Errors
    /// [`ProtocolError::DeviceKeyLength`] for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        <[u8; KEY_LEN]>::try_from(bytes)
            .map(DeviceKey)
            .map_err(|_| ProtocolError::DeviceKeyLength(bytes.len()))
    }

    /// A new random key (from the operating system's generator).
    ///
    /// # Errors
    /// The generator failed.
    pub fn generate() -> Result<Self, ProtocolError> {
        let mut k = [0u8; KEY_LEN];
        getrandom::fill(&mut k).map_err(|e| ProtocolError::store(format!("no randomness: {e}")))?;
        Ok(DeviceKey(k))
    }

    /// The key's bytes (to store it).
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn mac(&self, covered: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length: this never fails.
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("HMAC accepts a 32-byte key");
        mac.update(covered);
        mac
    }

    /// The tag of `covered`.
    pub fn tag(&self, covered: &[u8]) -> [u8; TAG_LEN] {
        let full = self.mac(covered).finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// Whether `tag` is the tag of `covered` (compared in constant time).
    pub fn verifies(&self, covered: &[u8], tag: &[u8]) -> bool {
        tag.len() == TAG_LEN && self.mac(covered).verify_truncated_left(tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_verify_with_their_key_only() {
        let k = DeviceKey::from_bytes(&[7u8; 32]).unwrap();
        let other = DeviceKey::from_bytes(&[8u8; 32]).unwrap();
        let t = k.tag(b"message");
        assert!(k.verifies(b"message", &t));
        assert!(!k.verifies(b"messagf", &t));
        assert!(!other.verifies(b"message", &t));
        assert!(!k.verifies(b"message", &t[..15]));
        let mut flipped = t;
        flipped[15] ^= 1;
        assert!(!k.verifies(b"message", &flipped));
    }

    #[test]
    fn keys_are_32_bytes_and_never_printed() {
        assert_eq!(
            DeviceKey::from_bytes(&[0u8; 31]).unwrap_err().to_string(),
            "a device key is 32 bytes, not 31"
        );
        let k = DeviceKey::generate().unwrap();
        assert_ne!(k, DeviceKey::generate().unwrap());
        assert_eq!(format!("{k:?}"), "DeviceKey(..)");
    }

    /// RFC 4231 test case 2 (key "Jefe"), truncated: the tag is standard
    /// HMAC-SHA-256, so any implementation can produce and check it.
    #[test]
    fn tag_is_standard_hmac_sha256() {
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        // A 4-byte key zero-padded to the block is the same HMAC key.
        let t = DeviceKey(key).tag(b"what do ya want for nothing?");
        assert_eq!(
            t,
            [
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
                0x75, 0xc7
            ]
        );
    }
}
