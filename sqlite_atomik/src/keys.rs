//! Primary keys between SQLite rows and core's [`Key`]: reading them from
//! result rows, binding them as parameters, and the compact form kept in
//! the parking table.

use atomik_core::{Key, KeyKind, KeyPart, KeyShape};
use rusqlite::types::ValueRef;
use rusqlite::{Row, Statement};

/// Read the key columns `start..start + shape.len()` of `row`.
///
/// # Errors
/// A sentence naming the table and what does not fit (a NULL key part, a
/// text in an integer key column, ...).
pub fn key_from_row(
    row: &Row<'_>,
    start: usize,
    shape: &KeyShape,
    table: &str,
) -> Result<Key, String> {
    let mut parts = Vec::with_capacity(shape.kinds().len());
    for (i, kind) in shape.kinds().iter().enumerate() {
        let v = row.get_ref(start + i).map_err(|e| e.to_string())?;
        parts.push(part_from_value(v, *kind, table, i)?);
    }
    Ok(Key(parts))
}

/// One key part from an SQLite value of the expected kind.
///
/// # Errors
/// When the value's type does not fit the key column's kind.
pub fn part_from_value(
    v: ValueRef<'_>,
    kind: KeyKind,
    table: &str,
    i: usize,
) -> Result<KeyPart, String> {
    match (v, kind) {
        (ValueRef::Integer(n), KeyKind::Int) => Ok(KeyPart::Int(n)),
        (ValueRef::Text(t), KeyKind::Text) => std::str::from_utf8(t)
            .map(|s| KeyPart::Text(s.to_string()))
            .map_err(|_| format!("a primary key of \"{table}\" is not valid UTF-8")),
        (other, kind) => Err(format!(
            "a row of \"{table}\" has {} in primary key column {}, which atomik tracks as {}",
            crate::args::type_name(&other),
            i + 1,
            match kind {
                KeyKind::Int => "an integer",
                KeyKind::Text => "text",
            }
        )),
    }
}

/// Bind the parts of `key` to parameters `first..`.
///
/// # Errors
/// When SQLite refuses a binding.
pub fn bind_key(stmt: &mut Statement<'_>, first: usize, key: &Key) -> rusqlite::Result<()> {
    for (i, part) in key.parts().iter().enumerate() {
        match part {
            KeyPart::Int(v) => stmt.raw_bind_parameter(first + i, v)?,
            KeyPart::Text(s) => stmt.raw_bind_parameter(first + i, s.as_str())?,
        }
    }
    Ok(())
}

/// The key's canonical bytes (core's digest form), used as the parking
/// table's key column.
pub fn encode(key: &Key) -> Vec<u8> {
    let mut out = Vec::new();
    key.canonical_bytes(&mut out);
    out
}

/// Inverse of [`encode`]; `None` when the bytes are not a key.
pub fn decode(mut bytes: &[u8]) -> Option<Key> {
    let mut parts = Vec::new();
    while let Some((&kind, rest)) = bytes.split_first() {
        match kind {
            0 => {
                let (word, rest) = rest.split_at_checked(8)?;
                parts.push(KeyPart::Int(i64::from_le_bytes(word.try_into().ok()?)));
                bytes = rest;
            }
            1 => {
                let (len, rest) = rest.split_at_checked(4)?;
                let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
                let (text, rest) = rest.split_at_checked(len)?;
                parts.push(KeyPart::Text(String::from_utf8(text.to_vec()).ok()?));
                bytes = rest;
            }
            _ => return None,
        }
    }
    (!parts.is_empty()).then_some(Key(parts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_round_trip() {
        for key in [
            Key::int(-7),
            Key::text("o'k"),
            Key(vec![
                KeyPart::Int(1),
                KeyPart::Text(String::new()),
                KeyPart::Int(i64::MAX),
            ]),
        ] {
            assert_eq!(decode(&encode(&key)), Some(key));
        }
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[0, 1, 2]), None);
        assert_eq!(decode(&[7]), None);
    }
}
