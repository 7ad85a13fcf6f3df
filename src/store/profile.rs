//! A profile as held in memory: immutable once published, replaced whole on write.

use std::sync::Arc;

use compact_str::CompactString;
use jiff::Timestamp;
use ulid::Ulid;

use crate::contacts::{EmailContact, PhoneContact};
use crate::schema::{Channel, Source, SubscriptionStatus, Value};

/// Field values kept inside the profile's own allocation for the usual dozen or fewer,
/// so a cold lookup pays one cache miss for the profile rather than two.
pub type Fields = smallvec::SmallVec<[(Arc<str>, Value); 10]>;

/// One customer's profile. Shared as `Arc<Profile>`; a write builds a new one.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Internal id: assigned at creation, never changes.
    pub id: Ulid,
    /// The given id: unique within the database, never changes.
    pub customer_id: CompactString,
    /// Field values in schema order; names are shared with the schema.
    pub fields: Fields,
    /// External identifiers `(namespace, value)`, sorted by namespace.
    pub external_ids: Vec<(CompactString, CompactString)>,
    /// Tags, sorted and distinct.
    pub tags: Vec<CompactString>,
    /// The `email` field, validated and normalized.
    pub email: Option<EmailContact>,
    /// The `phone` field, parsed.
    pub phone: Option<PhoneContact>,
    /// Subscription records: per (resource, channel, category) its changes in time
    /// order, the last being the current state (see [`Profile::record_subscription`]).
    pub subscriptions: Vec<Subscription>,
    /// When the profile was created.
    pub created_at: Timestamp,
    /// When it was last written.
    pub updated_at: Timestamp,
}

/// The most changes of one subscription kept in its history; older ones go first.
pub const MAX_SUBSCRIPTION_HISTORY: usize = 20;

/// One subscription change: the current state when it is the latest of its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Resource name.
    pub resource: CompactString,
    /// Channel.
    pub channel: Channel,
    /// Category within the resource.
    pub category: CompactString,
    /// Subscribed or unsubscribed.
    pub status: SubscriptionStatus,
    /// When it was last set.
    pub at: Timestamp,
    /// What set it.
    pub source: Source,
}

thread_local! {
    // Monotonic within a thread: a database's actor creates its profiles on one thread,
    // so ids (and paging "oldest first") follow creation order even within a millisecond.
    static IDS: std::cell::RefCell<ulid::Generator> =
        const { std::cell::RefCell::new(ulid::Generator::new()) };
}

fn next_id() -> Ulid {
    IDS.with(|g| g.borrow_mut().generate())
        .unwrap_or_else(|_| Ulid::new())
}

/// The index key of an identifier: `namespace:value`. Namespaces never hold `:`.
pub fn identifier_key(namespace: &str, value: &str) -> CompactString {
    let mut k = CompactString::with_capacity(namespace.len() + 1 + value.len());
    k.push_str(namespace);
    k.push(':');
    k.push_str(value);
    k
}

impl Profile {
    /// An empty profile with a fresh internal id.
    pub fn new(customer_id: CompactString, now: Timestamp) -> Self {
        Profile {
            id: next_id(),
            customer_id,
            fields: Fields::new(),
            external_ids: Vec::new(),
            tags: Vec::new(),
            email: None,
            phone: None,
            subscriptions: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// The value of a field, if set.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
    }

    /// Records a subscription change in its key's history, in time order.
    ///
    /// The latest change by `at` is the current state, whatever order changes arrive
    /// in; at the same instant `unsubscribed` wins (the safer reading of a conflict).
    /// A change that repeats the status before it is dropped, so a subscription keeps
    /// the time and source of the consent that started it, and re-imports add nothing.
    pub fn record_subscription(&mut self, sub: Subscription) {
        self.subscriptions.push(sub);
        self.subscriptions.sort_by(|a, b| {
            (
                a.resource.as_str(),
                a.channel as u8,
                a.category.as_str(),
                a.at,
                a.status as u8,
            )
                .cmp(&(
                    b.resource.as_str(),
                    b.channel as u8,
                    b.category.as_str(),
                    b.at,
                    b.status as u8,
                ))
        });
        let same_key = |a: &Subscription, b: &Subscription| {
            a.resource == b.resource && a.channel == b.channel && a.category == b.category
        };
        // Drop repeats of the status before, then the oldest beyond the cap.
        let mut kept: Vec<Subscription> = Vec::with_capacity(self.subscriptions.len());
        for s in self.subscriptions.drain(..) {
            if let Some(prev) = kept.last()
                && same_key(prev, &s)
                && prev.status == s.status
            {
                continue;
            }
            kept.push(s);
        }
        let mut out: Vec<Subscription> = Vec::with_capacity(kept.len());
        let mut start = 0;
        for i in 1..=kept.len() {
            if i == kept.len() || !same_key(&kept[start], &kept[i]) {
                let group = &kept[start..i];
                let skip = group.len().saturating_sub(MAX_SUBSCRIPTION_HISTORY);
                out.extend_from_slice(&group[skip..]);
                start = i;
            }
        }
        self.subscriptions = out;
    }

    /// The current subscriptions: the latest record of each key.
    pub fn current_subscriptions(&self) -> impl Iterator<Item = &Subscription> {
        let subs = &self.subscriptions;
        subs.iter().enumerate().filter_map(move |(i, s)| {
            let superseded = subs.get(i + 1).is_some_and(|n| {
                n.resource == s.resource && n.channel == s.channel && n.category == s.category
            });
            (!superseded).then_some(s)
        })
    }

    /// Every identifier index key this profile owns (email, phone, external ids).
    pub fn identifier_keys(&self) -> Vec<CompactString> {
        let mut keys = Vec::with_capacity(2 + self.external_ids.len());
        if let Some(e) = &self.email {
            keys.push(identifier_key("email", &e.normalized));
        }
        if let Some(e164) = self.phone.as_ref().and_then(|p| p.e164.as_deref()) {
            keys.push(identifier_key("phone", e164));
        }
        for (ns, v) in &self.external_ids {
            keys.push(identifier_key(ns, v));
        }
        keys
    }
}
