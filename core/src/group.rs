//! The two abelian groups over 64-bit words that atomik values live in.
//!
//! A group is a set with an associative, commutative operation `⊕`, an
//! identity `0` and an inverse `⊖x`. Words are stored as `u64`; the `add`
//! group reads them as two's-complement `i64`, so `u64` wrapping arithmetic
//! and `i64` wrapping arithmetic agree bit for bit.

use std::fmt;
use std::str::FromStr;

use crate::error::ValueError;

/// Which group a value accumulates in.
///
/// | group | `a ⊕ b` | `⊖x` |
/// |---|---|---|
/// | [`Group::Add`] | `a.wrapping_add(b)` | `x.wrapping_neg()` |
/// | [`Group::Xor`] | `a ^ b` | `x` |
///
/// XOR is not a counter: `+1` accumulated twice under xor is `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// Wrapping 64-bit two's-complement addition: counters, tallies, inventory.
    Add,
    /// Bitwise exclusive or: flag words, bitsets, fingerprints, parity.
    Xor,
}

impl Group {
    /// Every group, in code order.
    pub const ALL: [Group; 2] = [Group::Add, Group::Xor];

    /// The identity element (`0` for both groups).
    #[inline]
    pub const fn identity(self) -> u64 {
        0
    }

    /// `a ⊕ b`.
    #[inline]
    pub const fn combine(self, a: u64, b: u64) -> u64 {
        match self {
            Group::Add => a.wrapping_add(b),
            Group::Xor => a ^ b,
        }
    }

    /// `⊖x`, the element that combines with `x` to the identity.
    #[inline]
    pub const fn inverse(self, x: u64) -> u64 {
        match self {
            Group::Add => x.wrapping_neg(),
            Group::Xor => x,
        }
    }

    /// `a ⊖ b`: the delta that takes `b` to `a`.
    #[inline]
    pub const fn difference(self, a: u64, b: u64) -> u64 {
        match self {
            Group::Add => a.wrapping_sub(b),
            Group::Xor => a ^ b,
        }
    }

    /// Group-sum of many elements (the identity for none).
    pub fn sum<I: IntoIterator<Item = u64>>(self, items: I) -> u64 {
        items
            .into_iter()
            .fold(self.identity(), |acc, x| self.combine(acc, x))
    }

    /// The group's code in the low nibble of the canonical tag byte and in
    /// wire dictionaries.
    #[inline]
    pub const fn code(self) -> u8 {
        match self {
            Group::Add => 1,
            Group::Xor => 2,
        }
    }

    /// The group with this code, if any.
    pub const fn from_code(code: u8) -> Option<Group> {
        match code {
            1 => Some(Group::Add),
            2 => Some(Group::Xor),
            _ => None,
        }
    }

    /// The SQL-facing name: `"add"` or `"xor"`.
    pub const fn name(self) -> &'static str {
        match self {
            Group::Add => "add",
            Group::Xor => "xor",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Group {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "add" => Ok(Group::Add),
            "xor" => Ok(Group::Xor),
            other => Err(ValueError::UnknownGroupName(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_operations() {
        assert_eq!(Group::Add.combine(u64::MAX, 2), 1);
        assert_eq!(Group::Add.inverse(1), u64::MAX);
        assert_eq!(Group::Add.difference(5, 7), (-2i64) as u64);
        assert_eq!(Group::Xor.combine(0b1100, 0b1010), 0b0110);
        assert_eq!(Group::Xor.inverse(0xDEAD), 0xDEAD);
        assert_eq!(Group::Add.sum([1, 2, 3]), 6);
        assert_eq!(Group::Xor.sum([1, 1]), 0);
    }

    #[test]
    fn names_and_codes_round_trip() {
        for g in Group::ALL {
            assert_eq!(g.name().parse::<Group>().unwrap(), g);
            assert_eq!(Group::from_code(g.code()), Some(g));
        }
        assert!(Group::from_code(0).is_none());
        assert!(Group::from_code(3).is_none());
        assert_eq!(
            "sum".parse::<Group>().unwrap_err().to_string(),
            "unknown atomik group \"sum\" (expected \"add\" or \"xor\")"
        );
    }
}
