//! Primary keys of tracked rows: integer, text, or composite keys of those.

use std::fmt;

/// The most key columns a tracked table may have (the wire dictionary packs
/// the key shape into one small descriptor).
pub const MAX_KEY_PARTS: usize = 8;

/// The kind of one primary-key column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyKind {
    /// A 64-bit signed integer.
    Int,
    /// UTF-8 text.
    Text,
}

/// The kinds of a table's primary-key columns, in key order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyShape(Vec<KeyKind>);

impl KeyShape {
    /// A shape from its kinds.
    ///
    /// # Errors
    /// When there are no kinds or more than [`MAX_KEY_PARTS`].
    pub fn new(kinds: Vec<KeyKind>) -> Result<Self, String> {
        if kinds.is_empty() {
            return Err("a primary key needs at least one column".to_string());
        }
        if kinds.len() > MAX_KEY_PARTS {
            return Err(format!(
                "a primary key of {} columns is more than atomik supports ({MAX_KEY_PARTS})",
                kinds.len()
            ));
        }
        Ok(KeyShape(kinds))
    }

    /// The shape of a single integer key (the common case).
    pub fn int() -> Self {
        KeyShape(vec![KeyKind::Int])
    }

    /// The shape of a single text key.
    pub fn text() -> Self {
        KeyShape(vec![KeyKind::Text])
    }

    /// The kinds, in key order.
    pub fn kinds(&self) -> &[KeyKind] {
        &self.0
    }

    /// True for a single integer key, which the codec delta-encodes.
    pub fn is_single_int(&self) -> bool {
        self.0 == [KeyKind::Int]
    }

    /// Check that `key` has this shape.
    ///
    /// # Errors
    /// A sentence saying what does not fit.
    pub fn check(&self, key: &Key) -> Result<(), String> {
        if key.0.len() != self.0.len() {
            return Err(format!(
                "it has {} parts, the primary key has {}",
                key.0.len(),
                self.0.len()
            ));
        }
        for (i, (part, kind)) in key.0.iter().zip(&self.0).enumerate() {
            if part.kind() != *kind {
                return Err(format!(
                    "part {} is {:?}, the key column is {:?}",
                    i + 1,
                    part.kind(),
                    kind
                ));
            }
        }
        Ok(())
    }
}

/// One column of a primary-key value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyPart {
    /// An integer key column.
    Int(i64),
    /// A text key column.
    Text(String),
}

impl KeyPart {
    /// The kind of this part.
    pub fn kind(&self) -> KeyKind {
        match self {
            KeyPart::Int(_) => KeyKind::Int,
            KeyPart::Text(_) => KeyKind::Text,
        }
    }
}

/// A primary-key value: one part per key column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub Vec<KeyPart>);

impl Key {
    /// A single integer key.
    pub fn int(v: i64) -> Self {
        Key(vec![KeyPart::Int(v)])
    }

    /// A single text key.
    pub fn text(v: impl Into<String>) -> Self {
        Key(vec![KeyPart::Text(v.into())])
    }

    /// The parts, in key order.
    pub fn parts(&self) -> &[KeyPart] {
        &self.0
    }

    /// The canonical bytes of the key used by the digest: per part a kind
    /// byte (0 integer, 1 text), then 8 little-endian bytes for an integer or
    /// a 4-byte little-endian length and the UTF-8 bytes for text. Both
    /// engines hash exactly these bytes.
    pub fn canonical_bytes(&self, out: &mut Vec<u8>) {
        for part in &self.0 {
            match part {
                KeyPart::Int(v) => {
                    out.push(0);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                KeyPart::Text(s) => {
                    out.push(1);
                    // Keys are far below 4 GiB; saturate rather than wrap.
                    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
    }
}

impl Key {
    /// The key as JSON, as the changefeed shows it where a column holds
    /// any key: a single-part key is a JSON number or string, a composite
    /// key an array of those in key order (`7`, `"a"`, `[1,"a"]`).
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        let part = |out: &mut String, p: &KeyPart| match p {
            KeyPart::Int(v) => out.push_str(&v.to_string()),
            KeyPart::Text(s) => json_string(out, s),
        };
        if let [only] = self.0.as_slice() {
            part(&mut out, only);
            return out;
        }
        out.push('[');
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            part(&mut out, p);
        }
        out.push(']');
        out
    }
}

/// `s` as a JSON string (RFC 8259: quote, backslash and control
/// characters escaped; everything else as is).
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let part = |f: &mut fmt::Formatter<'_>, p: &KeyPart| match p {
            KeyPart::Int(v) => write!(f, "{v}"),
            KeyPart::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
        };
        if self.0.len() == 1 {
            return part(f, &self.0[0]);
        }
        f.write_str("(")?;
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            part(f, p)?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display() {
        assert_eq!(Key::int(-4).to_string(), "-4");
        assert_eq!(Key::text("o'k").to_string(), "'o''k'");
        assert_eq!(
            Key(vec![KeyPart::Int(1), KeyPart::Text("a".into())]).to_string(),
            "(1, 'a')"
        );
    }

    #[test]
    fn json() {
        assert_eq!(Key::int(-4).to_json(), "-4");
        assert_eq!(
            Key::text("a\"b\\c\n\u{1}").to_json(),
            r#""a\"b\\c\n\u0001""#
        );
        assert_eq!(
            Key(vec![KeyPart::Int(1), KeyPart::Text("é".into())]).to_json(),
            r#"[1,"é"]"#
        );
    }

    #[test]
    fn shapes() {
        assert!(KeyShape::int().check(&Key::int(1)).is_ok());
        assert_eq!(
            KeyShape::int().check(&Key::text("x")).unwrap_err(),
            "part 1 is Text, the key column is Int"
        );
        assert!(KeyShape::new(vec![]).is_err());
        assert!(KeyShape::new(vec![KeyKind::Int; 9]).is_err());
        assert!(KeyShape::new(vec![KeyKind::Int; 8]).is_ok());
    }

    #[test]
    fn canonical_bytes_golden() {
        let mut out = Vec::new();
        Key(vec![KeyPart::Int(1), KeyPart::Text("ab".into())]).canonical_bytes(&mut out);
        assert_eq!(out, [0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0, b'a', b'b']);
    }
}
