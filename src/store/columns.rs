//! Field columns: one field's values for every profile, by slot, packed into 64-bit
//! cells, so a query that reads only a few fields scans a few dense arrays instead of
//! a million scattered profiles.
//!
//! Why by hand: a scan of the profiles themselves costs a cache miss a profile (each is
//! its own allocation), which for a million profiles is most of a query's 50 ms budget;
//! the column crates (arrow and the like) are built for batches written once, not for
//! one cell rewritten on every write while readers scan. Columns are built on demand by
//! the database's writer (the first query or saved segment that needs a field pays for
//! it once a run) and kept current by [`super::ProfileStore::put`] from then on. Cells
//! are atomics: a scan reads while the writer writes, and sees each cell old or new.
//! Not persisted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use jiff::Timestamp;
use jiff::civil::Date;
use parking_lot::RwLock;

use super::{Slot, ValueRef};
use crate::schema::{FieldId, FieldType};

/// Slots per chunk: a chunk is allocated whole when the first of its slots is.
const CHUNK: usize = 1 << 16;
const WORDS: usize = CHUNK / 64;

/// How a column's cells are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `integer` and `float`: the value as an `f64`'s bits (as filters compare them).
    Number,
    /// `date`: `year * 10_000 + month * 100 + day`, which orders like the date.
    Date,
    /// `datetime`: nanoseconds since the epoch, saturated to `i64`.
    Time,
    /// `boolean`: 0 or 1.
    Bool,
    /// `string` and `list`: an id in the column's dictionary.
    Text,
}

impl ColumnKind {
    /// The kind for a field type, if values of that type fit a column.
    pub fn of(ty: FieldType) -> Option<ColumnKind> {
        Some(match ty {
            FieldType::Integer | FieldType::Float => ColumnKind::Number,
            FieldType::Date => ColumnKind::Date,
            FieldType::DateTime => ColumnKind::Time,
            FieldType::Boolean => ColumnKind::Bool,
            FieldType::String | FieldType::List => ColumnKind::Text,
            _ => return None,
        })
    }
}

/// A date's cell.
pub fn date_cell(d: Date) -> u64 {
    (i64::from(d.year()) * 10_000 + i64::from(d.month()) * 100 + i64::from(d.day())) as u64
}

/// An instant's cell.
pub fn time_cell(t: Timestamp) -> u64 {
    (t.as_nanosecond().clamp(i64::MIN as i128, i64::MAX as i128) as i64) as u64
}

/// One chunk of cells: whether each slot has a value, and the value.
#[derive(Debug)]
struct Chunk {
    present: Box<[AtomicU64]>,
    cells: Box<[AtomicU64]>,
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            present: (0..WORDS).map(|_| AtomicU64::new(0)).collect(),
            cells: (0..CHUNK).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// Text values by id, and ids by value.
#[derive(Default)]
struct Dict {
    ids: HashMap<Arc<str>, u32>,
    texts: Vec<Arc<str>>,
}

/// One field's values by slot.
pub struct Column {
    /// The field.
    pub field: Arc<str>,
    /// Its number, which profiles store.
    pub id: FieldId,
    /// How cells read.
    pub kind: ColumnKind,
    // Swapped whole when a chunk is added (once every 65,536 profiles), so that a scan
    // holds no lock the writer could wait on.
    chunks: ArcSwap<Vec<Arc<Chunk>>>,
    dict: RwLock<Dict>,
    // A datetime outside the cells' range (before 1677, after 2262) was written: cells
    // no longer order like the values, so plans leave this column alone.
    clamped: AtomicBool,
}

impl std::fmt::Debug for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Column")
            .field("field", &self.field)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A column held for a scan: its chunks as they were when the scan began (a chunk
/// added since holds only profiles created since).
pub struct Scan {
    chunks: Arc<Vec<Arc<Chunk>>>,
}

impl Scan {
    /// The cell of `slot`, if it has a value.
    #[inline]
    pub fn cell(&self, slot: Slot) -> Option<u64> {
        let (c, i) = (slot as usize / CHUNK, slot as usize % CHUNK);
        let chunk = self.chunks.get(c)?;
        let word = chunk.present[i / 64].load(Ordering::Relaxed);
        (word >> (i % 64) & 1 == 1).then(|| chunk.cells[i].load(Ordering::Relaxed))
    }
}

impl Column {
    fn new(id: FieldId, field: Arc<str>, kind: ColumnKind) -> Self {
        Column {
            field,
            id,
            kind,
            chunks: ArcSwap::default(),
            dict: RwLock::new(Dict::default()),
            clamped: AtomicBool::new(false),
        }
    }

    /// Holds the column for a scan.
    pub fn scan(&self) -> Scan {
        Scan {
            chunks: self.chunks.load_full(),
        }
    }

    /// Whether its cells order like its values (see `clamped`).
    pub fn is_exact(&self) -> bool {
        !self.clamped.load(Ordering::Relaxed)
    }

    /// The text of a dictionary id.
    pub fn text(&self, id: u32) -> Option<Arc<str>> {
        self.dict.read().texts.get(id as usize).cloned()
    }

    /// The dictionary id of a text, if any profile has had it.
    pub fn text_id(&self, text: &str) -> Option<u32> {
        self.dict.read().ids.get(text).copied()
    }

    /// The texts of the dictionary from id `from` on, in id order.
    pub fn texts_from(&self, from: usize) -> Vec<Arc<str>> {
        let dict = self.dict.read();
        dict.texts
            .get(from..)
            .map(<[_]>::to_vec)
            .unwrap_or_default()
    }

    fn intern(&self, text: &str) -> u32 {
        if let Some(id) = self.text_id(text) {
            return id;
        }
        let mut dict = self.dict.write();
        if let Some(id) = dict.ids.get(text) {
            return *id;
        }
        let id = dict.texts.len() as u32;
        let text: Arc<str> = Arc::from(text);
        dict.texts.push(Arc::clone(&text));
        dict.ids.insert(text, id);
        id
    }

    /// The cell for a value of this column's field (`None`: no value or another type).
    fn cell_of(&self, v: Option<ValueRef<'_>>) -> Option<u64> {
        Some(match (self.kind, v?) {
            (ColumnKind::Number, ValueRef::Int(i)) => (i as f64).to_bits(),
            (ColumnKind::Number, ValueRef::Float(f)) => f.to_bits(),
            (ColumnKind::Date, ValueRef::Date(d)) => date_cell(d),
            (ColumnKind::Time, ValueRef::DateTime(t)) => {
                let ns = t.as_nanosecond();
                if ns < i128::from(i64::MIN) || ns > i128::from(i64::MAX) {
                    self.clamped.store(true, Ordering::Relaxed);
                }
                time_cell(t)
            }
            (ColumnKind::Bool, ValueRef::Bool(b)) => u64::from(b),
            (ColumnKind::Text, ValueRef::Str(s)) => u64::from(self.intern(s)),
            _ => return None,
        })
    }

    /// Allocates the chunks for slots below `bound`, so that fills from several threads
    /// take only read locks.
    fn reserve(&self, bound: Slot) {
        let want = (bound as usize).div_ceil(CHUNK);
        let have = self.chunks.load();
        if have.len() < want {
            let mut more = (**have).clone();
            while more.len() < want {
                more.push(Arc::new(Chunk::new()));
            }
            self.chunks.store(Arc::new(more));
        }
    }

    /// Forgets every cell. Writer only.
    fn clear_all(&self) {
        self.chunks.store(Arc::default());
    }

    /// Sets a slot's value. Writer only (or the threads of a fill).
    fn set(&self, slot: Slot, v: Option<ValueRef<'_>>) {
        let cell = self.cell_of(v);
        let (c, i) = (slot as usize / CHUNK, slot as usize % CHUNK);
        if self.chunks.load().len() <= c {
            if cell.is_none() {
                return; // nothing to clear in a chunk that does not exist
            }
            self.reserve(slot + 1);
        }
        let chunks = self.chunks.load();
        let chunk = &chunks[c];
        let bit = 1u64 << (i % 64);
        match cell {
            Some(x) => {
                chunk.cells[i].store(x, Ordering::Relaxed);
                chunk.present[i / 64].fetch_or(bit, Ordering::Relaxed);
            }
            None => {
                chunk.present[i / 64].fetch_and(!bit, Ordering::Relaxed);
            }
        }
    }
}

/// The columns of a database, by field, and which slots hold a profile.
#[derive(Debug)]
pub struct Columns {
    all: ArcSwap<Vec<Arc<Column>>>,
    // Present for every slot that holds a profile; kept once any column is.
    live: Column,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            all: ArcSwap::default(),
            live: Column::new(FieldId(u32::MAX), "".into(), ColumnKind::Bool),
        }
    }
}

impl Columns {
    /// The slots that hold a profile (meaningful once a column is built).
    pub fn live(&self) -> Scan {
        self.live.scan()
    }

    /// The column of a field, if built.
    pub fn get(&self, field: &str) -> Option<Arc<Column>> {
        self.all.load().iter().find(|c| &*c.field == field).cloned()
    }

    /// Whether any column is built (writes skip the work while none is).
    pub fn is_empty(&self) -> bool {
        self.all.load().is_empty()
    }

    /// Writes a profile's values into every column. Writer only.
    pub(super) fn put<'p>(&self, slot: Slot, field: impl Fn(FieldId) -> Option<ValueRef<'p>>) {
        self.live.set(slot, Some(ValueRef::Bool(true)));
        for c in self.all.load().iter() {
            c.set(slot, field(c.id));
        }
    }

    /// Clears an erased profile's cells. Writer only.
    pub(super) fn clear(&self, slot: Slot) {
        self.live.set(slot, None);
        for c in self.all.load().iter() {
            c.set(slot, None);
        }
    }

    /// Adds a column filled from `profiles` (every profile, with its slot, all below
    /// `bound`) on every core. Writer only, so no write comes between the fill and the
    /// column's upkeep.
    pub(super) fn add(
        &self,
        id: FieldId,
        field: Arc<str>,
        kind: ColumnKind,
        bound: Slot,
        profiles: &[(Slot, super::Packed)],
    ) -> Arc<Column> {
        let first = self.is_empty();
        let column = Arc::new(Column::new(id, field, kind));
        column.reserve(bound);
        if first {
            // Erasures while no column was kept did not reach it: start it afresh.
            self.live.clear_all();
            self.live.reserve(bound);
        }
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let per = profiles.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            for part in profiles.chunks(per) {
                let column = &column;
                s.spawn(move || {
                    for (slot, p) in part {
                        column.set(*slot, p.head().field(column.id));
                        if first {
                            self.live.set(*slot, Some(ValueRef::Bool(true)));
                        }
                    }
                });
            }
        });
        let mut all = (**self.all.load()).clone();
        all.retain(|c| c.field != column.field);
        all.push(Arc::clone(&column));
        self.all.store(Arc::new(all));
        column
    }

    /// Drops a field's column (the field was dropped or redefined). Writer only.
    pub fn drop_field(&self, field: &str) {
        if self.get(field).is_some() {
            let mut all = (**self.all.load()).clone();
            all.retain(|c| &*c.field != field);
            self.all.store(Arc::new(all));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_order_like_their_values_and_clear() {
        let d = |y, m, dd| date_cell(jiff::civil::date(y, m, dd));
        assert!(d(1999, 12, 31) < d(2000, 1, 1));
        assert!((d(-5, 1, 1) as i64) < (d(1, 1, 1) as i64));
        let t = |s: i64| time_cell(Timestamp::from_second(s).unwrap()) as i64;
        assert!(t(-10) < t(0) && t(0) < t(10));

        let col = Column::new(FieldId(7), "city".into(), ColumnKind::Text);
        col.set(3, Some(ValueRef::Str("Lisbon")));
        col.set(70_000, Some(ValueRef::Str("Porto")));
        col.set(5, Some(ValueRef::Str("Lisbon")));
        let scan = col.scan();
        assert_eq!(scan.cell(3), scan.cell(5));
        assert_eq!(scan.cell(4), None);
        assert_eq!(scan.cell(70_000), Some(1));
        assert_eq!(scan.cell(9_000_000), None);
        drop(scan);
        col.set(3, None);
        assert_eq!(col.scan().cell(3), None);
        assert_eq!(col.text_id("Porto"), Some(1));
        assert_eq!(&*col.texts_from(1)[0], "Porto");
    }
}
