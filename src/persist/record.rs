//! The bincode form of what the WAL and snapshots hold, and the conversions between it
//! and the in-memory types.
//!
//! Records borrow: encoding reads straight from a `Profile`, decoding reads strings out
//! of the input buffer, so neither side allocates per string (compact strings are built
//! inline from the borrowed bytes). Persisted shapes are declared here, not derived on
//! the in-memory types, so that a change of representation in memory never changes the
//! bytes on disk by accident; the enum variant order is part of the format.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use bincode::{BorrowDecode, Encode};
use compact_str::CompactString;
use jiff::Timestamp;
use jiff::civil::Date;
use ulid::Ulid;

use crate::contacts::{EmailContact, PhoneContact};
use crate::schema::{
    Channel, DatabaseSettings, FieldDef, FieldType, Schema, Source, SubscriptionStatus, Value,
};
use crate::store::{Profile, Subscription};

/// The largest single record or snapshot chunk we agree to decode (256 MiB): bounds what
/// a corrupt length can make us allocate.
pub const MAX_RECORD: usize = 1 << 28;

/// The bincode configuration of every persisted byte.
pub fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD>()
}

/// One applied effect, as the WAL logs it and replay re-applies it.
///
/// Effects are results, not requests: a `Put` carries the whole new profile, a schema
/// change the whole new schema. Applying one twice is the same as applying it once, which
/// is what lets a snapshot be taken while writes go on (see `persist::snapshot`).
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A profile as published.
    Put(Arc<Profile>),
    /// A profile erased.
    Remove(CompactString),
    /// The schema after a field was added.
    Schema(Arc<Schema>),
    /// A custom field and its values dropped; the schema after.
    DropField {
        /// The dropped field.
        name: String,
        /// The schema without it.
        schema: Arc<Schema>,
    },
    /// New settings.
    Settings(Arc<DatabaseSettings>),
}

/// Why persisted bytes could not become records.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// bincode could not decode the bytes.
    #[error("undecodable record: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The bytes decode but hold an impossible value.
    #[error("invalid record: {0}")]
    Invalid(String),
}

// Decoded one at a time, so the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(BorrowDecode)]
enum EntryRec<'a> {
    Put(ProfileRec<'a>),
    Remove(&'a str),
    Schema(Vec<FieldRec<'a>>),
    DropField(&'a str, Vec<FieldRec<'a>>),
    Settings(Cow<'a, str>),
}

/// The encoding side of [`EntryRec`]: the same variants in the same order, so the same
/// bytes (the round-trip tests hold the two together).
#[derive(Encode)]
enum EntryOut<'a> {
    Put(ProfileOut<'a>),
    Remove(&'a str),
    Schema(Vec<FieldRec<'a>>),
    DropField(&'a str, Vec<FieldRec<'a>>),
    Settings(&'a str),
}

/// A WAL record: a log sequence number and the effect.
#[derive(BorrowDecode)]
struct WalRec<'a> {
    lsn: u64,
    entry: EntryRec<'a>,
}

#[derive(Encode)]
struct WalOut<'a> {
    lsn: u64,
    entry: EntryOut<'a>,
}

/// Encodes a WAL record's payload (framing is `wal`'s).
pub fn encode_entry(lsn: u64, entry: &Entry, out: &mut Vec<u8>) {
    let settings_json;
    let entry = match entry {
        Entry::Put(p) => EntryOut::Put(ProfileOut(p)),
        Entry::Remove(id) => EntryOut::Remove(id),
        Entry::Schema(s) => EntryOut::Schema(schema_rec(s)),
        Entry::DropField { name, schema } => EntryOut::DropField(name, schema_rec(schema)),
        Entry::Settings(s) => {
            settings_json = settings_text(s);
            EntryOut::Settings(&settings_json)
        }
    };
    encode_into(&WalOut { lsn, entry }, out);
}

/// Decodes a WAL record's payload; field names of a profile are interned from `schema`
/// (the schema in force at that point of the log).
pub fn decode_entry(bytes: &[u8], schema: &Schema) -> Result<(u64, Entry), RecordError> {
    let (rec, _): (WalRec<'_>, usize) = bincode::borrow_decode_from_slice(bytes, config())?;
    let entry = match rec.entry {
        EntryRec::Put(p) => Entry::Put(Arc::new(p.into_profile(schema)?)),
        EntryRec::Remove(id) => Entry::Remove(id.into()),
        EntryRec::Schema(fields) => Entry::Schema(Arc::new(schema_from(fields)?)),
        EntryRec::DropField(name, fields) => Entry::DropField {
            name: name.to_owned(),
            schema: Arc::new(schema_from(fields)?),
        },
        EntryRec::Settings(json) => Entry::Settings(Arc::new(settings_from(&json)?)),
    };
    Ok((rec.lsn, entry))
}

fn encode_into<T: Encode>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and every record type is encodable.
    bincode::encode_into_std_write(value, out, config()).expect("encode into memory");
}

/// The settings and schema at the head of a snapshot.
#[derive(Encode, BorrowDecode)]
struct HeadRec<'a> {
    settings: Cow<'a, str>,
    schema: Vec<FieldRec<'a>>,
}

/// Encodes a snapshot's settings and schema.
pub fn encode_head(settings: &DatabaseSettings, schema: &Schema, out: &mut Vec<u8>) {
    let json = settings_text(settings);
    encode_into(
        &HeadRec {
            settings: Cow::Borrowed(&json),
            schema: schema_rec(schema),
        },
        out,
    );
}

/// Decodes a snapshot's settings and schema.
pub fn decode_head(bytes: &[u8]) -> Result<(DatabaseSettings, Schema), RecordError> {
    let (rec, _): (HeadRec<'_>, usize) = bincode::borrow_decode_from_slice(bytes, config())?;
    Ok((settings_from(&rec.settings)?, schema_from(rec.schema)?))
}

/// Encodes a chunk of profiles (a snapshot body part).
pub fn encode_profiles<'p>(
    profiles: impl ExactSizeIterator<Item = &'p Profile>,
    out: &mut Vec<u8>,
) {
    // Laid out as a `Vec<ProfileRec>`: a length, then each profile.
    encode_into(&(profiles.len() as u64), out);
    for p in profiles {
        encode_into(&ProfileOut(p), out);
    }
}

/// Decodes a chunk of profiles, interning field names from `schema`.
///
/// A field the schema does not know is skipped: a snapshot is taken while writes go on,
/// so a profile may have been captured after a field was added that the snapshot's
/// schema (taken at its start) lacks; such a profile was written after the snapshot's
/// LSN, and replaying the WAL puts it back whole.
pub fn decode_profiles(bytes: &[u8], schema: &Schema) -> Result<Vec<Arc<Profile>>, RecordError> {
    let (recs, _): (Vec<ProfileRec<'_>>, usize) =
        bincode::borrow_decode_from_slice(bytes, config())?;
    // Straight into the `Arc` the store keeps: a profile is moved once, not twice.
    recs.into_iter()
        .map(|r| r.into_profile(schema).map(Arc::new))
        .collect()
}

fn settings_text(s: &DatabaseSettings) -> String {
    // Settings are small, rarely written and already have the API's serde shape, which
    // keeps them readable in a hex dump and lets them evolve with the API types.
    serde_json::to_string(s).expect("settings serialize")
}

fn settings_from(json: &str) -> Result<DatabaseSettings, RecordError> {
    serde_json::from_str(json).map_err(|e| RecordError::Invalid(format!("settings: {e}")))
}

#[derive(BorrowDecode)]
struct ProfileRec<'a> {
    id: u128,
    customer_id: &'a str,
    fields: Vec<(&'a str, ValueRec<'a>)>,
    external_ids: Vec<(&'a str, &'a str)>,
    tags: Vec<&'a str>,
    email: Option<EmailRec<'a>>,
    phone: Option<PhoneRec<'a>>,
    subscriptions: Vec<SubscriptionRec<'a>>,
    created_at: (i64, i32),
    updated_at: (i64, i32),
}

#[derive(Encode, BorrowDecode)]
struct EmailRec<'a> {
    normalized: &'a str,
    reason: Option<&'a str>,
}

#[derive(Encode, BorrowDecode)]
struct PhoneRec<'a> {
    valid: bool,
    e164: Option<&'a str>,
    region: Option<&'a str>,
    kind: Option<&'a str>,
    reason: Option<&'a str>,
}

#[derive(Encode, BorrowDecode)]
struct SubscriptionRec<'a> {
    resource: &'a str,
    channel: u8,
    category: &'a str,
    subscribed: bool,
    at: (i64, i32),
    source: u8,
}

#[derive(Encode, BorrowDecode)]
enum ValueRec<'a> {
    Int(i64),
    Float(f64),
    Str(&'a str),
    Bool(bool),
    Date(i16, i8, i8),
    DateTime(i64, i32),
    Ip(IpAddr),
    Tags(Vec<&'a str>),
    Json(Cow<'a, str>),
}

#[derive(Encode, BorrowDecode)]
struct FieldRec<'a> {
    name: &'a str,
    ty: &'a str,
    default: Option<ValueRec<'a>>,
    required: bool,
    subscription_manager: bool,
    values: Vec<&'a str>,
    builtin: bool,
}

/// Encodes a profile straight from memory, field by field in [`ProfileRec`]'s order,
/// without building the record: a snapshot encodes a million of them.
struct ProfileOut<'a>(&'a Profile);

impl Encode for ProfileOut<'_> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        let p = self.0;
        p.id.0.encode(e)?;
        p.customer_id.as_str().encode(e)?;
        (p.fields.len() as u64).encode(e)?;
        for (name, value) in &p.fields {
            (**name).encode(e)?;
            ValueRec::from(value).encode(e)?;
        }
        (p.external_ids.len() as u64).encode(e)?;
        for (ns, value) in &p.external_ids {
            ns.as_str().encode(e)?;
            value.as_str().encode(e)?;
        }
        (p.tags.len() as u64).encode(e)?;
        for tag in &p.tags {
            tag.as_str().encode(e)?;
        }
        p.email
            .as_ref()
            .map(|c| EmailRec {
                normalized: &c.normalized,
                reason: c.reason.as_deref(),
            })
            .encode(e)?;
        p.phone
            .as_ref()
            .map(|c| PhoneRec {
                valid: c.valid,
                e164: c.e164.as_deref(),
                region: c.region.as_deref(),
                kind: c.kind,
                reason: c.reason.as_deref(),
            })
            .encode(e)?;
        (p.subscriptions.len() as u64).encode(e)?;
        for s in &p.subscriptions {
            SubscriptionRec {
                resource: &s.resource,
                channel: s.channel as u8,
                category: &s.category,
                subscribed: s.status == SubscriptionStatus::Subscribed,
                at: parts(s.at),
                source: s.source as u8,
            }
            .encode(e)?;
        }
        parts(p.created_at).encode(e)?;
        parts(p.updated_at).encode(e)
    }
}

impl ProfileRec<'_> {
    fn into_profile(self, schema: &Schema) -> Result<Profile, RecordError> {
        let mut fields = crate::store::Fields::new();
        let defs = schema.fields();
        let mut hint = 0;
        for (name, v) in self.fields {
            // Values are stored in schema order, so the next field is nearly always the
            // one after the last: a compare, not a hash; a scan of a few dozen names
            // otherwise.
            let at = if defs.get(hint).is_some_and(|d| &*d.name == name) {
                Some(hint)
            } else {
                defs.iter().position(|d| &*d.name == name)
            };
            if let Some(at) = at {
                hint = at + 1;
                fields.push((defs[at].name.clone(), v.into_value()?));
            }
        }
        Ok(Profile {
            id: Ulid(self.id),
            customer_id: self.customer_id.into(),
            fields,
            external_ids: self
                .external_ids
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
            tags: self.tags.into_iter().map(CompactString::from).collect(),
            email: self.email.map(|e| EmailContact {
                normalized: e.normalized.into(),
                reason: e.reason.map(CompactString::from),
            }),
            phone: self.phone.map(|c| PhoneContact {
                valid: c.valid,
                e164: c.e164.map(CompactString::from),
                region: c.region.map(CompactString::from),
                kind: c.kind.map(crate::contacts::phone_kind),
                reason: c.reason.map(CompactString::from),
            }),
            subscriptions: self
                .subscriptions
                .into_iter()
                .map(|s| {
                    Ok(Subscription {
                        resource: s.resource.into(),
                        channel: channel_from(s.channel)?,
                        category: s.category.into(),
                        status: if s.subscribed {
                            SubscriptionStatus::Subscribed
                        } else {
                            SubscriptionStatus::Unsubscribed
                        },
                        at: timestamp(s.at)?,
                        source: source_from(s.source)?,
                    })
                })
                .collect::<Result<_, RecordError>>()?,
            created_at: timestamp(self.created_at)?,
            updated_at: timestamp(self.updated_at)?,
        })
    }
}

impl<'a> From<&'a Value> for ValueRec<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Int(i) => ValueRec::Int(*i),
            Value::Float(f) => ValueRec::Float(*f),
            Value::Str(s) => ValueRec::Str(s),
            Value::Bool(b) => ValueRec::Bool(*b),
            Value::Date(d) => ValueRec::Date(d.year(), d.month(), d.day()),
            Value::DateTime(t) => ValueRec::DateTime(t.as_second(), t.subsec_nanosecond()),
            Value::Ip(ip) => ValueRec::Ip(*ip),
            Value::Tags(t) => ValueRec::Tags(t.iter().map(CompactString::as_str).collect()),
            Value::Json(j) => ValueRec::Json(Cow::Owned(j.to_string())),
        }
    }
}

impl ValueRec<'_> {
    fn into_value(self) -> Result<Value, RecordError> {
        Ok(match self {
            ValueRec::Int(i) => Value::Int(i),
            ValueRec::Float(f) => Value::Float(f),
            ValueRec::Str(s) => Value::Str(s.into()),
            ValueRec::Bool(b) => Value::Bool(b),
            ValueRec::Date(y, m, d) => Value::Date(
                Date::new(y, m, d).map_err(|e| RecordError::Invalid(format!("date: {e}")))?,
            ),
            ValueRec::DateTime(s, n) => Value::DateTime(timestamp((s, n))?),
            ValueRec::Ip(ip) => Value::Ip(ip),
            ValueRec::Tags(t) => Value::Tags(t.into_iter().map(CompactString::from).collect()),
            ValueRec::Json(j) => Value::Json(Arc::new(
                serde_json::from_str(&j).map_err(|e| RecordError::Invalid(format!("json: {e}")))?,
            )),
        })
    }
}

fn schema_rec(schema: &Schema) -> Vec<FieldRec<'_>> {
    schema
        .fields()
        .iter()
        .map(|f| FieldRec {
            name: &f.name,
            ty: f.ty.as_str(),
            default: f.default.as_ref().map(ValueRec::from),
            required: f.required,
            subscription_manager: f.subscription_manager,
            values: f.values.iter().map(String::as_str).collect(),
            builtin: f.builtin,
        })
        .collect()
}

fn schema_from(fields: Vec<FieldRec<'_>>) -> Result<Schema, RecordError> {
    let defs = fields
        .into_iter()
        .map(|f| {
            let ty = FieldType::ALL
                .iter()
                .copied()
                .find(|t| t.as_str() == f.ty)
                .ok_or_else(|| RecordError::Invalid(format!("field type `{}`", f.ty)))?;
            Ok(FieldDef {
                name: f.name.into(),
                ty,
                default: f.default.map(ValueRec::into_value).transpose()?,
                required: f.required,
                subscription_manager: f.subscription_manager,
                values: f.values.into_iter().map(str::to_owned).collect(),
                builtin: f.builtin,
            })
        })
        .collect::<Result<Vec<_>, RecordError>>()?;
    Ok(Schema::restore(defs))
}

// Seconds and nanoseconds apart, not one i128 of nanoseconds: splitting an i128 back
// needs a 128-bit division, which was a measurable part of a snapshot load.
fn parts(t: Timestamp) -> (i64, i32) {
    (t.as_second(), t.subsec_nanosecond())
}

fn timestamp((secs, nanos): (i64, i32)) -> Result<Timestamp, RecordError> {
    Timestamp::new(secs, nanos).map_err(|e| RecordError::Invalid(format!("time: {e}")))
}

fn channel_from(n: u8) -> Result<Channel, RecordError> {
    [Channel::Email, Channel::Sms, Channel::Push]
        .into_iter()
        .find(|c| *c as u8 == n)
        .ok_or_else(|| RecordError::Invalid(format!("channel {n}")))
}

fn source_from(n: u8) -> Result<Source, RecordError> {
    [Source::Api, Source::Import, Source::Webhook, Source::Event]
        .into_iter()
        .find(|s| *s as u8 == n)
        .ok_or_else(|| RecordError::Invalid(format!("source {n}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::schema::FieldSpec;

    pub(crate) fn sample_profile(schema: &Schema) -> Profile {
        let mut p = Profile::new("c-1".into(), Timestamp::from_second(1_700_000_000).unwrap());
        let name = |n: &str| schema.get(n).unwrap().name.clone();
        p.fields
            .push((name("first_name"), Value::Str("Ana".into())));
        p.fields
            .push((name("email"), Value::Str("Ana@Example.com".into())));
        p.fields
            .push((name("phone"), Value::Str("+351 912 345 678".into())));
        p.fields.push((
            name("birth_date"),
            Value::Date(Date::new(1990, 2, 28).unwrap()),
        ));
        p.fields.push((name("score"), Value::Float(0.25)));
        p.fields.push((name("visits"), Value::Int(-3)));
        p.fields
            .push((name("ip"), Value::Ip("::1".parse().unwrap())));
        p.fields.push((
            name("meta"),
            Value::Json(Arc::new(serde_json::json!({"a":[1,2,{"b":null}]}))),
        ));
        p.fields
            .push((name("labels"), Value::Tags(vec!["x".into(), "y".into()])));
        p.external_ids.push(("crm".into(), "42".into()));
        p.tags.push("vip".into());
        p.email = Some(EmailContact::new("Ana@Example.com"));
        p.phone = Some(PhoneContact::new("+351 912 345 678", None));
        p.subscriptions.push(Subscription {
            resource: "news".into(),
            channel: Channel::Sms,
            category: "weekly".into(),
            status: SubscriptionStatus::Unsubscribed,
            at: Timestamp::from_second(1_700_000_100).unwrap(),
            source: Source::Import,
        });
        p
    }

    pub(crate) fn sample_schema() -> Schema {
        let mut s = Schema::default();
        for (n, t) in [
            ("score", "float"),
            ("visits", "integer"),
            ("ip", "ip"),
            ("meta", "object"),
            ("labels", "tags"),
        ] {
            let spec: FieldSpec =
                serde_json::from_value(serde_json::json!({"name": n, "type": t})).unwrap();
            s = s.with_field(spec.into_def().unwrap()).unwrap();
        }
        s
    }

    #[test]
    fn every_entry_kind_round_trips() {
        let schema = sample_schema();
        let settings = DatabaseSettings::create(
            serde_json::from_value(serde_json::json!({"name":"t","consent_confirmed":true}))
                .unwrap(),
            Timestamp::UNIX_EPOCH,
        )
        .unwrap();
        let entries = [
            Entry::Put(Arc::new(sample_profile(&schema))),
            Entry::Remove("gone".into()),
            Entry::Schema(Arc::new(schema.clone())),
            Entry::DropField {
                name: "visits".into(),
                schema: Arc::new(schema.without_field("visits").unwrap()),
            },
            Entry::Settings(Arc::new(settings)),
        ];
        for (i, e) in entries.iter().enumerate() {
            let mut buf = Vec::new();
            encode_entry(i as u64 + 7, e, &mut buf);
            let (lsn, back) = decode_entry(&buf, &schema).unwrap();
            assert_eq!(lsn, i as u64 + 7);
            assert_eq!(e, &back);
        }
    }

    #[test]
    fn unknown_fields_in_a_snapshot_chunk_are_skipped() {
        let schema = sample_schema();
        let p = sample_profile(&schema);
        let mut buf = Vec::new();
        encode_profiles(std::iter::once(&p), &mut buf);
        let older = Schema::default();
        let back = decode_profiles(&buf, &older).unwrap();
        let names: Vec<_> = back[0].fields.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(names, ["first_name", "email", "phone", "birth_date"]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let schema = Schema::default();
        for bytes in [&[][..], &[0xff; 9], &[0, 0, 200, 1, 2]] {
            assert!(decode_entry(bytes, &schema).is_err());
        }
    }
}
