//! [`SmallMap`]: the per-key records of one profile's aggregates (stores, categories, cart
//! lines, bonuses, receipts), kept as a sorted vector.
//!
//! Why not `BTreeMap`: a profile's maps hold a handful of keys each, and a B-tree's first
//! leaf is a node of eleven slots (~1 KB for a cart line) allocated for the first key:
//! most of a kept event's memory, and a fifth of an event's apply in allocations. A
//! sorted vector (`litemap`, already in the tree through `idna`) holds exactly its
//! entries and finds a key by binary search. It encodes to the same bincode bytes as a
//! `BTreeMap` (a length, then the pairs in key order), so snapshots written before read
//! unchanged. Pure; uses nothing else of the crate.

use std::ops::{Deref, DerefMut};

use bincode::de::{BorrowDecoder, Decoder};
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{BorrowDecode, Decode, Encode};
use litemap::LiteMap;

/// A map kept as a vector sorted by key: `BTreeMap`'s reads, a vector's footprint.
#[derive(Debug, Clone, PartialEq)]
pub struct SmallMap<K, V>(LiteMap<K, V>);

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap(LiteMap::new())
    }
}

impl<K, V> Deref for SmallMap<K, V> {
    type Target = LiteMap<K, V>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<K, V> DerefMut for SmallMap<K, V> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<K, V> IntoIterator for SmallMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_tuple_vec().into_iter()
    }
}

impl<'a, K: 'a, V: 'a> IntoIterator for &'a SmallMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = <&'a LiteMap<K, V> as IntoIterator>::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        (&self.0).into_iter()
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for SmallMap<K, V> {
    /// Later pairs win over earlier ones with the same key, as in a `BTreeMap`; pairs
    /// already in order are appended without a search.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        SmallMap(pairs.into_iter().collect())
    }
}

impl<K: Encode, V: Encode> Encode for SmallMap<K, V> {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        // bincode's collection length, then the pairs: a `BTreeMap`'s bytes.
        (self.0.len() as u64).encode(encoder)?;
        for (k, v) in self.0.iter() {
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
        let mut pairs = Vec::with_capacity(len.min(1024));
        for _ in 0..len {
            // The claim above was for the whole container; each pair reads its own bytes.
            decoder.unclaim_bytes_read(std::mem::size_of::<(K, V)>());
            pairs.push((K::decode(decoder)?, V::decode(decoder)?));
        }
        Ok(pairs.into_iter().collect())
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

    fn config() -> bincode::config::Configuration {
        bincode::config::standard()
    }

    proptest! {
        #[test]
        fn encodes_and_decodes_as_a_btreemap(pairs in prop::collection::vec(("[a-e]{0,3}", any::<u32>()), 0..40)) {
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
    }
}
