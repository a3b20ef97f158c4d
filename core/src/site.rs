//! Site ids and version vectors.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A replica's random 128-bit identity, created on first use and kept in its
/// metadata. Displayed as 32 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SiteId(pub [u8; 16]);

impl SiteId {
    /// A fresh random site id from the operating system's generator.
    ///
    /// # Errors
    /// When the operating system has no randomness to give.
    pub fn random() -> Result<SiteId, String> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| format!("cannot create a site id: {e}"))?;
        Ok(SiteId(bytes))
    }

    /// The raw 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// A site id from a 16-byte slice.
    pub fn from_slice(bytes: &[u8]) -> Option<SiteId> {
        <[u8; 16]>::try_from(bytes).ok().map(SiteId)
    }
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SiteId({self})")
    }
}

impl FromStr for SiteId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("\"{s}\" is not a site id (32 hex digits)"));
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(SiteId(out))
    }
}

/// Per origin site, the highest batch seq applied. Absent means 0.
///
/// Zero entries are never stored, so two vectors that cover the same batches
/// compare equal and encode to the same bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VersionVector {
    entries: BTreeMap<SiteId, u64>,
}

impl VersionVector {
    /// The empty vector (covers nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// The highest seq applied from `site` (0 if none).
    pub fn get(&self, site: &SiteId) -> u64 {
        self.entries.get(site).copied().unwrap_or(0)
    }

    /// Set the entry for `site`; a 0 removes it.
    pub fn set(&mut self, site: SiteId, seq: u64) {
        if seq == 0 {
            self.entries.remove(&site);
        } else {
            self.entries.insert(site, seq);
        }
    }

    /// Iterate over the non-zero entries in site order.
    pub fn iter(&self) -> impl Iterator<Item = (SiteId, u64)> + '_ {
        self.entries.iter().map(|(s, n)| (*s, *n))
    }

    /// Number of non-zero entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the vector covers nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Pointwise maximum of two vectors (the vector a download covers, rule 5).
    pub fn max(&self, other: &VersionVector) -> VersionVector {
        let mut out = self.clone();
        for (site, seq) in other.iter() {
            if seq > out.get(&site) {
                out.set(site, seq);
            }
        }
        out
    }

    /// True when every entry of `other` is at most the entry here.
    pub fn covers(&self, other: &VersionVector) -> bool {
        other.iter().all(|(site, seq)| self.get(&site) >= seq)
    }
}

impl FromIterator<(SiteId, u64)> for VersionVector {
    fn from_iter<T: IntoIterator<Item = (SiteId, u64)>>(iter: T) -> Self {
        let mut v = VersionVector::new();
        for (s, n) in iter {
            v.set(s, n);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(b: u8) -> SiteId {
        SiteId([b; 16])
    }

    #[test]
    fn site_text_round_trips() {
        let s = SiteId([0xAB; 16]);
        assert_eq!(s.to_string(), "ab".repeat(16));
        assert_eq!(s.to_string().parse::<SiteId>().unwrap(), s);
        assert!("xyz".parse::<SiteId>().is_err());
        assert_ne!(SiteId::random().unwrap(), SiteId::random().unwrap());
    }

    #[test]
    fn vectors() {
        let mut a = VersionVector::new();
        a.set(site(1), 3);
        a.set(site(2), 0);
        assert_eq!(a.len(), 1);
        let b: VersionVector = [(site(1), 1), (site(2), 5)].into_iter().collect();
        let m = a.max(&b);
        assert_eq!(m.get(&site(1)), 3);
        assert_eq!(m.get(&site(2)), 5);
        assert!(m.covers(&a) && m.covers(&b));
        assert!(!a.covers(&b));
        assert_eq!(a.get(&site(9)), 0);
    }
}
