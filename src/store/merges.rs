//! Merge history: which profiles were absorbed into which, and the identifiers and
//! customer ids that still lead to the survivor.
//!
//! When one update names identifiers of two profiles, the database merges them
//! (`db::merge`); the survivor keeps a record of every profile it absorbed, directly or
//! through an earlier merge. From those records this index answers two questions a
//! lookup asks when the live indexes do not know a key: which profile an old customer
//! id became, and which profile an identifier the survivor no longer holds (the losing
//! value of a namespace both profiles had) leads to. Live identifiers always win over
//! these: a key another profile holds now finds that profile.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use compact_str::CompactString;
use dashmap::DashMap;
use jiff::Timestamp;
use serde::Serialize;
use ulid::Ulid;

type Hasher = foldhash::quality::RandomState;

/// One absorbed profile, as its survivor remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeRecord {
    /// Its customer id, which now leads to the survivor.
    pub customer_id: CompactString,
    /// Its internal id.
    #[serde(serialize_with = "ulid_text")]
    pub id: Ulid,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was merged.
    pub merged_at: Timestamp,
    /// The identifier keys (`namespace:value`) it held then, and any of the survivor's
    /// own that this merge replaced with a newer value: all lead to the survivor.
    pub identifiers: Vec<CompactString>,
}

fn ulid_text<S: serde::Serializer>(id: &Ulid, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(id)
}

/// The merge histories of a database's profiles and the old keys they answer for.
#[derive(Debug, Default)]
pub struct Merges {
    // Survivor customer id → every profile it absorbed, oldest merge first.
    histories: DashMap<CompactString, Arc<[MergeRecord]>, Hasher>,
    // Old customer id → survivor.
    old_ids: DashMap<CompactString, CompactString, Hasher>,
    // Identifier key once held by an absorbed profile → survivor.
    old_keys: DashMap<CompactString, CompactString, Hasher>,
    // How many histories there are: documents skip the lookup while there are none.
    count: AtomicUsize,
}

impl Merges {
    /// Whether no profile has absorbed another (writes and lookups then skip the maps).
    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }

    /// A survivor's history, if it absorbed anyone: no shared pointer is touched for
    /// the rest.
    pub fn history_of(&self, customer_id: &str) -> Option<Arc<[MergeRecord]>> {
        if self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        self.histories
            .get(customer_id)
            .map(|h| Arc::clone(h.value()))
    }

    /// The survivor an old customer id leads to.
    pub fn survivor(&self, customer_id: &str) -> Option<CompactString> {
        self.old_ids.get(customer_id).map(|r| r.value().clone())
    }

    /// The survivor an identifier key once held by an absorbed profile leads to.
    pub fn by_old_key(&self, key: &str) -> Option<CompactString> {
        self.old_keys.get(key).map(|r| r.value().clone())
    }

    /// Sets a survivor's whole history and points every old id and key in it at the
    /// survivor; the absorbed profiles' own histories (folded into it) go. Idempotent.
    /// Writer only.
    pub fn record(&self, survivor: &str, history: Arc<[MergeRecord]>, absorbed: &[CompactString]) {
        let survivor = CompactString::from(survivor);
        for rec in history.iter() {
            self.old_ids
                .insert(rec.customer_id.clone(), survivor.clone());
            for key in &rec.identifiers {
                self.old_keys.insert(key.clone(), survivor.clone());
            }
        }
        if history.is_empty() {
            self.forget(&survivor);
        } else if self.histories.insert(survivor, history).is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        // Folded into the survivor's, which now leads every old id and key there.
        for a in absorbed {
            if self.histories.remove(a.as_str()).is_some() {
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Forgets an erased profile's history and the old ids and keys that led to it.
    /// Writer only.
    pub fn forget(&self, customer_id: &str) {
        let Some((_, history)) = self.histories.remove(customer_id) else {
            return;
        };
        self.count.fetch_sub(1, Ordering::Relaxed);
        for rec in history.iter() {
            self.old_ids
                .remove_if(rec.customer_id.as_str(), |_, s| s == customer_id);
            for key in &rec.identifiers {
                self.old_keys
                    .remove_if(key.as_str(), |_, s| s == customer_id);
            }
        }
    }

    /// Every history, for a snapshot.
    pub fn all(&self) -> Vec<(CompactString, Arc<[MergeRecord]>)> {
        self.histories
            .iter()
            .map(|r| (r.key().clone(), Arc::clone(r.value())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(cid: &str, keys: &[&str]) -> MergeRecord {
        MergeRecord {
            customer_id: cid.into(),
            id: Ulid::nil(),
            created_at: Timestamp::UNIX_EPOCH,
            merged_at: Timestamp::UNIX_EPOCH,
            identifiers: keys.iter().map(|k| (*k).into()).collect(),
        }
    }

    #[test]
    fn chained_merges_lead_every_old_key_to_the_last_survivor_until_it_is_erased() {
        let m = Merges::default();
        // b absorbed c; then a absorbed b (b's history folded into a's).
        m.record("b", Arc::from(vec![rec("c", &["crm:3"])]), &["c".into()]);
        assert_eq!(m.survivor("c").as_deref(), Some("b"));
        let a_history = vec![rec("b", &["email:b@x.io"]), rec("c", &["crm:3"])];
        m.record("a", Arc::from(a_history), &["b".into()]);
        assert_eq!(m.survivor("b").as_deref(), Some("a"));
        assert_eq!(m.survivor("c").as_deref(), Some("a"));
        assert_eq!(m.by_old_key("crm:3").as_deref(), Some("a"));
        assert!(m.history_of("b").is_none());
        assert_eq!(m.history_of("a").unwrap().len(), 2);
        // Recorded again (a replay): the same.
        let again = m.history_of("a").unwrap();
        m.record("a", again, &["b".into()]);
        assert_eq!(m.all().len(), 1);
        m.forget("a");
        assert_eq!(m.survivor("c"), None);
        assert_eq!(m.by_old_key("email:b@x.io"), None);
        assert!(m.all().is_empty());
    }
}
