//! What a write read from the store while it was made outside the actor's turn, so the
//! actor publishes it only if the store still answers the same (optimistic
//! concurrency). Atomic imports check theirs at their commit (`overlay.rs`); import rows
//! built on the parser's thread are checked when the actor reaches them (`prebuilt.rs`).
//! Pure over the store; used by the actor and the threads that prepare its work.

use std::cell::RefCell;

use compact_str::CompactString;

use crate::store::{Lookup, Packed, ProfileStore};

/// A question a write asked the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Read {
    /// The profile with this customer id.
    Profile(CompactString),
    /// The holder of this identifier key.
    Holder(CompactString),
    /// The survivor of a merge that took this identifier key.
    OldKey(CompactString),
    /// The survivor of a merge that absorbed this customer id.
    Survivor(CompactString),
}

/// The store's answer.
#[derive(Debug, Clone)]
pub enum Seen {
    /// A profile (compared by identity: a rewrite equal in every byte is still a write).
    Profile(Option<Packed>),
    /// A customer id.
    Name(Option<CompactString>),
}

impl Read {
    /// Whether the store still gives the answer `seen`.
    pub fn holds(&self, seen: &Seen, store: &ProfileStore) -> bool {
        match (self, seen) {
            (Read::Profile(c), Seen::Profile(then)) => match (then, store.get(c)) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same(&b),
                _ => false,
            },
            (Read::Holder(k), Seen::Name(then)) => *then == store.holder(k),
            (Read::OldKey(k), Seen::Name(then)) => *then == store.merges.by_old_key(k),
            (Read::Survivor(c), Seen::Name(then)) => *then == store.survivor_of(c),
            _ => false,
        }
    }

    /// What changed, as a sentence, once [`Read::holds`] has said something did.
    pub fn changed(&self) -> String {
        match self {
            Read::Profile(c) | Read::Survivor(c) => format!("customer `{c}` was written"),
            Read::Holder(k) | Read::OldKey(k) => format!("identifier `{k}` changed hands"),
        }
    }
}

/// The store, remembering every answer it gives (in order, repeats included: a row
/// asks a handful of questions).
pub struct Recorder<'s> {
    store: &'s ProfileStore,
    reads: RefCell<Vec<(Read, Seen)>>,
}

impl<'s> Recorder<'s> {
    /// Nothing asked yet.
    pub fn new(store: &'s ProfileStore) -> Self {
        Recorder {
            store,
            reads: RefCell::new(Vec::new()),
        }
    }

    /// The answers given.
    pub fn into_reads(self) -> Vec<(Read, Seen)> {
        self.reads.into_inner()
    }

    fn keep(&self, read: Read, seen: Seen) {
        self.reads.borrow_mut().push((read, seen));
    }
}

impl Lookup for Recorder<'_> {
    fn profile(&self, customer_id: &str) -> Option<Packed> {
        let p = self.store.get(customer_id);
        self.keep(Read::Profile(customer_id.into()), Seen::Profile(p.clone()));
        p
    }

    fn holder(&self, key: &str) -> Option<CompactString> {
        let h = self.store.holder(key);
        self.keep(Read::Holder(key.into()), Seen::Name(h.clone()));
        h
    }

    fn by_old_key(&self, key: &str) -> Option<CompactString> {
        let h = self.store.merges.by_old_key(key);
        self.keep(Read::OldKey(key.into()), Seen::Name(h.clone()));
        h
    }

    fn survivor(&self, customer_id: &str) -> Option<CompactString> {
        let s = self.store.survivor_of(customer_id);
        self.keep(Read::Survivor(customer_id.into()), Seen::Name(s.clone()));
        s
    }
}
