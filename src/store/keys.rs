//! The identifier index of one database's store: which slot holds a key such as
//! `email:ana@example.com`.
//!
//! It keeps no keys, only a 32-bit tag of each key's hash and its holder's slot: 8 bytes
//! an entry, where a map from key strings to customer ids took 48 and most emails a heap
//! string besides (the keys are in the profiles already). A tag may be shared by other
//! keys, so what the index gives are candidates, which the store checks against the
//! profiles in their slots ([`super::ProfileStore`]). The entries are a set: a key of a
//! slot is indexed when its (shard, tag, slot) is present.
//!
//! Sharded tables of hashbrown's raw API (the version DashMap is built on), written by
//! the database actor only and read from any thread; no lock is held while a candidate
//! is checked. Uses nothing else of the store but [`Slot`].

use std::hash::{BuildHasher, Hasher as _};

use hashbrown::raw::RawTable;
use parking_lot::RwLock;
use smallvec::SmallVec;

use super::Slot;

/// One key's holder: its tag and its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    tag: u32,
    slot: Slot,
}

/// Where a key's entries are: its shard and its tag, from the key's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash {
    shard: usize,
    tag: u32,
}

/// The table hash of a tag: a table rebuilt as it grows has only the tag to go by, so
/// both what hashbrown reads of a hash (its low bits for the bucket, its top seven for
/// the control byte) come from the tag.
fn table_hash(tag: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(tag)
}

/// Keys by hash to the slots holding them.
pub struct KeyIndex {
    shards: Box<[RwLock<RawTable<Entry>>]>,
    hasher: foldhash::quality::RandomState,
}

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyIndex")
            .field("shards", &self.shards.len())
            .field("len", &self.len())
            .finish()
    }
}

impl Default for KeyIndex {
    fn default() -> Self {
        // As many shards as DashMap would take: four a core, a power of two.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let shards = (cores * 4).next_power_of_two();
        KeyIndex {
            shards: (0..shards).map(|_| RwLock::new(RawTable::new())).collect(),
            hasher: Default::default(),
        }
    }
}

impl KeyIndex {
    /// The hash of the key `namespace:value`, from its two parts (no key is built).
    pub fn hash(&self, namespace: &str, value: &str) -> KeyHash {
        let mut h = self.hasher.build_hasher();
        h.write(namespace.as_bytes());
        h.write_u8(b':');
        h.write(value.as_bytes());
        let hash = h.finish();
        KeyHash {
            // The shard from the high half, the tag from the low: independent bits.
            shard: (hash >> 32) as usize & (self.shards.len() - 1),
            tag: hash as u32,
        }
    }

    /// The slots of every entry with this key's tag: its holder, if any, among them.
    pub fn candidates(&self, k: KeyHash) -> SmallVec<[Slot; 2]> {
        let table = self.shards[k.shard].read();
        let mut found = SmallVec::new();
        // Every entry with the tag, not only the first: other keys may share it.
        table.find(table_hash(k.tag), |e| {
            if e.tag == k.tag {
                found.push(e.slot);
            }
            false
        });
        found
    }

    /// Whether this key's entry for `slot` is present.
    pub fn contains(&self, k: KeyHash, slot: Slot) -> bool {
        let entry = Entry { tag: k.tag, slot };
        self.shards[k.shard]
            .read()
            .find(table_hash(k.tag), |e| *e == entry)
            .is_some()
    }

    /// Indexes a key as held by `slot` (nothing if it is already).
    pub fn insert(&self, k: KeyHash, slot: Slot) {
        let entry = Entry { tag: k.tag, slot };
        let hash = table_hash(k.tag);
        let mut table = self.shards[k.shard].write();
        if table.find(hash, |e| *e == entry).is_none() {
            table.insert(hash, entry, |e| table_hash(e.tag));
        }
    }

    /// Moves a key's entry from one slot to another.
    pub fn retarget(&self, k: KeyHash, from: Slot, to: Slot) {
        let old = Entry {
            tag: k.tag,
            slot: from,
        };
        let hash = table_hash(k.tag);
        let mut table = self.shards[k.shard].write();
        table.remove_entry(hash, |e| *e == old);
        let new = Entry {
            tag: k.tag,
            slot: to,
        };
        if table.find(hash, |e| *e == new).is_none() {
            table.insert(hash, new, |e| table_hash(e.tag));
        }
    }

    /// Takes out a key's entry for `slot`; whether there was one.
    pub fn remove(&self, k: KeyHash, slot: Slot) -> bool {
        let entry = Entry { tag: k.tag, slot };
        self.shards[k.shard]
            .write()
            .remove_entry(table_hash(k.tag), |e| *e == entry)
            .is_some()
    }

    /// How many entries there are (one a key held, but for keys of one slot that share
    /// a shard and a tag).
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

    /// Makes room in every shard for its share of `more` entries.
    pub fn reserve(&self, more: usize) {
        if more == 0 {
            return;
        }
        // Keys spread evenly over the shards; an eighth more covers the unevenness.
        let each = more.div_ceil(self.shards.len());
        let each = each + each / 8;
        for shard in self.shards.iter() {
            let mut table = shard.write();
            if table.capacity() - table.len() < each {
                table.reserve(each, |e| table_hash(e.tag));
            }
        }
    }

    /// Starts loading into the cache where a probe for this key starts: its group of
    /// control bytes and its entry (hashbrown's layout: control bytes from `data_end`
    /// on, entries below it in reverse order). Only addresses are computed: a prefetch
    /// reads nothing and cannot fault, so a table that grows meanwhile costs a wasted
    /// load.
    pub fn prefetch(&self, k: KeyHash) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let (control, entry) = self.first_probe(k);
            // SAFETY: a prefetch is a hint that dereferences nothing.
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(control.cast());
                _mm_prefetch::<_MM_HINT_T0>(entry.cast());
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = k;
    }

    /// Where a probe for this key starts: its control byte and its entry's address.
    #[cfg(any(target_arch = "x86_64", test))]
    fn first_probe(&self, k: KeyHash) -> (*const u8, *const Entry) {
        let table = self.shards[k.shard].read();
        let at = table_hash(k.tag) as usize & (table.buckets() - 1);
        let end = table.data_end().as_ptr().cast_const();
        (end.cast::<u8>().wrapping_add(at), end.wrapping_sub(at + 1))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_prefetch_asks_for_the_slot_a_probe_starts_at() {
        let index = KeyIndex::default();
        index.reserve(40_000);
        let keys: Vec<KeyHash> = (0..10_000)
            .map(|i| index.hash("email", &format!("{i}@x.example")))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            index.insert(*k, i as Slot);
        }
        // At a quarter full, most keys sit where their probe starts; a wrong reading of
        // the table's layout would find almost none there.
        let at_home = keys
            .iter()
            .enumerate()
            .filter(|(i, k)| {
                let (_, entry) = index.first_probe(**k);
                let table = index.shards[k.shard].read();
                let at = table_hash(k.tag) as usize & (table.buckets() - 1);
                // SAFETY: `at` is below `buckets()`, and a full bucket holds an entry.
                unsafe {
                    let bucket = table.bucket(at);
                    assert_eq!(bucket.as_ptr().cast_const(), entry);
                    table.is_bucket_full(at) && bucket.as_ref().slot == *i as Slot
                }
            })
            .count();
        assert!(at_home > 8_000, "{at_home} of 10,000");
    }

    #[test]
    fn keys_sharing_a_tag_are_all_candidates() {
        let index = KeyIndex::default();
        let k = index.hash("crm", "1");
        // Two other keys with the same shard and tag, as a collision would give them.
        index.insert(k, 3);
        index.insert(k, 7);
        index.insert(k, 7);
        let mut found = index.candidates(k).into_vec();
        found.sort();
        assert_eq!(found, [3, 7]);
        assert_eq!(index.len(), 2);
        index.retarget(k, 3, 9);
        assert!(index.contains(k, 9) && !index.contains(k, 3));
        // Retargeting onto an entry there already leaves one.
        index.retarget(k, 9, 7);
        assert_eq!(index.candidates(k).into_vec(), [7]);
        assert!(index.remove(k, 7));
        assert!(!index.remove(k, 7));
        assert!(index.candidates(k).is_empty());
    }

    proptest! {
        // Model-based: the index is a set of (key, slot), up to growth and removal.
        #[test]
        fn the_index_matches_a_set(ops in proptest::collection::vec(
            (0u16..300, 0u32..50, any::<bool>()), 1..600)) {
            let index = KeyIndex::default();
            let mut model = std::collections::HashSet::new();
            for (key, slot, add) in ops {
                let k = index.hash("crm", &key.to_string());
                if add {
                    index.insert(k, slot);
                    model.insert((key, slot));
                } else {
                    prop_assert_eq!(index.remove(k, slot), model.remove(&(key, slot)));
                }
            }
            prop_assert_eq!(index.len(), model.len());
            for key in 0u16..300 {
                let k = index.hash("crm", &key.to_string());
                let held: Vec<Slot> = index.candidates(k).into_iter()
                    .filter(|s| model.contains(&(key, *s))).collect();
                let mut want: Vec<Slot> = model.iter()
                    .filter(|(k2, _)| *k2 == key).map(|(_, s)| *s).collect();
                let mut held = held;
                held.sort();
                want.sort();
                prop_assert_eq!(held, want);
            }
        }
    }
}
