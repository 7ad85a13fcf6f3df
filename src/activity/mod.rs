//! Activity: events, each profile's timeline, and the values derived from them
//! (receipt statistics, RFM, interests, favorite stores, abandoned cart, bonuses,
//! mailings, promo codes, polls).
//!
//! - [`event`]: the envelope and payload of every built-in type, and their checks. Pure.
//! - [`state`]: one profile's [`Activity`], folded incrementally from events. Pure.
//! - [`rank`]: order statistics for exact RFM ranks. Pure.
//! - [`small_map`]: the sorted-vector map the aggregates keep their per-key records in. Pure.
//! - [`view`]: derived values as the profile document and the timeline show them. Pure.
//! - [`ActivityStore`]: a database's activities by customer id and its RFM index.
//!
//! Like the profile store, the activity store is written only by the database actor
//! (through `db::DbState::apply_entry`) and read in place by HTTP workers: a read takes
//! a shard's read lock and the RFM index's read lock for the time it serializes, never
//! a mailbox. May use `schema` (channels) and `error`; nothing here does I/O.

pub mod event;
pub mod money;
pub mod rank;
pub mod small_map;
pub mod state;
pub mod view;

use compact_str::CompactString;
use dashmap::DashMap;
use parking_lot::RwLock;

pub use event::{Event, EventError, Kind};
pub use money::Fixed;
pub use rank::{Rfm, RfmIndex, RfmKeys};
pub use state::{Activity, Stored};

type Hasher = foldhash::quality::RandomState;

/// A database's activities and the RFM ranking over them.
#[derive(Debug, Default)]
pub struct ActivityStore {
    // Boxed: an activity is ~400 bytes, and the map's slots move when it grows; a
    // pointer keeps the table small and growing cheap.
    map: DashMap<CompactString, Box<Activity>, Hasher>,
    rfm: RwLock<RfmIndex>,
}

impl ActivityStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies the events of log record `lsn` to a profile's activity. Actor (and
    /// recovery) only.
    pub fn apply(&self, lsn: u64, customer_id: &str, events: &[Event], max_events: usize) {
        self.apply_owned(lsn, customer_id, events.to_vec(), max_events);
    }

    /// [`ActivityStore::apply`], keeping the events' payloads without copying them.
    pub fn apply_owned(&self, lsn: u64, customer_id: &str, events: Vec<Event>, max_events: usize) {
        let (old, new) = {
            let mut act = self.map.entry(customer_id.into()).or_default();
            let old = act.rfm_keys();
            act.apply_owned(lsn, events, max_events);
            (old, act.rfm_keys())
        };
        // Never taken while a map guard is held: readers take the map's lock first.
        if old != new {
            self.rfm.write().update(old, new);
        }
    }

    /// A copy of a profile's activity (for a merge to fold).
    pub fn cloned(&self, customer_id: &str) -> Option<Activity> {
        self.map.get(customer_id).map(|a| (**a).clone())
    }

    /// Sets a profile's whole activity (a merge's result), or removes it. Actor only.
    pub fn replace(&self, customer_id: &str, act: Option<Activity>) {
        let old = self.map.get(customer_id).and_then(|a| a.rfm_keys());
        let new = act.as_ref().and_then(Activity::rfm_keys);
        match act {
            Some(act) => {
                self.map.insert(customer_id.into(), Box::new(act));
            }
            None => {
                self.map.remove(customer_id);
            }
        }
        if old != new {
            self.rfm.write().update(old, new);
        }
    }

    /// Forgets a profile's activity (erasure). Actor only.
    pub fn remove(&self, customer_id: &str) {
        if let Some((_, act)) = self.map.remove(customer_id)
            && let Some(keys) = act.rfm_keys()
        {
            self.rfm.write().update(Some(keys), None);
        }
    }

    /// Calls `f` with a profile's activity (if it has any) and its RFM scores, read in
    /// place.
    pub fn read<R>(
        &self,
        customer_id: &str,
        f: impl FnOnce(Option<&Activity>, Option<Rfm>) -> R,
    ) -> R {
        match self.map.get(customer_id) {
            Some(act) => {
                act.rendered.prefetch();
                let rfm = act.rfm_keys().and_then(|k| self.rfm.read().scores(k));
                f(Some(&**act), rfm)
            }
            None => f(None, None),
        }
    }

    /// Calls `f` with a profile's activity, read in place, without its RFM scores.
    pub fn with<R>(&self, customer_id: &str, f: impl FnOnce(Option<&Activity>) -> R) -> R {
        match self.map.get(customer_id) {
            Some(act) => {
                act.rendered.prefetch();
                f(Some(&**act))
            }
            None => f(None),
        }
    }

    /// How many profiles have activity.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none has.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every customer id with activity (for a snapshot, which then reads each).
    pub fn customer_ids(&self) -> Vec<CompactString> {
        self.map.iter().map(|r| r.key().clone()).collect()
    }

    /// Adds an activity read back from a snapshot, from any thread. Recovery only; call
    /// [`ActivityStore::rebuild_rfm`] when all are in.
    pub fn insert_restored(&self, customer_id: CompactString, act: Activity) {
        self.map.insert(customer_id, Box::new(act));
    }

    /// Builds the RFM index from every activity in one pass. Recovery only.
    pub fn rebuild_rfm(&self) {
        let keys: Vec<RfmKeys> = self.map.iter().filter_map(|r| r.rfm_keys()).collect();
        *self.rfm.write() = RfmIndex::from_keys(&keys);
    }

    /// Profiles ranked for RFM (those with a completed receipt).
    pub fn ranked(&self) -> usize {
        self.rfm.read().len()
    }
}
