//! The tracked cells: sealing pending accumulators, receiving remote deltas
//! into references (creating or parking missing rows), and snapshots.

use atomik_core::error::Result;
use atomik_core::{AtomikValue, Changes, ColumnId, Group, Key, ProtocolError};
use rusqlite::types::ValueRef;
use rusqlite::{params, CachedStatement, ErrorCode};

use super::{se, SqliteStore};
use crate::keys::{bind_key, decode as decode_key, encode as encode_key, key_from_row};
use crate::tracked::Tracked;

/// What a row holds in a tracked cell.
enum CellState {
    /// The row does not exist.
    NoRow,
    /// The row exists, the cell is NULL.
    Null,
    /// The row exists and holds this value.
    Value(AtomikValue),
}

/// Parse a stored cell value, naming the cell when it is not an atomik value.
fn stored_value(t: &Tracked, key: &Key, v: ValueRef<'_>) -> Result<Option<AtomikValue>> {
    match v {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(b) => AtomikValue::from_bytes(b).map(Some).map_err(|e| {
            ProtocolError::Store(format!(
                "\"{}\".\"{}\" key {key} does not hold an atomik value: {e}",
                t.table, t.column
            ))
        }),
        other => Err(ProtocolError::Store(format!(
            "\"{}\".\"{}\" key {key} holds {}, not an atomik value (a 17-byte BLOB)",
            t.table,
            t.column,
            crate::args::type_name(&other)
        ))),
    }
}

fn shape_err(e: impl std::fmt::Display) -> ProtocolError {
    ProtocolError::Store(e.to_string())
}

impl SqliteStore<'_> {
    /// The state of one cell.
    fn cell(&self, t: &Tracked, sel: &mut CachedStatement<'_>, key: &Key) -> Result<CellState> {
        bind_key(sel, 2, key).map_err(se)?;
        let mut rows = sel.raw_query();
        match rows.next().map_err(se)? {
            None => Ok(CellState::NoRow),
            Some(row) => match stored_value(t, key, row.get_ref(0).map_err(se)?)? {
                None => Ok(CellState::Null),
                Some(v) => Ok(CellState::Value(v)),
            },
        }
    }

    fn write(upd: &mut CachedStatement<'_>, key: &Key, v: &AtomikValue) -> Result<()> {
        upd.raw_bind_parameter(1, &v.to_bytes()[..]).map_err(se)?;
        bind_key(upd, 2, key).map_err(se)?;
        upd.raw_execute().map_err(se)?;
        Ok(())
    }

    /// Forget the write record of a cell that a remote delta created (the
    /// write trigger took it for a local write): it must not ship again.
    fn forget_written(&self, t: &Tracked, key: &Key) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(&t.forget_dirty).map_err(se)?;
        stmt.raw_bind_parameter(1, t.cid).map_err(se)?;
        bind_key(&mut stmt, 2, key).map_err(se)?;
        stmt.raw_execute().map_err(se)?;
        Ok(())
    }

    /// Forget the write record of every tracked cell of a row that a remote
    /// delta created: the insert triggers took the row's cells — this
    /// column's and the other tracked columns' defaults — for local writes,
    /// but nothing of it was written here, so nothing of it ships again.
    fn forget_row_written(&self, t: &Tracked, key: &Key) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(&t.forget_row).map_err(se)?;
        stmt.raw_bind_parameter(1, t.cid).map_err(se)?;
        bind_key(&mut stmt, 2, key).map_err(se)?;
        stmt.raw_execute().map_err(se)?;
        Ok(())
    }

    /// Fold one remote delta into its cell's reference (rule 1), creating
    /// the cell or row, or parking the delta when the row cannot be created.
    /// The common case is one `UPDATE` by primary key.
    fn receive_one(
        &mut self,
        t: &Tracked,
        rcv: &mut CachedStatement<'_>,
        group: Group,
        key: &Key,
        delta: u64,
    ) -> Result<()> {
        rcv.raw_bind_parameter(1, delta as i64).map_err(se)?;
        rcv.raw_bind_parameter(2, i64::from(group.code()))
            .map_err(se)?;
        bind_key(rcv, 3, key).map_err(se)?;
        crate::values::take_created_from_null();
        let outcome = match rcv.raw_execute() {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(crate::values::take_created_from_null())),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Some(true)) => self.forget_written(t, key),
            Ok(Some(false)) => Ok(()),
            Ok(None) => {
                let value = AtomikValue::identity(group).receive(delta);
                let mut ins = self.conn.prepare_cached(&t.insert_row).map_err(se)?;
                ins.raw_bind_parameter(1, &value.to_bytes()[..])
                    .map_err(se)?;
                bind_key(&mut ins, 2, key).map_err(se)?;
                match ins.raw_execute() {
                    Ok(_) => self.forget_row_written(t, key),
                    Err(rusqlite::Error::SqliteFailure(e, _))
                        if e.code == ErrorCode::ConstraintViolation =>
                    {
                        self.park(t, group, key, delta)
                    }
                    Err(e) => Err(se(e)),
                }
            }
            Err(e) => {
                // Say precisely what was wrong with the cell.
                let mut sel = self.conn.prepare_cached(&t.select_cell).map_err(se)?;
                match self.cell(t, &mut sel, key)? {
                    CellState::Value(v) if v.group() != group => {
                        Err(ProtocolError::GroupMismatch {
                            table: t.table.clone(),
                            column: t.column.clone(),
                            key: key.to_string(),
                            cell: v.group(),
                            delta: group,
                        })
                    }
                    _ => Err(se(e)),
                }
            }
        }
    }

    /// Keep a delta for a row that cannot be created, combined with any
    /// delta already parked for the same cell.
    fn park(&mut self, t: &Tracked, group: Group, key: &Key, delta: u64) -> Result<()> {
        let kb = encode_key(key);
        let existing: Option<(String, i64)> = self
            .conn
            .prepare_cached(
                "SELECT grp, delta FROM atomik_parked WHERE tbl = ?1 AND col = ?2 AND key = ?3",
            )
            .and_then(|mut s| {
                let mut rows = s.query(params![t.table, t.column, kb])?;
                rows.next()?.map(|r| Ok((r.get(0)?, r.get(1)?))).transpose()
            })
            .map_err(se)?;
        let total = match existing {
            None => {
                let parked: i64 = self
                    .conn
                    .prepare_cached("SELECT count(*) FROM atomik_parked")
                    .and_then(|mut s| s.query_row([], |r| r.get(0)))
                    .map_err(se)?;
                let limit = atomik_core::Store::setting(self, atomik_core::store::MAX_PARKED)?;
                atomik_core::store::check_parked_room(parked as u64, limit)?;
                delta
            }
            Some((g, d)) => {
                let parked: Group = g.parse().map_err(|_| {
                    ProtocolError::Store(format!("atomik_parked holds an unknown group \"{g}\""))
                })?;
                if parked != group {
                    return Err(ProtocolError::GroupMismatch {
                        table: t.table.clone(),
                        column: t.column.clone(),
                        key: key.to_string(),
                        cell: parked,
                        delta: group,
                    });
                }
                group.combine(d as u64, delta)
            }
        };
        self.conn
            .prepare_cached(
                "INSERT OR REPLACE INTO atomik_parked(tbl, col, grp, key, key_text, delta) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![t.table, t.column, group.name(), kb, key.to_string(), total as i64])
            })
            .map_err(se)?;
        Ok(())
    }

    /// Every parked delta: table, column, stored key bytes, group, key, delta.
    #[allow(clippy::type_complexity)]
    fn parked_deltas(&self) -> Result<Vec<(String, String, Vec<u8>, Group, Key, i64)>> {
        let rows: Vec<(String, String, String, Vec<u8>, i64)> = self
            .conn
            .prepare_cached("SELECT tbl, col, grp, key, delta FROM atomik_parked")
            .and_then(|mut s| {
                s.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .and_then(Iterator::collect)
            })
            .map_err(se)?;
        rows.into_iter()
            .map(|(table, column, g, kb, delta)| {
                let group: Group = g.parse().map_err(|_| {
                    ProtocolError::Store(format!("atomik_parked holds an unknown group \"{g}\""))
                })?;
                let key = decode_key(&kb).ok_or_else(|| {
                    ProtocolError::Store(format!(
                        "atomik_parked holds a damaged key for {table}.{column}"
                    ))
                })?;
                Ok((table, column, kb, group, key, delta))
            })
            .collect()
    }

    /// Apply parked deltas whose rows exist now.
    fn drain_parked(&mut self) -> Result<()> {
        let conn = self.conn;
        for (table, column, kb, group, key, delta) in self.parked_deltas()? {
            let t = self.find(&table, &column)?;
            let mut sel = conn.prepare_cached(&t.select_cell).map_err(se)?;
            if matches!(self.cell(&t, &mut sel, &key)?, CellState::NoRow) {
                continue;
            }
            conn.prepare_cached(
                "DELETE FROM atomik_parked WHERE tbl = ?1 AND col = ?2 AND key = ?3",
            )
            .and_then(|mut s| s.execute(params![table, column, kb]))
            .map_err(se)?;
            let mut rcv = conn.prepare_cached(&t.receive_cell).map_err(se)?;
            self.receive_one(&t, &mut rcv, group, &key, delta as u64)?;
        }
        Ok(())
    }

    /// [`atomik_core::Store::receive`].
    pub(super) fn receive_cells(&mut self, changes: &Changes) -> Result<u64> {
        self.drain_parked()?;
        let conn = self.conn;
        let mut n = 0;
        for (col, block) in changes.columns() {
            let t = self.find(&col.table, &col.column)?;
            let mut rcv = conn.prepare_cached(&t.receive_cell).map_err(se)?;
            for (key, delta) in &block.cells {
                self.receive_one(&t, &mut rcv, col.group, key, *delta)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// [`atomik_core::Store::take_pending`]: the cells recorded in
    /// `atomik_dirty` by the write triggers — never a scan of the table.
    /// Each non-NULL one ships its accumulator (a zero delta for a new cell
    /// at the identity, rule 3) and its reference takes the accumulator.
    pub(super) fn seal_cells(&mut self) -> Result<Changes> {
        self.drain_parked()?;
        let conn = self.conn;
        let mut out = Changes::new();
        let tracked = self.tracked_cols()?.to_vec();
        for t in &tracked {
            let written: Vec<(Key, bool)> = {
                let mut stmt = conn.prepare_cached(&t.dirty_keys).map_err(se)?;
                let mut rows = stmt.query([t.cid]).map_err(se)?;
                let mut keys = Vec::new();
                let n = t.shape.kinds().len();
                while let Some(row) = rows.next().map_err(se)? {
                    let key =
                        key_from_row(row, 0, &t.shape, &t.table).map_err(ProtocolError::Store)?;
                    keys.push((key, row.get::<_, i64>(n).map_err(se)? != 0));
                }
                keys
            };
            if written.is_empty() {
                continue;
            }
            let mut sel = conn.prepare_cached(&t.select_cell).map_err(se)?;
            let mut upd = conn.prepare_cached(&t.update_cell).map_err(se)?;
            for (key, new) in written {
                // A cell written and then deleted or set to NULL ships nothing;
                // one whose writes cancelled out ships nothing unless new.
                if let CellState::Value(v) = self.cell(t, &mut sel, &key)? {
                    let (sealed, delta) = v.seal();
                    if delta != 0 {
                        Self::write(&mut upd, &key, &sealed)?;
                    }
                    if delta != 0 || new {
                        let id = ColumnId::new(t.table.clone(), t.column.clone(), v.group());
                        out.add(&id, &t.shape, key, delta).map_err(shape_err)?;
                    }
                }
            }
            conn.prepare_cached("DELETE FROM atomik_dirty WHERE cid = ?1")
                .and_then(|mut s| s.execute([t.cid]))
                .map_err(se)?;
        }
        Ok(out)
    }

    /// Every non-NULL cell of `t` with its key.
    fn all_cells(&self, t: &Tracked) -> Result<Vec<(Key, AtomikValue)>> {
        let n = t.shape.kinds().len();
        let mut stmt = self.conn.prepare_cached(&t.scan_all).map_err(se)?;
        let mut rows = stmt.query([]).map_err(se)?;
        let mut cells = Vec::new();
        while let Some(row) = rows.next().map_err(se)? {
            let key = key_from_row(row, 0, &t.shape, &t.table).map_err(ProtocolError::Store)?;
            if let Some(v) = stored_value(t, &key, row.get_ref(n).map_err(se)?)? {
                cells.push((key, v));
            }
        }
        Ok(cells)
    }

    /// [`atomik_core::Store::references`]: every cell's reference and every
    /// parked delta.
    pub(super) fn reference_cells(&mut self) -> Result<Changes> {
        let mut out = Changes::new();
        let tracked = self.tracked_cols()?.to_vec();
        for t in &tracked {
            for (key, v) in self.all_cells(t)? {
                let id = ColumnId::new(t.table.clone(), t.column.clone(), v.group());
                out.add(&id, &t.shape, key, v.reference())
                    .map_err(shape_err)?;
            }
        }
        for (table, column, _, group, key, delta) in self.parked_deltas()? {
            let t = self.find(&table, &column)?;
            out.add(
                &ColumnId::new(table, column, group),
                &t.shape,
                key,
                delta as u64,
            )
            .map_err(shape_err)?;
        }
        Ok(out)
    }

    /// [`atomik_core::Store::install_references`]: references reset to the
    /// identity (accumulators kept), parked deltas cleared, then `values`
    /// received.
    pub(super) fn install_cells(&mut self, values: &Changes) -> Result<()> {
        self.conn
            .execute("DELETE FROM atomik_parked", [])
            .map_err(se)?;
        let tracked = self.tracked_cols()?.to_vec();
        for t in &tracked {
            let mut upd = self.conn.prepare_cached(&t.update_cell).map_err(se)?;
            for (key, v) in self.all_cells(t)? {
                if v.reference() != 0 {
                    // Only the reference changes: the write trigger does not
                    // take this for a local write.
                    let reset = AtomikValue::from_parts(v.group(), 0, v.accumulator());
                    Self::write(&mut upd, &key, &reset)?;
                }
            }
        }
        self.receive_cells(values)?;
        Ok(())
    }
}
