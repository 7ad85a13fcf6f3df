//! The sharded, in-memory profile map of one database and its indexes.
//!
//! Profiles are held packed ([`packed`]): one allocation each, shared by pointer.
//! Readers (HTTP workers) call the `&self` getters directly, from any thread, without a
//! mailbox: a lookup is a hash, a probe that reads the record's head, and an `Arc`
//! clone; one by identifier first asks the identifier index ([`keys`]) for a slot, finds
//! where the slot's profile is in the map (under the slots' lock, briefly), and checks
//! the key against the profile there. Only the database actor calls the mutating
//! methods (`put`, `claim`, `remove`); they keep the indexes in step so that a reader
//! may see the old or the new profile, never a torn one. Synchronous, no I/O; never hold a map guard across an
//! `.await`.

pub mod columns;
mod keys;
mod map;
pub mod merges;
pub mod packed;
mod profile;
mod table;

use compact_str::CompactString;
use parking_lot::RwLock;
use smallvec::SmallVec;
use ulid::Ulid;

pub use columns::{Column, ColumnKind, Columns};
use keys::{KeyHash, KeyIndex};
use map::{Held, ProfileMap};
pub use merges::{MergeRecord, Merges};
pub use packed::{
    Head, PackError, Packed, ProfileView, StrList, SubscriptionRef, ValueRec, ValueRef,
};
pub use profile::{Fields, Profile, Subscription, identifier_key, ids_after, next_id};
use table::Hashed;

use crate::schema::FieldId;

/// What validating a write reads: profiles by customer id, and who holds an identifier.
/// The store, or a transaction's view of it (`db::overlay`).
pub trait Lookup {
    /// The profile with this customer id.
    fn profile(&self, customer_id: &str) -> Option<Packed>;
    /// The customer id holding an identifier key.
    fn holder(&self, key: &str) -> Option<CompactString>;
    /// The survivor of the merge that took an identifier key from an absorbed profile.
    fn by_old_key(&self, _key: &str) -> Option<CompactString> {
        None
    }
    /// The survivor a customer id without a profile of its own was merged into.
    fn survivor(&self, _customer_id: &str) -> Option<CompactString> {
        None
    }
}

impl Lookup for ProfileStore {
    fn profile(&self, customer_id: &str) -> Option<Packed> {
        self.get(customer_id)
    }

    fn holder(&self, key: &str) -> Option<CompactString> {
        ProfileStore::holder(self, key)
    }

    fn by_old_key(&self, key: &str) -> Option<CompactString> {
        self.merges.by_old_key(key)
    }

    fn survivor(&self, customer_id: &str) -> Option<CompactString> {
        self.survivor_of(customer_id)
    }
}

/// A profile's dense number within its database for this run of the server: what
/// segment bitmaps and field columns are indexed by. Given in creation order (at load,
/// in the order of the profiles' ids), never reused while the server runs; numbered
/// afresh at the next start. Slot order is id order: a database's profiles are created
/// by its one writer thread, whose id generator is monotonic and starts after every id
/// loaded ([`ids_after`]), and a load numbers them by id; paging (the store's pages
/// and column scans) relies on it.
pub type Slot = u32;

/// A slot's profile: its id, and where its entry in the map is (its customer id's shard
/// and tag; [`ERASED`] once erased). With the slot, the place finds the entry without
/// the customer id: no copy of it here (16 bytes a profile, more for a long one), and
/// no hashing it again for a lookup by identifier. Slots are in id order, so the slots
/// are also the creation order that paging walks.
#[derive(Debug, Clone)]
struct Seat {
    // The id's halves: as a `u128`, aligned to 16, it would pad the seat to 32 bytes.
    id: [u64; 2],
    place: u64,
}

/// The place of an erased profile's seat: no shard has this number.
const ERASED: u64 = u64::MAX;

impl Seat {
    fn new(id: Ulid, place: Hashed) -> Self {
        let halves = [(id.0 >> 64) as u64, id.0 as u64];
        Seat {
            id: halves,
            place: place.to_bits(),
        }
    }

    fn id(&self) -> Ulid {
        Ulid((u128::from(self.id[0]) << 64) | u128::from(self.id[1]))
    }

    fn held(&self) -> Option<Hashed> {
        (self.place != ERASED).then(|| Hashed::from_bits(self.place))
    }
}

/// All profiles of one database, by customer id, plus identifier and slot indexes.
#[derive(Debug, Default)]
pub struct ProfileStore {
    profiles: ProfileMap,
    // Which slot holds each identifier key, checked against the profile in it.
    keys: KeyIndex,
    // By slot, in id order (creation order, for paging); appended to on create only. An
    // erased profile keeps its id here, so that the order stays searchable.
    slots: RwLock<Vec<Seat>>,
    /// Merge histories, and the old customer ids and identifiers they answer for.
    pub merges: Merges,
    /// Field columns for scans, built on demand.
    pub columns: Columns,
}

impl ProfileStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The profile with this customer id.
    #[inline]
    pub fn get(&self, customer_id: &str) -> Option<Packed> {
        self.profiles.with(customer_id, |held| held.packed.clone())
    }

    /// The profile with this customer id and its slot.
    pub fn get_slotted(&self, customer_id: &str) -> Option<(Slot, Packed)> {
        self.profiles
            .with(customer_id, |held| (held.slot, held.packed.clone()))
    }

    /// The profile in this slot, if it is still there.
    pub fn by_slot(&self, slot: Slot) -> Option<Packed> {
        // The guard goes before the map is read: `put` takes the slots while it holds a
        // map shard, so holding them in the other order could deadlock. Slots are never
        // given twice, so the entry found after is this slot's or none.
        let place = self.slots.read().get(slot as usize).and_then(Seat::held)?;
        self.profiles.in_slot(place, slot)
    }

    /// The profiles in these slots (those still there), in the order given.
    pub fn by_slots(&self, wanted: impl IntoIterator<Item = Slot>) -> Vec<Packed> {
        let places: Vec<(Slot, Hashed)> = {
            let slots = self.slots.read();
            wanted
                .into_iter()
                .filter_map(|s| Some((s, slots.get(s as usize).and_then(Seat::held)?)))
                .collect()
        };
        places
            .into_iter()
            .filter_map(|(slot, place)| self.profiles.in_slot(place, slot))
            .collect()
    }

    /// One past the highest slot given so far: bitmaps of profiles fit below it.
    pub fn slot_bound(&self) -> Slot {
        self.slots.read().len() as Slot
    }

    /// The customer id holding an identifier key (see [`identifier_key`]).
    pub fn holder(&self, key: &str) -> Option<CompactString> {
        self.holding(key)
            .map(|p| CompactString::from(p.head().customer_id))
    }

    /// The profile holding an identifier key, or the survivor of the merge that took
    /// it from an absorbed profile.
    pub fn find(&self, key: &str) -> Option<Packed> {
        self.holding(key)
            .or_else(|| self.merges.by_old_key(key).and_then(|id| self.get(&id)))
    }

    /// The profile holding the identifier key `namespace:value` (see [`identifier_key`]).
    fn holding(&self, key: &str) -> Option<Packed> {
        let (namespace, value) = key.split_once(':')?;
        self.holding_parts(self.keys.hash(namespace, value), namespace, value)
            .map(|(_, p)| p)
    }

    /// The profile holding a key, and its slot: the index's candidate that owns it.
    fn holding_parts(&self, k: KeyHash, namespace: &str, value: &str) -> Option<(Slot, Packed)> {
        self.keys.candidates(k).into_iter().find_map(|slot| {
            self.by_slot(slot)
                .filter(|p| p.view().holds(namespace, value))
                .map(|p| (slot, p))
        })
    }

    /// The survivor a customer id leads to, when it has no profile of its own but was
    /// absorbed by a merge.
    pub fn survivor_of(&self, customer_id: &str) -> Option<CompactString> {
        if self.merges.is_empty() || self.profiles.contains(customer_id) {
            return None;
        }
        self.merges.survivor(customer_id)
    }

    /// The profile with this customer id, or the survivor of the merge that absorbed it.
    pub fn lookup(&self, customer_id: &str) -> Option<Packed> {
        self.get(customer_id).or_else(|| {
            self.merges
                .survivor(customer_id)
                .and_then(|id| self.get(&id))
        })
    }

    /// How many profiles there are.
    pub fn len(&self) -> usize {
        self.profiles.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.profiles.len() == 0
    }

    /// Up to `limit` profiles created after `after`, oldest first, and the cursor of the
    /// next page (`None` at the end).
    pub fn page(&self, after: Option<Ulid>, limit: usize) -> (Vec<Packed>, Option<Ulid>) {
        let ids: Vec<(Ulid, Slot, Hashed)> = {
            let slots = self.slots.read();
            // In id order (see [`Slot`]): the page starts after the cursor's place.
            let start = after.map_or(0, |after| slots.partition_point(|s| s.id() <= after));
            (start..)
                .zip(&slots[start..])
                .filter_map(|(slot, s)| s.held().map(|place| (s.id(), slot as Slot, place)))
                .take(limit + 1)
                .collect()
        };
        let more = ids.len() > limit;
        let page: Vec<Packed> = ids
            .iter()
            .take(limit)
            .filter_map(|&(_, slot, place)| self.profiles.in_slot(place, slot))
            .collect();
        let next = if more {
            ids.get(limit - 1).map(|(k, ..)| *k)
        } else {
            None
        };
        (page, next)
    }

    /// Every profile, in no particular order (a snapshot of the moment per shard).
    pub fn all(&self) -> Vec<Packed> {
        // Room for what writes add while the walk goes (a snapshot during an import):
        // growing a list of millions copies it into fresh memory the kernel zeroes.
        let mut all = Vec::with_capacity(self.len() + self.len() / 8);
        self.profiles.for_each(|held| all.push(held.packed.clone()));
        all
    }

    /// Every profile with its slot, in no particular order.
    pub fn all_slotted(&self) -> Vec<(Slot, Packed)> {
        let mut all = Vec::with_capacity(self.len());
        self.profiles
            .for_each(|held| all.push((held.slot, held.packed.clone())));
        all
    }

    /// Publishes a new or changed profile and moves its identifier keys; returns its
    /// slot. `old` must be the stored version the profile replaces (its dropped keys'
    /// entries go). Actor only.
    ///
    /// Only the database actor may call this; public for benches.
    pub fn put(&self, profile: Packed, old: Option<&Packed>) -> Slot {
        let slot = self
            .profiles
            .put(profile.clone(), |place| self.seat(&profile, place));
        // The index holds (key, slot) for every key of every stored profile, so a put
        // changes the entries of the keys it drops or adds, nothing else. Two profiles
        // may hold one key for a while (a merge's survivor before the absorbed profile
        // goes, a replay over a snapshot read while writes went on); each has its entry
        // until it drops the key. A reader checks what it finds against the profile, so
        // the order of these and the publication above shows it no wrong holder.
        let view = profile.view();
        let new: SmallVec<[(&str, &str, KeyHash); 4]> = view
            .identifiers()
            .map(|(ns, v)| (ns, v, self.keys.hash(ns, v)))
            .collect();
        let old = old.map(|o| o.view());
        if let Some(old) = &old {
            for (ns, v) in old.identifiers() {
                if new.iter().any(|&(n, w, _)| (n, w) == (ns, v)) {
                    continue;
                }
                // Not when a key it keeps shares the entry.
                let k = self.keys.hash(ns, v);
                if !new.iter().any(|&(_, _, h)| h == k) {
                    self.keys.remove(k, slot);
                }
            }
        }
        for (ns, v, k) in new {
            if !old.as_ref().is_some_and(|o| o.holds(ns, v)) {
                self.keys.insert(k, slot);
            }
        }
        self.keep_columns(slot, &profile);
        slot
    }

    /// Gives a new profile the next slot (while the map's shard for it is locked:
    /// nothing takes the two the other way round).
    fn seat(&self, profile: &Packed, place: Hashed) -> Slot {
        let id = profile.head().id();
        let mut slots = self.slots.write();
        let slot = slots.len() as Slot;
        slots.push(Seat::new(id, place));
        slot
    }

    /// Brings the field columns (those built so far) up to a profile's values.
    fn keep_columns(&self, slot: Slot, profile: &Packed) {
        if !self.columns.is_empty() {
            let head = profile.head();
            self.columns.put(slot, |f| head.field(f));
        }
    }

    /// Publishes a new profile if no profile has its customer id and no other holds one
    /// of its identifier keys; `None`, with nothing changed, otherwise. `publishing`
    /// runs once the claim will succeed, just before the profile becomes visible. Actor
    /// only.
    ///
    /// For a profile built off the actor against a store in which both were free: it
    /// asks the index once a key, where a `put` would take the old holder's entry too.
    /// Nothing is written before every key is found free (the actor is the only
    /// writer, so none can be taken meanwhile), and the keys go in after the profile,
    /// as a reader that finds a key checks it against the profile in its slot.
    pub fn claim(&self, profile: &Packed, publishing: impl FnOnce()) -> Option<Slot> {
        let view = profile.view();
        if self.profiles.contains(view.customer_id) {
            return None;
        }
        let mut keys: SmallVec<[KeyHash; 4]> = SmallVec::new();
        for (ns, v) in view.identifiers() {
            let k = self.keys.hash(ns, v);
            if self.holding_parts(k, ns, v).is_some() {
                return None;
            }
            keys.push(k);
        }
        publishing();
        let slot = self
            .profiles
            .put(profile.clone(), |place| self.seat(profile, place));
        for k in keys {
            self.keys.insert(k, slot);
        }
        self.keep_columns(slot, profile);
        Some(slot)
    }

    /// Starts loading into the cache the map slot a lookup of this customer id will
    /// probe (see [`ProfileStore::prefetch_claim`]).
    pub fn prefetch_place(&self, customer_id: &str) {
        self.profiles.prefetch(customer_id);
    }

    /// Starts loading into the cache the map slots a claim of `profile` will probe: its
    /// customer id's place and its identifier keys'. The maps are far larger than the
    /// caches, so each probe of a claim misses; the actor asks for a batch's next rows'
    /// slots ([`PREFETCH_AHEAD`] rows ahead) while it claims this one's, and their misses
    /// overlap instead of following one another.
    pub fn prefetch_claim(&self, profile: &Packed) {
        let view = profile.view();
        self.profiles.prefetch(view.customer_id);
        for (ns, v) in view.identifiers() {
            self.keys.prefetch(self.keys.hash(ns, v));
        }
    }

    /// Builds the column of a field from every profile; kept current by every put from
    /// then on. Actor only (no write may come between the fill and the upkeep).
    pub fn build_column(
        &self,
        id: FieldId,
        field: std::sync::Arc<str>,
        kind: ColumnKind,
    ) -> std::sync::Arc<Column> {
        let bound = self.slot_bound();
        let all = self.all_slotted();
        self.columns.add(id, field, kind, bound, &all)
    }

    /// An empty store sized for `n` profiles: growing a map of a million entries
    /// rehashes it ~20 times.
    pub fn with_capacity(n: usize) -> Self {
        let (profiles, keys) = (ProfileMap::default(), KeyIndex::default());
        profiles.reserve(n);
        keys.reserve(n * 2);
        ProfileStore {
            profiles,
            keys,
            slots: RwLock::new(Vec::with_capacity(n)),
            merges: Merges::default(),
            columns: Columns::default(),
        }
    }

    /// How many profiles and identifier keys there are.
    pub fn counts(&self) -> (usize, usize) {
        (self.profiles.len(), self.keys.len())
    }

    /// Makes room for `profiles` more profiles holding `keys` more identifier keys, in
    /// one step each. Actor only.
    ///
    /// A map grown one insert at a time doubles ~20 times on the way to a million
    /// entries, each time placing every entry again in fresh memory the kernel zeroes;
    /// an import that knows what is coming grows it once.
    pub fn reserve(&self, profiles: usize, keys: usize) {
        self.profiles.reserve(profiles);
        self.keys.reserve(keys);
        self.slots.write().reserve(profiles);
    }

    /// Adds a profile read back from a snapshot (`view`: its view, from the walk that checked
    /// it), from any thread; returns its entry for
    /// [`ProfileStore::set_order`], which indexes its keys. Recovery only.
    pub fn insert_restored(&self, p: Packed, view: &ProfileView<'_>) -> (Ulid, CompactString) {
        // Slotted by `set_order`, once the order is known.
        self.profiles.put(p, |_| Slot::MAX);
        (view.id(), CompactString::from(view.customer_id))
    }

    /// Numbers the slots again in id order, after a log was replayed over a snapshot
    /// (whose profiles were read while writes went on, so replayed creations can have
    /// come after younger profiles), and indexes every key afresh by the new slots.
    /// Recovery only: before columns or live segments.
    pub fn renumber(&self) {
        // Already in order (replayed creations all came after the snapshot's
        // profiles): the slots and the index stand as they are.
        if self.slots.read().is_sorted_by_key(Seat::id) {
            return;
        }
        let mut order: Vec<(Ulid, CompactString)> = Vec::with_capacity(self.len());
        self.profiles.for_each(|held| {
            let head = held.packed.head();
            order.push((head.id(), head.customer_id.into()));
        });
        self.set_order(order);
    }

    /// Sets the creation order of restored profiles in one pass (a bulk build from
    /// sorted input rather than a million inserts), numbers their slots in that order
    /// and indexes their keys by slot. Recovery only, before any other profile is put.
    /// Ids given from then on come after these ([`ids_after`]), so new profiles' slots
    /// stay in id order.
    pub fn set_order(&self, mut order: Vec<(Ulid, CompactString)>) {
        order.sort_unstable_by_key(|(id, _)| *id);
        if let Some((newest, _)) = order.last() {
            ids_after(*newest);
        }
        // The map's shards are written with the slots unlocked: `put` takes the two the
        // other way round.
        let mut seats = Vec::with_capacity(order.len());
        for ((id, cid), slot) in order.into_iter().zip(0..) {
            let place = self.profiles.set_slot(&cid, slot);
            seats.push(Seat::new(id, place));
        }
        *self.slots.write() = seats;
        self.index_all();
    }

    /// Indexes every profile's keys afresh, by slot, on every core. A key held twice (in
    /// a snapshot read while writes went on) has an entry for each holder until the
    /// replay after it has one of them drop it.
    fn index_all(&self) {
        self.keys.clear();
        let all = self.all_slotted();
        self.keys.reserve(all.len() * 2);
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        std::thread::scope(|s| {
            for part in all.chunks(all.len().div_ceil(threads).max(1)) {
                s.spawn(move || {
                    for (slot, p) in part {
                        for (ns, v) in p.view().identifiers() {
                            self.keys.insert(self.keys.hash(ns, v), *slot);
                        }
                    }
                });
            }
        });
    }

    /// Removes a profile and its identifier keys (its merge history is the caller's:
    /// erased, or folded into a survivor's). Actor only.
    ///
    /// Only the database actor may call this; public for benches.
    pub fn remove(&self, customer_id: &str) -> Option<(Slot, Packed)> {
        let Held { packed, slot, .. } = self.profiles.remove(customer_id)?;
        if let Some(seat) = self.slots.write().get_mut(slot as usize) {
            seat.place = ERASED;
        }
        if !self.columns.is_empty() {
            self.columns.clear(slot);
        }
        for (ns, v) in packed.view().identifiers() {
            self.keys.remove(self.keys.hash(ns, v), slot);
        }
        Some((slot, packed))
    }
}

/// How many rows ahead of a batch's probes their map slots are asked for: enough for the
/// misses of a few rows to be under way at once, few enough that the lines are still
/// cached when used.
pub const PREFETCH_AHEAD: usize = 8;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use jiff::Timestamp;
    use proptest::prelude::*;

    use super::*;

    fn profile(cid: &str, crm: Option<&str>) -> Profile {
        let mut p = Profile::new(cid.into(), Timestamp::UNIX_EPOCH);
        if let Some(v) = crm {
            p.external_ids.push(("crm".into(), v.into()));
        }
        p
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, Option<u8>),
        Claim(u8, Option<u8>, Option<u8>),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..16, proptest::option::of(0u8..8)).prop_map(|(c, x)| Op::Put(c, x)),
            (
                0u8..16,
                proptest::option::of(0u8..8),
                proptest::option::of(0u8..8)
            )
                .prop_map(|(c, x, y)| Op::Claim(c, x, y)),
            (0u8..16).prop_map(Op::Remove),
        ]
    }

    proptest! {
        // Model-based: the store and its identifier index agree with a plain HashMap.
        #[test]
        fn store_matches_a_hashmap_model(ops in proptest::collection::vec(op(), 1..200)) {
            let store = ProfileStore::new();
            let mut model: HashMap<String, Option<String>> = HashMap::new();
            // Keys under the second namespace, which only claims give: key to holder.
            let mut extra: HashMap<String, String> = HashMap::new();
            for op in ops {
                match op {
                    Op::Put(c, x) => {
                        let cid = format!("c{c}");
                        let crm = x.map(|x| format!("x{x}"));
                        // The actor refuses identifier conflicts; the model does the same.
                        if let Some(v) = &crm
                            && let Some(h) = store.holder(&identifier_key("crm", v))
                            && h != cid.as_str()
                        {
                            continue;
                        }
                        let old = store.get(&cid);
                        let mut p = profile(&cid, crm.as_deref());
                        if let Some(o) = &old { p.id = o.view().id(); }
                        store.put(Packed::encode(&p), old.as_ref());
                        extra.retain(|_, holder| *holder != cid);
                        model.insert(cid, crm);
                    }
                    Op::Claim(c, x, y) => {
                        // A new profile with up to two keys (the second under another
                        // namespace, so that the first may be free and the second not).
                        let cid = format!("c{c}");
                        let mut p = profile(&cid, x.map(|x| format!("x{x}")).as_deref());
                        if let Some(y) = y {
                            p.external_ids.push(("erp".into(), format!("x{y}").into()));
                        }
                        let keys: Vec<String> = x.iter().map(|x| format!("crm:x{x}"))
                            .chain(y.iter().map(|y| format!("erp:x{y}"))).collect();
                        let free = !model.contains_key(&cid)
                            && keys.iter().all(|k| store.holder(k).is_none());
                        let mut published = false;
                        let claimed = store.claim(&Packed::encode(&p), || published = true);
                        prop_assert_eq!(claimed.is_some(), free);
                        prop_assert_eq!(published, free);
                        if free {
                            model.insert(cid.clone(), x.map(|x| format!("x{x}")));
                            if let Some(y) = y {
                                extra.insert(format!("erp:x{y}"), cid);
                            }
                        }
                    }
                    Op::Remove(c) => {
                        let cid = format!("c{c}");
                        prop_assert_eq!(store.remove(&cid).is_some(), model.remove(&cid).is_some());
                        extra.retain(|_, holder| *holder != cid);
                    }
                }
            }
            prop_assert_eq!(store.len(), model.len());
            for (cid, crm) in &model {
                prop_assert!(store.get(cid).is_some());
                if let Some(v) = crm {
                    let found = store.find(&identifier_key("crm", v)).unwrap();
                    prop_assert_eq!(found.view().customer_id, cid.as_str());
                }
            }
            for (key, cid) in &extra {
                let holder = store.holder(key);
                prop_assert_eq!(holder.as_deref(), Some(cid.as_str()));
            }
            let keys = model.values().filter(|v| v.is_some()).count() + extra.len();
            prop_assert_eq!(store.keys.len(), keys);
            let (all, next) = store.page(None, 100);
            prop_assert_eq!(all.len(), model.len());
            prop_assert!(next.is_none());
        }
    }

    #[test]
    fn room_made_ahead_keeps_every_key_found() {
        let store = ProfileStore::new();
        let put = |i: usize| {
            let p = profile(&format!("c{i}"), Some(&format!("x{i}")));
            store.put(Packed::encode(&p), None);
        };
        (0..100).for_each(put);
        store.reserve(10_000, 10_000);
        // The rebuilt tables hash their keys as lookups do.
        for i in 0..100 {
            let found = store
                .find(&identifier_key("crm", &format!("x{i}")))
                .unwrap();
            assert_eq!(found.view().customer_id, format!("c{i}"));
        }
        // At least the room asked for. (Whether a shard still grows on the way depends
        // on how evenly the keys spread over as many shards as the machine's cores
        // call for: not asserted.)
        let room = (store.profiles.capacity(), store.keys.capacity());
        assert!(room.0 >= 10_100 && room.1 >= 10_100, "{room:?}");
        (100..10_100).for_each(put);
        assert_eq!(store.counts(), (10_100, 10_100));
        // Room there already: nothing changes.
        store.reserve(0, 0);
        store.reserve(10, 10);
        assert_eq!(store.get("c5000").unwrap().view().customer_id, "c5000");
    }

    #[test]
    fn pages_skip_erased_profiles_and_a_cursor_may_be_one() {
        let store = ProfileStore::new();
        for i in 0..10 {
            store.put(Packed::encode(&profile(&format!("c{i}"), None)), None);
        }
        let cursor = store.get("c3").unwrap().view().id();
        store.remove("c3");
        store.remove("c4");
        let (page, next) = store.page(Some(cursor), 3);
        let ids: Vec<_> = page
            .iter()
            .map(|p| p.view().customer_id.to_owned())
            .collect();
        assert_eq!(ids, ["c5", "c6", "c7"]);
        assert_eq!(next, Some(store.get("c7").unwrap().view().id()));
        let (rest, end) = store.page(next, 3);
        assert_eq!(rest.len(), 2);
        assert_eq!(end, None);
        // A cursor past the newest: an empty last page.
        assert_eq!(store.page(Some(Ulid(u128::MAX)), 3).0.len(), 0);
    }

    #[test]
    fn ids_given_after_a_load_come_after_the_loaded_ones() {
        // A snapshot from a machine whose clock is ahead (by 50 ms: the floor is shared
        // by every test in this process).
        let store = ProfileStore::new();
        let ahead = Ulid::from_datetime(
            std::time::SystemTime::now() + std::time::Duration::from_millis(50),
        );
        let mut p = profile("loaded", None);
        p.id = ahead;
        let (id, cid) = store.insert_restored(Packed::encode(&p), &Packed::encode(&p).view());
        store.set_order(vec![(id, cid)]);
        // A profile made now is stored after it, in slot and in id.
        let made = profile("made", None);
        assert!(made.id > ahead, "{} {}", made.id, ahead);
        assert_eq!(store.put(Packed::encode(&made), None), 1);
        let (page, _) = store.page(None, 10);
        let order: Vec<_> = page
            .iter()
            .map(|p| p.view().customer_id.to_owned())
            .collect();
        assert_eq!(order, ["loaded", "made"]);
    }

    #[test]
    fn renumbering_puts_slots_in_id_order() {
        let store = ProfileStore::new();
        let mut young = profile("young", None);
        let mut old = profile("old", None);
        young.id = Ulid(2);
        old.id = Ulid(1);
        young.external_ids.push(("crm".into(), "y".into()));
        old.external_ids.push(("crm".into(), "o".into()));
        // The younger first, as a replay over a fuzzy snapshot can leave them.
        store.put(Packed::encode(&young), None);
        store.put(Packed::encode(&old), None);
        assert_eq!(store.get_slotted("old").unwrap().0, 1);
        store.renumber();
        assert_eq!(store.get_slotted("old").unwrap().0, 0);
        assert_eq!(store.get_slotted("young").unwrap().0, 1);
        assert_eq!(store.by_slot(0).unwrap().view().customer_id, "old");
        // The keys are indexed by the new slots.
        assert_eq!(store.holder("crm:o").as_deref(), Some("old"));
        assert_eq!(store.holder("crm:y").as_deref(), Some("young"));
        // In order already: nothing to do, everything where it was.
        let mut newest = profile("newest", Some("n"));
        newest.id = Ulid(3);
        store.put(Packed::encode(&newest), None);
        store.renumber();
        assert_eq!(store.get_slotted("newest").unwrap().0, 2);
        assert_eq!(store.holder("crm:n").as_deref(), Some("newest"));
        assert_eq!(store.holder("crm:o").as_deref(), Some("old"));
    }

    #[test]
    fn paging_walks_every_profile_once() {
        let store = ProfileStore::new();
        for i in 0..25 {
            store.put(Packed::encode(&profile(&format!("c{i}"), None)), None);
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = store.page(cursor, 10);
            seen.extend(page.iter().map(|p| p.view().customer_id.to_string()));
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 25);
    }
}
