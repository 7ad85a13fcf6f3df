//! Import rows built before they reach the actor: the profile an update makes, made on
//! an import's builder thread against the store as it was then, with every answer the
//! store gave. When the actor reaches the row it checks those answers (a few map
//! probes); if they all still hold, the build is exactly what the actor would have made,
//! and it publishes it as is. Otherwise (an earlier row or another write changed
//! something the build read, or the schema changed) the actor builds the row itself.
//! This moves the building and encoding of profiles off the one writer thread, which is
//! the slower stage of an import; the actor still decides and publishes every write.

use std::sync::Arc;

use jiff::Timestamp;

use super::DbState;
use super::apply::build_profile;
use super::reads::{Basis, Read, Recorder, Seen};
use crate::schema::ProfileUpdate;
use crate::store::{Lookup, Packed, next_id};

/// A row of an import: its update, and the profile it makes if that was built in
/// advance.
#[derive(Debug, Clone)]
pub struct ImportRow {
    /// The update, which the actor applies itself when the build no longer holds.
    pub update: ProfileUpdate,
    /// The build, if one was made.
    pub built: Option<Prebuilt>,
}

impl From<ProfileUpdate> for ImportRow {
    fn from(update: ProfileUpdate) -> Self {
        ImportRow {
            update,
            built: None,
        }
    }
}

/// A profile built off the actor, with what it was built from. Its times are the build's
/// clock readings: with builders side by side, a new profile's `created_at` may be a
/// moment earlier than that of a profile stored before it, though its id comes after
/// (ids, not times, give the storing order).
#[derive(Debug, Clone)]
pub struct Prebuilt {
    profile: Packed,
    basis: Arc<Basis>,
    reads: Vec<(Read, Seen)>,
}

/// How the actor publishes a build that still holds.
#[derive(Debug)]
pub enum Publish {
    /// A new profile, with its id: stored if its customer id and identifier keys are
    /// still free, which [`crate::store::ProfileStore::claim`] checks as it inserts them.
    New(Packed),
    /// A changed profile, and the version it was made from, still the one stored.
    Over(Packed, Packed),
}

impl Prebuilt {
    /// The profile built, if it is a new one (to be claimed).
    pub fn new_profile(&self) -> Option<&Packed> {
        matches!(self.found(), Some(None)).then_some(&self.profile)
    }

    /// What the build found under its customer id: the profile it changed, or none (then
    /// its internal id is a stand-in).
    fn found(&self) -> Option<Option<Packed>> {
        let customer_id = self.profile.head().customer_id;
        self.reads
            .iter()
            .find_map(|(read, seen)| match (read, seen) {
                (Read::Profile(c), Seen::Profile(p)) if c == customer_id => Some(p.clone()),
                _ => None,
            })
    }

    /// How to publish the build, if the schema, settings and store still give every
    /// answer it was built from; a new profile gets its internal id here. Actor only:
    /// ids ascend in the order profiles are stored (slot order is id order), and nothing
    /// may change between this check and the publish.
    ///
    /// A new profile's build found no profile with its customer id (else it would not
    /// be new) and presumed its keys free (`Recorder::leave_keys_to_the_claim`); both
    /// are checked by the claim that stores it, not asked here.
    pub fn still_valid(self, st: &DbState) -> Option<Publish> {
        if let Some(old) = self.found()? {
            let reads = self.reads.iter().map(|(r, seen)| (r, seen));
            if self.basis.changed(st, reads).is_some() {
                return None;
            }
            return Some(Publish::Over(self.profile, old));
        }
        // The holders of its keys were not asked (`build_profile` asks for the profile's
        // own keys only): the claim checks them.
        debug_assert!(
            self.reads
                .iter()
                .all(|(r, _)| !matches!(r, Read::Holder(_)))
        );
        let customer_id = self.profile.head().customer_id;
        let rest = self
            .reads
            .iter()
            .filter(|(read, seen)| !claimed(read, seen, customer_id))
            .map(|(r, seen)| (r, seen));
        if self.basis.changed(st, rest).is_some() {
            return None;
        }
        let profile = self.profile.with_id(&self.basis.schema, next_id());
        Some(Publish::New(profile))
    }
}

/// Whether a new profile's claim checks this read: that none had its customer id.
fn claimed(read: &Read, seen: &Seen, customer_id: &str) -> bool {
    matches!((read, seen), (Read::Profile(c), Seen::Profile(None)) if c == customer_id)
}

/// Builds the profile `update` makes, as the actor's upsert would with nothing written in
/// between (a new profile's internal id is given when it is published); `None` for what
/// is left to the actor: updates that find their profile by an identifier (the customer
/// id is chosen then), carry events, write to a merged-away customer id, or are refused
/// (the actor says why, with the store as it is by then).
///
/// `basis` and `now` are a batch's, read once for all its rows: each reading of the
/// schema, settings and clock a row cost ~3 % of an import's CPU, two of them atomic
/// increments of counts every builder shares.
pub fn prebuild(
    st: &DbState,
    basis: &Arc<Basis>,
    now: Timestamp,
    update: &ProfileUpdate,
) -> Option<Prebuilt> {
    if update.customer_id.is_empty() || !update.find_by.is_empty() || !update.events.is_empty() {
        return None;
    }
    let mut store = Recorder::new(&st.store);
    if store.survivor(&update.customer_id).is_some() {
        return None;
    }
    let old = store
        .profile(&update.customer_id)
        .map(|p| p.unpack(&basis.schema));
    if old.is_none() {
        store.leave_keys_to_the_claim();
    }
    // A refusal may be a conflict the actor resolves by merging: its call.
    let made = build_profile(
        &basis.schema,
        &basis.settings,
        &store,
        old.as_ref(),
        update,
        now,
    )
    .ok()?;
    Some(Prebuilt {
        profile: Packed::encode(&made),
        basis: Arc::clone(basis),
        reads: store.into_reads(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use std::sync::Arc;

    use super::*;
    use crate::activity::event::build_text;
    use crate::db::apply::upsert;
    use crate::db::test_state as state;
    use crate::schema::{FieldSpec, RawValue, Schema, Source};
    use crate::store::{Profile, ValueRef};

    fn update(customer_id: &str, email: &str, city: &str) -> ProfileUpdate {
        let mut u = ProfileUpdate::new(customer_id, Source::Import);
        u.fields
            .push(("email".into(), RawValue::Json(json!(email))));
        u.fields.push(("city".into(), RawValue::Json(json!(city))));
        u.prepare(Some("PT"));
        u
    }

    /// A build of `u` on the database's basis of the moment, as a builder makes one.
    fn build(st: &DbState, u: &ProfileUpdate) -> Option<Prebuilt> {
        prebuild(st, &Arc::new(Basis::now(st)), Timestamp::now(), u)
    }

    /// The profile the actor's upsert makes of `u` against the store as it is.
    fn by_actor(st: &DbState, u: ProfileUpdate) -> Packed {
        let (schema, settings) = (st.schema.load_full(), st.settings.load_full());
        upsert(&schema, &settings, &st.store, u, Timestamp::now(), true)
            .unwrap()
            .profile
    }

    /// The profile a publish stores.
    fn stored(publish: Publish) -> Packed {
        match publish {
            Publish::New(p) | Publish::Over(p, _) => p,
        }
    }

    /// The profile without what differs between two builds of it: its generated id
    /// and the moments it was built.
    fn comparable(p: &Packed, schema: &Schema) -> Profile {
        let mut p = p.unpack(schema);
        p.id = ulid::Ulid::nil();
        p.created_at = Timestamp::UNIX_EPOCH;
        p.updated_at = Timestamp::UNIX_EPOCH;
        p
    }

    #[test]
    fn a_build_is_the_actors_until_something_it_read_is_written() {
        let st = state();
        let schema = st.schema.load_full();
        // Made by the actor's upsert and published.
        let create = |u: ProfileUpdate| st.store.put(by_actor(&st, u), None);
        create(update("c1", "ana@example.com", "Lisbon"));
        // A change to c1: the build is what the actor makes, but for the moment.
        let change = update("c1", "ana@example.com", "Porto");
        let built = build(&st, &change).unwrap();
        let actor = by_actor(&st, change);
        let Some(Publish::Over(made, old)) = built.clone().still_valid(&st) else {
            panic!("a change to a stored profile is published over it");
        };
        assert!(old.same(&st.store.get("c1").unwrap()));
        assert_eq!(comparable(&made, &schema), comparable(&actor, &schema));
        assert!(matches!(
            made.view().field(schema.id_of("city").unwrap()),
            Some(ValueRef::Str("Porto"))
        ));
        // Its id and creation time are c1's own.
        let c1 = st.store.get("c1").unwrap();
        assert_eq!(made.view().id(), c1.view().id());
        assert_eq!(made.view().created_at(), c1.view().created_at());

        // Another write to c1 since: the build no longer holds.
        st.store
            .put(Packed::from_bytes(c1.bytes()).unwrap(), Some(&c1));
        assert!(built.still_valid(&st).is_none());

        // A build for c2 that saw the email `bo@` free, before c3 took it.
        create(update("c2", "c2@example.com", "Faro"));
        let built = build(&st, &update("c2", "bo@example.com", "Faro")).unwrap();
        assert!(built.clone().still_valid(&st).is_some());
        create(update("c3", "bo@example.com", "Braga"));
        assert!(built.still_valid(&st).is_none());

        // A field added since the build: built against another schema.
        let built = build(&st, &update("c1", "ana@example.com", "Faro")).unwrap();
        let spec: FieldSpec =
            serde_json::from_value(json!({"name":"tier","type":"string"})).unwrap();
        let wider = schema.with_field(spec.into_def().unwrap()).unwrap();
        st.schema.store(Arc::new(wider));
        assert!(built.still_valid(&st).is_none());
    }

    #[test]
    fn a_new_profile_gets_its_id_when_published_in_storing_order() {
        let st = state();
        let schema = st.schema.load_full();
        // Built on another thread, as a builder does: its stand-in id comes from that
        // thread's generator.
        let change = update("n1", "nia@example.com", "Lisbon");
        let built =
            std::thread::scope(|s| s.spawn(|| build(&st, &change).unwrap()).join().unwrap());
        // Another profile is stored between the build and its publish.
        let before = by_actor(&st, update("n0", "n0@example.com", "Faro"));
        st.store.put(before.clone(), None);
        let actor = by_actor(&st, change);
        let Some(Publish::New(published)) = built.clone().still_valid(&st) else {
            panic!("a new profile is claimed");
        };
        assert!(published.view().id() > before.view().id());
        assert_eq!(comparable(&published, &schema), comparable(&actor, &schema));
        assert!(st.store.claim(&published, || ()).is_some());
        // Once the customer id has a profile, a build that found none no longer holds:
        // its claim finds the place taken, and changes nothing.
        let again = stored(built.still_valid(&st).unwrap());
        assert!(st.store.claim(&again, || panic!("not published")).is_none());
        assert!(st.store.get("n1").unwrap().same(&published));
    }

    #[test]
    fn a_new_profiles_claim_fails_whole_on_a_key_held_before_or_since_its_build() {
        let st = state();
        for (n, held_before) in [("n2", true), ("n3", false)] {
            let email = format!("{n}-shared@example.com");
            let taker = update(&format!("{n}-taker"), &email, "Faro");
            if held_before {
                st.store.put(by_actor(&st, taker.clone()), None);
            }
            // Built without asking who holds its email: the claim asks, as it inserts it.
            let built = build(&st, &update(n, &email, "Lisbon")).unwrap();
            if !held_before {
                st.store.put(by_actor(&st, taker), None);
            }
            let profile = stored(built.still_valid(&st).unwrap());
            assert!(
                st.store
                    .claim(&profile, || panic!("not published"))
                    .is_none()
            );
            assert!(st.store.get(n).is_none());
            let key = crate::store::identifier_key("email", &email);
            assert_eq!(st.store.holder(&key), Some(format!("{n}-taker").into()));
        }
    }

    #[test]
    fn a_claim_that_fails_on_a_later_key_takes_back_the_earlier_ones() {
        let st = state();
        let with_phone = |c: &str, email: &str| {
            let mut u = update(c, email, "Lisbon");
            u.fields
                .push(("phone".into(), RawValue::Json(json!("912345678"))));
            u.prepare(Some("PT"));
            u
        };
        st.store
            .put(by_actor(&st, with_phone("p1", "p1@example.com")), None);
        // A new profile whose email is free and whose phone p1 holds.
        let built = build(&st, &with_phone("n6", "n6@example.com")).unwrap();
        let profile = stored(built.still_valid(&st).unwrap());
        let keys = profile.view().identifier_keys();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert!(
            st.store
                .claim(&profile, || panic!("not published"))
                .is_none()
        );
        assert!(st.store.get("n6").is_none());
        let email = crate::store::identifier_key("email", "n6@example.com");
        assert_eq!(
            st.store.holder(&email),
            None,
            "the email key was taken back"
        );
        assert_eq!(st.store.holder(&keys[1]).as_deref(), Some("p1"));
    }

    #[test]
    fn what_the_actor_must_decide_is_not_built() {
        let st = state();
        // Refused (the actor says why, with the store as it is then).
        let mut unknown = update("c1", "ana@example.com", "Lisbon");
        unknown
            .fields
            .push(("shoe_size".into(), RawValue::Json(json!(42))));
        assert!(build(&st, &unknown).is_none());
        // Found by an identifier: the customer id is chosen by the actor.
        let mut found = update("", "ana@example.com", "Lisbon");
        found
            .find_by
            .push(("email".into(), "ana@example.com".into()));
        assert!(build(&st, &found).is_none());
        // Carrying events.
        let mut with_events = update("c1", "ana@example.com", "Lisbon");
        let (event, _) = build_text("page_view", 0, r#"{"url":"/"}"#).unwrap();
        with_events.events.push(event);
        assert!(build(&st, &with_events).is_none());
        // Taking an identifier another profile holds (a PATCH would merge them).
        for (c, email) in [("c9", "ana@example.com"), ("c1", "c1@example.com")] {
            st.store.put(by_actor(&st, update(c, email, "Porto")), None);
        }
        assert!(build(&st, &update("c1", "ana@example.com", "Lisbon")).is_none());
    }
}
