//! Sharded hash tables of small entries that carry a 32-bit tag of their key's hash: what
//! the store's two indexes (profiles by customer id, [`super::map`]; slots by identifier
//! key, [`super::keys`]) are built on.
//!
//! Neither keeps its key: a profile's customer id and identifiers are in its record
//! already, and a copy of each beside it took most of a 1M-profile store's index memory.
//! The tag stands in for the key wherever a table works without one (growing, where
//! the entries are placed again by it; and skipping most entries that don't match),
//! and the owner checks a match against the record. Hand-written around hashbrown's
//! raw table (the version DashMap is built on) because DashMap's maps hold a key of
//! their own and hashbrown's `HashTable` does not tell where a probe starts, which the
//! prefetches need. Written by the database actor (and by recovery's threads, before
//! anything reads), read from any thread; a guard is held for one probe.

use std::hash::BuildHasher;

use hashbrown::raw::RawTable;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// An entry that knows its tag.
pub trait Tagged {
    /// The low 32 bits of its key's hash.
    fn tag(&self) -> u32;
}

/// Where a key's entries are: its shard and its tag, from the key's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashed {
    shard: usize,
    /// The low 32 bits of the key's hash.
    pub tag: u32,
}

impl Hashed {
    /// The hash the shard's table places this key by.
    pub fn table_hash(self) -> u64 {
        table_hash(self.tag)
    }

    /// The place in 8 bytes (what a slot keeps to find its profile's entry).
    pub fn to_bits(self) -> u64 {
        ((self.shard as u64) << 32) | u64::from(self.tag)
    }

    /// The place [`Hashed::to_bits`] gave.
    pub fn from_bits(bits: u64) -> Hashed {
        Hashed {
            shard: (bits >> 32) as usize,
            tag: bits as u32,
        }
    }
}

/// The table hash of a tag: a table that grows has only the tags to go by, so both what
/// hashbrown reads of a hash (its low bits for the bucket, its top seven for the control
/// byte) come from the tag.
pub fn table_hash(tag: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(tag)
}

/// Tables of `T`, sharded by key hash.
pub struct Sharded<T> {
    shards: Box<[RwLock<RawTable<T>>]>,
    hasher: foldhash::quality::RandomState,
}

impl<T> std::fmt::Debug for Sharded<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sharded")
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl<T: Tagged> Default for Sharded<T> {
    fn default() -> Self {
        // As many shards as DashMap would take: four a core, a power of two.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let shards = (cores * 4).next_power_of_two();
        Sharded {
            shards: (0..shards).map(|_| RwLock::new(RawTable::new())).collect(),
            hasher: Default::default(),
        }
    }
}

impl<T: Tagged> Sharded<T> {
    /// The place of a key whose bytes `write` feeds to a hasher.
    pub fn hash(&self, write: impl FnOnce(&mut foldhash::quality::FoldHasher<'_>)) -> Hashed {
        use std::hash::Hasher as _;
        let mut h = self.hasher.build_hasher();
        write(&mut h);
        let hash = h.finish();
        Hashed {
            // The shard from the high half, the tag from the low: independent bits.
            shard: (hash >> 32) as usize & (self.shards.len() - 1),
            tag: hash as u32,
        }
    }

    /// The shard of a key, to read.
    pub fn read(&self, h: Hashed) -> RwLockReadGuard<'_, RawTable<T>> {
        self.shards[h.shard].read()
    }

    /// The shard of a key, to write (the actor, or recovery).
    pub fn write(&self, h: Hashed) -> RwLockWriteGuard<'_, RawTable<T>> {
        self.shards[h.shard].write()
    }

    /// Adds an entry (its key's place: `h`).
    pub fn insert(table: &mut RawTable<T>, h: Hashed, entry: T) {
        table.insert(h.table_hash(), entry, |e| table_hash(e.tag()));
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    /// How many entries fit without a table growing (the smallest shard's room, times
    /// the shards).
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        let least = self.shards.iter().map(|s| s.read().capacity());
        least.min().unwrap_or(0) * self.shards.len()
    }

    /// Takes out every entry.
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            shard.write().clear();
        }
    }

    /// Calls `f` with every entry, a shard at a time (each read-locked meanwhile).
    pub fn for_each(&self, mut f: impl FnMut(&T)) {
        for shard in self.shards.iter() {
            let table = shard.read();
            // SAFETY: the buckets are read while the guard keeps the table as it is.
            unsafe {
                for bucket in table.iter() {
                    f(bucket.as_ref());
                }
            }
        }
    }

    /// Makes room in every shard for its share of `more` entries, so that a load that
    /// knows what is coming grows each table once (one grown an insert at a time
    /// doubles ~20 times on the way to a million, each time placing every entry again
    /// in fresh memory the kernel zeroes).
    pub fn reserve(&self, more: usize) {
        if more == 0 {
            return;
        }
        // Keys spread evenly over the shards; an eighth more covers the unevenness.
        let each = more.div_ceil(self.shards.len());
        let each = each + each / 8;
        for shard in self.shards.iter() {
            let mut table = shard.write();
            // Only when it would grow: readers of this shard wait only while a table is
            // really rebuilt.
            if table.capacity() - table.len() < each {
                table.reserve(each, |e| table_hash(e.tag()));
            }
        }
    }

    /// Starts loading into the cache where a probe for this key starts: its group of
    /// control bytes and its entry. The tables are far larger than the caches, so every
    /// probe misses; a batch asks for its next rows' places while it works on this
    /// one's, and their misses overlap instead of following one another. Only
    /// addresses are computed: a prefetch reads nothing and cannot fault, so a table
    /// that grows meanwhile costs a wasted load.
    pub fn prefetch(&self, h: Hashed) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let (control, entry) = self.first_probe(h);
            // SAFETY: a prefetch is a hint that dereferences nothing.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(control.cast());
                _mm_prefetch::<_MM_HINT_T0>(entry.cast());
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = h;
    }

    /// Where a probe for this key starts: its control byte and its entry's address
    /// (hashbrown's layout: control bytes from `data_end` on, entries below it in
    /// reverse order).
    #[cfg(any(target_arch = "x86_64", test))]
    fn first_probe(&self, h: Hashed) -> (*const u8, *const T) {
        let table = self.read(h);
        let at = h.table_hash() as usize & (table.buckets() - 1);
        let end = table.data_end().as_ptr().cast_const();
        (end.cast::<u8>().wrapping_add(at), end.wrapping_sub(at + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Entry(u32, u32);

    impl Tagged for Entry {
        fn tag(&self) -> u32 {
            self.0
        }
    }

    fn place(t: &Sharded<Entry>, i: u32) -> Hashed {
        t.hash(|h| std::hash::Hasher::write_u32(h, i))
    }

    #[test]
    fn a_prefetch_asks_for_the_slot_a_probe_starts_at() {
        let t: Sharded<Entry> = Sharded::default();
        t.reserve(40_000);
        for i in 0..10_000 {
            let h = place(&t, i);
            Sharded::insert(&mut t.write(h), h, Entry(h.tag, i));
        }
        // At a quarter full, most keys sit where their probe starts; a wrong reading of
        // the table's layout would find almost none there.
        let at_home = (0..10_000)
            .filter(|&i| {
                let h = place(&t, i);
                let (_, entry) = t.first_probe(h);
                let table = t.read(h);
                let at = h.table_hash() as usize & (table.buckets() - 1);
                // SAFETY: `at` is below `buckets()`, and a full bucket holds an entry.
                unsafe {
                    let bucket = table.bucket(at);
                    assert_eq!(bucket.as_ptr().cast_const(), entry);
                    table.is_bucket_full(at) && bucket.as_ref().1 == i
                }
            })
            .count();
        assert!(at_home > 8_000, "{at_home} of 10,000");
    }

    #[test]
    fn entries_stay_found_as_tables_grow_and_all_are_walked() {
        let t: Sharded<Entry> = Sharded::default();
        // Grown an insert at a time, placed again by their tags each time.
        for i in 0..5_000 {
            let h = place(&t, i);
            Sharded::insert(&mut t.write(h), h, Entry(h.tag, i));
        }
        t.reserve(20_000);
        assert!(t.capacity() >= 20_000);
        for i in 0..5_000 {
            let h = place(&t, i);
            let found = t.read(h).get(h.table_hash(), |e| e.1 == i).copied();
            assert_eq!(found, Some(Entry(h.tag, i)));
        }
        let mut seen = 0u64;
        t.for_each(|e| seen += u64::from(e.1));
        assert_eq!(seen, (0..5_000u64).sum::<u64>());
        assert_eq!(t.len(), 5_000);
        t.clear();
        assert_eq!(t.len(), 0);
    }
}
