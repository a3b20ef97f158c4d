//! Which tables and columns a principal may write and read: the
//! `atomik_write` and `atomik_read` claims of its token.
//!
//! A scope is a list of patterns — `"table.column"`, `"table.*"` or `"*"`.
//! An absent claim is every column; an empty list is none. Names match as
//! the hubs compare them, exactly (case included), against the names the
//! messages carry.
//!
//! Writes are checked on the decoded request before the hub sees it: a
//! cell of a column outside the write scope refuses the whole request
//! (403 `forbidden_column`). Reads are enforced on the way down: every
//! cell of a column outside the read scope is removed from a leaf's
//! payload (a range or a snapshot). A relay's payloads (per-origin
//! batches, relay snapshots) cannot lose cells without breaking
//! exactly-once, so a relay token has no scope (refused when verified).

use std::collections::{BTreeMap, BTreeSet};

use atomik_core::codec::v2::{decode_response_tagged, encode_response, Payload, Request};
use atomik_core::Changes;

use super::errors::{safe_message, Code, Failure};

/// The tables and columns one claim grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(Grant);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    /// Every column of every table.
    All,
    /// Per table, its granted columns.
    Tables(BTreeMap<String, Columns>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Columns {
    /// `table.*`.
    All,
    /// `table.column`, …
    Named(BTreeSet<String>),
}

impl Scope {
    /// Every table and column: what a token without the claim may do.
    pub fn all() -> Self {
        Scope(Grant::All)
    }

    /// The scope of a claim: `None` (no claim) is everything, an empty
    /// list nothing.
    ///
    /// # Errors
    /// The first pattern that is not `table.column`, `table.*` or `*`, and
    /// why.
    pub fn from_claim(claim: Option<&[String]>) -> Result<Self, String> {
        let Some(patterns) = claim else {
            return Ok(Scope::all());
        };
        let mut tables: BTreeMap<String, Columns> = BTreeMap::new();
        for pattern in patterns {
            let Some((table, column)) = parse_pattern(pattern)? else {
                return Ok(Scope::all());
            };
            let entry = tables
                .entry(table.to_string())
                .or_insert_with(|| Columns::Named(BTreeSet::new()));
            match (column, entry) {
                (None, entry) => *entry = Columns::All,
                (Some(_), Columns::All) => {}
                (Some(c), Columns::Named(names)) => {
                    names.insert(c.to_string());
                }
            }
        }
        Ok(Scope(Grant::Tables(tables)))
    }

    /// True when the scope grants every column.
    pub fn is_all(&self) -> bool {
        matches!(self.0, Grant::All)
    }

    /// May the principal touch `table.column`?
    pub fn allows(&self, table: &str, column: &str) -> bool {
        match &self.0 {
            Grant::All => true,
            Grant::Tables(tables) => match tables.get(table) {
                Some(Columns::All) => true,
                Some(Columns::Named(names)) => names.contains(column),
                None => false,
            },
        }
    }

    /// `changes` without the columns this scope does not grant.
    pub fn filter(&self, changes: &Changes) -> Changes {
        let mut kept = Changes::new();
        for (id, block) in changes.columns() {
            if self.allows(&id.table, &id.column) {
                kept.insert_block(id.clone(), block.clone());
            }
        }
        kept
    }
}

/// One pattern: `None` for `*`, else the table and `None` for `table.*`
/// or the column.
///
/// # Errors
/// Why it is not `table.column`, `table.*` or `*`.
fn parse_pattern(pattern: &str) -> Result<Option<(&str, Option<&str>)>, String> {
    if pattern == "*" {
        return Ok(None);
    }
    let bad = |why: &str| Err(format!("pattern {pattern:?} {why}"));
    if pattern.chars().any(char::is_control) {
        return bad("has a control character");
    }
    let Some((table, column)) = pattern.split_once('.') else {
        return bad("is not \"table.column\", \"table.*\" or \"*\"");
    };
    if column.contains('.') {
        return bad("has more than one `.` (a name with a `.` cannot be scoped)");
    }
    if table.is_empty() || column.is_empty() {
        return bad("has an empty table or column name");
    }
    if table.contains('*') || (column != "*" && column.contains('*')) {
        return bad("has a `*` that is not a whole column or the whole pattern");
    }
    Ok(Some((table, (column != "*").then_some(column))))
}

/// Does every upload of `request` write only columns of `scope`? Checked
/// before the hub sees the request, so a refused request applies nothing.
///
/// # Errors
/// `forbidden_column`, naming the first column outside the scope.
pub fn check_writes(scope: &Scope, request: &Request) -> Result<(), Failure> {
    if scope.is_all() {
        return Ok(());
    }
    for upload in &request.uploads {
        let outside = upload
            .changes
            .columns()
            .find(|(id, _)| !scope.allows(&id.table, &id.column));
        if let Some((id, block)) = outside {
            return Err(Failure::new(
                Code::ForbiddenColumn,
                safe_message(&format!(
                    "the request writes {}.{}, which this token may not write",
                    id.table, id.column
                )),
            )
            .detail(format!(
                "upload of origin {} seq {} writes {} cells of {:?}.{:?}, outside atomik_write",
                upload.origin,
                upload.seq,
                block.cells.len(),
                id.table,
                id.column
            )));
        }
    }
    Ok(())
}

/// The hub's `response` as a principal with read scope `scope` may see
/// it: every cell of a column outside the scope removed from the payload,
/// re-encoded; unchanged (not decoded) when the scope is everything.
///
/// # Errors
/// `internal` for a response that does not decode or carries a relay's
/// payload (a relay token has no scope); `forbidden` for one
/// authenticated with the device's key (`atomik_core::auth`), which serve
/// cannot re-tag after removing cells: nothing is sent down then.
pub fn filter_response(scope: &Scope, response: Vec<u8>) -> Result<Vec<u8>, Failure> {
    if scope.is_all() {
        return Ok(response);
    }
    let internal = |detail: String| Failure::new(Code::Internal, "internal error").detail(detail);
    let (mut decoded, tagged) = decode_response_tagged(&response)
        .map_err(|e| internal(format!("the hub's response does not decode: {e}")))?;
    if tagged.is_some() {
        return Err(Failure::new(
            Code::Forbidden,
            "a device with a device key cannot sync through a token with an atomik_read scope",
        )
        .detail(
            "the hub's answer is tagged with the device's key; removing cells would break the tag"
                .to_string(),
        ));
    }
    decoded.payload = match decoded.payload {
        Payload::Range(c) => Payload::Range(scope.filter(&c)),
        Payload::Snapshot(c) => Payload::Snapshot(scope.filter(&c)),
        other => {
            return Err(internal(format!(
                "a {} payload for a principal with an atomik_read scope",
                other.name()
            )))
        }
    };
    Ok(encode_response(&decoded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomik_core::codec::v2::{Cursor, OutboxEntry, Response};
    use atomik_core::{ColumnId, Group, Key, KeyShape, SiteId};

    fn scope(patterns: &[&str]) -> Result<Scope, String> {
        let owned: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        Scope::from_claim(Some(&owned))
    }

    #[test]
    fn patterns_match_tables_and_columns_exactly() {
        let s = scope(&["stock.q", "orders.*", "stock.z"]).unwrap();
        assert!(!s.is_all());
        assert!(s.allows("stock", "q"));
        assert!(s.allows("stock", "z"));
        assert!(!s.allows("stock", "r"));
        assert!(!s.allows("Stock", "q"), "names match case included");
        assert!(!s.allows("stock", "Q"));
        assert!(!s.allows("stoc", "kq"));
        assert!(s.allows("orders", "n"));
        assert!(s.allows("orders", "*"));
        assert!(!s.allows("inventory", "qty"));
        // `table.*` covers the table's named patterns too, in any order.
        let t = scope(&["orders.n", "orders.*"]).unwrap();
        assert_eq!(t, scope(&["orders.*"]).unwrap());
        assert!(t.allows("orders", "m"));
    }

    #[test]
    fn absent_is_everything_empty_is_nothing() {
        let all = Scope::from_claim(None).unwrap();
        assert!(all.is_all());
        assert!(all.allows("any", "thing"));
        assert!(scope(&["stock.q", "*"]).unwrap().is_all());
        let none = scope(&[]).unwrap();
        assert!(!none.is_all());
        assert!(!none.allows("stock", "q"));
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        for (p, why) in [
            ("", "is not \"table.column\""),
            ("stock", "is not \"table.column\""),
            ("a.b.c", "more than one `.`"),
            (".q", "empty table or column"),
            ("stock.", "empty table or column"),
            ("*.q", "`*`"),
            ("st*ck.q", "`*`"),
            ("stock.q*", "`*`"),
            ("stock.\nq", "control character"),
        ] {
            let err = scope(&["stock.q", p]).unwrap_err();
            assert!(err.starts_with(&format!("pattern {p:?} ")), "{err}");
            assert!(err.contains(why), "{p:?}: {err}");
        }
    }

    fn changes(cells: &[(&str, &str, i64)]) -> Changes {
        let mut c = Changes::new();
        for (t, col, k) in cells {
            c.add(
                &ColumnId::new(*t, *col, Group::Add),
                &KeyShape::int(),
                Key::int(*k),
                1,
            )
            .unwrap();
        }
        c
    }

    fn request(uploads: &[&[(&str, &str, i64)]]) -> Request {
        let site = SiteId([1; 16]);
        Request {
            site,
            relays: false,
            cursor: None,
            uploads: uploads
                .iter()
                .enumerate()
                .map(|(i, cells)| OutboxEntry {
                    position: i as u64 + 1,
                    origin: site,
                    seq: i as u64 + 1,
                    changes: changes(cells),
                })
                .collect(),
        }
    }

    #[test]
    fn a_write_outside_the_scope_names_the_first_column() {
        let s = scope(&["stock.q", "orders.*"]).unwrap();
        check_writes(&s, &request(&[&[("stock", "q", 1)], &[("orders", "n", 2)]])).unwrap();
        check_writes(&s, &request(&[])).unwrap();
        let f = check_writes(
            &s,
            &request(&[
                &[("stock", "q", 1)],
                &[("stock", "r", 2), ("stock", "s", 3)],
            ]),
        )
        .unwrap_err();
        assert_eq!(f.code, Code::ForbiddenColumn);
        assert_eq!(
            f.message,
            "the request writes stock.r, which this token may not write"
        );
        assert!(f.detail.contains("seq 2"), "{}", f.detail);
        let none = scope(&[]).unwrap();
        check_writes(&none, &request(&[])).unwrap();
        assert!(check_writes(&none, &request(&[&[("stock", "q", 1)]])).is_err());
        check_writes(&Scope::all(), &request(&[&[("x", "y", 1)]])).unwrap();
    }

    fn response(payload: Payload) -> Vec<u8> {
        encode_response(&Response {
            to: SiteId([1; 16]),
            from: SiteId([9; 16]),
            base: Some(Cursor {
                hub: SiteId([9; 16]),
                position: 3,
            }),
            position: 7,
            ack: 2,
            payload,
        })
    }

    #[test]
    fn reads_outside_the_scope_are_removed_from_leaf_payloads() {
        let s = scope(&["stock.q"]).unwrap();
        let mixed = changes(&[("stock", "q", 1), ("stock", "r", 1), ("other", "q", 2)]);
        let only_q = changes(&[("stock", "q", 1)]);
        for (wrap, kept) in [
            (Payload::Range as fn(Changes) -> Payload, &only_q),
            (Payload::Snapshot, &only_q),
        ] {
            let filtered = filter_response(&s, response(wrap(mixed.clone()))).unwrap();
            assert_eq!(filtered, response(wrap(kept.clone())));
        }
        let none = scope(&[]).unwrap();
        let filtered = filter_response(&none, response(Payload::Range(mixed.clone()))).unwrap();
        assert_eq!(filtered, response(Payload::Range(Changes::new())));
        // Everything: the hub's bytes as they are.
        let bytes = response(Payload::Range(mixed));
        assert_eq!(
            filter_response(&Scope::all(), bytes.clone()).unwrap(),
            bytes
        );
    }

    #[test]
    fn relay_payloads_and_garbage_are_not_sent_down_filtered() {
        let s = scope(&["stock.q"]).unwrap();
        let relay = response(Payload::Entries(vec![atomik_core::Batch {
            origin: SiteId([4; 16]),
            seq: 1,
            changes: changes(&[("stock", "r", 1)]),
        }]));
        assert_eq!(filter_response(&s, relay).unwrap_err().code, Code::Internal);
        let f = filter_response(&s, b"not a response".to_vec()).unwrap_err();
        assert_eq!(f.code, Code::Internal);
        assert_eq!(f.message, "internal error");
    }

    /// An answer tagged with the device's key cannot lose cells (the tag
    /// would no longer verify): it is refused, not sent down broken.
    #[test]
    fn tagged_answers_are_not_filtered() {
        let s = scope(&["stock.q"]).unwrap();
        let key = atomik_core::auth::DeviceKey::from_bytes(&[3; 32]).unwrap();
        let tagged = atomik_core::codec::v2::encode_response_with(
            &atomik_core::codec::v2::decode_response(&response(Payload::Range(changes(&[(
                "stock", "r", 1,
            )]))))
            .unwrap(),
            Some(&key),
        );
        let f = filter_response(&s, tagged.clone()).unwrap_err();
        assert_eq!(f.code, Code::Forbidden);
        assert_eq!(
            filter_response(&Scope::all(), tagged.clone()).unwrap(),
            tagged,
            "an unscoped token's answer passes untouched"
        );
    }
}
