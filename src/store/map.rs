//! The profiles of one database by customer id.
//!
//! An entry is the profile's record, its slot and its tag: 24 bytes, where a map keyed by
//! a copy of the customer id took 48; the customer id is read from the record, whose
//! first bytes a lookup reads next anyway. Built on [`super::table`]; uses nothing else
//! of the store but [`Packed`] and [`Slot`].

use std::hash::Hasher as _;

use super::table::{Hashed, Sharded, Tagged};
use super::{Packed, Slot};

/// A profile in the map, with its slot.
#[derive(Debug, Clone)]
pub struct Held {
    /// The profile.
    pub packed: Packed,
    /// Its slot.
    pub slot: Slot,
    tag: u32,
}

impl Tagged for Held {
    fn tag(&self) -> u32 {
        self.tag
    }
}

/// Profiles by customer id.
#[derive(Debug, Default)]
pub struct ProfileMap {
    table: Sharded<Held>,
}

impl ProfileMap {
    /// Where the entry of a customer id is.
    pub fn place(&self, customer_id: &str) -> Hashed {
        self.table.hash(|h| h.write(customer_id.as_bytes()))
    }

    /// Whether `e` is the profile of `customer_id` (`h`: its place): the tag first, so
    /// that a record is read only for a likely match.
    fn is(e: &Held, h: Hashed, customer_id: &str) -> bool {
        e.tag == h.tag && e.packed.head().customer_id == customer_id
    }

    /// What `f` makes of the entry with this customer id (its shard read-locked while it
    /// runs).
    pub fn with<R>(&self, customer_id: &str, f: impl FnOnce(&Held) -> R) -> Option<R> {
        let h = self.place(customer_id);
        let table = self.table.read(h);
        table
            .get(h.table_hash(), |e| Self::is(e, h, customer_id))
            .map(f)
    }

    /// The profile in `slot`, found by its entry's place (`h`, what [`ProfileMap::put`]
    /// gave its seat): the tag and the slot, which no two entries share, without the
    /// customer id.
    pub fn in_slot(&self, h: Hashed, slot: Slot) -> Option<Packed> {
        let table = self.table.read(h);
        table
            .get(h.table_hash(), |e| e.tag == h.tag && e.slot == slot)
            .map(|e| e.packed.clone())
    }

    /// Whether a profile has this customer id.
    pub fn contains(&self, customer_id: &str) -> bool {
        self.with(customer_id, |_| ()).is_some()
    }

    /// Puts a profile in place of the one with its customer id and returns that one's
    /// slot, or, with none there, adds it in the slot `seat` gives for its place
    /// (called with the shard write-locked, so no reader finds the profile before it is
    /// seated).
    pub fn put(&self, packed: Packed, seat: impl FnOnce(Hashed) -> Slot) -> Slot {
        let customer_id = packed.head().customer_id;
        let h = self.place(customer_id);
        let mut table = self.table.write(h);
        if let Some(held) = table.get_mut(h.table_hash(), |e| Self::is(e, h, customer_id)) {
            held.packed = packed;
            return held.slot;
        }
        let slot = seat(h);
        let held = Held {
            packed,
            slot,
            tag: h.tag,
        };
        Sharded::insert(&mut table, h, held);
        slot
    }

    /// Gives the profile with this customer id another slot; returns its place.
    pub fn set_slot(&self, customer_id: &str, slot: Slot) -> Hashed {
        let h = self.place(customer_id);
        if let Some(held) = self
            .table
            .write(h)
            .get_mut(h.table_hash(), |e| Self::is(e, h, customer_id))
        {
            held.slot = slot;
        }
        h
    }

    /// Takes out the profile with this customer id.
    pub fn remove(&self, customer_id: &str) -> Option<Held> {
        let h = self.place(customer_id);
        self.table
            .write(h)
            .remove_entry(h.table_hash(), |e| Self::is(e, h, customer_id))
    }

    /// How many profiles there are.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// How many fit without a table growing.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.table.capacity()
    }

    /// Calls `f` with every entry, a shard at a time.
    pub fn for_each(&self, f: impl FnMut(&Held)) {
        self.table.for_each(f);
    }

    /// Makes room for `more` profiles.
    pub fn reserve(&self, more: usize) {
        self.table.reserve(more);
    }

    /// Starts loading into the cache where a lookup of this customer id probes.
    pub fn prefetch(&self, customer_id: &str) {
        self.table.prefetch(self.place(customer_id));
    }
}
