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
    /// Current subscription per (resource, channel, category).
    pub subscriptions: Vec<Subscription>,
    /// When the profile was created.
    pub created_at: Timestamp,
    /// When it was last written.
    pub updated_at: Timestamp,
}

/// A subscription's current state.
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
