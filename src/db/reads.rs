//! What a write read from the store while it was made outside the actor's turn, so the
//! actor publishes it only if the store still answers the same (optimistic
//! concurrency). Atomic imports check theirs at their commit (`overlay.rs`); import rows
//! built on an import's builder threads are checked when the actor reaches them
//! (`prebuilt.rs`).
//! Pure over the store and the database's state; used by the actor and the threads that
//! prepare its work.

use std::cell::RefCell;
use std::sync::Arc;

use compact_str::CompactString;

use super::DbState;
use crate::schema::{DatabaseSettings, Schema};
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
    /// The store's answer now.
    pub fn ask(&self, store: &ProfileStore) -> Seen {
        match self {
            Read::Profile(c) => Seen::Profile(store.get(c)),
            Read::Holder(k) => Seen::Name(store.holder(k)),
            Read::OldKey(k) => Seen::Name(store.merges.by_old_key(k)),
            Read::Survivor(c) => Seen::Name(store.survivor_of(c)),
        }
    }

    /// What changed, as a sentence, once the store no longer gives an answer.
    fn changed(&self) -> String {
        match self {
            Read::Profile(c) | Read::Survivor(c) => format!("customer `{c}` was written"),
            Read::Holder(k) | Read::OldKey(k) => format!("identifier `{k}` changed hands"),
        }
    }
}

impl Seen {
    /// Whether two answers are the same.
    fn same(&self, other: &Seen) -> bool {
        match (self, other) {
            (Seen::Profile(a), Seen::Profile(b)) => match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => a.same(b),
                _ => false,
            },
            (Seen::Name(a), Seen::Name(b)) => a == b,
            _ => false,
        }
    }

    /// The answer to a [`Read::Profile`].
    pub fn profile(self) -> Option<Packed> {
        match self {
            Seen::Profile(p) => p,
            Seen::Name(_) => None,
        }
    }

    /// The answer to any other read.
    pub fn name(self) -> Option<CompactString> {
        match self {
            Seen::Name(n) => n,
            Seen::Profile(_) => None,
        }
    }
}

/// What a write made outside the actor's turn was made against: the schema and the
/// settings of that moment, which must be the current ones (compared by identity) for
/// it to be published.
#[derive(Debug, Clone)]
pub struct Basis {
    /// The schema.
    pub schema: Arc<Schema>,
    /// The settings.
    pub settings: Arc<DatabaseSettings>,
}

impl Basis {
    /// The database's current schema and settings.
    pub fn now(st: &DbState) -> Self {
        Basis {
            schema: st.schema.load_full(),
            settings: st.settings.load_full(),
        }
    }

    /// The first thing that changed since a write was made on this basis with these
    /// answers from the store, as a sentence; `None` when nothing did.
    pub fn changed<'a>(
        &self,
        st: &DbState,
        reads: impl IntoIterator<Item = (&'a Read, &'a Seen)>,
    ) -> Option<String> {
        if !Arc::ptr_eq(&self.schema, &st.schema.load()) {
            return Some("the database's fields changed".into());
        }
        if !Arc::ptr_eq(&self.settings, &st.settings.load()) {
            return Some("the database's settings changed".into());
        }
        reads
            .into_iter()
            .find(|(read, seen)| !seen.same(&read.ask(&st.store)))
            .map(|(read, _)| read.changed())
    }
}

/// The store, remembering every answer it gives (in order, repeats included: a row
/// asks a handful of questions).
pub struct Recorder<'s> {
    store: &'s ProfileStore,
    reads: RefCell<Vec<(Read, Seen)>>,
    keys_to_claim: bool,
}

impl<'s> Recorder<'s> {
    /// Nothing asked yet.
    pub fn new(store: &'s ProfileStore) -> Self {
        Recorder {
            store,
            reads: RefCell::new(Vec::new()),
            keys_to_claim: false,
        }
    }

    /// From now on, answers that no one holds an identifier key, without asking the store
    /// or recording the answer: for a new profile's build, which asks only about its own
    /// keys, and whose claim checks each of them as it inserts it
    /// (`ProfileStore::claim`), so asking first would probe the largest map twice. A key
    /// held after all fails the claim, and the actor builds the row itself.
    pub fn leave_keys_to_the_claim(&mut self) {
        self.keys_to_claim = true;
    }

    /// The answers given.
    pub fn into_reads(self) -> Vec<(Read, Seen)> {
        self.reads.into_inner()
    }

    fn ask(&self, read: Read) -> Seen {
        let seen = read.ask(self.store);
        self.reads.borrow_mut().push((read, seen.clone()));
        seen
    }
}

impl Lookup for Recorder<'_> {
    fn profile(&self, customer_id: &str) -> Option<Packed> {
        self.ask(Read::Profile(customer_id.into())).profile()
    }

    fn holder(&self, key: &str) -> Option<CompactString> {
        if self.keys_to_claim {
            // Not recorded either: the claim stands for it (`prebuilt::claimed`).
            return None;
        }
        self.ask(Read::Holder(key.into())).name()
    }

    fn by_old_key(&self, key: &str) -> Option<CompactString> {
        self.ask(Read::OldKey(key.into())).name()
    }

    fn survivor(&self, customer_id: &str) -> Option<CompactString> {
        self.ask(Read::Survivor(customer_id.into())).name()
    }
}
