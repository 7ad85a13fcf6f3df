//! An atomic import's view of a database: the store with the import's profiles over it.
//!
//! Rows of an atomic import are validated one after another against this view, so a
//! later row sees what earlier rows did (a profile created, an email moved) without the
//! store changing; if every row is good the actor publishes the view's profiles, else
//! nothing. Used only on the actor's thread; holds one profile per customer the import
//! touched.

use std::collections::HashMap;

use compact_str::CompactString;

use crate::store::{Lookup, Packed, ProfileStore};

/// The store as it would be after the rows validated so far.
pub struct Overlay<'s> {
    store: &'s ProfileStore,
    profiles: HashMap<CompactString, Packed>,
    // An identifier key's holder as the import left it; `None`: released.
    holders: HashMap<CompactString, Option<CompactString>>,
    // Customers in the order the import first touched them.
    order: Vec<CompactString>,
}

impl<'s> Overlay<'s> {
    /// A view of `store` with nothing over it yet.
    pub fn new(store: &'s ProfileStore) -> Self {
        Overlay {
            store,
            profiles: HashMap::new(),
            holders: HashMap::new(),
            order: Vec::new(),
        }
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
                    self.holders.insert(key, None);
                }
            }
        }
        for key in new_keys {
            self.holders.insert(key, Some(customer_id.clone()));
        }
        if self.profiles.insert(customer_id.clone(), profile).is_none() {
            self.order.push(customer_id);
        }
    }

    /// The profiles to publish, in the order the import first touched them.
    pub fn into_profiles(mut self) -> Vec<Packed> {
        self.order
            .iter()
            .filter_map(|c| self.profiles.remove(c))
            .collect()
    }
}

impl Lookup for Overlay<'_> {
    fn profile(&self, customer_id: &str) -> Option<Packed> {
        match self.profiles.get(customer_id) {
            Some(p) => Some(p.clone()),
            None => self.store.get(customer_id),
        }
    }

    fn holder(&self, key: &str) -> Option<CompactString> {
        match self.holders.get(key) {
            Some(held) => held.clone(),
            None => self.store.holder(key),
        }
    }

    fn by_old_key(&self, key: &str) -> Option<CompactString> {
        self.store.merges.by_old_key(key)
    }

    fn survivor(&self, customer_id: &str) -> Option<CompactString> {
        // A profile created earlier in the transaction under that id wins.
        if self.profiles.contains_key(customer_id) {
            return None;
        }
        self.store.survivor_of(customer_id)
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::contacts::EmailContact;
    use crate::store::{Profile, identifier_key};

    fn with_email(cid: &str, email: &str) -> Packed {
        let mut p = Profile::new(cid.into(), Timestamp::UNIX_EPOCH);
        p.email = Some(EmailContact::new(email));
        Packed::encode(&p)
    }

    #[test]
    fn identifiers_move_in_the_view_and_not_in_the_store() {
        let store = ProfileStore::new();
        store.put(with_email("a", "x@example.com"), None);
        let x = identifier_key("email", "x@example.com");
        let y = identifier_key("email", "y@example.com");
        let mut view = Overlay::new(&store);
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
        let out: Vec<_> = view
            .into_profiles()
            .iter()
            .map(|p| p.view().customer_id.to_owned())
            .collect();
        assert_eq!(out, ["a", "b"]);
    }
}
