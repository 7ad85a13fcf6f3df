//! An atomic import's view of a database: the store with the import's profiles over it.
//!
//! An atomic import's rows arrive in batches, one actor message each, and are validated
//! one after another against this view, so a later row sees what earlier rows did (a
//! profile created, an email moved) without the store changing. What the rows made is
//! kept in [`Staged`] between batches: one packed profile per customer touched, so an
//! import of a file larger than memory holds what it changes, not its rows. Other
//! writes go on between batches; every answer the store gave the rows is remembered,
//! and the commit publishes only if the store still gives the same answers (optimistic
//! concurrency: a write to a customer or identifier the import read makes it fail, and
//! nothing of it is applied). Used only on the actor's thread.

use std::cell::RefCell;
use std::collections::HashMap;

use compact_str::CompactString;
use jiff::Timestamp;

use super::DbState;
use super::reads::{Basis, Read, Seen};
use crate::activity::Event;
use crate::store::{Lookup, Packed, ProfileStore};

/// A held profile to publish, and whether the store had none under its customer id.
pub type Held = (Packed, bool);

/// A customer's events from the import's event rows.
pub type CustomerEvents = (CompactString, Vec<Event>);

/// What an atomic import has validated so far, kept by the actor between its batches.
#[derive(Debug)]
pub struct Staged {
    /// The schema and settings every row is validated against; the commit needs them
    /// unchanged.
    pub basis: Basis,
    /// The moment the rows are validated as of (a subscription change without a time
    /// of its own takes it); the profiles are restamped with the commit's.
    pub now: Timestamp,
    profiles: HashMap<CompactString, Packed>,
    // An identifier key's holder as the import left it; `None`: released.
    holders: HashMap<CompactString, Option<CompactString>>,
    // Customers in the order the import first touched them.
    order: Vec<CompactString>,
    events: Vec<CustomerEvents>,
    // The store's first answer to each question the rows asked.
    reads: RefCell<HashMap<Read, Seen>>,
}

impl Staged {
    /// Nothing staged yet, on this basis.
    pub fn new(basis: Basis, now: Timestamp) -> Self {
        Staged {
            basis,
            now,
            profiles: HashMap::new(),
            holders: HashMap::new(),
            order: Vec::new(),
            events: Vec::new(),
            reads: RefCell::new(HashMap::new()),
        }
    }

    /// Profiles and event lists held: what the import's size limit counts.
    pub fn len(&self) -> usize {
        self.profiles.len() + self.events.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first thing that changed since the rows were validated, as a sentence;
    /// `None` when the schema, the settings and every answer the store gave still hold.
    pub fn changed_since(&self, st: &DbState) -> Option<String> {
        self.basis.changed(st, self.reads.borrow().iter())
    }

    /// The profiles to publish, in the order the import first touched them, each with
    /// whether it is new (the store had no profile under its customer id when a row
    /// asked, which [`Staged::changed_since`] holds to), and the events to record.
    pub fn into_parts(mut self) -> (Vec<Held>, Vec<CustomerEvents>) {
        let reads = self.reads.into_inner();
        let profiles = self
            .order
            .into_iter()
            .filter_map(|c| {
                let new = matches!(
                    reads.get(&Read::Profile(c.clone())),
                    Some(Seen::Profile(None))
                );
                self.profiles.remove(&c).map(|p| (p, new))
            })
            .collect();
        (profiles, self.events)
    }
}

/// The store with an import's staged profiles over it.
pub struct Overlay<'s> {
    store: &'s ProfileStore,
    staged: &'s mut Staged,
}

impl<'s> Overlay<'s> {
    /// A view of `store` with `staged` over it.
    pub fn new(store: &'s ProfileStore, staged: &'s mut Staged) -> Self {
        Overlay { store, staged }
    }

    /// Lays a profile over the store, moving its identifier keys as the store would.
    pub fn put(&mut self, profile: Packed) {
        let view = profile.view();
        let customer_id = CompactString::from(view.customer_id);
        let new_keys = view.identifier_keys();
        if let Some(old) = self.profile(&customer_id) {
            for key in old.view().identifier_keys() {
                if !new_keys.contains(&key)
                    && self.holder(&key).as_deref() == Some(customer_id.as_str())
                {
                    self.staged.holders.insert(key, None);
                }
            }
        }
        for key in new_keys {
            self.staged.holders.insert(key, Some(customer_id.clone()));
        }
        if self
            .staged
            .profiles
            .insert(customer_id.clone(), profile)
            .is_none()
        {
            self.staged.order.push(customer_id);
        }
    }

    /// Keeps a row's events for the commit.
    pub fn add_events(&mut self, customer_id: CompactString, events: Vec<Event>) {
        self.staged.events.push((customer_id, events));
    }

    /// Asks the store, remembering its first answer to each question.
    fn ask(&self, read: Read) -> Seen {
        let seen = read.ask(self.store);
        self.staged
            .reads
            .borrow_mut()
            .entry(read)
            .or_insert_with(|| seen.clone());
        seen
    }
}

impl Lookup for Overlay<'_> {
    fn profile(&self, customer_id: &str) -> Option<Packed> {
        match self.staged.profiles.get(customer_id) {
            Some(p) => Some(p.clone()),
            None => self.ask(Read::Profile(customer_id.into())).profile(),
        }
    }

    fn holder(&self, key: &str) -> Option<CompactString> {
        match self.staged.holders.get(key) {
            Some(held) => held.clone(),
            None => self.ask(Read::Holder(key.into())).name(),
        }
    }

    fn by_old_key(&self, key: &str) -> Option<CompactString> {
        self.ask(Read::OldKey(key.into())).name()
    }

    fn survivor(&self, customer_id: &str) -> Option<CompactString> {
        // A profile created earlier in the transaction under that id wins.
        if self.staged.profiles.contains_key(customer_id) {
            return None;
        }
        self.ask(Read::Survivor(customer_id.into())).name()
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::contacts::EmailContact;
    use crate::store::{Profile, identifier_key};

    fn staged(st: &DbState) -> Staged {
        Staged::new(Basis::now(st), Timestamp::UNIX_EPOCH)
    }

    fn with_email(cid: &str, email: &str) -> Packed {
        let mut p = Profile::new(cid.into(), Timestamp::UNIX_EPOCH);
        p.email = Some(EmailContact::new(email));
        Packed::encode(&p)
    }

    #[test]
    fn identifiers_move_in_the_view_and_not_in_the_store() {
        let st = crate::db::test_state();
        let store = &st.store;
        store.put(with_email("a", "x@example.com"), None);
        let x = identifier_key("email", "x@example.com");
        let y = identifier_key("email", "y@example.com");
        let mut staged = staged(&st);
        let mut view = Overlay::new(store, &mut staged);
        // `a` moves to y; `b` takes x, which `a` released.
        view.put(with_email("a", "y@example.com"));
        assert_eq!(view.holder(&x), None);
        view.put(with_email("b", "x@example.com"));
        assert_eq!(view.holder(&x).as_deref(), Some("b"));
        assert_eq!(view.holder(&y).as_deref(), Some("a"));
        assert!(view.profile("b").is_some());
        // The store saw none of it.
        assert_eq!(store.holder(&x).as_deref(), Some("a"));
        assert!(store.get("b").is_none());
        let out: Vec<_> = staged
            .into_parts()
            .0
            .iter()
            .map(|(p, new)| (p.view().customer_id.to_owned(), *new))
            .collect();
        // `a` was in the store when the import asked; `b` was not.
        assert_eq!(out, [("a".to_owned(), false), ("b".to_owned(), true)]);
    }

    #[test]
    fn the_commit_sees_what_changed_since_the_rows_read_it() {
        let st = crate::db::test_state();
        let store = &st.store;
        store.put(with_email("a", "x@example.com"), None);
        let x = identifier_key("email", "x@example.com");
        let z = identifier_key("email", "z@example.com");
        let mut staged = staged(&st);
        let view = Overlay::new(store, &mut staged);
        // What a row asks: its profile, and who holds the keys it wants.
        assert!(view.profile("a").is_some());
        assert!(view.profile("b").is_none());
        assert_eq!(view.holder(&z), None);
        assert_eq!(staged.changed_since(&st), None);

        // A write to a customer nobody asked about changes nothing.
        store.put(with_email("c", "c@example.com"), None);
        assert_eq!(staged.changed_since(&st), None);
        // A new version of `a`, though equal in every byte, is another write.
        let a = store.get("a").unwrap();
        store.put(Packed::from_bytes(a.bytes()).unwrap(), Some(&a));
        let why = staged.changed_since(&st).unwrap();
        assert!(why.contains("`a`"), "{why}");

        let mut staged2 = self::staged(&st);
        let view = Overlay::new(store, &mut staged2);
        assert_eq!(view.holder(&z), None);
        assert_eq!(view.holder(&x).as_deref(), Some("a"));
        // `b` is created with the key the import saw free.
        store.put(with_email("b", "z@example.com"), None);
        let why = staged2.changed_since(&st).unwrap();
        assert!(why.contains("changed hands"), "{why}");
    }
}
