//! `atomik inspect FILE`: what a message holds (`atomik_core::inspect`),
//! as an aligned table or JSON, for operators and support.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use atomik_core::inspect::{inspect, Row};

use crate::hub::MAX_MESSAGE_BYTES;

/// `atomik inspect`: print the rows of one message.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The message: a file holding the bytes of `atomik_sync_request()`,
    /// `atomik_sync(..)`, `atomik_vector()` or `atomik_changes(..)` (`-`:
    /// standard input).
    file: PathBuf,
    /// Print a JSON array of rows instead of a table.
    #[arg(long)]
    json: bool,
}

/// The columns of a row, in order, with their names.
const COLUMNS: [&str; 13] = [
    "kind", "site", "hub", "position", "base", "ack", "origin", "seq", "table", "column", "group",
    "key", "delta",
];

fn fields(r: &Row) -> [Option<String>; 13] {
    let n = |v: Option<u64>| v.map(|v| v.to_string());
    [
        Some(r.kind.clone()),
        r.site.map(|s| s.to_string()),
        r.hub.map(|s| s.to_string()),
        n(r.position),
        n(r.base),
        n(r.ack),
        r.origin.map(|s| s.to_string()),
        n(r.seq),
        r.table.clone(),
        r.column.clone(),
        r.group.clone(),
        r.key.clone(),
        r.delta.map(|d| d.to_string()),
    ]
}

impl InspectArgs {
    /// Read the message, decode it and print it.
    ///
    /// # Errors
    /// The file cannot be read, is over 64 MiB, or is not a message
    /// atomik reads (the decoder's error).
    pub fn run(&self) -> Result<()> {
        let mut bytes = Vec::new();
        let limit = MAX_MESSAGE_BYTES as u64 + 1;
        if self.file.as_os_str() == "-" {
            std::io::stdin().take(limit).read_to_end(&mut bytes)?;
        } else {
            std::fs::File::open(&self.file)
                .and_then(|f| f.take(limit).read_to_end(&mut bytes))
                .with_context(|| format!("cannot read {}", self.file.display()))?;
        }
        if bytes.len() > MAX_MESSAGE_BYTES {
            anyhow::bail!(
                "{} is larger than {MAX_MESSAGE_BYTES} bytes, the largest message atomik reads",
                self.file.display()
            );
        }
        let rows = inspect(&bytes).with_context(|| format!("{}", self.file.display()))?;
        let out = if self.json { json(&rows) } else { table(&rows) };
        print!("{out}");
        Ok(())
    }
}

/// The rows as a JSON array of objects (absent fields are `null`).
fn json(rows: &[Row]) -> String {
    let rows: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let mut o = serde_json::Map::new();
            for (name, value) in COLUMNS.iter().zip(fields(r)) {
                let value = match (*name, value) {
                    (_, None) => serde_json::Value::Null,
                    ("position" | "base" | "ack" | "seq", Some(v)) => v
                        .parse::<u64>()
                        .map_or(serde_json::Value::String(v), Into::into),
                    ("delta", Some(v)) => v
                        .parse::<i64>()
                        .map_or(serde_json::Value::String(v), Into::into),
                    (_, Some(v)) => serde_json::Value::String(v),
                };
                o.insert((*name).to_string(), value);
            }
            serde_json::Value::Object(o)
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&rows).expect("JSON values serialize");
    s.push('\n');
    s
}

/// The rows as an aligned table of the columns that hold anything.
fn table(rows: &[Row]) -> String {
    let cells: Vec<[Option<String>; 13]> = rows.iter().map(fields).collect();
    let shown: Vec<usize> = (0..COLUMNS.len())
        .filter(|&i| cells.iter().any(|r| r[i].is_some()))
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|r| r[i].as_deref().map_or(0, str::len))
            .chain([COLUMNS[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = shown.iter().map(|&i| width(i)).collect();
    let line = |values: Vec<&str>| {
        let mut s = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(shown.iter().map(|&i| COLUMNS[i]).collect());
    for r in &cells {
        out.push_str(&line(
            shown
                .iter()
                .map(|&i| r[i].as_deref().unwrap_or(""))
                .collect(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomik_core::codec::v2::{encode_request, Cursor, OutboxEntry, Request};
    use atomik_core::{Changes, ColumnId, Group, Key, KeyShape, SiteId};

    #[test]
    fn a_table_shows_only_the_columns_that_hold_something() {
        let mut changes = Changes::new();
        let col = ColumnId::new("inventory", "qty", Group::Add);
        changes
            .add(&col, &KeyShape::int(), Key::int(7), (-2i64) as u64)
            .unwrap();
        let bytes = encode_request(&Request {
            site: SiteId([1; 16]),
            relays: false,
            cursor: Some(Cursor {
                hub: SiteId([9; 16]),
                position: 40,
            }),
            uploads: vec![OutboxEntry {
                position: 1,
                origin: SiteId([1; 16]),
                seq: 1,
                changes,
            }],
        });
        let rows = inspect(&bytes).unwrap();
        let one = "01".repeat(16);
        let nine = "09".repeat(16);
        assert_eq!(
            table(&rows),
            format!(
                "kind     site{p}hub{q}position  origin{p2}seq  table      column  group  key  delta\n\
                 request  {one}  {nine}  40        {one}  1    inventory  qty     add    7    -2\n",
                p = " ".repeat(30),
                q = " ".repeat(31),
                p2 = " ".repeat(28),
            )
        );
        let json: serde_json::Value = serde_json::from_str(&json(&rows)).unwrap();
        assert_eq!(json[0]["delta"], -2);
        assert_eq!(json[0]["position"], 40);
        assert_eq!(json[0]["base"], serde_json::Value::Null);
        assert_eq!(json[0]["site"], one);
    }
}
