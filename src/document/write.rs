//! The profile document as bytes, whole or projected: the writer of the lookup path.
//!
//! The fixed layout and keys are written as bytes, values through [`super::json`]'s
//! writers. A projection's members are the `Serialize` views (`member_json`) cut to the
//! requested paths; the tests in `super` hold the whole document's bytes to those views
//! for every member, on fixed and on generated profiles. Pure.

use serde_json::{Map, Value as Json};
use smallvec::SmallVec;

use super::{Document, Known, MEMBERS, Projection, json, pick};
use crate::activity::view::STATS_EMPTY_PREFIX;
use crate::channels::{self, Verdict};
use crate::schema::{FieldId, Schema};
use crate::store::ProfileView;
use crate::store::ValueRef;

/// The members that hold nothing until events exist: `rfm` to `polls`.
const EMPTY_ACTIVITY: &str = ",\"rfm\":null,\"interests\":[],\"favorite_stores\":[],\"abandoned_cart\":[],\
\"bonuses\":{\"active\":0.0,\"pending_activation\":0.0,\"pending_deactivation\":0.0,\
\"next_deactivation_at\":null,\"next_deactivation_amount\":null},\"mailings\":[],\"promo_codes\":[],\"polls\":[]";

/// The separator before a member of an object, none before its first.
#[inline]
fn comma(out: &mut Vec<u8>, first: &mut bool) {
    if !std::mem::take(first) {
        out.push(b',');
    }
}

impl Document<'_, '_> {
    /// Writes the whole document.
    pub(super) fn write_whole(&self, out: &mut Vec<u8>) {
        let p = self.profile;
        let mut id = [0u8; ulid::ULID_LEN];
        out.extend_from_slice(b"{\"id\":\"");
        out.extend_from_slice(p.id().array_to_str(&mut id).as_bytes());
        out.extend_from_slice(b"\",\"customer_id\":");
        json::str(out, p.customer_id);
        out.extend_from_slice(b",\"fields\":{");
        let mut first = true;
        let mut known = Known::default();
        for (id, value) in p.fields() {
            known.note(id, &value);
            // A value of a field dropped since it was written is no longer the profile's.
            let Some(def) = self.schema.by_id(id) else {
                continue;
            };
            comma(out, &mut first);
            // Field names are checked identifiers (`[a-z][a-z0-9_]*`): nothing to escape.
            json::key(out, &def.name);
            json::value(out, &value);
        }
        for def in self.schema.fields() {
            if let Some(d) = &def.default
                && p.field(def.id).is_none()
            {
                comma(out, &mut first);
                json::key(out, &def.name);
                serde_json::to_writer(&mut *out, d).expect("a default serializes");
            }
        }
        out.extend_from_slice(b"},\"identifiers\":");
        identifiers(out, p);
        out.extend_from_slice(b",\"tags\":[");
        for (i, tag) in p.tags().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::str(out, tag);
        }
        out.extend_from_slice(b"],\"contacts\":");
        contacts(out, p, &known);
        out.extend_from_slice(b",\"channels\":");
        let ch = channels::channels(p, self.reach);
        out.extend_from_slice(b"{\"email\":");
        verdict(out, &ch.email);
        out.extend_from_slice(b",\"sms\":");
        verdict(out, &ch.sms);
        out.extend_from_slice(b",\"push\":");
        verdict(out, &ch.push);
        out.extend_from_slice(b"},\"subscriptions\":");
        subscriptions(out, p);
        out.extend_from_slice(b",\"stats\":");
        if self.derived.activity.is_none() {
            // The common case of a profile without events: fixed bytes but one number.
            out.extend_from_slice(STATS_EMPTY_PREFIX.as_bytes());
            json::int(out, self.days_since_registration(&known));
            out.push(b'}');
            out.extend_from_slice(EMPTY_ACTIVITY.as_bytes());
        } else {
            // The activity's digest (rendered once after each change) and the few
            // values that depend on the moment of the read.
            self.derived
                .write_members(out, self.days_since_registration(&known));
        }
        out.extend_from_slice(b",\"created_at\":");
        json::timestamp(out, p.created_at());
        out.extend_from_slice(b",\"updated_at\":");
        json::timestamp(out, p.updated_at());
        out.extend_from_slice(b",\"segments\":");
        // Most profiles belong to no saved segment and absorbed nobody: constant bytes.
        let names = self.segment_names();
        if names.is_empty() {
            out.extend_from_slice(b"[]");
        } else {
            serde_json::to_writer(&mut *out, &names).expect("names serialize");
        }
        out.extend_from_slice(b",\"merges\":");
        match self.merges() {
            Some(history) => serde_json::to_writer(&mut *out, &*history).expect("merges serialize"),
            None => out.extend_from_slice(b"[]"),
        }
        out.push(b'}');
    }
}

impl Document<'_, '_> {
    /// Writes a projection: the ids, the chosen fields in the order asked (one without a
    /// value or default shows as `null`), then the chosen members in document order,
    /// each cut to the paths asked.
    pub(super) fn write_projection(&self, proj: &Projection, out: &mut Vec<u8>) {
        let p = self.profile;
        ids_and_fields(out, p.id(), p.customer_id, p.fields(), self.schema, proj);
        if !proj.members.is_empty() {
            for (name, m) in MEMBERS {
                let mut paths = proj
                    .members
                    .iter()
                    .filter(|(pm, _)| pm == m)
                    .map(|(_, path)| path)
                    .peekable();
                if paths.peek().is_none() {
                    continue;
                }
                let whole = self.member_json(*m);
                out.push(b',');
                json::key(out, name);
                // A member that is null as a whole (`rfm` without receipts) is null
                // whatever paths below it were asked for.
                let shown = if whole.is_null() || paths.clone().any(|path| path.is_empty()) {
                    whole
                } else {
                    let mut picked = Json::Object(Map::new());
                    for path in paths {
                        pick(&whole, path, &mut picked);
                    }
                    picked
                };
                serde_json::to_writer(&mut *out, &shown).expect("a member serializes");
            }
        }
        out.push(b'}');
    }
}

/// The start of a projection, left open for its members: the ids and the chosen fields
/// in the order asked (one without a value or default shows as `null`).
pub(super) fn ids_and_fields<'v>(
    out: &mut Vec<u8>,
    id: ulid::Ulid,
    customer_id: &str,
    fields: impl Iterator<Item = (FieldId, ValueRef<'v>)>,
    schema: &Schema,
    proj: &Projection,
) {
    let mut buf = [0u8; ulid::ULID_LEN];
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(id.array_to_str(&mut buf).as_bytes());
    out.extend_from_slice(b"\",\"customer_id\":");
    json::str(out, customer_id);
    if proj.fields.is_empty() {
        return;
    }
    // One pass over the profile's fields finds every chosen one.
    let mut found: SmallVec<[Option<ValueRef<'v>>; 8]> =
        SmallVec::from_elem(None, proj.fields.len());
    let mut missing = proj.fields.len();
    for (id, value) in fields {
        if let Some(i) = proj.fields.iter().position(|(_, f)| *f == id) {
            // The first copy wins, as `ProfileView::field` reads it.
            if found[i].is_none() {
                found[i] = Some(value);
                missing -= 1;
            }
            if missing == 0 {
                break;
            }
        }
    }
    out.extend_from_slice(b",\"fields\":{");
    for (i, ((name, id), value)) in proj.fields.iter().zip(found).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Projected names are fields of the schema: identifiers, no escapes.
        json::key(out, name);
        match value {
            Some(v) => json::value(out, &v),
            None => match schema.by_id(*id).and_then(|d| d.default.as_ref()) {
                Some(d) => serde_json::to_writer(&mut *out, d).expect("a default serializes"),
                None => out.extend_from_slice(b"null"),
            },
        }
    }
    out.push(b'}');
}

/// `identifiers`: email and phone in their normalized forms, then external ids.
fn identifiers(out: &mut Vec<u8>, p: &ProfileView<'_>) {
    out.push(b'{');
    let mut first = true;
    if let Some(e) = &p.email {
        comma(out, &mut first);
        json::key(out, "email");
        json::str(out, e.normalized);
    }
    if let Some(e164) = p.phone.as_ref().and_then(|p| p.e164) {
        comma(out, &mut first);
        json::key(out, "phone");
        json::str(out, e164);
    }
    for (ns, v) in p.external_ids() {
        comma(out, &mut first);
        json::str(out, ns);
        out.push(b':');
        json::str(out, v);
    }
    out.push(b'}');
}

/// `contacts`: the email and phone field values and what was derived from them.
fn contacts(out: &mut Vec<u8>, p: &ProfileView<'_>, known: &Known<'_>) {
    out.extend_from_slice(b"{\"email\":");
    match &p.email {
        Some(c) => {
            out.extend_from_slice(b"{\"value\":");
            json::str(out, known.email);
            out.extend_from_slice(b",\"normalized\":");
            json::str(out, c.normalized);
            out.extend_from_slice(b",\"valid\":");
            json::bool(out, c.reason.is_none());
            if let Some(r) = c.reason {
                out.extend_from_slice(b",\"reason\":");
                json::str(out, r);
            }
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"phone\":");
    match &p.phone {
        Some(c) => {
            out.extend_from_slice(b"{\"value\":");
            json::str(out, known.phone);
            out.extend_from_slice(b",\"valid\":");
            json::bool(out, c.valid);
            for (key, v) in [
                ("e164", c.e164),
                ("region", c.region),
                ("type", c.kind),
                ("reason", c.reason),
            ] {
                if let Some(v) = v {
                    out.push(b',');
                    json::key(out, key);
                    json::str(out, v);
                }
            }
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// One channel's verdict.
fn verdict(out: &mut Vec<u8>, v: &Verdict) {
    out.extend_from_slice(b"{\"eligible\":");
    json::bool(out, v.eligible);
    if let Some(r) = v.reason {
        out.extend_from_slice(b",\"reason\":\"");
        out.extend_from_slice(r.as_str().as_bytes());
        out.push(b'"');
    }
    if let Some(list) = &v.list {
        out.extend_from_slice(b",\"list\":");
        json::str(out, list);
    }
    out.push(b'}');
}

/// `subscriptions`: the current record of each (resource, channel, category).
fn subscriptions(out: &mut Vec<u8>, p: &ProfileView<'_>) {
    out.push(b'[');
    for (i, s) in p.subscriptions().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"resource\":");
        json::str(out, s.resource);
        out.extend_from_slice(b",\"channel\":\"");
        out.extend_from_slice(s.channel.as_str().as_bytes());
        out.extend_from_slice(b"\",\"category\":");
        json::str(out, s.category);
        out.extend_from_slice(b",\"status\":");
        serde_json::to_writer(&mut *out, &s.status).expect("a status serializes");
        out.extend_from_slice(b",\"at\":");
        json::timestamp(out, s.at);
        out.extend_from_slice(b",\"source\":");
        serde_json::to_writer(&mut *out, &s.source).expect("a source serializes");
        out.push(b'}');
    }
    out.push(b']');
}
