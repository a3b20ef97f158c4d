//! The tracked-column catalog (`atomik.tracked`) and the SQL fragments
//! built from it. Identifiers in generated SQL come only from the system
//! catalog and are quoted; names that arrive in a message are only ever
//! compared with this catalog, never spliced into SQL.

use atomik_core::error::Result;
use atomik_core::{Group, Key, KeyKind, KeyPart, KeyShape, ProtocolError, TrackedColumn};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::Oid;
use pgrx::spi::quote_identifier;

use super::spi::{get, rows};

/// A tracked column with everything needed to build SQL over its table.
#[derive(Debug, Clone)]
pub struct TrackedTable {
    /// Wire table name (the unqualified relation name).
    pub table: String,
    /// Column name.
    pub column: String,
    /// The table's primary-key shape.
    pub shape: KeyShape,
    /// `schema.table`, both parts quoted.
    pub qualified: String,
    /// The column, quoted.
    pub col: String,
    /// The primary-key columns, quoted, in key order.
    pub keys: Vec<String>,
    /// The column's group, fixed by `atomik_track`.
    pub group: Group,
}

impl TrackedTable {
    /// The core view of this column.
    pub fn tracked_column(&self) -> TrackedColumn {
        TrackedColumn {
            table: self.table.clone(),
            column: self.column.clone(),
            shape: self.shape.clone(),
            group: self.group,
        }
    }

    /// `t.k1::bigint, t.k2::text, ...` — the key as the store reads it.
    pub fn key_select(&self) -> String {
        self.keys
            .iter()
            .zip(self.shape.kinds())
            .map(|(k, kind)| format!("t.{k}::{}", kind_sql(*kind)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `ROWS FROM (pg_catalog.unnest($first::bigint[]), ...) AS d(k1, ...,
    /// delta)`: one array per key part, plus one for deltas when
    /// `with_delta`, zipped (what a multi-argument `unnest` does, which
    /// exists only unqualified).
    pub fn unnest(&self, first: usize, with_delta: bool) -> String {
        let mut arrays = Vec::new();
        let mut names = Vec::new();
        for (i, kind) in self.shape.kinds().iter().enumerate() {
            arrays.push(format!(
                "pg_catalog.unnest(${}::{}[])",
                first + i,
                kind_sql(*kind)
            ));
            names.push(format!("k{}", i + 1));
        }
        if with_delta {
            arrays.push(format!(
                "pg_catalog.unnest(${}::bigint[])",
                first + self.shape.kinds().len()
            ));
            names.push("delta".to_string());
        }
        format!(
            "ROWS FROM ({}) AS d({})",
            arrays.join(", "),
            names.join(", ")
        )
    }

    /// `t.k1 = d.k1 AND ...`.
    pub fn key_join(&self) -> String {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| format!("t.{k} = d.k{}", i + 1))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// Read a key from result columns `first..first + parts`.
    pub fn read_key(&self, row: &pgrx::spi::SpiHeapTupleData<'_>, first: usize) -> Result<Key> {
        let mut parts = Vec::with_capacity(self.keys.len());
        for (i, kind) in self.shape.kinds().iter().enumerate() {
            parts.push(match kind {
                KeyKind::Int => KeyPart::Int(get::<i64>(row, first + i)?),
                KeyKind::Text => KeyPart::Text(get::<String>(row, first + i)?),
            });
        }
        Ok(Key(parts))
    }
}

/// The SQL type a key kind is read and bound as.
fn kind_sql(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Int => "bigint",
        KeyKind::Text => "text",
    }
}

/// A key's parts as text, as `atomik.new_cells` and `atomik.parked` hold them.
pub fn key_texts(key: &Key) -> Vec<String> {
    key.parts()
        .iter()
        .map(|p| match p {
            KeyPart::Int(v) => v.to_string(),
            KeyPart::Text(s) => s.clone(),
        })
        .collect()
}

/// A key from its stored text parts.
pub fn key_from_texts(shape: &KeyShape, texts: &[String]) -> Result<Key> {
    if texts.len() != shape.kinds().len() {
        return Err(ProtocolError::store(format!(
            "stored key {texts:?} has {} parts, the primary key has {}",
            texts.len(),
            shape.kinds().len()
        )));
    }
    let mut parts = Vec::with_capacity(texts.len());
    for (t, kind) in texts.iter().zip(shape.kinds()) {
        parts.push(match kind {
            KeyKind::Int => KeyPart::Int(t.parse().map_err(|_| {
                ProtocolError::store(format!("stored key part {t:?} is not an integer"))
            })?),
            KeyKind::Text => KeyPart::Text(t.clone()),
        });
    }
    Ok(Key(parts))
}

/// Column arrays for binding many keys (and optionally deltas) to the
/// placeholders of [`TrackedTable::unnest`].
pub fn key_arrays<'a>(
    shape: &KeyShape,
    cells: impl Iterator<Item = (&'a Key, u64)>,
    with_delta: bool,
) -> Vec<DatumWithOid<'static>> {
    let kinds = shape.kinds();
    let mut ints: Vec<Vec<i64>> = vec![Vec::new(); kinds.len()];
    let mut texts: Vec<Vec<String>> = vec![Vec::new(); kinds.len()];
    let mut deltas = Vec::new();
    for (key, delta) in cells {
        for (i, part) in key.parts().iter().enumerate() {
            match part {
                KeyPart::Int(v) => ints[i].push(*v),
                KeyPart::Text(s) => texts[i].push(s.clone()),
            }
        }
        deltas.push(delta as i64);
    }
    let mut out: Vec<DatumWithOid<'static>> = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        out.push(match kind {
            KeyKind::Int => DatumWithOid::from(std::mem::take(&mut ints[i])),
            KeyKind::Text => DatumWithOid::from(std::mem::take(&mut texts[i])),
        });
    }
    if with_delta {
        out.push(DatumWithOid::from(deltas));
    }
    out
}

thread_local! {
    /// [`cached_all`]'s copy and the invalidation epoch it was read at.
    static ALL: std::cell::RefCell<Option<(u64, Vec<TrackedTable>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Every tracked column, as [`load_all`], from this backend's copy while
/// no invalidation event came in since it was read ([`crate::invalidation`]:
/// `atomik_track` and `atomik_untrack` create and drop triggers on the
/// table, so they invalidate it, as any DDL on a tracked table, a schema
/// change and an abort do). For the protocol calls, which hold the
/// replication lock: taking it accepts other backends' invalidations, and
/// the tracking functions hold it alone.
pub fn cached_all() -> Result<Vec<TrackedTable>> {
    crate::invalidation::register();
    let epoch = crate::invalidation::epoch();
    let hit = ALL.with(|all| {
        all.borrow()
            .as_ref()
            .filter(|(at, _)| *at == epoch)
            .map(|(_, tracked)| tracked.clone())
    });
    if let Some(tracked) = hit {
        return Ok(tracked);
    }
    let tracked = load_all()?;
    // Stamped with the epoch from before the read: an event during it
    // makes the next call read again.
    ALL.with(|all| *all.borrow_mut() = Some((epoch, tracked.clone())));
    Ok(tracked)
}

/// Every tracked column, in (table, column) order.
pub fn load_all() -> Result<Vec<TrackedTable>> {
    rows(
        "SELECT tr.table_name, tr.column_name, tr.key_kinds,
                pg_catalog.format('%I.%I', n.nspname, c.relname), tr.key_columns, tr.grp
           FROM atomik.tracked tr
           JOIN pg_catalog.pg_class c ON c.oid = tr.relid
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
          ORDER BY tr.table_name, tr.column_name",
        &[],
        |row| {
            let kinds: String = get(row, 3)?;
            let key_columns: Vec<String> = get(row, 5)?;
            let shape = shape_from_kinds(&kinds)?;
            let column: String = get(row, 2)?;
            Ok(TrackedTable {
                table: get(row, 1)?,
                col: quote_identifier(&column),
                column,
                shape,
                qualified: get(row, 4)?,
                keys: key_columns.iter().map(quote_identifier).collect(),
                group: crate::internal_fns::atomik::group_of(get::<i32>(row, 6)?),
            })
        },
    )
}

/// A key shape from its stored letters (`i` integer, `t` text).
pub fn shape_from_kinds(kinds: &str) -> Result<KeyShape> {
    let kinds = kinds
        .chars()
        .map(|c| match c {
            'i' => Ok(KeyKind::Int),
            't' => Ok(KeyKind::Text),
            other => Err(ProtocolError::store(format!(
                "unknown stored key kind {other:?}"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    KeyShape::new(kinds).map_err(ProtocolError::store)
}

/// The primary key of `relid`: column names and kinds. `None` when the
/// table has no primary key; an error names an unsupported key type.
pub fn primary_key(relid: Oid, table: &str) -> Result<Option<(Vec<String>, String)>> {
    let cols = rows(
        "SELECT a.attname::text, a.atttypid::regtype::text
           FROM pg_catalog.pg_index i
           CROSS JOIN LATERAL pg_catalog.unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          WHERE i.indrelid = $1 AND i.indisprimary
          ORDER BY k.ord",
        &[DatumWithOid::from(relid)],
        |row| Ok((get::<String>(row, 1)?, get::<String>(row, 2)?)),
    )?;
    if cols.is_empty() {
        return Ok(None);
    }
    let mut kinds = String::new();
    for (name, ty) in &cols {
        kinds.push(match ty.as_str() {
            "smallint" | "integer" | "bigint" => 'i',
            "text" | "character varying" => 't',
            other => {
                return Err(ProtocolError::KeyShape {
                    table: table.to_string(),
                    key: name.clone(),
                    why: format!(
                        "primary-key column \"{name}\" has type {other}; atomik keys are integer or text columns"
                    ),
                })
            }
        });
    }
    Ok(Some((cols.into_iter().map(|c| c.0).collect(), kinds)))
}
