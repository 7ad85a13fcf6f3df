//! [`SmallMap`]: the per-key records of one profile's aggregates (stores, categories, cart
//! lines, bonuses, receipts): a sorted vector while small, a B-tree once large.
//!
//! Why not always a `BTreeMap`: a profile's maps hold a handful of keys each, and a
//! B-tree's first leaf is a node of eleven slots (~1 KB for a cart line) allocated for
//! the first key: most of a kept event's memory, and a fifth of an event's apply in
//! allocations. A sorted vector (`litemap`, already in the tree through `idna`) holds
//! exactly its entries and finds a key by binary search. Nothing bounds these maps,
//! though (receipts are kept for ever, and a cart line is kept for every sku bought),
//! and a vector's insert moves every later entry: past [`LARGE`] entries the map turns
//! into a `BTreeMap`, whose insert stays logarithmic. Either way it encodes to the same
//! bincode bytes as a `BTreeMap` (a length, then the pairs in key order), so snapshots
//! written before read unchanged. Pure; uses nothing else of the crate.

use std::borrow::Borrow;
use std::collections::{BTreeMap, btree_map};

use bincode::de::{BorrowDecoder, Decoder};
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{BorrowDecode, Decode, Encode};
use litemap::LiteMap;

/// Entries past which a map is a B-tree: a vector's insert then moves ~16 KB of
/// entries, as long as a B-tree's insert takes.
pub const LARGE: usize = 256;

/// A map kept as a vector sorted by key while small, as a `BTreeMap` once large.
#[derive(Debug, Clone, PartialEq)]
pub struct SmallMap<K, V>(Repr<K, V>);

#[derive(Debug, Clone, PartialEq)]
enum Repr<K, V> {
    Small(LiteMap<K, V>),
    // Boxed: the variant's tag then fits in the vector's spare capacity bits, and the
    // map is no larger than the vector alone (every profile holds five of them, and
    // next to none grows large).
    #[allow(clippy::box_collection)]
    Large(Box<BTreeMap<K, V>>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap(Repr::Small(LiteMap::new()))
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    /// How many entries.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Small(m) => m.len(),
            Repr::Large(m) => m.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of `key`.
    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        match &self.0 {
            Repr::Small(m) => m.get(key),
            Repr::Large(m) => m.get(key),
        }
    }

    /// The value of `key`, to change.
    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        match &mut self.0 {
            Repr::Small(m) => m.get_mut(key),
            Repr::Large(m) => m.get_mut(key),
        }
    }

    /// Whether `key` has a value.
    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.get(key).is_some()
    }

    /// Sets `key`'s value; the value it had, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match &mut self.0 {
            Repr::Small(m) if m.len() < LARGE || m.contains_key(&key) => m.insert(key, value),
            Repr::Small(m) => {
                let mut tree: BTreeMap<K, V> =
                    std::mem::take(m).into_tuple_vec().into_iter().collect();
                tree.insert(key, value);
                self.0 = Repr::Large(Box::new(tree));
                None
            }
            Repr::Large(m) => m.insert(key, value),
        }
    }

    /// The entries in key order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        match &self.0 {
            Repr::Small(m) => Iter::Small(m.as_slice().iter()),
            Repr::Large(m) => Iter::Large(m.iter()),
        }
    }

    /// The values in key order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

/// The entries of a [`SmallMap`] in key order, borrowed.
pub enum Iter<'a, K, V> {
    /// Of a sorted vector.
    Small(std::slice::Iter<'a, (K, V)>),
    /// Of a B-tree.
    Large(btree_map::Iter<'a, K, V>),
}

impl<K, V> Clone for Iter<'_, K, V> {
    fn clone(&self) -> Self {
        match self {
            Iter::Small(it) => Iter::Small(it.clone()),
            Iter::Large(it) => Iter::Large(it.clone()),
        }
    }
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Small(it) => it.next().map(|(k, v)| (k, v)),
            Iter::Large(it) => it.next(),
        }
    }
}

/// The entries of a [`SmallMap`] in key order, owned.
pub enum IntoIter<K, V> {
    /// Of a sorted vector.
    Small(std::vec::IntoIter<(K, V)>),
    /// Of a B-tree.
    Large(btree_map::IntoIter<K, V>),
}

impl<K, V> Iterator for IntoIter<K, V> {
    type Item = (K, V);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            IntoIter::Small(it) => it.next(),
            IntoIter::Large(it) => it.next(),
        }
    }
}

impl<K, V> IntoIterator for SmallMap<K, V> {
    type Item = (K, V);
    type IntoIter = IntoIter<K, V>;
    fn into_iter(self) -> Self::IntoIter {
        match self.0 {
            Repr::Small(m) => IntoIter::Small(m.into_tuple_vec().into_iter()),
            Repr::Large(m) => IntoIter::Large((*m).into_iter()),
        }
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a SmallMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for SmallMap<K, V> {
    /// Later pairs win over earlier ones with the same key, as in a `BTreeMap`; pairs
    /// already in order are appended without a search.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut map = SmallMap::default();
        for pair in pairs {
            map.extend_one(pair);
        }
        map
    }
}

impl<K: Encode + Ord, V: Encode> Encode for SmallMap<K, V> {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        // bincode's collection length, then the pairs: a `BTreeMap`'s bytes.
        (self.len() as u64).encode(encoder)?;
        for (k, v) in self.iter() {
            k.encode(encoder)?;
            v.encode(encoder)?;
        }
        Ok(())
    }
}

/// The pairs' count, bounded by what the input can hold (as bincode's own collections).
fn decode_len<D: Decoder, K, V>(decoder: &mut D) -> Result<usize, DecodeError> {
    let len = u64::decode(decoder)?;
    let len = usize::try_from(len).map_err(|_| DecodeError::OutsideUsizeRange(len))?;
    decoder.claim_container_read::<(K, V)>(len)?;
    Ok(len)
}

impl<Ctx, K: Decode<Ctx> + Ord, V: Decode<Ctx>> Decode<Ctx> for SmallMap<K, V> {
    fn decode<D: Decoder<Context = Ctx>>(decoder: &mut D) -> Result<Self, DecodeError> {
        let len = decode_len::<_, K, V>(decoder)?;
        let mut map = SmallMap::default();
        for _ in 0..len {
            // The claim above was for the whole container; each pair reads its own bytes.
            decoder.unclaim_bytes_read(std::mem::size_of::<(K, V)>());
            let pair = (K::decode(decoder)?, V::decode(decoder)?);
            map.extend_one(pair);
        }
        Ok(map)
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    /// Adds a pair as [`FromIterator`] does: appended when it comes after the last key.
    fn extend_one(&mut self, (k, v): (K, V)) {
        match &mut self.0 {
            Repr::Small(m) if m.len() < LARGE => {
                if let Some((k, v)) = m.try_append(k, v) {
                    m.insert(k, v);
                }
            }
            _ => {
                self.insert(k, v);
            }
        }
    }
}

impl<'de, Ctx, K: Decode<Ctx> + Ord, V: Decode<Ctx>> BorrowDecode<'de, Ctx> for SmallMap<K, V> {
    fn borrow_decode<D: BorrowDecoder<'de, Context = Ctx>>(
        decoder: &mut D,
    ) -> Result<Self, DecodeError> {
        Decode::decode(decoder)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::SmallMap;

    #[test]
    fn a_map_is_no_larger_than_its_vector() {
        assert_eq!(
            std::mem::size_of::<SmallMap<Box<str>, u64>>(),
            std::mem::size_of::<Vec<(Box<str>, u64)>>()
        );
    }

    fn config() -> bincode::config::Configuration {
        bincode::config::standard()
    }

    proptest! {
        #[test]
        fn encodes_and_decodes_as_a_btreemap(pairs in prop::collection::vec(("[a-e]{0,5}", any::<u32>()), 0..700)) {
            let tree: BTreeMap<Box<str>, u32> =
                pairs.iter().map(|(k, v)| (k.as_str().into(), *v)).collect();
            let small: SmallMap<Box<str>, u32> =
                pairs.iter().map(|(k, v)| (k.as_str().into(), *v)).collect();
            let from_tree = bincode::encode_to_vec(&tree, config()).unwrap();
            prop_assert_eq!(&bincode::encode_to_vec(&small, config()).unwrap(), &from_tree);
            let (back, _): (SmallMap<Box<str>, u32>, usize) =
                bincode::decode_from_slice(&from_tree, config()).unwrap();
            prop_assert_eq!(back.iter().collect::<Vec<_>>(), tree.iter().collect::<Vec<_>>());
            for (k, v) in &tree {
                prop_assert_eq!(small.get(&**k), Some(v));
            }
        }

        #[test]
        fn inserts_answer_as_a_btreemap_before_and_after_it_grows_large(
            keys in prop::collection::vec(0u16..2000, 0..900),
        ) {
            let (mut tree, mut small) = (BTreeMap::new(), SmallMap::default());
            for (i, k) in keys.iter().enumerate() {
                prop_assert_eq!(small.insert(*k, i), tree.insert(*k, i));
                prop_assert_eq!(small.len(), tree.len());
            }
            if let Some(k) = keys.first() {
                *small.get_mut(k).unwrap() += 1;
                *tree.get_mut(k).unwrap() += 1;
            }
            prop_assert_eq!(small.iter().collect::<Vec<_>>(), tree.iter().collect::<Vec<_>>());
            prop_assert_eq!(small.into_iter().collect::<Vec<_>>(), tree.into_iter().collect::<Vec<_>>());
        }
    }
}
