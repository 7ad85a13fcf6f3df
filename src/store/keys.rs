//! The identifier index of one database's store: which slot holds a key such as
//! `email:ana@example.com`.
//!
//! It keeps no keys, only a 32-bit tag of each key's hash and its holder's slot: 8 bytes
//! an entry, where a map from key strings to customer ids took 48 and most emails a heap
//! string besides (the keys are in the profiles already). A tag may be shared by other
//! keys, so what the index gives are candidates, which the store checks against the
//! profiles in their slots ([`super::ProfileStore`]). The entries are a set: a key of a
//! slot is indexed when its (shard, tag, slot) is present. Built on [`super::table`];
//! uses nothing else of the store but [`Slot`]. No lock is held while a candidate is
//! checked.

use std::hash::Hasher as _;

use smallvec::SmallVec;

use super::Slot;
use super::table::{Hashed, Sharded, Tagged};

/// Where a key's entries are.
pub type KeyHash = Hashed;

/// One key's holder: its tag and its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    tag: u32,
    slot: Slot,
}

impl Tagged for Entry {
    fn tag(&self) -> u32 {
        self.tag
    }
}

/// Keys by hash to the slots holding them.
#[derive(Debug, Default)]
pub struct KeyIndex {
    table: Sharded<Entry>,
}

impl KeyIndex {
    /// The hash of the key `namespace:value`, from its two parts (no key is built).
    pub fn hash(&self, namespace: &str, value: &str) -> KeyHash {
        self.table.hash(|h| {
            h.write(namespace.as_bytes());
            h.write_u8(b':');
            h.write(value.as_bytes());
        })
    }

    /// The slots of every entry with this key's tag: its holder, if any, among them.
    pub fn candidates(&self, k: KeyHash) -> SmallVec<[Slot; 2]> {
        let table = self.table.read(k);
        let mut found = SmallVec::new();
        // Every entry with the tag, not only the first: other keys may share it. `find`
        // asks `eq` of every entry whose control byte matches until its probe meets an
        // empty group, so an `eq` that never says yes sees them all.
        table.find(k.table_hash(), |e| {
            if e.tag == k.tag {
                found.push(e.slot);
            }
            false
        });
        found
    }

    /// Indexes a key as held by `slot` (nothing if it is already).
    pub fn insert(&self, k: KeyHash, slot: Slot) {
        let entry = Entry { tag: k.tag, slot };
        let mut table = self.table.write(k);
        if table.find(k.table_hash(), |e| *e == entry).is_none() {
            Sharded::insert(&mut table, k, entry);
        }
    }

    /// Takes out a key's entry for `slot`; whether there was one.
    pub fn remove(&self, k: KeyHash, slot: Slot) -> bool {
        let entry = Entry { tag: k.tag, slot };
        self.table
            .write(k)
            .remove_entry(k.table_hash(), |e| *e == entry)
            .is_some()
    }

    /// How many entries there are (one a key held, but for keys of one slot that share
    /// a shard and a tag).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// How many entries fit without a table growing.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Takes out every entry.
    pub fn clear(&self) {
        self.table.clear();
    }

    /// Makes room for `more` entries.
    pub fn reserve(&self, more: usize) {
        self.table.reserve(more);
    }

    /// Starts loading into the cache where a probe for this key starts.
    pub fn prefetch(&self, k: KeyHash) {
        self.table.prefetch(k);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

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
        assert!(!index.remove(k, 9));
        assert!(index.remove(k, 3));
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
