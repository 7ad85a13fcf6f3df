//! A profile as held in memory: immutable once published, replaced whole on write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use compact_str::CompactString;
use jiff::Timestamp;
use ulid::Ulid;

use crate::contacts::{EmailContact, PhoneContact};
use crate::schema::{Channel, FieldId, Source, SubscriptionStatus, Value};

/// Field values by field number, kept inline for the usual ten or fewer.
pub type Fields = smallvec::SmallVec<[(FieldId, Value); 10]>;

/// One customer's profile. Shared as `Arc<Profile>`; a write builds a new one.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Internal id: assigned at creation, never changes.
    pub id: Ulid,
    /// The given id: unique within the database, never changes.
    pub customer_id: CompactString,
    /// Field values in schema order (which is field number order), by number.
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

/// How subscription records are ordered: by key, then time, status and source.
fn order_key(s: &Subscription) -> (&str, u8, &str, Timestamp, u8, u8) {
    let (channel, status, source) = (s.channel as u8, s.status as u8, s.source as u8);
    (&s.resource, channel, &s.category, s.at, status, source)
}

thread_local! {
    // Monotonic within a thread: a database's actor creates its profiles on one thread,
    // so ids (and paging "oldest first") follow creation order even within a millisecond.
    static IDS: std::cell::RefCell<ulid::Generator> =
        const { std::cell::RefCell::new(ulid::Generator::new()) };
}

// The millisecond of the newest id loaded at a start: no id given after it is older, even
// when the clock is behind the one that made the data (set back, or another machine's).
static ID_FLOOR_MS: AtomicU64 = AtomicU64::new(0);

/// Keeps the ids given from now on newer than `id` (one loaded from disk). Recovery only:
/// raised by every id given, the floor would run ahead of the clock.
pub fn ids_after(id: Ulid) {
    ID_FLOOR_MS.fetch_max(id.timestamp_ms(), Ordering::Relaxed);
}

/// A new profile id from this thread's monotonic generator (ids given on a database's
/// writer thread ascend in the order its profiles are created, and come after every id
/// loaded at the start, see [`ids_after`]).
pub fn next_id() -> Ulid {
    next_id_at(SystemTime::now())
}

/// [`next_id`] at a time the caller has read already (a clock read a profile was a
/// visible part of an import's cost).
pub fn next_id_at(now: SystemTime) -> Ulid {
    let floor = ID_FLOOR_MS.load(Ordering::Relaxed);
    let behind = now
        .duration_since(UNIX_EPOCH)
        .map_or(true, |d| d.as_millis() <= u128::from(floor));
    let at = if behind {
        UNIX_EPOCH + Duration::from_millis(floor + 1)
    } else {
        now
    };
    IDS.with(|g| g.borrow_mut().generate_from_datetime(at))
        .unwrap_or_else(|_| Ulid::from_datetime(at))
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
            // Ids keep milliseconds; a time before 1970 is behind the floor anyway.
            id: next_id_at(
                u64::try_from(now.as_millisecond())
                    .map_or(UNIX_EPOCH, |ms| UNIX_EPOCH + Duration::from_millis(ms)),
            ),
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
    pub fn field(&self, id: FieldId) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| *n == id).map(|(_, v)| v)
    }

    /// Records a subscription change in its key's history, in time order.
    ///
    /// The latest change by `at` is the current state, whatever order changes arrive
    /// in; at the same instant `unsubscribed` wins (the safer reading of a conflict).
    /// Of a run of changes to the same status only the first (when the choice was made)
    /// and the last (when it was last confirmed) are kept, so re-imports do not push
    /// real changes out of the history. The latest change is never dropped, so however
    /// late an older change arrives, the current state is the same.
    pub fn record_subscription(&mut self, sub: Subscription) {
        self.subscriptions.push(sub);
        // The source last: of two equal changes, which one is kept must not depend on
        // which came first.
        self.subscriptions
            .sort_by(|a, b| order_key(a).cmp(&order_key(b)));
        let same_key = |a: &Subscription, b: &Subscription| {
            a.resource == b.resource && a.channel == b.channel && a.category == b.category
        };
        let same_run = |a: &Subscription, b: &Subscription| same_key(a, b) && a.status == b.status;
        // Exact repeats first, then the middle of every run of one status.
        let mut all = std::mem::take(&mut self.subscriptions);
        all.dedup_by(|b, a| same_run(a, b) && a.at == b.at);
        let mut kept: Vec<Subscription> = Vec::with_capacity(all.len());
        for (i, s) in all.iter().enumerate() {
            let middle = i.checked_sub(1).is_some_and(|j| same_run(&all[j], s))
                && all.get(i + 1).is_some_and(|n| same_run(s, n));
            if !middle {
                kept.push(s.clone());
            }
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn ids_come_after_those_loaded_even_with_the_clock_behind() {
        // Data made on a machine whose clock is ahead: 50 ms here, as little as shows it
        // (the floor is shared by every test in this process).
        let ahead = Ulid::from_datetime(SystemTime::now() + Duration::from_millis(50));
        ids_after(ahead);
        let (a, b) = (next_id(), next_id());
        assert!(ahead < a && a < b, "{ahead} {a} {b}");
    }

    fn change(key: u8, secs: i64, on: bool, api: bool) -> Subscription {
        Subscription {
            resource: if key.is_multiple_of(2) {
                "blog"
            } else {
                "shop"
            }
            .into(),
            channel: if key < 2 {
                Channel::Email
            } else {
                Channel::Sms
            },
            category: "default".into(),
            status: if on {
                SubscriptionStatus::Subscribed
            } else {
                SubscriptionStatus::Unsubscribed
            },
            at: Timestamp::from_second(secs).unwrap(),
            // Equal changes from different sources: which is kept must not depend on
            // arrival order.
            source: if api { Source::Api } else { Source::Event },
        }
    }

    fn state(
        p: &Profile,
    ) -> Vec<(
        CompactString,
        Channel,
        SubscriptionStatus,
        Timestamp,
        Source,
    )> {
        p.current_subscriptions()
            .map(|s| (s.resource.clone(), s.channel, s.status, s.at, s.source))
            .collect()
    }

    proptest! {
        /// Any arrival order of the same changes leaves the same current state, as the
        /// packed view reads it too. (The history may differ: a late change that splits
        /// a run finds the run's middle already dropped.)
        #[test]
        fn arrival_order_never_changes_the_outcome(
            changes in proptest::collection::vec((0u8..4, 0i64..40, any::<bool>(), any::<bool>()), 1..30),
            seed in any::<u64>(),
        ) {
            let mut a = Profile::new("c".into(), Timestamp::UNIX_EPOCH);
            for (k, t, on, api) in &changes {
                a.record_subscription(change(*k, *t, *on, *api));
            }
            let mut shuffled = changes.clone();
            let mut x = seed | 1;
            for i in (1..shuffled.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                shuffled.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut b = Profile::new("c".into(), Timestamp::UNIX_EPOCH);
            for (k, t, on, api) in &shuffled {
                b.record_subscription(change(*k, *t, *on, *api));
            }
            prop_assert_eq!(state(&a), state(&b));
            // No three neighbours of one key hold one status.
            for w in a.subscriptions.windows(3) {
                let run = |x: &Subscription, y: &Subscription| {
                    x.resource == y.resource && x.channel == y.channel && x.status == y.status
                };
                prop_assert!(!(run(&w[0], &w[1]) && run(&w[1], &w[2])));
            }
            let packed = crate::store::Packed::encode(&a);
            let view = packed.view();
            let from_view: Vec<_> = view
                .subscriptions()
                .map(|s| (CompactString::from(s.resource), s.channel, s.status, s.at, s.source))
                .collect();
            prop_assert_eq!(from_view, state(&a));
        }
    }
}
