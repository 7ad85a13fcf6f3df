//! Identity merge: the rule by which profiles that turn out to be one customer become
//! one profile.
//!
//! An update that carries identifiers held by other profiles (an email of one, a phone
//! of another) names one customer; the profiles holding them are merged with the
//! update's own target. The rule (DESIGN.md "Identity"):
//!
//! - the **oldest** profile survives (by creation time, then id): its internal id,
//!   customer id and creation time stay;
//! - **fields** and external identifiers, each on its own, take the value of the most
//!   recently written profile that has one (a profile keeps no per-field times, so its
//!   `updated_at` stands for all its fields); the update is then applied on top, as the
//!   latest write of all;
//! - **tags** are the union; **subscriptions** are combined record by record (the
//!   latest change of each key decides, as always); **activity** is combined by folding
//!   each absorbed timeline and aggregate into the survivor's (`activity::Activity::absorb`),
//!   so derived values are those of all the events together;
//! - every absorbed profile is recorded on the survivor ([`MergeRecord`]), and its
//!   customer id and identifiers lead to the survivor from then on.
//!
//! Pure: `db::apply` plans with it, the actor logs the result as one record.

use std::collections::HashSet;

use compact_str::CompactString;
use jiff::Timestamp;

use crate::schema::FieldId;
use crate::store::{Lookup, MergeRecord, Packed, Profile};

/// The most profiles one update may merge (its target included): a guard against an
/// update whose identifiers chain through half the database.
pub const MAX_MERGED: usize = 16;

/// Profiles merged into the oldest: the profile the update then applies to, and the
/// record of each one absorbed.
#[derive(Debug)]
pub struct Merged {
    /// The survivor with every other's values folded in.
    pub base: Profile,
    /// One record per absorbed profile.
    pub records: Vec<MergeRecord>,
}

/// Merges `participants` (at least one) by the rule in the module documentation.
pub fn merge_profiles(mut participants: Vec<Profile>, now: Timestamp) -> Merged {
    participants.sort_by_key(|p| (p.created_at, p.id));
    // Newest write first: the first profile with a value gives it.
    let mut by_write: Vec<&Profile> = participants.iter().collect();
    by_write.sort_by_key(|p| std::cmp::Reverse(p.updated_at));
    let survivor = &participants[0];
    let mut base = survivor.clone();

    base.fields.clear();
    for p in &by_write {
        for (name, value) in &p.fields {
            if !base.fields.iter().any(|(n, _)| n == name) {
                base.fields.push((*name, value.clone()));
            }
        }
    }
    // Records keep values in field number order.
    base.fields.sort_by_key(|(id, _)| *id);
    // Contacts follow the field they were derived from.
    base.email = by_write
        .iter()
        .find(|p| p.field(FieldId::EMAIL).is_some())
        .and_then(|p| p.email.clone());
    base.phone = by_write
        .iter()
        .find(|p| p.field(FieldId::PHONE).is_some())
        .and_then(|p| p.phone.clone());

    base.external_ids.clear();
    for p in &by_write {
        for (ns, v) in &p.external_ids {
            if !base.external_ids.iter().any(|(n, _)| n == ns) {
                base.external_ids.push((ns.clone(), v.clone()));
            }
        }
    }
    base.external_ids.sort();

    let tags: HashSet<&CompactString> = participants.iter().flat_map(|p| &p.tags).collect();
    let mut tags: Vec<CompactString> = tags.into_iter().cloned().collect();
    tags.sort();
    base.tags = tags;

    for p in &participants[1..] {
        for s in &p.subscriptions {
            base.record_subscription(s.clone());
        }
    }

    let mut records: Vec<MergeRecord> = participants[1..]
        .iter()
        .map(|p| MergeRecord {
            customer_id: p.customer_id.clone(),
            id: p.id,
            created_at: p.created_at,
            merged_at: now,
            identifiers: p.identifier_keys(),
        })
        .collect();
    // The survivor's own identifiers that a newer value replaced still lead to it: the
    // merge that replaced them keeps them.
    let kept = base.identifier_keys();
    let lost = survivor
        .identifier_keys()
        .into_iter()
        .filter(|k| !kept.contains(k));
    if let Some(first) = records.first_mut() {
        first.identifiers.extend(lost);
    }
    Merged { base, records }
}

/// The store as a merge sees it: identifiers held by profiles being absorbed are free.
pub struct Excluding<'a, L> {
    /// The store (or a transaction's view of it).
    pub inner: &'a L,
    /// Customer ids being absorbed.
    pub gone: &'a [Packed],
}

impl<L: Lookup> Lookup for Excluding<'_, L> {
    fn profile(&self, customer_id: &str) -> Option<Packed> {
        self.inner.profile(customer_id)
    }

    fn holder(&self, key: &str) -> Option<CompactString> {
        self.inner
            .holder(key)
            .filter(|h| !self.gone.iter().any(|g| g.view().customer_id == h.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Channel, Schema, Source, SubscriptionStatus, Value};
    use crate::store::Subscription;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn profile(cid: &str, created: i64, updated: i64, fields: &[(&str, &str)]) -> Profile {
        let mut p = Profile::new(cid.into(), at(created));
        p.updated_at = at(updated);
        for (n, v) in fields {
            let id = Schema::default().id_of(n).unwrap();
            p.fields.push((id, Value::Str((*v).into())));
        }
        p
    }

    #[test]
    fn the_oldest_survives_and_the_latest_write_wins_field_by_field() {
        let mut old = profile("old", 0, 10, &[("city", "Porto"), ("first_name", "Ana")]);
        old.tags = vec!["vip".into()];
        old.external_ids = vec![("crm".into(), "1".into())];
        old.subscriptions.push(Subscription {
            resource: "news".into(),
            channel: Channel::Email,
            category: "".into(),
            status: SubscriptionStatus::Subscribed,
            at: at(5),
            source: Source::Api,
        });
        let mut new = profile("new", 100, 200, &[("city", "Lisbon")]);
        new.tags = vec!["b2c".into(), "vip".into()];
        new.external_ids = vec![("crm".into(), "2".into()), ("shop".into(), "9".into())];
        new.subscriptions.push(Subscription {
            resource: "news".into(),
            channel: Channel::Email,
            category: "".into(),
            status: SubscriptionStatus::Unsubscribed,
            at: at(150),
            source: Source::Import,
        });
        let m = merge_profiles(vec![new.clone(), old.clone()], at(300));
        assert_eq!(m.base.customer_id, "old");
        assert_eq!(m.base.id, old.id);
        assert_eq!(m.base.created_at, old.created_at);
        let field = |name| m.base.field(Schema::default().id_of(name).unwrap());
        assert_eq!(field("city"), Some(&Value::Str("Lisbon".into())));
        assert_eq!(field("first_name"), Some(&Value::Str("Ana".into())));
        assert_eq!(m.base.tags, ["b2c", "vip"]);
        assert_eq!(
            m.base.external_ids,
            [("crm".into(), "2".into()), ("shop".into(), "9".into())]
        );
        // The later opt-out decides.
        let current = m.base.subscriptions.iter().max_by_key(|s| s.at).unwrap();
        assert_eq!(current.status, SubscriptionStatus::Unsubscribed);
        assert_eq!(m.records.len(), 1);
        assert_eq!(m.records[0].customer_id, "new");
        assert_eq!(m.records[0].merged_at, at(300));
        assert!(m.records[0].identifiers.iter().any(|k| k == "crm:2"));
    }
}
