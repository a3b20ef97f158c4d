//! An in-memory [`Store`]: the reference implementation of the storage the
//! protocol expects, used by the simulation and the tests. Its transactions
//! are snapshot-and-swap: [`MemoryStore::atomically`] runs a protocol call on
//! a copy and keeps the copy only when the call succeeds.

use crate::auth::DeviceKey;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::changes::{Changes, ColumnId};
use crate::codec::v2::{Cursor, OutboxEntry};
use crate::codec::Batch;
use crate::digest::Digest;
use crate::error::{ProtocolError, Result};
use crate::group::Group;
use crate::key::{Key, KeyShape};
use crate::log_store::{LogAppend, LogBounds, LogEntry, LogStore};
use crate::site::{SiteId, VersionVector};
use crate::store::{Store, TrackedColumn};
use crate::value::AtomikValue;

/// A tracked cell and its "created locally, not yet shipped" mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cell {
    value: AtomikValue,
    new: bool,
}

/// One table: its key shape, whether rows can be created from a delta
/// alone (all other columns have defaults), its rows and tracked columns.
#[derive(Debug, Clone)]
struct Table {
    shape: KeyShape,
    auto_create_rows: bool,
    tracked: BTreeMap<String, Group>,
    /// Row key → column → cell (absent column = NULL).
    rows: BTreeMap<Key, BTreeMap<String, Cell>>,
}

/// A delta for a row that does not exist and could not be created: kept,
/// visible, and applied when the row appears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedDelta {
    /// The column it targets.
    pub column: ColumnId,
    /// The missing row's key.
    pub key: Key,
    /// The (coalesced) delta.
    pub delta: u64,
}

/// One entry of a hub's log (protocol v2). The deltas are shared, so that
/// the snapshot-and-swap transactions copy a log cheaply.
#[derive(Debug, Clone)]
struct LogRecord {
    origin: SiteId,
    seq: u64,
    via: SiteId,
    appended_at: u64,
    changes: Arc<Changes>,
}

/// An in-memory replica store.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    site: SiteId,
    tables: BTreeMap<String, Table>,
    settings: BTreeMap<String, u64>,
    parked: BTreeMap<(ColumnId, Key), u64>,
    /// Cells written locally since the last seal: `take_pending` reads
    /// these, never the tables.
    dirty: BTreeSet<(String, String, Key)>,
    outbox: BTreeMap<u64, OutboxEntry>,
    link: Option<Cursor>,
    log: BTreeMap<u64, LogRecord>,
    log_end: u64,
    log_trimmed: u64,
    registry: BTreeMap<SiteId, u64>,
    device_keys: BTreeMap<SiteId, DeviceKey>,
}

impl MemoryStore {
    /// An empty replica with the given site id.
    pub fn new(site: SiteId) -> Self {
        MemoryStore {
            site,
            tables: BTreeMap::new(),
            settings: BTreeMap::new(),
            parked: BTreeMap::new(),
            dirty: BTreeSet::new(),
            outbox: BTreeMap::new(),
            link: None,
            log: BTreeMap::new(),
            log_end: 0,
            log_trimmed: 0,
            registry: BTreeMap::new(),
            device_keys: BTreeMap::new(),
        }
    }

    /// Run `f` as one transaction: on error, every change it made is
    /// discarded.
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn atomically<R>(&mut self, f: impl FnOnce(&mut MemoryStore) -> Result<R>) -> Result<R> {
        let mut copy = self.clone();
        let out = f(&mut copy)?;
        *self = copy;
        Ok(out)
    }

    /// Create a table. With `auto_create_rows` false, a delta for a missing
    /// row is parked (as when other columns are NOT NULL without default).
    pub fn create_table(&mut self, name: &str, shape: KeyShape, auto_create_rows: bool) {
        self.tables.insert(
            name.to_string(),
            Table {
                shape,
                auto_create_rows,
                tracked: BTreeMap::new(),
                rows: BTreeMap::new(),
            },
        );
    }

    /// Put a column under replication (`atomik_track`), fixing its group:
    /// local writes and received deltas of another group are refused.
    ///
    /// # Errors
    /// When the table does not exist, or the column is already tracked in
    /// another group.
    pub fn track(&mut self, table: &str, column: &str, group: Group) -> Result<()> {
        let t = self.table_mut(table)?;
        match t.tracked.get(column) {
            Some(g) if *g != group => Err(ProtocolError::ColumnGroup {
                table: table.to_string(),
                column: column.to_string(),
                tracked: *g,
                delta: group,
            }),
            _ => {
                t.tracked.insert(column.to_string(), group);
                Ok(())
            }
        }
    }

    fn table_mut(&mut self, table: &str) -> Result<&mut Table> {
        self.tables
            .get_mut(table)
            .ok_or_else(|| ProtocolError::Store(format!("no table \"{table}\"")))
    }

    /// Insert a row (an application's `INSERT` with the other columns);
    /// parked deltas for it are applied now.
    ///
    /// # Errors
    /// When the table does not exist or the key does not fit.
    pub fn insert_row(&mut self, table: &str, key: Key) -> Result<()> {
        let t = self.table_mut(table)?;
        t.shape.check(&key).map_err(|why| ProtocolError::KeyShape {
            table: table.to_string(),
            key: key.to_string(),
            why,
        })?;
        t.rows.entry(key.clone()).or_default();
        let parked: Vec<_> = self
            .parked
            .iter()
            .filter(|((c, k), _)| c.table == table && *k == key)
            .map(|((c, k), d)| (c.clone(), k.clone(), *d))
            .collect();
        for (column, k, delta) in parked {
            self.parked.remove(&(column.clone(), k.clone()));
            let mut ch = Changes::new();
            let shape = self.tables[table].shape.clone();
            ch.add(&column, &shape, k, delta)
                .map_err(|e| ProtocolError::Store(e.to_string()))?;
            self.receive(&ch)?;
        }
        Ok(())
    }

    /// A local write: `UPDATE t SET c = atomik_accum(c, d)`, or for a NULL
    /// cell `atomik_add(d)` / `atomik_xor(d)` (marked new so it ships even
    /// when `d` is the identity). Creates the row if missing.
    ///
    /// # Errors
    /// Unknown table, key shape, or a group different from the cell's or
    /// from the one its column is tracked in.
    pub fn accum(
        &mut self,
        table: &str,
        column: &str,
        key: &Key,
        group: Group,
        delta: u64,
    ) -> Result<()> {
        if let Some(tracked) = self.tables.get(table).and_then(|t| t.tracked.get(column)) {
            if *tracked != group {
                return Err(ProtocolError::ColumnGroup {
                    table: table.to_string(),
                    column: column.to_string(),
                    tracked: *tracked,
                    delta: group,
                });
            }
        }
        self.insert_row(table, key.clone())?;
        self.dirty
            .insert((table.to_string(), column.to_string(), key.clone()));
        let t = self.table_mut(table)?;
        let row = t.rows.get_mut(key).expect("inserted above");
        match row.get_mut(column) {
            None => {
                row.insert(
                    column.to_string(),
                    Cell {
                        value: AtomikValue::new_pending(group, delta),
                        new: true,
                    },
                );
            }
            Some(cell) => {
                if cell.value.group() != group {
                    return Err(ProtocolError::GroupMismatch {
                        table: table.to_string(),
                        column: column.to_string(),
                        key: key.to_string(),
                        cell: cell.value.group(),
                        delta: group,
                    });
                }
                cell.value = cell.value.accum(delta);
            }
        }
        Ok(())
    }

    /// The value of one cell, if present.
    pub fn value(&self, table: &str, column: &str, key: &Key) -> Option<AtomikValue> {
        self.tables
            .get(table)?
            .rows
            .get(key)?
            .get(column)
            .map(|c| c.value)
    }

    /// Every non-NULL cell of a column, in key order.
    pub fn cells(&self, table: &str, column: &str) -> Vec<(Key, AtomikValue)> {
        self.tables
            .get(table)
            .map(|t| {
                t.rows
                    .iter()
                    .filter_map(|(k, r)| r.get(column).map(|c| (k.clone(), c.value)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `atomik_digest(table, column)`.
    pub fn digest(&self, table: &str, column: &str) -> i64 {
        let mut d = Digest::new();
        for (k, v) in self.cells(table, column) {
            d.add(&k, &v);
        }
        d.value()
    }

    /// The parked deltas (the visible parking table).
    pub fn parked(&self) -> Vec<ParkedDelta> {
        self.parked
            .iter()
            .map(|((column, key), delta)| ParkedDelta {
                column: column.clone(),
                key: key.clone(),
                delta: *delta,
            })
            .collect()
    }

    /// Protocol v2 storage sizes: (log entries retained, registry entries,
    /// outbox entries).
    pub fn log_sizes(&self) -> (usize, usize, usize) {
        (self.log.len(), self.registry.len(), self.outbox.len())
    }

    fn cell_entry(&mut self, column: &ColumnId, key: &Key) -> Result<Option<&mut Cell>> {
        let t = self.table_mut(&column.table)?;
        if !t.rows.contains_key(key) {
            if !t.auto_create_rows {
                return Ok(None);
            }
            t.rows.insert(key.clone(), BTreeMap::new());
        }
        let row = t.rows.get_mut(key).expect("present or inserted above");
        let cell = row.entry(column.column.clone()).or_insert(Cell {
            value: AtomikValue::identity(column.group),
            new: false,
        });
        if cell.value.group() != column.group {
            return Err(ProtocolError::GroupMismatch {
                table: column.table.clone(),
                column: column.column.clone(),
                key: key.to_string(),
                cell: cell.value.group(),
                delta: column.group,
            });
        }
        Ok(Some(cell))
    }

    fn park(&mut self, column: &ColumnId, key: &Key, delta: u64) -> Result<()> {
        if let Some(((other, _), _)) = self.parked.iter().find(|((c, k), _)| {
            c.table == column.table
                && c.column == column.column
                && k == key
                && c.group != column.group
        }) {
            return Err(ProtocolError::GroupMismatch {
                table: column.table.clone(),
                column: column.column.clone(),
                key: key.to_string(),
                cell: other.group,
                delta: column.group,
            });
        }
        if !self.parked.contains_key(&(column.clone(), key.clone())) {
            let limit = self.settings.get(crate::store::MAX_PARKED).copied();
            crate::store::check_parked_room(self.parked.len() as u64, limit)?;
        }
        let slot = self
            .parked
            .entry((column.clone(), key.clone()))
            .or_insert(0);
        *slot = column.group.combine(*slot, delta);
        Ok(())
    }
}

impl Store for MemoryStore {
    fn site_id(&mut self) -> Result<SiteId> {
        Ok(self.site)
    }

    fn tracked(&mut self) -> Result<Vec<TrackedColumn>> {
        Ok(self
            .tables
            .iter()
            .flat_map(|(name, t)| {
                t.tracked.iter().map(move |(c, g)| TrackedColumn {
                    table: name.clone(),
                    column: c.clone(),
                    shape: t.shape.clone(),
                    group: *g,
                })
            })
            .collect())
    }

    fn take_pending(&mut self) -> Result<Changes> {
        let mut out = Changes::new();
        let mut untracked = BTreeSet::new();
        for (table, column, key) in std::mem::take(&mut self.dirty) {
            let Some(t) = self.tables.get_mut(&table) else {
                continue;
            };
            if !t.tracked.contains_key(&column) {
                // Written before the column was tracked: it ships once it is.
                untracked.insert((table, column, key));
                continue;
            }
            let Some(cell) = t.rows.get_mut(&key).and_then(|r| r.get_mut(&column)) else {
                continue;
            };
            if !(cell.new || cell.value.pending() != 0) {
                continue;
            }
            let (sealed, delta) = cell.value.seal();
            cell.value = sealed;
            cell.new = false;
            let id = ColumnId::new(table.clone(), column.clone(), sealed.group());
            out.add(&id, &t.shape, key, delta)
                .map_err(|e| ProtocolError::Store(e.to_string()))?;
        }
        self.dirty = untracked;
        Ok(out)
    }

    fn receive(&mut self, changes: &Changes) -> Result<u64> {
        let mut n = 0;
        for (column, key, delta) in changes.cells() {
            match self.cell_entry(column, key)? {
                Some(cell) => cell.value = cell.value.receive(delta),
                None => self.park(column, key, delta)?,
            }
            n += 1;
        }
        Ok(n)
    }

    fn references(&mut self) -> Result<Changes> {
        let mut out = Changes::new();
        for (name, t) in &self.tables {
            for (key, row) in &t.rows {
                for (column, cell) in row {
                    if t.tracked.contains_key(column) {
                        let id = ColumnId::new(name.clone(), column.clone(), cell.value.group());
                        out.add(&id, &t.shape, key.clone(), cell.value.reference())
                            .map_err(|e| ProtocolError::Store(e.to_string()))?;
                    }
                }
            }
        }
        for ((column, key), delta) in &self.parked {
            let shape = &self.tables[&column.table].shape;
            out.add(column, shape, key.clone(), *delta)
                .map_err(|e| ProtocolError::Store(e.to_string()))?;
        }
        Ok(out)
    }

    fn install_references(&mut self, values: &Changes) -> Result<()> {
        self.parked.clear();
        for t in self.tables.values_mut() {
            for row in t.rows.values_mut() {
                for (column, cell) in row.iter_mut() {
                    if t.tracked.contains_key(column) {
                        cell.value = AtomikValue::from_parts(
                            cell.value.group(),
                            0,
                            cell.value.accumulator(),
                        );
                    }
                }
            }
        }
        // References are now the identity: receiving the values sets them.
        self.receive(values)?;
        Ok(())
    }

    fn setting(&mut self, name: &str) -> Result<Option<u64>> {
        Ok(self.settings.get(name).copied())
    }

    fn set_setting(&mut self, name: &str, value: Option<u64>) -> Result<()> {
        match value {
            Some(v) => self.settings.insert(name.to_string(), v),
            None => self.settings.remove(name),
        };
        Ok(())
    }
}

impl MemoryStore {
    fn log_range(
        &self,
        after: u64,
        through: Option<u64>,
        asker: SiteId,
    ) -> impl Iterator<Item = &LogRecord> + '_ {
        let through = through.unwrap_or(u64::MAX);
        self.log
            .range(after.saturating_add(1)..)
            .take_while(move |(p, _)| **p <= through)
            .map(|(_, r)| r)
            .filter(move |r| r.origin != asker && r.via != asker)
    }
}

impl LogStore for MemoryStore {
    fn outbox_push(&mut self, entry: &OutboxEntry) -> Result<()> {
        self.outbox.insert(entry.position, entry.clone());
        Ok(())
    }

    fn outbox(&mut self) -> Result<Vec<OutboxEntry>> {
        Ok(self.outbox.values().cloned().collect())
    }

    fn outbox_drop_through(&mut self, position: u64) -> Result<()> {
        self.outbox.retain(|p, _| *p > position);
        Ok(())
    }

    fn link(&mut self) -> Result<Option<Cursor>> {
        Ok(self.link)
    }

    fn set_link(&mut self, link: Option<Cursor>) -> Result<()> {
        self.link = link;
        Ok(())
    }

    fn log_append(&mut self, entry: LogAppend<'_>) -> Result<()> {
        self.log_end += 1;
        self.log.insert(
            self.log_end,
            LogRecord {
                origin: entry.origin,
                seq: entry.seq,
                via: entry.via,
                appended_at: entry.now,
                changes: Arc::new(entry.changes.clone()),
            },
        );
        Ok(())
    }

    fn log_bounds(&mut self) -> Result<LogBounds> {
        Ok(LogBounds {
            trimmed_through: self.log_trimmed,
            watermark: self.log_end,
        })
    }

    fn log_entries(
        &mut self,
        after: u64,
        through: Option<u64>,
        asker: SiteId,
    ) -> Result<Vec<Batch>> {
        Ok(self
            .log_range(after, through, asker)
            .map(|r| Batch {
                origin: r.origin,
                seq: r.seq,
                changes: (*r.changes).clone(),
            })
            .collect())
    }

    fn log_read(&mut self, after: u64, through: u64, limit: u64) -> Result<Vec<LogEntry>> {
        if through <= after {
            return Ok(Vec::new());
        }
        Ok(self
            .log
            .range(after + 1..=through)
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(p, r)| LogEntry {
                position: *p,
                origin: r.origin,
                seq: r.seq,
                changes: (*r.changes).clone(),
            })
            .collect())
    }

    fn log_trim(&mut self, before: u64) -> Result<u64> {
        // Entries are appended in time order: trim a prefix.
        while let Some((&p, r)) = self.log.first_key_value() {
            if r.appended_at >= before {
                break;
            }
            self.log.remove(&p);
            self.log_trimmed = p;
        }
        Ok(self.log_trimmed)
    }

    fn log_reset(&mut self) -> Result<()> {
        self.log.clear();
        self.log_end += 1;
        self.log_trimmed = self.log_end;
        Ok(())
    }

    fn registry_seq(&mut self, origin: SiteId) -> Result<u64> {
        Ok(self.registry.get(&origin).copied().unwrap_or(0))
    }

    fn set_registry_seq(&mut self, origin: SiteId, seq: u64) -> Result<()> {
        if seq == 0 {
            self.registry.remove(&origin);
        } else {
            self.registry.insert(origin, seq);
        }
        Ok(())
    }

    fn registry(&mut self) -> Result<VersionVector> {
        Ok(self.registry.iter().map(|(s, n)| (*s, *n)).collect())
    }

    fn device_key(&mut self, site: SiteId) -> Result<Option<DeviceKey>> {
        Ok(self.device_keys.get(&site).cloned())
    }

    fn set_device_key(&mut self, site: SiteId, key: Option<&DeviceKey>) -> Result<()> {
        match key {
            Some(k) => self.device_keys.insert(site, k.clone()),
            None => self.device_keys.remove(&site),
        };
        Ok(())
    }
}
