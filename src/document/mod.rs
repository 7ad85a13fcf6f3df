//! The profile document: how a stored profile is shown, whole or projected.
//!
//! [`render`] writes a document straight from a profile's packed bytes and the schema,
//! with no intermediate JSON tree (`write.rs`, from the byte-exact value writers of
//! `json.rs`), adding what is computed at read time: default values of unset fields,
//! day counts against today, derived activity members, channels. [`Projection`] is
//! parsed once per request from `?fields=` and selects members by dotted path; the
//! members' `Serialize` views here are what a projection cuts and what the tests hold
//! the bytes to. Pure; called by HTTP handlers, segment evaluation and the benches.

mod json;
mod write;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value as Json};

use crate::activity::{Activity, ActivityStore, Rfm};
use crate::channels::{self, Reach};
use crate::error::{ErrorCode, Problem};
use crate::schema::{Channel, FieldId, Schema, Source, SubscriptionStatus};
use crate::segments::SavedSegments;
use crate::store::{MergeRecord, ProfileStore};
use crate::store::{Packed, ProfileView, ValueRef};

/// Top-level members of the profile document, in output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Identifiers,
    Tags,
    Contacts,
    Channels,
    Subscriptions,
    Stats,
    Rfm,
    Interests,
    FavoriteStores,
    AbandonedCart,
    Bonuses,
    Mailings,
    PromoCodes,
    Polls,
    CreatedAt,
    UpdatedAt,
    Segments,
    Merges,
}

const MEMBERS: &[(&str, Member)] = &[
    ("identifiers", Member::Identifiers),
    ("tags", Member::Tags),
    ("contacts", Member::Contacts),
    ("channels", Member::Channels),
    ("subscriptions", Member::Subscriptions),
    ("stats", Member::Stats),
    ("rfm", Member::Rfm),
    ("interests", Member::Interests),
    ("favorite_stores", Member::FavoriteStores),
    ("abandoned_cart", Member::AbandonedCart),
    ("bonuses", Member::Bonuses),
    ("mailings", Member::Mailings),
    ("promo_codes", Member::PromoCodes),
    ("polls", Member::Polls),
    ("created_at", Member::CreatedAt),
    ("updated_at", Member::UpdatedAt),
    ("segments", Member::Segments),
    ("merges", Member::Merges),
];

const STATS_KEYS: &[&str] = &[
    "receipts_count",
    "receipts_total",
    "last_receipt_total",
    "average_receipt",
    "average_items",
    "first_receipt_at",
    "last_receipt_at",
    "days_since_first_receipt",
    "days_since_last_receipt",
    "days_since_registration",
];

const BONUS_KEYS: &[&str] = &[
    "active",
    "pending_activation",
    "pending_deactivation",
    "next_deactivation_at",
    "next_deactivation_amount",
];

const RFM_KEYS: &[&str] = &["r", "f", "m", "segment"];

/// A parsed `?fields=` list: which fields and which members to show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    /// Fields by name and number (found once, at parse: numbers are never reused, so
    /// they stay right whatever the schema is by the time a profile is rendered).
    fields: Vec<(String, FieldId)>,
    members: Vec<(Member, Vec<String>)>,
}

impl Projection {
    /// Parses a comma-separated list of names and dotted paths against a schema.
    pub fn parse(list: &str, schema: &Schema) -> Result<Self, Problem> {
        Self::from_paths(list.split(','), schema)
    }

    /// Parses a list of names and dotted paths against a schema.
    pub fn from_paths<'a>(
        paths: impl IntoIterator<Item = &'a str>,
        schema: &Schema,
    ) -> Result<Self, Problem> {
        let mut p = Projection::default();
        for raw in paths {
            let path = raw.trim();
            if path.is_empty() {
                continue;
            }
            let mut parts = path.split('.');
            let head = parts.next().unwrap_or_default();
            let rest: Vec<String> = parts.map(str::to_owned).collect();
            if rest.iter().any(String::is_empty) {
                return Err(bad(path, "has an empty segment"));
            }
            if head == "id" || head == "customer_id" {
                continue; // always shown
            }
            if head == "fields" {
                match rest.as_slice() {
                    [] => {
                        for f in schema.fields() {
                            p.add_field(&f.name, schema)?;
                        }
                    }
                    [name] => p.add_field(name, schema)?,
                    _ => return Err(bad(path, "reaches inside a field value")),
                }
                continue;
            }
            if let Some((_, member)) = MEMBERS.iter().find(|(n, _)| *n == head) {
                check_member_path(*member, head, &rest).map_err(|why| bad(path, &why))?;
                p.members.push((*member, rest));
                continue;
            }
            if rest.is_empty() {
                p.add_field(head, schema)?;
            } else {
                return Err(bad(
                    path,
                    &format!("`{head}` is not a member of the profile document"),
                ));
            }
        }
        Ok(p)
    }

    fn add_field(&mut self, name: &str, schema: &Schema) -> Result<(), Problem> {
        let Some(id) = schema.id_of(name) else {
            return Err(Problem::new(
                ErrorCode::FieldUnknown,
                format!("`{name}` is neither a field of this database nor a member of the profile document"),
            )
            .with("field", name));
        };
        if !self.fields.iter().any(|(f, _)| f == name) {
            self.fields.push((name.to_owned(), id));
        }
        Ok(())
    }
}

const EMAIL_KEYS: &[&str] = &["value", "normalized", "valid", "reason"];
const PHONE_KEYS: &[&str] = &["value", "valid", "e164", "region", "type", "reason"];
const CHANNEL_KEYS: &[&str] = &["eligible", "reason", "list"];

/// Checks a dotted path below a document member against the member's shape.
fn check_member_path(member: Member, head: &str, rest: &[String]) -> Result<(), String> {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let keyed = |keys: &[&str], rest: &[&str]| match rest {
        [] => Ok(()),
        [k] if keys.contains(k) => Ok(()),
        [k] => Err(format!("`{head}` has no member `{k}`; it has {keys:?}")),
        _ => Err(format!("`{head}` members hold plain values")),
    };
    match member {
        Member::Stats => keyed(STATS_KEYS, &rest),
        Member::Bonuses => keyed(BONUS_KEYS, &rest),
        Member::Rfm => keyed(RFM_KEYS, &rest),
        Member::Identifiers => match rest.as_slice() {
            [] | [_] => Ok(()),
            _ => Err("identifiers hold plain values".into()),
        },
        Member::Contacts => match rest.as_slice() {
            [] | ["email"] | ["phone"] => Ok(()),
            ["email", k] if EMAIL_KEYS.contains(k) => Ok(()),
            ["phone", k] if PHONE_KEYS.contains(k) => Ok(()),
            ["email", ..] => Err(format!("`contacts.email` has members {EMAIL_KEYS:?}")),
            ["phone", ..] => Err(format!("`contacts.phone` has members {PHONE_KEYS:?}")),
            _ => Err("`contacts` has members [\"email\", \"phone\"]".into()),
        },
        Member::Channels => match rest.as_slice() {
            [] | ["email" | "sms" | "push"] => Ok(()),
            ["email" | "sms" | "push", k] if CHANNEL_KEYS.contains(k) => Ok(()),
            ["email" | "sms" | "push", ..] => {
                Err(format!("a channel has members {CHANNEL_KEYS:?}"))
            }
            _ => Err("`channels` has members [\"email\", \"sms\", \"push\"]".into()),
        },
        _ if rest.is_empty() => Ok(()),
        _ => Err(format!("`{head}` has no members to select")),
    }
}

fn bad(path: &str, why: &str) -> Problem {
    Problem::new(
        ErrorCode::ProjectionInvalid,
        format!("projection `{path}` {why}"),
    )
    .with("path", path)
}

/// A function of any `Serialize` value (closures cannot be generic).
trait ViewFn<R> {
    fn call<T: Serialize + ?Sized>(self, v: &T) -> R;
}

/// A member view as a JSON tree (projections cut it to paths).
struct ToValue;

impl ViewFn<serde_json::Result<Json>> for ToValue {
    fn call<T: Serialize + ?Sized>(self, v: &T) -> serde_json::Result<Json> {
        serde_json::to_value(v)
    }
}

/// A member view as serde_json writes it (the tests' reference bytes).
#[cfg(test)]
struct ToText;

#[cfg(test)]
impl ViewFn<serde_json::Result<String>> for ToText {
    fn call<T: Serialize + ?Sized>(self, v: &T) -> serde_json::Result<String> {
        serde_json::to_string(v)
    }
}

/// A profile ready to serialize: the whole document, or a projection of it.
pub struct Document<'a, 'v> {
    /// The profile.
    pub profile: &'a ProfileView<'v>,
    /// The schema it is shown with (for defaults).
    pub schema: &'a Schema,
    /// What to show; `None` for everything.
    pub projection: Option<&'a Projection>,
    /// The profile's activity, read now.
    pub derived: Derived<'a>,
    /// The suppression lists its channels are checked against.
    pub reach: Reach<'a>,
    /// Its saved segments and merge history (`None`: shown as none).
    pub related: Option<Related<'a>>,
}

/// The field values other members repeat or derive from.
#[derive(Default)]
struct Known<'v> {
    email: &'v str,
    phone: &'v str,
    registered_at: Option<jiff::Timestamp>,
}

impl<'v> Known<'v> {
    /// Takes note of a field value if it is one of the known ones.
    fn note(&mut self, id: FieldId, value: &ValueRef<'v>) {
        match (id, value) {
            (FieldId::EMAIL, ValueRef::Str(s)) => self.email = s,
            (FieldId::PHONE, ValueRef::Str(s)) => self.phone = s,
            (FieldId::REGISTERED_AT, ValueRef::DateTime(t)) => self.registered_at = Some(*t),
            _ => {}
        }
    }
}

impl<'v> Document<'_, 'v> {
    /// The known values, looked up one by one (projections; the whole document notes
    /// them on its one pass over the fields).
    fn known(&self) -> Known<'v> {
        let mut k = Known::default();
        for id in [FieldId::EMAIL, FieldId::PHONE, FieldId::REGISTERED_AT] {
            if let Some(v) = self.profile.field(id) {
                k.note(id, &v);
            }
        }
        k
    }

    fn member_json(&self, m: Member) -> Json {
        self.member_view(m, ToValue)
            .expect("document members serialize")
    }

    /// A member's view serialized on its own: the bytes the whole document must hold.
    #[cfg(test)]
    fn member_text(&self, m: Member) -> String {
        self.member_view(m, ToText)
            .expect("document members serialize")
    }

    /// Calls `f` with member `m`'s `Serialize` view.
    fn member_view<R>(&self, m: Member, f: impl ViewFn<R>) -> R {
        let p = self.profile;
        match m {
            Member::Identifiers => f.call(&Identifiers(p)),
            Member::Tags => f.call(&p.tags()),
            Member::Contacts => f.call(&self.contacts(&self.known())),
            Member::Channels => f.call(&channels::channels(p, self.reach)),
            Member::Subscriptions => f.call(&Subs(p)),
            Member::Stats => f.call(&self.stats(&self.known())),
            Member::Rfm => f.call(&self.derived.rfm()),
            Member::Interests => f.call(&self.derived.interests()),
            Member::FavoriteStores => f.call(&self.derived.favorite_stores()),
            Member::AbandonedCart => f.call(&self.derived.abandoned_cart()),
            Member::Bonuses => f.call(&self.derived.bonuses()),
            Member::Mailings => f.call(&self.derived.mailings()),
            Member::PromoCodes => f.call(&self.derived.promo_codes()),
            Member::Polls => f.call(&self.derived.polls()),
            Member::CreatedAt => f.call(&p.created_at()),
            Member::UpdatedAt => f.call(&p.updated_at()),
            Member::Segments => f.call(&self.segment_names()),
            Member::Merges => f.call(&self.merges().as_deref().unwrap_or_default()),
        }
    }

    fn segment_names(&self) -> Vec<String> {
        self.related
            .map(|r| r.segments_of(self.profile.customer_id))
            .unwrap_or_default()
    }

    /// The profiles it absorbed, if any (most absorbed none: one atomic load).
    fn merges(&self) -> Option<std::sync::Arc<[MergeRecord]>> {
        self.related
            .and_then(|r| r.store.merges.history_of(self.profile.customer_id))
    }

    fn contacts(&self, known: &Known<'v>) -> Contacts<'v> {
        let p = self.profile;
        Contacts {
            email: p.email.as_ref().map(|c| EmailView {
                value: known.email,
                normalized: c.normalized,
                valid: c.reason.is_none(),
                reason: c.reason,
            }),
            phone: p.phone.as_ref().map(|c| PhoneView {
                value: known.phone,
                valid: c.valid,
                e164: c.e164,
                region: c.region,
                kind: c.kind,
                reason: c.reason,
            }),
        }
    }

    fn stats(&self, known: &Known<'v>) -> Stats {
        let mut stats = self.derived.stats();
        stats.days_since_registration = self.days_since_registration(known);
        stats
    }

    fn days_since_registration(&self, known: &Known<'v>) -> i64 {
        let registered = known.registered_at.unwrap_or(self.profile.created_at());
        days_between(registered, self.derived.now)
    }
}

/// `identifiers`: email and phone in their normalized forms, then external ids.
struct Identifiers<'a, 'v>(&'a ProfileView<'v>);

impl Serialize for Identifiers<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut map = s.serialize_map(None)?;
        if let Some(e) = &p.email {
            map.serialize_entry("email", e.normalized)?;
        }
        if let Some(e164) = p.phone.as_ref().and_then(|p| p.e164) {
            map.serialize_entry("phone", e164)?;
        }
        for (ns, v) in p.external_ids() {
            map.serialize_entry(ns, v)?;
        }
        map.end()
    }
}

/// `contacts`.
#[derive(Serialize)]
struct Contacts<'a> {
    email: Option<EmailView<'a>>,
    phone: Option<PhoneView<'a>>,
}

/// `contacts.email`: the field's value and what was derived from it.
#[derive(Serialize)]
struct EmailView<'a> {
    value: &'a str,
    normalized: &'a str,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// `contacts.phone`: the field's value and what libphonenumber made of it.
#[derive(Serialize)]
struct PhoneView<'a> {
    value: &'a str,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    e164: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

use crate::activity::view::{Derived, Stats, days_between};

struct Subs<'a, 'v>(&'a ProfileView<'v>);

/// One subscription record as documents show it.
#[derive(Serialize)]
pub struct SubView<'a> {
    resource: &'a str,
    channel: Channel,
    category: &'a str,
    status: SubscriptionStatus,
    at: jiff::Timestamp,
    source: Source,
}

impl<'a> From<crate::store::SubscriptionRef<'a>> for SubView<'a> {
    fn from(sub: crate::store::SubscriptionRef<'a>) -> Self {
        SubView {
            resource: sub.resource,
            channel: sub.channel,
            category: sub.category,
            status: sub.status,
            at: sub.at,
            source: sub.source,
        }
    }
}

/// Every subscription change kept, newest first.
pub fn subscription_history<'a>(p: &ProfileView<'a>) -> Vec<SubView<'a>> {
    let mut all: Vec<SubView<'a>> = p.subscription_history().map(SubView::from).collect();
    all.sort_by_key(|v| std::cmp::Reverse(v.at));
    all
}

impl Serialize for Subs<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.subscriptions().map(SubView::from))
    }
}

/// Copies `src` at `path` into `dst` at the same path. A parent that is not an object
/// (a `null` contact) is copied as it is; absent keys are left out.
fn pick(src: &Json, path: &[String], dst: &mut Json) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(value) = src.get(first.as_str()) else {
        return;
    };
    let Json::Object(out) = dst else { return };
    if rest.is_empty() || !value.is_object() {
        out.insert(first.clone(), value.clone());
    } else {
        let slot = out
            .entry(first.clone())
            .or_insert_with(|| Json::Object(Map::new()));
        pick(value, rest, slot);
    }
}

/// What a document shows from beyond the profile's own bytes and activity: the saved
/// segments it belongs to and the profiles it absorbed.
#[derive(Debug, Clone, Copy)]
pub struct Related<'a> {
    /// The database's saved segments.
    pub segments: &'a SavedSegments,
    /// Its profiles (slots, merge histories).
    pub store: &'a ProfileStore,
}

impl Related<'_> {
    /// The names of the saved segments the profile `customer_id` belongs to.
    pub fn segments_of(&self, customer_id: &str) -> Vec<String> {
        if self.segments.is_empty() {
            return Vec::new();
        }
        self.store
            .get_slotted(customer_id)
            .map(|(slot, _)| self.segments.of(slot))
            .unwrap_or_default()
    }
}

/// What a read needs beside the profile: its activity, the moment, and the lists its
/// channels are checked against.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The database's activity store.
    pub activity: &'a ActivityStore,
    /// The moment of the read (day counts, bonuses).
    pub now: jiff::Timestamp,
    /// The database's interest window.
    pub window_days: u32,
    /// Suppression lists for `channels`.
    pub reach: Reach<'a>,
    /// Saved segments and merge histories, for `segments` and `merges`.
    pub related: Option<Related<'a>>,
}

impl<'a> Context<'a> {
    /// A context for documents outside a database's state (tests, benches): the
    /// default interest window (30 days), no saved segments or merges.
    pub fn detached(
        activity: &'a ActivityStore,
        lists: &'a crate::suppression::SuppressionLists,
        attached: &'a [String],
        now: jiff::Timestamp,
    ) -> Self {
        Context {
            activity,
            now,
            window_days: 30,
            reach: Reach { lists, attached },
            related: None,
        }
    }
}

/// Serializes a profile's document: [`render_view`] of its bytes, except that a
/// projection of fields alone reads only the head of the bytes (the lookup path).
pub fn render(
    profile: &Packed,
    schema: &Schema,
    projection: Option<&Projection>,
    cx: &Context<'_>,
) -> Vec<u8> {
    match projection {
        Some(p) if p.members.is_empty() => {
            let head = profile.head();
            let mut out = Vec::with_capacity(64 + 32 * p.fields.len());
            write::ids_and_fields(
                &mut out,
                head.id(),
                head.customer_id,
                head.fields(),
                schema,
                p,
            );
            out.push(b'}');
            out
        }
        _ => render_view(&profile.view(), schema, projection, cx),
    }
}

/// Serializes a profile's document, with its activity read in place from the context's
/// store (the shard's read lock held only while the bytes are written).
pub fn render_view(
    profile: &ProfileView<'_>,
    schema: &Schema,
    projection: Option<&Projection>,
    cx: &Context<'_>,
) -> Vec<u8> {
    let doc = |act: Option<&Activity>, rfm: Option<Rfm>| {
        to_vec(&Document {
            profile,
            schema,
            projection,
            derived: Derived {
                activity: act,
                rfm,
                now: cx.now,
                window_days: cx.window_days,
            },
            reach: cx.reach,
            related: cx.related,
        })
    };
    // A projection reads only what it shows: no activity lookup for `?fields=email`,
    // no RFM ranking unless `rfm` is asked for.
    let wants = |m: Member| projection.is_none_or(|p| p.members.iter().any(|(pm, _)| *pm == m));
    if !ACTIVITY_MEMBERS.iter().any(|m| wants(*m)) {
        doc(None, None)
    } else if wants(Member::Rfm) {
        cx.activity.read(profile.customer_id, doc)
    } else {
        cx.activity.with(profile.customer_id, |act| doc(act, None))
    }
}

/// Everything held about one customer, as one JSON document (the right of access):
/// the whole profile document, every subscription change kept, and the whole timeline
/// (newest first). `database` names where it is held.
pub fn export(
    profile: &ProfileView<'_>,
    schema: &Schema,
    cx: &Context<'_>,
    database: &str,
) -> Vec<u8> {
    #[derive(Serialize)]
    struct Export<'a> {
        database: &'a str,
        exported_at: jiff::Timestamp,
        profile: Box<RawValue>,
        subscription_history: Vec<SubView<'a>>,
        activity: Box<RawValue>,
    }
    let whole = render_view(profile, schema, None, cx);
    let events = cx.activity.with(profile.customer_id, |act| {
        let all = act.map_or_else(Vec::new, |a| {
            crate::activity::view::page(a, &[], None, usize::MAX).0
        });
        serde_json::to_string(
            &all.into_iter()
                .map(crate::activity::view::EventView)
                .collect::<Vec<_>>(),
        )
        .expect("events serialize")
    });
    let raw = |text: String| RawValue::from_string(text).expect("rendered JSON");
    serde_json::to_vec(&Export {
        database,
        exported_at: cx.now,
        profile: raw(String::from_utf8(whole).expect("documents are UTF-8")),
        subscription_history: subscription_history(profile),
        activity: raw(events),
    })
    .expect("an export serializes")
}

/// The members read from a profile's activity.
const ACTIVITY_MEMBERS: &[Member] = &[
    Member::Stats,
    Member::Rfm,
    Member::Interests,
    Member::FavoriteStores,
    Member::AbandonedCart,
    Member::Bonuses,
    Member::Mailings,
    Member::PromoCodes,
    Member::Polls,
];

/// Serializes a document to JSON bytes.
pub fn to_vec(doc: &Document<'_, '_>) -> Vec<u8> {
    match doc.projection {
        None => {
            let mut out = Vec::with_capacity(2048);
            doc.write_whole(&mut out);
            out
        }
        Some(p) => {
            let mut out = Vec::with_capacity(256);
            doc.write_projection(p, &mut out);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::activity::Activity;
    use crate::schema::{FieldSpec, Value};
    use crate::store::{Packed, Profile};

    fn schema() -> Schema {
        let spec: FieldSpec = serde_json::from_value(
            serde_json::json!({"name":"score","type":"integer","default":5}),
        )
        .unwrap();
        Schema::default()
            .with_field(spec.into_def().unwrap())
            .unwrap()
    }

    fn profile() -> Profile {
        let mut p = Profile::new(
            "c1".into(),
            "2024-01-01T00:00:00Z".parse::<Timestamp>().unwrap(),
        );
        p.fields.push((
            Schema::default().id_of("city").unwrap(),
            Value::Str("Lisbon".into()),
        ));
        p.tags.push("vip".into());
        p
    }

    fn render(proj: Option<&str>) -> Json {
        let s = schema();
        let p = Packed::encode(&profile());
        let view = p.view();
        let proj = proj.map(|l| Projection::parse(l, &s).unwrap());
        let doc = Document {
            profile: &view,
            schema: &s,
            projection: proj.as_ref(),
            derived: derived(None),
            reach: reach(),
            related: None,
        };
        serde_json::from_slice(&to_vec(&doc)).unwrap()
    }

    #[test]
    fn whole_document_shows_defaults_and_day_counts() {
        let v = render(None);
        assert_eq!(v["fields"]["city"], "Lisbon");
        assert_eq!(v["fields"]["score"], 5);
        assert_eq!(v["tags"][0], "vip");
        assert_eq!(v["stats"]["days_since_registration"], 10);
        assert_eq!(v["rfm"], Json::Null);
        assert_eq!(v["created_at"], "2024-01-01T00:00:00Z");
    }

    /// Every member after `fields`, each as its view serializes alone, and the close.
    fn members_text(doc: &Document<'_, '_>) -> String {
        let mut out = String::new();
        for (name, m) in MEMBERS {
            out.push_str(&format!(",\"{name}\":{}", doc.member_text(*m)));
        }
        out.push('}');
        out
    }

    fn reach() -> Reach<'static> {
        static LISTS: std::sync::LazyLock<crate::suppression::SuppressionLists> =
            std::sync::LazyLock::new(|| crate::suppression::SuppressionLists::open(None).unwrap());
        Reach {
            lists: &LISTS,
            attached: &[],
        }
    }

    fn derived(activity: Option<&Activity>) -> Derived<'_> {
        let now: Timestamp = "2024-01-11T12:00:00Z".parse().unwrap();
        Derived {
            activity,
            rfm: activity.map(|_| crate::activity::Rfm { r: 5, f: 1, m: 3 }),
            now,
            window_days: 30,
        }
    }

    fn activity() -> Activity {
        let ev = |kind: &str, data: Json| {
            crate::activity::event::build(kind, 1_704_800_000_000_000, Some(data))
                .unwrap()
                .0
        };
        let mut a = Activity::default();
        a.apply(
            1,
            &[
                ev("receipt", serde_json::json!({"receipt_id":"r","total":9.5,"store":{"id":"s","name":"Main \"St\""},
                    "items":[{"sku":"a","category":"tv","price":9.5}]})),
                ev("category_view", serde_json::json!({"category":"radio"})),
                ev("cart_add", serde_json::json!({"sku":"b","name":"Radio","price":20})),
                ev("bonus", serde_json::json!({"amount":5,"status":"active","expires_at":"2030-01-01T00:00:00Z"})),
                ev("mailing", serde_json::json!({"mailing_id":"m","channel":"sms","control_group":true})),
                ev("promo_code", serde_json::json!({"code":"X"})),
                ev("poll", serde_json::json!({"poll_id":"p","answers":[{"question":"q","answer":["a","b"]}]})),
            ],
            1000,
        );
        a
    }

    #[test]
    fn whole_document_bytes_match_the_member_views() {
        let s = schema();
        let mut p = profile();
        p.email = Some(crate::contacts::EmailContact::new("a\"b@example.com"));
        p.external_ids.push(("crm".into(), "x\u{1}y".into()));
        let p = Packed::encode(&p);
        let view = p.view();
        let act = activity();
        for with_activity in [false, true] {
            let doc = Document {
                profile: &view,
                schema: &s,
                projection: None,
                derived: derived(with_activity.then_some(&act)),
                reach: reach(),
                related: None,
            };
            let bytes = to_vec(&doc);
            let v: Json = serde_json::from_slice(&bytes).unwrap();
            for (name, m) in MEMBERS {
                assert_eq!(v[*name], doc.member_json(*m), "{name}");
            }
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.ends_with(&members_text(&doc)), "{text}");
            let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(keys.len(), 3 + MEMBERS.len(), "{keys:?}");
            if with_activity {
                assert_eq!(v["stats"]["receipts_count"], 1);
                assert_eq!(v["rfm"]["segment"], "new");
                assert_eq!(v["interests"][0]["category"], "radio");
                assert_eq!(v["favorite_stores"][0]["name"], "Main \"St\"");
                assert_eq!(v["abandoned_cart"][0]["sku"], "b");
                assert_eq!(v["bonuses"]["active"], 5.0);
                assert_eq!(v["mailings"][0]["control_group"], true);
                assert_eq!(v["polls"][0]["answers"][0]["answer"][1], "b");
            }
        }
    }

    proptest::proptest! {
        /// The hand-written whole document and the serde member views agree on any
        /// profile: escapes, every value type, contacts, subscriptions, ids.
        #[test]
        fn whole_document_bytes_match_the_views_for_any_profile(
            p in crate::store::packed::tests::profile()
        ) {
            let s = crate::store::packed::tests::schema();
            let p = Packed::encode(&p);
            let view = p.view();
            let doc = Document {
                profile: &view,
                schema: &s,
                projection: None,
                derived: derived(None),
                reach: reach(),
                related: None,
            };
            let bytes = to_vec(&doc);
            let v: Json = serde_json::from_slice(&bytes).unwrap();
            for (name, m) in MEMBERS {
                proptest::prop_assert_eq!(&v[*name], &doc.member_json(*m), "{}", name);
            }
            // Byte for byte, key order included: every member after `fields` as its view
            // serializes on its own.
            proptest::prop_assert_eq!(
                String::from_utf8(bytes[bytes.len() - members_text(&doc).len()..].to_vec()).unwrap(),
                members_text(&doc)
            );
            // Every field through serde, in the whole document and in a projection of
            // all fields (`null` for one without a value).
            let names: Vec<&str> = s.fields().iter().map(|d| &*d.name).collect();
            let all = Projection::from_paths(names.iter().copied(), &s).unwrap();
            let bytes = to_vec(&Document {
                projection: Some(&all),
                ..doc
            });
            // The lookup path's head-only writer of the same projection: the same bytes.
            let activity = ActivityStore::new();
            let cx = Context::detached(&activity, reach().lists, &[], derived(None).now);
            proptest::prop_assert_eq!(&super::render(&p, &s, Some(&all), &cx), &bytes);
            let projected: Json = serde_json::from_slice(&bytes).unwrap();
            for name in names {
                let expected =
                    serde_json::to_value(view.field(s.id_of(name).unwrap())).unwrap();
                let whole = v["fields"].get(name).unwrap_or(&Json::Null);
                proptest::prop_assert_eq!(whole, &expected, "{}", name);
                proptest::prop_assert_eq!(&projected["fields"][name], &expected, "{}", name);
            }
        }
    }

    #[test]
    fn suppressed_channels_name_their_list() {
        let lists = crate::suppression::SuppressionLists::open(None).unwrap();
        let e = crate::suppression::Entries {
            emails: vec!["a@example.com".into()],
            ..Default::default()
        };
        lists.add(crate::suppression::GLOBAL, &e).unwrap();
        let mut p = profile();
        p.email = Some(crate::contacts::EmailContact::new("A@example.com"));
        let p = Packed::encode(&p);
        let view = p.view();
        let doc = Document {
            profile: &view,
            schema: &schema(),
            projection: None,
            derived: derived(None),
            reach: Reach {
                lists: &lists,
                attached: &[],
            },
            related: None,
        };
        let v: Json = serde_json::from_slice(&to_vec(&doc)).unwrap();
        assert_eq!(v["channels"], doc.member_json(Member::Channels));
        assert_eq!(
            v["channels"]["email"],
            serde_json::json!({"eligible": false, "reason": "suppressed", "list": "global"})
        );
    }

    #[test]
    fn projections_select_paths() {
        let v = render(Some(
            "city,score,first_name,stats.days_since_registration,tags,channels.sms.reason",
        ));
        assert_eq!(
            v,
            serde_json::json!({
                "id": v["id"], "customer_id": "c1",
                "fields": {"city": "Lisbon", "score": 5, "first_name": null},
                "tags": ["vip"],
                "channels": {"sms": {"reason": "no_contact"}},
                "stats": {"days_since_registration": 10},
            })
        );
    }

    #[test]
    fn bad_projections_are_refused() {
        let s = schema();
        assert_eq!(
            Projection::parse("nope", &s).unwrap_err().code,
            ErrorCode::FieldUnknown
        );
        assert_eq!(
            Projection::parse("stats.nope", &s).unwrap_err().code,
            ErrorCode::ProjectionInvalid
        );
        for bad in [
            "city.x",
            "tags.x",
            "created_at.x",
            "stats.receipts_count.x",
            "contacts.fax",
            "contacts.email.nope",
            "channels.fax",
            "channels.sms.nope",
            "identifiers.crm.x",
        ] {
            assert_eq!(
                Projection::parse(bad, &s).unwrap_err().code,
                ErrorCode::ProjectionInvalid,
                "{bad}"
            );
        }
        let twice = Projection::parse("city,fields,fields.city", &s).unwrap();
        assert_eq!(twice.fields.iter().filter(|(f, _)| f == "city").count(), 1);
    }
}
