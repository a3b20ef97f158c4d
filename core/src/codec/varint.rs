//! LEB128 varints and zigzag, with a strict decoder.
//!
//! Written here rather than taken from a crate because the decoder must be
//! strict in ways the wire format depends on: at most 10 bytes, no bits past
//! 64, and no overlong (non-minimal) encodings, so that every value has
//! exactly one encoding and every message exactly one byte form.

/// Append `v` as an unsigned LEB128 varint.
#[inline]
pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Number of bytes `put_u64` writes for `v`.
#[inline]
pub fn len_u64(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Zigzag-map a signed value so that small magnitudes encode short.
#[inline]
pub const fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
#[inline]
pub const fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// Input ended before the last byte.
    Truncated,
    /// More than 64 bits, or an overlong encoding.
    Invalid,
}

/// Read an unsigned varint from the front of `input`; returns the value and
/// the number of bytes used.
///
/// # Errors
/// [`VarintError::Truncated`] when the input ends mid-varint,
/// [`VarintError::Invalid`] for more than 64 bits or a non-minimal encoding.
#[inline]
pub fn get_u64(input: &[u8]) -> Result<(u64, usize), VarintError> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate().take(10) {
        let low = u64::from(byte & 0x7F);
        if i == 9 && byte > 1 {
            return Err(VarintError::Invalid);
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(VarintError::Invalid);
            }
            return Ok((value, i + 1));
        }
    }
    if input.len() >= 10 {
        Err(VarintError::Invalid)
    } else {
        Err(VarintError::Truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden() {
        let enc = |v| {
            let mut o = Vec::new();
            put_u64(&mut o, v);
            o
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(1), [1]);
        assert_eq!(enc(127), [0x7F]);
        assert_eq!(enc(300), [0b1010_1100, 0b0000_0010]);
        assert_eq!(
            enc(u64::MAX),
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]
        );
        assert_eq!(zigzag(0), 0);
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(-2), 3);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }

    #[test]
    fn strict_decoding() {
        assert_eq!(get_u64(&[]), Err(VarintError::Truncated));
        assert_eq!(get_u64(&[0x80]), Err(VarintError::Truncated));
        assert_eq!(
            get_u64(&[0x80, 0x00]),
            Err(VarintError::Invalid),
            "overlong zero"
        );
        assert_eq!(get_u64(&[0xAC, 0x02, 0x99]), Ok((300, 2)));
        let mut too_big = vec![0xFF; 9];
        too_big.push(0x02);
        assert_eq!(get_u64(&too_big), Err(VarintError::Invalid));
        assert_eq!(get_u64(&[0xFF; 11]), Err(VarintError::Invalid));
    }

    proptest! {
        #[test]
        fn round_trip(v: u64, tail in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut o = Vec::new();
            put_u64(&mut o, v);
            prop_assert_eq!(o.len(), len_u64(v));
            let n = o.len();
            o.extend(tail);
            prop_assert_eq!(get_u64(&o), Ok((v, n)));
        }

        #[test]
        fn zigzag_round_trip(v: i64) {
            prop_assert_eq!(unzigzag(zigzag(v)), v);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = get_u64(&bytes);
        }
    }
}
