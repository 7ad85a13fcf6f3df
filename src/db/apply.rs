//! How an update becomes a new profile: validation against the schema and settings.
//!
//! Pure (no store writes): the actor calls [`build_profile`] with the profile it holds
//! and publishes the result only when every check passed, so a refused write changes
//! nothing.

use std::sync::Arc;

use jiff::Timestamp;

use super::merge::{Excluding, MAX_MERGED, Merged, merge_profiles};
use super::{Applied, Change, DbState};
use crate::contacts::{EmailContact, PhoneContact};
use crate::error::{ErrorCode, Problem};
use crate::persist::Entry;
use crate::schema::update::{check_customer_id, check_namespace};
use crate::schema::{DatabaseSettings, FieldId, Prepared, ProfileUpdate, Schema, Value, value};
use crate::store::{Lookup, MergeRecord, Packed, Profile, Subscription, identifier_key};

/// Why a write was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteError {
    /// A value does not fit its field.
    #[error(transparent)]
    Value(#[from] value::ValueError),
    /// The field is not in the schema.
    #[error("field `{0}` is not in this database's schema; add it with POST .../fields first")]
    FieldUnknown(String),
    /// A required field would be left without a value.
    #[error("field `{0}` is required")]
    FieldRequired(String),
    /// The customer id is not acceptable.
    #[error("{0}")]
    CustomerIdInvalid(String),
    /// An identifier is malformed.
    #[error("{0}")]
    IdentifierInvalid(String),
    /// An identifier belongs to another profile.
    #[error("identifier `{identifier}` belongs to profile `{holder}`")]
    IdentifierConflict {
        /// `namespace:value`.
        identifier: String,
        /// The customer id that holds it.
        holder: String,
    },
    /// A tag is malformed.
    #[error("{0}")]
    TagInvalid(String),
    /// A subscription names an unknown resource or channel.
    #[error("{0}")]
    SubscriptionInvalid(String),
}

impl From<WriteError> for Problem {
    fn from(e: WriteError) -> Self {
        let detail = e.to_string();
        match e {
            WriteError::Value(v) => v.into(),
            WriteError::FieldUnknown(f) => {
                Problem::new(ErrorCode::FieldUnknown, detail).with("field", f)
            }
            WriteError::FieldRequired(f) => {
                Problem::new(ErrorCode::FieldRequired, detail).with("field", f)
            }
            WriteError::CustomerIdInvalid(_) => Problem::new(ErrorCode::CustomerIdInvalid, detail),
            WriteError::IdentifierInvalid(_) => Problem::new(ErrorCode::IdentifierInvalid, detail),
            WriteError::IdentifierConflict { identifier, holder } => {
                Problem::new(ErrorCode::IdentifierConflict, detail)
                    .with("identifier", identifier)
                    .with("holder", holder)
            }
            WriteError::TagInvalid(_) => Problem::new(ErrorCode::InvalidBody, detail),
            WriteError::SubscriptionInvalid(_) => {
                Problem::new(ErrorCode::SubscriptionInvalid, detail)
            }
        }
    }
}

const MAX_TAG: usize = 128;
/// The most events one update (one log record) may carry.
pub const MAX_EVENTS_PER_UPDATE: usize = 100_000;
const MAX_IDENTIFIER: usize = 256;

/// Validates a change against the state it would apply to: the effect to log and apply,
/// and what to answer. Pure: nothing changes until the actor applies the effect.
pub fn effect(st: &DbState, change: Change) -> Result<(Entry, Applied), Problem> {
    Ok(match change {
        Change::Upsert(mut update) => {
            let events = std::mem::take(&mut update.events);
            if events.len() > MAX_EVENTS_PER_UPDATE {
                // Event ids are the record's LSN and the event's place in it.
                return Err(Problem::new(
                    ErrorCode::EventsTooMany,
                    format!(
                        "one update carries {} events; at most {MAX_EVENTS_PER_UPDATE}",
                        events.len()
                    ),
                ));
            }
            // A customer id absorbed by a merge writes to the survivor.
            if let Some(survivor) = st.store.survivor_of(&update.customer_id) {
                update.customer_id = survivor;
            }
            // Events for an existing profile that change nothing else: the profile is
            // neither rebuilt nor logged again.
            let existing = (!events.is_empty() && !update.touches_profile())
                .then(|| st.store.get(&update.customer_id))
                .flatten();
            let (profile, rebuilt) = match existing {
                Some(p) => (p, false),
                None => {
                    let settings = st.settings.load();
                    let now = Timestamp::now();
                    // A replace and a merge disagree on what to keep: only a PATCH merges.
                    let merge = !update.replace;
                    let made = upsert(&st.schema.load(), &settings, &st.store, update, now, merge)?;
                    if !made.records.is_empty() {
                        return Ok(merge_entry(st, made, events, settings.max_events as usize));
                    }
                    (made.profile, true)
                }
            };
            let entry = if events.is_empty() {
                Entry::Put(profile.clone())
            } else {
                Entry::Events {
                    customer_id: profile.view().customer_id.into(),
                    profile: rebuilt.then(|| profile.clone()),
                    events,
                }
            };
            (entry, Applied::Profile(profile))
        }
        Change::Delete { mut customer_id } => {
            // An erasure asked by an absorbed customer id erases the survivor: the same
            // customer's data.
            if let Some(survivor) = st.store.survivor_of(&customer_id) {
                customer_id = survivor.into();
            }
            if st.store.get(&customer_id).is_none() {
                return Err(Problem::new(
                    ErrorCode::ProfileNotFound,
                    format!("no profile `{customer_id}`"),
                )
                .with("customer_id", customer_id));
            }
            (Entry::Remove(customer_id.into()), Applied::Done)
        }
        Change::AddField(spec) => {
            let def = spec.into_def()?;
            let schema = st.schema.load().with_field(def)?;
            (Entry::Schema(Arc::new(schema)), Applied::Done)
        }
        Change::DropField(name) => {
            st.segments.check_drop_field(&name).map_err(Problem::from)?;
            let schema = st.schema.load().without_field(&name)?;
            (
                Entry::DropField {
                    name,
                    schema: Arc::new(schema),
                },
                Applied::Done,
            )
        }
        Change::Settings(spec) => {
            let settings = st.settings.load().patched(spec)?;
            (Entry::Settings(Arc::new(settings)), Applied::Done)
        }
        Change::SaveSegment(def) => {
            let defs = st
                .segments
                .with(def, &st.schema.load())
                .map_err(Problem::from)?;
            (Entry::Segments(Arc::new(defs)), Applied::Done)
        }
        Change::DeleteSegment(name) => {
            let defs = st.segments.without(&name).map_err(Problem::from)?;
            (Entry::Segments(Arc::new(defs)), Applied::Done)
        }
        Change::Import { .. }
        | Change::ImportStage { .. }
        | Change::ImportCommit { .. }
        | Change::ImportAbort { .. } => {
            // The actor takes an import apart into upserts, one effect each.
            return Err(Problem::new(
                ErrorCode::Internal,
                "an import batch has no single effect",
            ));
        }
    })
}

/// What an upsert makes: the profile to publish and, when the update's identifiers
/// named other profiles, the profiles it absorbed and their records.
#[derive(Debug)]
pub struct Upserted {
    /// The profile to publish (the survivor, after a merge).
    pub profile: Packed,
    /// The profiles absorbed (to remove), oldest first.
    pub absorbed: Vec<Packed>,
    /// A record of each profile absorbed, and of a customer id the update named that
    /// had no profile yet (it leads to the survivor from now on).
    pub records: Vec<MergeRecord>,
}

/// The merge record for the profiles `made` absorbed, with their own histories folded
/// in: the entry that removes them and publishes the survivor.
fn merge_entry(
    st: &DbState,
    made: Upserted,
    events: Vec<crate::activity::Event>,
    max: usize,
) -> (Entry, Applied) {
    let survivor = made.profile.view().customer_id.to_owned();
    let mut history: Vec<MergeRecord> =
        (st.store.merges.history_of(&survivor)).map_or_else(Vec::new, |h| h.to_vec());
    let mut activity = st.activity.cloned(&survivor);
    for rec in made.records {
        let absorbed_history = st.store.merges.history_of(&rec.customer_id);
        if let Some(act) = st.activity.cloned(&rec.customer_id) {
            activity
                .get_or_insert_with(Default::default)
                .absorb(act, max);
        }
        history.push(rec);
        history.extend(absorbed_history.iter().flat_map(|h| h.iter().cloned()));
    }
    let entry = Entry::Merge {
        survivor: made.profile.clone(),
        activity: activity.map(Box::new),
        absorbed: made
            .absorbed
            .iter()
            .map(|p| p.view().customer_id.into())
            .collect(),
        history: Arc::from(history),
        events,
    };
    (entry, Applied::Profile(made.profile))
}

/// The profile an upsert publishes, read against `profiles` (the store, or an atomic
/// import's view of it). With `merge`, identifiers held by other profiles merge them
/// into one (`db::merge`); without, they refuse the update (`identifier_conflict`).
pub fn upsert(
    schema: &Schema,
    settings: &DatabaseSettings,
    profiles: &impl Lookup,
    mut update: ProfileUpdate,
    now: Timestamp,
    merge: bool,
) -> Result<Upserted, Problem> {
    let named = !update.customer_id.is_empty();
    if update.customer_id.is_empty() && !update.find_by.is_empty() {
        // Found by the first identifier that names a profile, or created under a
        // generated customer id. Every identifier must be well-formed, found or not.
        let mut found = None;
        for (kind, value) in &update.find_by {
            let key = lookup_key(kind, value, settings)?;
            if found.is_none() {
                found = profiles.holder(&key).or_else(|| profiles.by_old_key(&key));
            }
        }
        update.customer_id = found.unwrap_or_else(|| ulid::Ulid::new().to_string().into());
    }
    // A customer id absorbed by a merge writes to the survivor.
    if let Some(survivor) = profiles.survivor(&update.customer_id) {
        update.customer_id = survivor;
    }
    let target = profiles.profile(&update.customer_id);
    let old = target.as_ref().map(|p| p.unpack(schema));
    // The update's target, when it names a customer id nobody has: joins a merge as a
    // new empty profile (made once: its id and time stay the same through every round),
    // so that its id leads to the survivor after. A generated id joins no merge.
    let fresh = (old.is_none() && named).then(|| Profile::new(update.customer_id.clone(), now));
    let mut absorbed: Vec<Packed> = Vec::new();
    let mut merged: Option<Merged> = None;
    loop {
        // Once merging, every participant's identifiers are the survivor's to take.
        let mut gone = absorbed.clone();
        gone.extend(target.clone().filter(|_| merged.is_some()));
        let free = Excluding {
            inner: profiles,
            gone: &gone,
        };
        let base = merged.as_ref().map(|m| &m.base).or(old.as_ref());
        let err = match build_profile(schema, settings, &free, base, &update, now) {
            Ok(p) => {
                // Removed: every participant in the store but the survivor.
                absorbed.extend(target.filter(|_| merged.is_some()));
                absorbed.retain(|a| a.view().customer_id != p.customer_id.as_str());
                return Ok(Upserted {
                    profile: Packed::encode(&p),
                    absorbed,
                    records: merged.map(|m| m.records).unwrap_or_default(),
                });
            }
            Err(e) => e,
        };
        let WriteError::IdentifierConflict { holder, .. } = &err else {
            return Err(err.into());
        };
        let Some(held) = profiles.profile(holder).filter(|_| merge) else {
            return Err(err.into());
        };
        if gone
            .iter()
            .any(|g| g.view().customer_id == held.view().customer_id)
        {
            // Held by a participant already: the store changed under us, which the
            // actor's one-message-at-a-time rules out; refuse rather than loop.
            return Err(err.into());
        }
        if absorbed.len() + 2 > MAX_MERGED {
            return Err(Problem::new(
                ErrorCode::MergeTooLarge,
                format!(
                    "the update's identifiers name more than {MAX_MERGED} profiles; merge them in smaller steps"
                ),
            ));
        }
        absorbed.push(held);
        // The update's target joins too: as itself, or as `fresh`.
        let mut participants: Vec<Profile> = absorbed.iter().map(|p| p.unpack(schema)).collect();
        participants.extend(old.clone().or_else(|| fresh.clone()));
        let m = merge_profiles(participants, now);
        update.customer_id = m.base.customer_id.clone();
        merged = Some(m);
    }
}

/// Builds the profile that `update` makes of `old` (absent: a new profile).
pub fn build_profile(
    schema: &Schema,
    settings: &DatabaseSettings,
    store: &impl Lookup,
    old: Option<&Profile>,
    update: &ProfileUpdate,
    now: Timestamp,
) -> Result<Profile, WriteError> {
    check_customer_id(&update.customer_id).map_err(WriteError::CustomerIdInvalid)?;
    // A profile's values are in schema order. A fresh one's, pushed in the update's
    // order, are in it already when that order is the schema's (as a file's columns
    // usually are); sorting them anyway would look every name up again, twice a
    // comparison.
    let mut in_order = old.is_none() || update.replace;
    let mut last = None;
    let mut p = match old {
        Some(old) if update.replace => {
            // PUT keeps identity (internal id, creation time) and consent: subscription
            // records (with their times and sources) survive a replace; all else goes.
            let mut fresh = Profile::new(old.customer_id.clone(), old.created_at);
            fresh.id = old.id;
            fresh.subscriptions = old.subscriptions.clone();
            fresh
        }
        Some(old) => old.clone(),
        None => Profile::new(update.customer_id.clone(), now),
    };

    for (name, raw) in &update.fields {
        let def = schema
            .get(name)
            .ok_or_else(|| WriteError::FieldUnknown(name.to_string()))?;
        match value::parse(def, raw)? {
            Some(v) => {
                in_order &= last.is_none_or(|l| def.id > l);
                last = Some(def.id);
                if in_order {
                    // After every value there: not one of them.
                    p.fields.push((def.id, v));
                } else {
                    set_field(&mut p, def.id, v);
                }
            }
            None => p.fields.retain(|(n, _)| *n != def.id),
        }
    }
    for name in &update.unset {
        let id = schema
            .id_of(name)
            .ok_or_else(|| WriteError::FieldUnknown(name.clone()))?;
        p.fields.retain(|(n, _)| *n != id);
    }
    if !in_order {
        // Number order is schema order.
        p.fields.sort_by_key(|(n, _)| *n);
    }

    for tag in &update.tags_add {
        if tag.is_empty() || tag.len() > MAX_TAG {
            return Err(WriteError::TagInvalid(format!(
                "tag `{tag}` must be 1 to {MAX_TAG} bytes"
            )));
        }
        if let Err(i) = p.tags.binary_search_by(|t| t.as_str().cmp(tag)) {
            p.tags.insert(i, tag.into());
        }
    }
    p.tags
        .retain(|t| !update.tags_remove.iter().any(|r| r == t));

    for (ns, v) in &update.identifiers {
        check_namespace(ns).map_err(WriteError::IdentifierInvalid)?;
        p.external_ids.retain(|(n, _)| n != ns);
        if let Some(v) = v {
            if v.is_empty() || v.len() > MAX_IDENTIFIER {
                return Err(WriteError::IdentifierInvalid(format!(
                    "identifier `{ns}` must be 1 to {MAX_IDENTIFIER} bytes"
                )));
            }
            p.external_ids.push((ns.into(), v.into()));
        }
    }
    p.external_ids.sort();

    for change in &update.subscriptions {
        settings
            .check_subscription(&change.resource, change.channel, &change.category)
            .map_err(WriteError::SubscriptionInvalid)?;
        let at = change.at.unwrap_or(now);
        if at < Timestamp::UNIX_EPOCH || at > now + jiff::SignedDuration::from_hours(24) {
            return Err(WriteError::SubscriptionInvalid(format!(
                "subscription time {at} is before 1970 or more than a day ahead"
            )));
        }
        // A clock a little ahead is tolerated but recorded as now: a choice dated in
        // the future would outrank the customer's own later opt-out until that time.
        let at = at.min(now);
        p.record_subscription(Subscription {
            resource: change.resource.as_str().into(),
            channel: change.channel,
            category: change.category.as_str().into(),
            status: change.status,
            at,
            source: update.source,
        });
    }

    refresh_contacts(&mut p, old, settings, &update.prepared);

    for def in schema.fields() {
        if def.required && def.default.is_none() && p.field(def.id).is_none() {
            return Err(WriteError::FieldRequired(def.name.to_string()));
        }
    }
    for key in p.identifier_keys() {
        if let Some(holder) = store.holder(&key)
            && holder != p.customer_id
        {
            return Err(WriteError::IdentifierConflict {
                identifier: key.to_string(),
                holder: holder.to_string(),
            });
        }
    }
    p.updated_at = now;
    Ok(p)
}

fn set_field(p: &mut Profile, id: FieldId, v: Value) {
    match p.fields.iter_mut().find(|(n, _)| *n == id) {
        Some(slot) => slot.1 = v,
        None => p.fields.push((id, v)),
    }
}

/// Re-derives the email and phone contacts from their fields. Phone parsing is the
/// costly part, so a phone is parsed again only when its value changed.
fn refresh_contacts(
    p: &mut Profile,
    old: Option<&Profile>,
    settings: &DatabaseSettings,
    prepared: &Prepared,
) {
    // A blank email or phone is no contact: it is neither validated nor indexed.
    p.email = str_field(p, FieldId::EMAIL).map(|s| {
        prepared
            .email(s)
            .cloned()
            .unwrap_or_else(|| EmailContact::new(s))
    });
    let phone = str_field(p, FieldId::PHONE);
    // An unparsed number is tried again: the database may have a default_region now.
    let unchanged = p.phone.as_ref().is_some_and(|c| c.e164.is_some())
        && phone == old.and_then(|o| str_field(o, FieldId::PHONE));
    if !unchanged {
        let region = settings.default_region.as_deref();
        p.phone = phone.map(|s| {
            prepared
                .phone(s, region)
                .cloned()
                .unwrap_or_else(|| PhoneContact::new(s, region))
        });
    }
}

fn str_field(p: &Profile, id: FieldId) -> Option<&str> {
    match p.field(id) {
        Some(Value::Str(s)) if !s.trim().is_empty() => Some(s.as_str()),
        _ => None,
    }
}

/// The identifier key a lookup `by/{kind}/{value}` uses, normalized like profiles are.
pub fn lookup_key(
    kind: &str,
    value: &str,
    settings: &DatabaseSettings,
) -> Result<compact_str::CompactString, Problem> {
    match kind {
        "email" => Ok(identifier_key(
            "email",
            &crate::contacts::normalize_email(value),
        )),
        "phone" => crate::contacts::normalize_phone(value, settings.default_region.as_deref())
            .map(|e164| identifier_key("phone", &e164))
            .ok_or_else(|| {
                Problem::new(
                    ErrorCode::IdentifierInvalid,
                    format!("`{value}` does not parse as a phone number"),
                )
            }),
        ns => {
            check_namespace(ns).map_err(|d| Problem::new(ErrorCode::IdentifierInvalid, d))?;
            Ok(identifier_key(ns, value))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::{FieldSpec, RawValue, Source};
    use crate::store::ProfileStore;

    fn setup() -> (Schema, DatabaseSettings, ProfileStore) {
        let settings = crate::db::test_settings();
        let spec: FieldSpec = serde_json::from_value(
            json!({"name":"tier","type":"list","values":["gold"],"required":true}),
        )
        .unwrap();
        let schema = Schema::default()
            .with_field(spec.into_def().unwrap())
            .unwrap();
        (schema, settings, ProfileStore::new())
    }

    fn update(fields: serde_json::Value) -> ProfileUpdate {
        let mut u = ProfileUpdate::new("c1", Source::Api);
        for (k, v) in fields.as_object().unwrap() {
            u.fields
                .push((k.as_str().into(), RawValue::Json(v.clone())));
        }
        u
    }

    #[test]
    fn prepared_contacts_are_used_only_for_the_value_and_region_they_were_made_for() {
        let (schema, settings, store) = setup();
        let build = |u: &ProfileUpdate| {
            build_profile(&schema, &settings, &store, None, u, Timestamp::UNIX_EPOCH).unwrap()
        };
        let mut u = update(json!({"tier":"gold","phone":"912345678","email":"A@b.example"}));
        u.prepare(Some("PT"));
        let p = build(&u);
        assert_eq!(
            p.phone.as_ref().unwrap().e164.as_deref(),
            Some("+351912345678")
        );
        assert_eq!(p.email.as_ref().unwrap().normalized, "a@b.example");
        // Prepared under another region, or for another value: derived again, not used.
        let mut stale = u.clone();
        stale.prepare(Some("ES"));
        assert_eq!(build(&stale).phone, p.phone);
        let mut other = u.clone();
        other.prepared.email = Some(("x@y.example".into(), EmailContact::new("x@y.example")));
        other.prepared.phone = Some((
            "912345678".into(),
            Some("PT".into()),
            PhoneContact::new("+34 612 345 678", None),
        ));
        let q = build(&other);
        assert_eq!(q.email, p.email);
        // Same value and region: the prepared contact is trusted as it is.
        assert_eq!(
            q.phone.as_ref().unwrap().e164.as_deref(),
            Some("+34612345678")
        );
    }

    #[test]
    fn required_fields_refuse_writes_without_them() {
        let (schema, settings, store) = setup();
        let err = build_profile(
            &schema,
            &settings,
            &store,
            None,
            &update(json!({"city":"Porto"})),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap_err();
        assert_eq!(err, WriteError::FieldRequired("tier".into()));
        let ok = build_profile(
            &schema,
            &settings,
            &store,
            None,
            &update(json!({"tier":"gold","phone":"912345678"})),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        assert_eq!(ok.phone.unwrap().e164.as_deref(), Some("+351912345678"));
    }

    #[test]
    fn fields_keep_schema_order_and_unknown_fields_fail() {
        let (schema, settings, store) = setup();
        let p = build_profile(
            &schema,
            &settings,
            &store,
            None,
            &update(json!({"tier":"gold","city":"Porto","first_name":"Ana"})),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        let name = |id: &FieldId| schema.by_id(*id).unwrap().name.to_string();
        let names: Vec<_> = p.fields.iter().map(|(n, _)| name(n)).collect();
        assert_eq!(names, ["first_name", "city", "tier"]);
        // Given in schema order, out of it, twice, or set and cleared: stored in it, each
        // with its last value (`-`: cleared; a value is the name's place in `given`).
        for (given, stored) in [
            (
                &["first_name", "last_name", "tier"][..],
                &["first_name=1", "last_name=2", "tier"][..],
            ),
            (
                &["last_name", "first_name", "tier"],
                &["first_name=2", "last_name=1", "tier"],
            ),
            (
                &["first_name", "last_name", "first_name", "tier"],
                &["first_name=3", "last_name=2", "tier"],
            ),
            (
                &["first_name", "-first_name", "last_name", "tier"],
                &["last_name=3", "tier"],
            ),
            (
                &["last_name", "-last_name", "first_name", "last_name", "tier"],
                &["first_name=3", "last_name=4", "tier"],
            ),
        ] {
            let mut u = ProfileUpdate::new("c1", Source::Api);
            for (i, name) in given.iter().enumerate() {
                let value = match *name {
                    "tier" => json!("gold"),
                    n if n.starts_with('-') => json!(null),
                    _ => json!((i + 1).to_string()),
                };
                let name = name.trim_start_matches('-');
                u.fields.push((name.into(), RawValue::Json(value)));
            }
            let p =
                build_profile(&schema, &settings, &store, None, &u, Timestamp::UNIX_EPOCH).unwrap();
            let got: Vec<String> = p
                .fields
                .iter()
                .map(|(n, v)| match v {
                    Value::Str(s) if name(n) != "tier" => format!("{}={s}", name(n)),
                    _ => name(n),
                })
                .collect();
            assert_eq!(got, stored, "{given:?}");
        }
        // A replace starts afresh over the stored profile: its values go, the given ones
        // are sorted; an unset one is gone.
        let mut replace = update(json!({"tier":"gold","last_name":"Silva","city":"Faro"}));
        replace.replace = true;
        replace.unset.push("city".into());
        let q = build_profile(
            &schema,
            &settings,
            &store,
            Some(&p),
            &replace,
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        let names: Vec<_> = q.fields.iter().map(|(n, _)| name(n)).collect();
        assert_eq!(names, ["last_name", "tier"]);
        let err = build_profile(
            &schema,
            &settings,
            &store,
            None,
            &update(json!({"nope":1})),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap_err();
        assert_eq!(err, WriteError::FieldUnknown("nope".into()));
    }

    #[test]
    fn identifiers_held_elsewhere_conflict() {
        let (schema, settings, store) = setup();
        let mut first = update(json!({"tier":"gold","email":"Ana@Example.com"}));
        first.customer_id = "a".into();
        let a = build_profile(
            &schema,
            &settings,
            &store,
            None,
            &first,
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        store.put(Packed::encode(&a), None);
        let second = update(json!({"tier":"gold","email":"ana@example.COM"}));
        let err = build_profile(
            &schema,
            &settings,
            &store,
            None,
            &second,
            Timestamp::UNIX_EPOCH,
        )
        .unwrap_err();
        assert!(matches!(err, WriteError::IdentifierConflict { ref holder, .. } if holder == "a"));
    }
}
