//! A bounds-checked cursor over untrusted bytes. Every read checks what is
//! left first, so decoding never panics and never trusts a length or count
//! beyond what the remaining input could hold. The cursor also carries the
//! decode's memory budget ([`MAX_DECODE_EXPANSION`] times the message
//! length): decoders [`charge`](Reader::charge) it before they allocate.

use super::varint::{self, VarintError};
use crate::error::DecodeError;

/// The most heap memory, as a multiple of a message's length, that
/// decoding it may take. Decoders estimate what each structure they build
/// costs (its share of the B-tree nodes, vectors and strings of the decoded
/// types) and refuse the message with [`DecodeError::TooLarge`] before
/// allocating past the budget.
///
/// The factor is what the decoded types need for the densest legitimate
/// messages: a one-cell batch is 5 bytes on the wire and ~1.6 kB in memory
/// (a `Changes` map, a cells map, a key), a dense cell 2 bytes and ~90 B.
/// Inputs that would amplify further — names cloned into every batch that
/// refers to them, declared counts the body does not hold — are refused.
pub const MAX_DECODE_EXPANSION: usize = 512;

/// A cursor over a message body.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Bytes the decode may still allocate.
    budget: usize,
    /// The length of the whole message, for error reports.
    message_len: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, with a memory budget of
    /// [`MAX_DECODE_EXPANSION`] times their length.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self::for_message(bytes, bytes.len())
    }

    /// A reader over `body`, part of a message `message_len` bytes long
    /// whose budget is [`MAX_DECODE_EXPANSION`] times that length.
    pub(super) fn for_message(body: &'a [u8], message_len: usize) -> Self {
        Reader {
            bytes: body,
            pos: 0,
            budget: message_len.saturating_mul(MAX_DECODE_EXPANSION),
            message_len,
        }
    }

    /// Take `bytes` from the memory budget before allocating them for
    /// `what`.
    ///
    /// # Errors
    /// [`DecodeError::TooLarge`] when the budget does not hold them.
    pub fn charge(&mut self, bytes: usize, what: &'static str) -> Result<(), DecodeError> {
        match self.budget.checked_sub(bytes) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => Err(DecodeError::TooLarge {
                len: self.message_len,
                limit: self.message_len.saturating_mul(MAX_DECODE_EXPANSION),
                what,
            }),
        }
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

    /// A varint-length-prefixed UTF-8 string, charged to the budget.
    pub fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let len = self.count(1, what)?;
        self.charge(len, what)?;
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Malformed(format!("{what} is not valid UTF-8")))
    }
}
