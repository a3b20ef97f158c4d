//! One atomik value: `(group, reference, accumulator)`, its operations and
//! its canonical 17-byte form.

use std::fmt;
use std::str::FromStr;

use crate::error::ValueError;
use crate::group::Group;

/// Format version stored in the high nibble of the canonical tag byte.
pub const VALUE_FORMAT_VERSION: u8 = 1;

/// Length of the canonical binary form: tag, reference, accumulator.
pub const CANONICAL_LEN: usize = 17;

/// A delta-accumulated value.
///
/// * `reference` — what this replica knows has been shipped or received;
///   deltas received from other replicas fold in here.
/// * `accumulator` — local writes not yet sealed into a batch.
///
/// [`read`](AtomikValue::read) is `reference ⊕ accumulator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AtomikValue {
    group: Group,
    reference: u64,
    accumulator: u64,
}

impl AtomikValue {
    /// The identity value of a group: reference and accumulator both `0`.
    pub const fn identity(group: Group) -> Self {
        AtomikValue {
            group,
            reference: 0,
            accumulator: 0,
        }
    }

    /// A value from its parts.
    pub const fn from_parts(group: Group, reference: u64, accumulator: u64) -> Self {
        AtomikValue {
            group,
            reference,
            accumulator,
        }
    }

    /// A value created at the SQL level (`atomik_add(v)`, `atomik_xor(v)`):
    /// `v` pending on top of the identity, so an inserted row replicates as a
    /// delta and two replicas inserting the same key merge.
    pub const fn new_pending(group: Group, v: u64) -> Self {
        AtomikValue {
            group,
            reference: 0,
            accumulator: v,
        }
    }

    /// `load(v)`: reference = v, accumulator = identity. For the protocol's
    /// own use, such as installing a snapshot.
    pub const fn load(group: Group, v: u64) -> Self {
        AtomikValue {
            group,
            reference: v,
            accumulator: 0,
        }
    }

    /// The group this value accumulates in.
    pub const fn group(&self) -> Group {
        self.group
    }

    /// The reference word.
    pub const fn reference(&self) -> u64 {
        self.reference
    }

    /// The accumulator word (same as [`pending`](Self::pending)).
    pub const fn accumulator(&self) -> u64 {
        self.accumulator
    }

    /// `accum(d)`: accumulator = accumulator ⊕ d. O(1).
    #[must_use]
    pub const fn accum(self, delta: u64) -> Self {
        AtomikValue {
            accumulator: self.group.combine(self.accumulator, delta),
            ..self
        }
    }

    /// `read()`: reference ⊕ accumulator.
    pub const fn read(&self) -> u64 {
        self.group.combine(self.reference, self.accumulator)
    }

    /// The read value as a signed 64-bit integer (SQL `bigint`).
    pub const fn read_i64(&self) -> i64 {
        self.read() as i64
    }

    /// `pending()`: the local delta not yet shipped.
    pub const fn pending(&self) -> u64 {
        self.accumulator
    }

    /// `set(v)`: accum(v ⊖ read()) — a write expressed as a delta, so that it
    /// merges with concurrent deltas instead of overwriting them. Two
    /// concurrent sets therefore merge to neither value (see the docs).
    #[must_use]
    pub const fn set(self, v: u64) -> Self {
        let delta = self.group.difference(v, self.read());
        self.accum(delta)
    }

    /// Undo of a delta `d`: accum(⊖d). For xor this is applying `d` again.
    #[must_use]
    pub const fn undo(self, delta: u64) -> Self {
        self.accum(self.group.inverse(delta))
    }

    /// Fold a received (remote) delta into the reference, leaving the local
    /// accumulator untouched (replication rule 1).
    #[must_use]
    pub const fn receive(self, delta: u64) -> Self {
        AtomikValue {
            reference: self.group.combine(self.reference, delta),
            ..self
        }
    }

    /// Seal: move the accumulator into the reference. Returns the sealed
    /// value and the delta that was pending.
    #[must_use]
    pub const fn seal(self) -> (Self, u64) {
        (
            AtomikValue {
                reference: self.read(),
                accumulator: 0,
                group: self.group,
            },
            self.accumulator,
        )
    }

    /// Group-combine two values (the `atomik_fold` aggregate step): both
    /// words combine pointwise, so the fold of values reads as the sum of
    /// their reads and keeps the sum of their pending deltas.
    ///
    /// # Errors
    /// [`ValueError::GroupMismatch`] when the groups differ.
    pub fn combine(self, other: AtomikValue) -> Result<Self, ValueError> {
        if self.group != other.group {
            return Err(ValueError::GroupMismatch {
                left: self.group,
                right: other.group,
            });
        }
        Ok(AtomikValue {
            group: self.group,
            reference: self.group.combine(self.reference, other.reference),
            accumulator: self.group.combine(self.accumulator, other.accumulator),
        })
    }

    /// The canonical tag byte: format version in the high nibble, group code
    /// in the low nibble.
    pub const fn tag(&self) -> u8 {
        (VALUE_FORMAT_VERSION << 4) | self.group.code()
    }

    /// The canonical 17-byte form: tag, reference (LE), accumulator (LE).
    pub fn to_bytes(&self) -> [u8; CANONICAL_LEN] {
        let mut out = [0u8; CANONICAL_LEN];
        out[0] = self.tag();
        out[1..9].copy_from_slice(&self.reference.to_le_bytes());
        out[9..17].copy_from_slice(&self.accumulator.to_le_bytes());
        out
    }

    /// Decode the canonical 17-byte form.
    ///
    /// # Errors
    /// [`ValueError::WrongLength`] for any length other than 17,
    /// [`ValueError::UnsupportedVersion`] or [`ValueError::UnknownGroup`] for
    /// a tag this build does not read.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ValueError> {
        if bytes.len() != CANONICAL_LEN {
            return Err(ValueError::WrongLength(bytes.len()));
        }
        let tag = bytes[0];
        let version = tag >> 4;
        if version != VALUE_FORMAT_VERSION {
            return Err(ValueError::UnsupportedVersion { tag, version });
        }
        let group = Group::from_code(tag & 0x0F).ok_or(ValueError::UnknownGroup { tag })?;
        let word = |range: std::ops::Range<usize>| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[range]);
            u64::from_le_bytes(w)
        };
        Ok(AtomikValue {
            group,
            reference: word(1..9),
            accumulator: word(9..17),
        })
    }
}

/// Text form, made to read well in psql and to round-trip exactly:
///
/// * `add:42` — read 42, nothing pending;
/// * `add:42;pending=-3` — read 42, of which −3 is local and unshipped;
/// * `xor:0x00000000000000ff;pending=0x0000000000000001` — xor words in hex.
impl fmt::Display for AtomikValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = |f: &mut fmt::Formatter<'_>, w: u64| match self.group {
            Group::Add => write!(f, "{}", w as i64),
            Group::Xor => write!(f, "0x{w:016x}"),
        };
        write!(f, "{}:", self.group)?;
        word(f, self.read())?;
        if self.accumulator != 0 {
            f.write_str(";pending=")?;
            word(f, self.accumulator)?;
        }
        Ok(())
    }
}

impl FromStr for AtomikValue {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ValueError::BadText {
            text: s.chars().take(80).collect(),
            why: why.to_string(),
        };
        let trimmed = s.trim();
        let (group_name, rest) = trimmed
            .split_once(':')
            .ok_or_else(|| bad("expected GROUP:VALUE, such as add:42 or xor:0xff"))?;
        let group: Group = group_name.trim().parse().map_err(|_| {
            bad(&format!(
                "unknown group \"{}\" (expected \"add\" or \"xor\")",
                group_name.trim()
            ))
        })?;
        let (read_text, pending_text) = match rest.split_once(';') {
            None => (rest, None),
            Some((r, p)) => {
                let p = p
                    .trim()
                    .strip_prefix("pending=")
                    .ok_or_else(|| bad("expected ;pending=DELTA after the value"))?;
                (r, Some(p))
            }
        };
        let read = parse_word(read_text.trim()).map_err(|why| bad(&why))?;
        let pending = match pending_text {
            Some(p) => parse_word(p.trim()).map_err(|why| bad(&why))?,
            None => 0,
        };
        Ok(AtomikValue {
            group,
            reference: group.difference(read, pending),
            accumulator: pending,
        })
    }
}

/// Parse a 64-bit word written as a signed decimal or as `0x` hex (up to 16
/// digits). Decimals outside the `i64` range are rejected, never wrapped.
pub fn parse_word(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err("empty number".to_string());
    }
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "\"{text}\" is not a 64-bit hex word (0x and 1 to 16 hex digits)"
            ));
        }
        return u64::from_str_radix(hex, 16).map_err(|e| e.to_string());
    }
    text.parse::<i64>()
        .map(|v| v as u64)
        .map_err(|_| format!("\"{text}\" is not a 64-bit integer (out of range or not a number)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes() {
        let v = AtomikValue::from_parts(Group::Add, 1, 0x0102030405060708);
        assert_eq!(
            v.to_bytes(),
            [0x11, 1, 0, 0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]
        );
        let x = AtomikValue::new_pending(Group::Xor, u64::MAX);
        assert_eq!(
            x.to_bytes(),
            [0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(AtomikValue::from_bytes(&v.to_bytes()).unwrap(), v);
        assert_eq!(AtomikValue::from_bytes(&x.to_bytes()).unwrap(), x);
    }

    #[test]
    fn rejects_bad_bytes() {
        let ok = AtomikValue::identity(Group::Add).to_bytes();
        assert_eq!(
            AtomikValue::from_bytes(&ok[..16]).unwrap_err().to_string(),
            "atomik value must be 17 bytes, got 16"
        );
        let mut v2 = ok;
        v2[0] = 0x21;
        assert_eq!(
            AtomikValue::from_bytes(&v2).unwrap_err().to_string(),
            "atomik value has format version 2 (tag 0x21); this build reads version 1"
        );
        let mut g = ok;
        g[0] = 0x13;
        assert_eq!(
            AtomikValue::from_bytes(&g).unwrap_err().to_string(),
            "atomik value has unknown group code 3 (tag 0x13)"
        );
        assert!(AtomikValue::from_bytes(&[0u8; 17]).is_err());
        assert!(AtomikValue::from_bytes(&[]).is_err());
    }

    #[test]
    fn operations() {
        let v = AtomikValue::new_pending(Group::Add, 5);
        assert_eq!(v.read_i64(), 5);
        assert_eq!(v.pending(), 5);
        let v = v.accum((-2i64) as u64);
        assert_eq!(v.read_i64(), 3);
        let v = v.set(10);
        assert_eq!(v.read_i64(), 10);
        assert_eq!(v.reference(), 0);
        let (sealed, delta) = v.seal();
        assert_eq!(delta, 10);
        assert_eq!(sealed, AtomikValue::load(Group::Add, 10));
        let r = sealed.receive(7);
        assert_eq!(r.read_i64(), 17);
        assert_eq!(r.pending(), 0);
        assert_eq!(r.accum(4).undo(4), r);
    }

    #[test]
    fn text_round_trips() {
        for v in [
            AtomikValue::identity(Group::Add),
            AtomikValue::from_parts(Group::Add, 40, (-3i64) as u64),
            AtomikValue::from_parts(Group::Add, i64::MIN as u64, 1),
            AtomikValue::from_parts(Group::Xor, 0xF0, 0x0F),
            AtomikValue::load(Group::Xor, u64::MAX),
        ] {
            let text = v.to_string();
            assert_eq!(text.parse::<AtomikValue>().unwrap(), v, "{text}");
        }
        assert_eq!(
            AtomikValue::from_parts(Group::Add, 45, (-3i64) as u64).to_string(),
            "add:42;pending=-3"
        );
        assert_eq!(
            AtomikValue::load(Group::Xor, 255).to_string(),
            "xor:0x00000000000000ff"
        );
        assert_eq!("add: 7 ".parse::<AtomikValue>().unwrap().read_i64(), 7);
    }

    #[test]
    fn text_errors_name_the_problem() {
        let e = |s: &str| s.parse::<AtomikValue>().unwrap_err().to_string();
        assert_eq!(
            e("42"),
            "invalid atomik text \"42\": expected GROUP:VALUE, such as add:42 or xor:0xff"
        );
        assert_eq!(
            e("mul:3"),
            "invalid atomik text \"mul:3\": unknown group \"mul\" (expected \"add\" or \"xor\")"
        );
        assert_eq!(
            e("add:9223372036854775808"),
            "invalid atomik text \"add:9223372036854775808\": \"9223372036854775808\" is not a 64-bit integer (out of range or not a number)"
        );
        assert_eq!(
            e("xor:0x10000000000000000"),
            "invalid atomik text \"xor:0x10000000000000000\": \"0x10000000000000000\" is not a 64-bit hex word (0x and 1 to 16 hex digits)"
        );
        assert_eq!(
            e("add:1;p=2"),
            "invalid atomik text \"add:1;p=2\": expected ;pending=DELTA after the value"
        );
    }
}
