//! A bounds-checked cursor over untrusted bytes. Every read checks what is
//! left first, so decoding never panics and never trusts a length or count
//! beyond what the remaining input could hold.

use super::varint::{self, VarintError};
use crate::error::DecodeError;

/// A cursor over a message body.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let b = *self
            .bytes
            .get(self.pos)
            .ok_or(DecodeError::Truncated(what))?;
        self.pos += 1;
        Ok(b)
    }

    /// `n` raw bytes.
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated(what));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A little-endian 64-bit word.
    pub fn u64_le(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let s = self.take(8, what)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(s);
        Ok(u64::from_le_bytes(w))
    }

    /// An unsigned varint.
    pub fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        match varint::get_u64(&self.bytes[self.pos..]) {
            Ok((v, n)) => {
                self.pos += n;
                Ok(v)
            }
            Err(VarintError::Truncated) => Err(DecodeError::Truncated(what)),
            Err(VarintError::Invalid) => Err(DecodeError::BadVarint(what)),
        }
    }

    /// A zigzag varint.
    pub fn zigzag(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        self.varint(what).map(varint::unzigzag)
    }

    /// A count of items each at least `min_item_len` bytes long: rejected
    /// when the rest of the input could not hold that many, so no caller
    /// allocates for items that are not there.
    pub fn count(&mut self, min_item_len: usize, what: &'static str) -> Result<usize, DecodeError> {
        let n = self.varint(what)?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_item_len.max(1)))
            .is_some_and(|need| need <= self.remaining());
        if !fits {
            return Err(DecodeError::Malformed(format!(
                "{what} says {n} items but only {} bytes remain",
                self.remaining()
            )));
        }
        Ok(n as usize)
    }

    /// A varint-length-prefixed UTF-8 string.
    pub fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let len = self.count(1, what)?;
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Malformed(format!("{what} is not valid UTF-8")))
    }
}
