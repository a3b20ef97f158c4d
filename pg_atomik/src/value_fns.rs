//! The pure functions of DESIGN.md §4 on single values: I/O, constructors,
//! accessors, casts, operators and the `atomik_fold` aggregate. All are
//! `IMMUTABLE PARALLEL SAFE` and, but for `atomik_accum` (a NULL cell
//! counts from zero), `STRICT`; each converts its arguments, calls one
//! function of `atomik-core` and maps its error to a SQLSTATE.

use std::ffi::{CStr, CString};

use atomik_core::value::parse_word;
use atomik_core::{AtomikValue, Group};
use pgrx::prelude::*;
use pgrx::{pg_sys, Internal, PgSqlErrorCode};

use crate::datum::Atomik;
use crate::errors::{raise, value_error};

/// Text input: `add:42`, `add:42;pending=-3`, `xor:0x00000000000000ff`.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_shell"])]
fn atomik_in(input: &CStr) -> Atomik {
    let text = input.to_str().unwrap_or_else(|_| {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
            "invalid atomik text: not valid UTF-8".to_string(),
        )
    });
    match text.parse::<AtomikValue>() {
        Ok(v) => Atomik(v),
        Err(e) if names_out_of_range_number(text) => raise(
            PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
            e.to_string(),
        ),
        Err(e) => value_error(e),
    }
}

/// True when a word of `text` is a well-formed number too large for 64 bits
/// (so the error is an overflow, SQLSTATE 22003, not bad syntax).
fn names_out_of_range_number(text: &str) -> bool {
    let Some((_, rest)) = text.trim().split_once(':') else {
        return false;
    };
    let words = rest
        .split(';')
        .map(|w| w.trim().strip_prefix("pending=").unwrap_or(w.trim()));
    words.into_iter().any(|w| {
        let digits = w.strip_prefix('-').unwrap_or(w);
        let hex = w.strip_prefix("0x").or_else(|| w.strip_prefix("0X"));
        let well_formed = match hex {
            Some(h) => !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()),
            None => !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()),
        };
        well_formed && parse_word(w).is_err()
    })
}

/// Text output, the inverse of [`atomik_in`] for every value.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_shell"])]
fn atomik_out(value: Atomik) -> CString {
    CString::new(value.0.to_string()).expect("the text form has no NUL byte")
}

/// Binary input (COPY BINARY, the binary protocol): exactly the canonical
/// 17 bytes.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_shell"])]
fn atomik_recv(buf: Internal) -> Atomik {
    let Some(datum) = buf.unwrap() else {
        raise(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            "atomik_recv: no input buffer".to_string(),
        )
    };
    // SAFETY: PostgreSQL passes a StringInfo holding exactly this field.
    let bytes = unsafe {
        let info = datum.cast_mut_ptr::<pg_sys::StringInfoData>();
        let remaining = usize::try_from((*info).len - (*info).cursor).unwrap_or(0);
        let start = (*info)
            .data
            .add(usize::try_from((*info).cursor).unwrap_or(0));
        let bytes = std::slice::from_raw_parts(start.cast::<u8>(), remaining).to_vec();
        (*info).cursor = (*info).len;
        bytes
    };
    from_canonical(&bytes)
}

/// Binary output: the canonical 17 bytes.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_shell"])]
fn atomik_send(value: Atomik) -> Vec<u8> {
    value.0.to_bytes().to_vec()
}

fn from_canonical(bytes: &[u8]) -> Atomik {
    AtomikValue::from_bytes(bytes)
        .map(Atomik)
        .unwrap_or_else(|e| value_error(e))
}

pgrx::extension_sql!(
    r#"
CREATE TYPE atomik (
    INPUT = atomik_in,
    OUTPUT = atomik_out,
    RECEIVE = atomik_recv,
    SEND = atomik_send,
    INTERNALLENGTH = 17,
    ALIGNMENT = char,
    STORAGE = plain
);
COMMENT ON TYPE atomik IS 'delta-accumulated 64-bit value: group (add or xor), reference, pending accumulator; 17 bytes';
"#,
    name = "atomik_type",
    requires = [atomik_in, atomik_out, atomik_recv, atomik_send]
);

/// `atomik_add(v)`: a new value in group add, `v` pending.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
fn atomik_add(v: i64) -> Atomik {
    Atomik(AtomikValue::new_pending(Group::Add, v as u64))
}

/// `atomik_xor(v)`: a new value in group xor, `v` pending.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
fn atomik_xor(v: i64) -> Atomik {
    Atomik(AtomikValue::new_pending(Group::Xor, v as u64))
}

/// `atomik_accum(a, d)`: accumulate the delta `d`. A NULL cell counts
/// from the identity of `add`, so that a counter column without a default
/// counts (the one function that is not strict; a tracked xor column's
/// group check refuses the result); a NULL delta gives NULL.
#[pg_extern(immutable, parallel_safe, requires = ["atomik_type"])]
fn atomik_accum(a: Option<Atomik>, d: Option<i64>) -> Option<Atomik> {
    let d = d? as u64;
    Some(Atomik(match a {
        Some(a) => a.0.accum(d),
        None => AtomikValue::new_pending(Group::Add, d),
    }))
}

/// `atomik_read(a)`: the current value.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
fn atomik_read(a: Atomik) -> i64 {
    a.0.read_i64()
}

/// `atomik_set(a, v)`: write `v` as a delta.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
fn atomik_set(a: Atomik, v: i64) -> Atomik {
    Atomik(a.0.set(v as u64))
}

/// `atomik_pending(a)`: the local delta not yet sealed.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
fn atomik_pending(a: Atomik) -> i64 {
    a.0.pending() as i64
}

/// `atomik_group(a)`: `'add'` or `'xor'`.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
fn atomik_group(a: Atomik) -> &'static str {
    a.0.group().name()
}

/// `atomik_bytes(a)`: the canonical 17-byte form.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
fn atomik_bytes(a: Atomik) -> Vec<u8> {
    a.0.to_bytes().to_vec()
}

/// `atomik_from_bytes(b)`: a value from its canonical 17-byte form.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
fn atomik_from_bytes(b: &[u8]) -> Atomik {
    from_canonical(b)
}

/// The group-combine of two values: the step and combine function of
/// `atomik_fold`.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
fn atomik_combine(a: Atomik, b: Atomik) -> Atomik {
    Atomik(a.0.combine(b.0).unwrap_or_else(|e| value_error(e)))
}

/// Equality of the whole state (group, reference, accumulator) — the same
/// as equality of the canonical bytes.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
fn atomik_eq(a: Atomik, b: Atomik) -> bool {
    a == b
}

/// Inequality, the negator of [`atomik_eq`].
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
fn atomik_ne(a: Atomik, b: Atomik) -> bool {
    a != b
}

/// Hash of the canonical bytes (32-bit FNV-1a), consistent with
/// [`atomik_eq`]. Fixed forever: hash partitions depend on it.
#[pg_extern(immutable, strict, parallel_safe, requires = ["atomik_type"])]
fn atomik_hash(a: Atomik) -> i32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in a.0.to_bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h as i32
}

pgrx::extension_sql!(
    r#"
CREATE OPERATOR = (
    LEFTARG = atomik, RIGHTARG = atomik, FUNCTION = atomik_eq,
    COMMUTATOR = =, NEGATOR = <>, RESTRICT = eqsel, JOIN = eqjoinsel, HASHES
);
CREATE OPERATOR <> (
    LEFTARG = atomik, RIGHTARG = atomik, FUNCTION = atomik_ne,
    COMMUTATOR = <>, NEGATOR = =, RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR CLASS atomik_hash_ops DEFAULT FOR TYPE atomik USING hash AS
    OPERATOR 1 = (atomik, atomik),
    FUNCTION 1 atomik_hash(atomik);
CREATE OPERATOR + (LEFTARG = atomik, RIGHTARG = bigint, FUNCTION = atomik_accum);
COMMENT ON OPERATOR + (atomik, bigint) IS 'accumulate a delta (atomik_accum)';
CREATE CAST (atomik AS bigint) WITH FUNCTION atomik_read(atomik);
CREATE CAST (bigint AS atomik) WITH FUNCTION atomik_add(bigint);
CREATE AGGREGATE atomik_fold(atomik) (
    SFUNC = atomik_combine,
    STYPE = atomik,
    COMBINEFUNC = atomik_combine,
    PARALLEL = SAFE
);
COMMENT ON AGGREGATE atomik_fold(atomik) IS 'group-combine of many atomik values (parallel safe)';
COMMENT ON FUNCTION atomik_add(bigint) IS 'new atomik value in group add: v, pending';
COMMENT ON FUNCTION atomik_xor(bigint) IS 'new atomik value in group xor: v, pending';
COMMENT ON FUNCTION atomik_accum(atomik, bigint) IS 'accumulate delta d (a NULL cell counts from add:0)';
COMMENT ON FUNCTION atomik_read(atomik) IS 'current value (reference combined with pending)';
COMMENT ON FUNCTION atomik_set(atomik, bigint) IS 'write v as a delta';
COMMENT ON FUNCTION atomik_pending(atomik) IS 'unshipped local delta';
COMMENT ON FUNCTION atomik_group(atomik) IS '''add'' or ''xor''';
COMMENT ON FUNCTION atomik_bytes(atomik) IS 'the canonical 17-byte form';
COMMENT ON FUNCTION atomik_from_bytes(bytea) IS 'value from its canonical 17-byte form';
"#,
    name = "atomik_operators",
    requires = [
        atomik_eq,
        atomik_ne,
        atomik_hash,
        atomik_accum,
        atomik_read,
        atomik_add,
        atomik_xor,
        atomik_set,
        atomik_pending,
        atomik_group,
        atomik_bytes,
        atomik_from_bytes,
        atomik_combine
    ]
);
