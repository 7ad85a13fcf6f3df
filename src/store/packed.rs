//! A profile's bytes: the one encoding the map holds, the WAL logs and snapshots store.
//!
//! A [`Packed`] profile is a single shared allocation of a compact bincode record
//! (~300 bytes for ten fields, against ~800 bytes of structs and side allocations for
//! the same profile as a [`Profile`]). A cold lookup touches one contiguous block
//! instead of a dozen scattered cache lines, a snapshot copies the bytes as they are, and
//! loading one copies them back. Readers borrow a [`ProfileView`] from the bytes without
//! allocating strings; the actor unpacks to an owned [`Profile`] to change one.
//!
//! Why bincode and not a zero-copy archive crate (rkyv): the archive layouts align every
//! value to its size, which for short strings and small integers nearly doubles the
//! bytes, and would need a second set of archived types beside these. The record shapes
//! are declared here, not derived on the in-memory types, so a change of representation
//! in memory never changes the bytes on disk by accident; the enum variant order is part
//! of the format. Every `Packed` was either encoded here or checked here, so a view of
//! one always decodes. Pure; no I/O.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use bincode::{BorrowDecode, Encode};
use compact_str::CompactString;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::ser::{Serialize, SerializeSeq, Serializer};
use ulid::Ulid;

use super::profile::{Fields, Profile, Subscription, identifier_key};
use crate::contacts::{EmailContact, PhoneContact};
use crate::schema::{Channel, Schema, Source, SubscriptionStatus, Value};

/// The largest record we agree to decode (256 MiB): bounds what a corrupt length can make
/// us allocate.
pub const MAX_RECORD: usize = 1 << 28;

/// The bincode configuration of every persisted byte.
pub fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_RECORD>()
}

/// Why bytes are not a profile.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// bincode could not decode the bytes.
    #[error("undecodable record: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The bytes decode but hold an impossible value.
    #[error("invalid record: {0}")]
    Invalid(String),
}

/// One profile as stored: its encoded bytes behind one shared pointer.
#[derive(Clone, PartialEq, Eq)]
pub struct Packed(Arc<[u8]>);

impl fmt::Debug for Packed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Packed").field(&self.view()).finish()
    }
}

impl Packed {
    /// Encodes a profile.
    pub fn encode(p: &Profile) -> Packed {
        let mut out = Vec::with_capacity(384);
        // Writing into a Vec cannot fail.
        bincode::encode_into_std_write(ProfileOut(p), &mut out, config())
            .expect("encode into memory");
        Packed(Arc::from(out))
    }

    /// Checks the first profile in `bytes` and copies it out; returns it, its view's
    /// identity and how many bytes it took.
    pub fn read_first(bytes: &[u8]) -> Result<(Packed, usize), PackError> {
        let (view, used) = ProfileView::decode(bytes)?;
        view.check()?;
        Ok((Packed(Arc::from(&bytes[..used])), used))
    }

    /// Checks bytes that hold exactly one profile and copies them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Packed, PackError> {
        let (p, used) = Packed::read_first(bytes)?;
        if used != bytes.len() {
            return Err(PackError::Invalid(format!(
                "{} bytes after the profile",
                bytes.len() - used
            )));
        }
        Ok(p)
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The profile, borrowed from the bytes.
    #[inline]
    pub fn view(&self) -> ProfileView<'_> {
        ProfileView::decode(&self.0)
            .expect("a packed profile was encoded or checked when it was made")
            .0
    }

    /// The profile as owned values, field names interned from `schema`; a field the
    /// schema no longer has is left out.
    pub fn unpack(&self, schema: &Schema) -> Profile {
        self.view().to_profile(schema)
    }
}

/// A profile borrowed from its bytes: what lookups serialize and indexes read.
#[derive(Debug, BorrowDecode)]
pub struct ProfileView<'a> {
    id: u128,
    /// The given id.
    pub customer_id: &'a str,
    /// Field values in schema order, by name.
    pub fields: Vec<(&'a str, ValueRef<'a>)>,
    /// External identifiers `(namespace, value)`, sorted by namespace.
    pub external_ids: Vec<(&'a str, &'a str)>,
    /// Tags, sorted and distinct.
    pub tags: Vec<&'a str>,
    /// What the `email` field is known to be.
    pub email: Option<EmailRef<'a>>,
    /// What the `phone` field is known to be.
    pub phone: Option<PhoneRef<'a>>,
    /// Current subscriptions.
    pub subscriptions: Vec<SubscriptionRef<'a>>,
    created_at: (i64, i32),
    updated_at: (i64, i32),
}

/// `contacts.email` as stored.
#[derive(Debug, Encode, BorrowDecode)]
pub struct EmailRef<'a> {
    /// The lookup key.
    pub normalized: &'a str,
    /// Why it is not valid (`None`: valid).
    pub reason: Option<&'a str>,
}

/// `contacts.phone` as stored.
#[derive(Debug, Encode, BorrowDecode)]
pub struct PhoneRef<'a> {
    /// Whether the number is valid.
    pub valid: bool,
    /// E.164 form, the lookup key.
    pub e164: Option<&'a str>,
    /// ISO 3166 region.
    pub region: Option<&'a str>,
    /// Number type.
    pub kind: Option<&'a str>,
    /// Why it is not valid.
    pub reason: Option<&'a str>,
}

/// A subscription as stored; channel and source by number.
#[derive(Debug, Encode, BorrowDecode)]
pub struct SubscriptionRef<'a> {
    /// Resource name.
    pub resource: &'a str,
    channel: u8,
    /// Category within the resource.
    pub category: &'a str,
    /// Subscribed (`false`: unsubscribed).
    pub subscribed: bool,
    at: (i64, i32),
    source: u8,
}

/// A field value as stored.
#[derive(Debug, Clone, PartialEq, Encode, BorrowDecode)]
pub enum ValueRef<'a> {
    /// `integer`.
    Int(i64),
    /// `float`.
    Float(f64),
    /// `string` and `list`.
    Str(&'a str),
    /// `boolean`.
    Bool(bool),
    /// `date`: year, month, day.
    Date(i16, i8, i8),
    /// `datetime`: seconds and nanoseconds since the epoch.
    DateTime(i64, i32),
    /// `ip`.
    Ip(IpAddr),
    /// `tags`.
    Tags(Vec<&'a str>),
    /// `object` and `array`, as JSON text.
    Json(Cow<'a, str>),
}

impl<'a> ProfileView<'a> {
    fn decode(bytes: &'a [u8]) -> Result<(Self, usize), PackError> {
        Ok(bincode::borrow_decode_from_slice(bytes, config())?)
    }

    /// Checks what bincode cannot: dates, instants, enum numbers and JSON text.
    fn check(&self) -> Result<(), PackError> {
        for (_, v) in &self.fields {
            v.clone().into_value()?;
        }
        for s in &self.subscriptions {
            s.to_subscription()?;
        }
        timestamp(self.created_at)?;
        timestamp(self.updated_at)?;
        Ok(())
    }

    /// Internal id.
    pub fn id(&self) -> Ulid {
        Ulid(self.id)
    }

    /// When the profile was created.
    pub fn created_at(&self) -> Timestamp {
        timestamp(self.created_at).expect("checked")
    }

    /// When it was last written.
    pub fn updated_at(&self) -> Timestamp {
        timestamp(self.updated_at).expect("checked")
    }

    /// The value of a field, if set.
    pub fn field(&self, name: &str) -> Option<&ValueRef<'a>> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Every identifier index key this profile owns (email, phone, external ids).
    pub fn identifier_keys(&self) -> Vec<CompactString> {
        let mut keys = Vec::with_capacity(2 + self.external_ids.len());
        if let Some(e) = &self.email {
            keys.push(identifier_key("email", e.normalized));
        }
        if let Some(e164) = self.phone.as_ref().and_then(|p| p.e164) {
            keys.push(identifier_key("phone", e164));
        }
        for (ns, v) in &self.external_ids {
            keys.push(identifier_key(ns, v));
        }
        keys
    }

    /// The owned profile, field names interned from `schema`.
    pub fn to_profile(&self, schema: &Schema) -> Profile {
        let mut fields = Fields::new();
        let defs = schema.fields();
        let mut hint = 0;
        for (name, v) in &self.fields {
            // Values are stored in schema order, so the next field is nearly always the
            // one after the last: a compare, not a hash.
            let at = if defs.get(hint).is_some_and(|d| &*d.name == *name) {
                Some(hint)
            } else {
                defs.iter().position(|d| &*d.name == *name)
            };
            if let Some(at) = at {
                hint = at + 1;
                fields.push((
                    defs[at].name.clone(),
                    v.clone().into_value().expect("checked"),
                ));
            }
        }
        Profile {
            id: self.id(),
            customer_id: self.customer_id.into(),
            fields,
            external_ids: self
                .external_ids
                .iter()
                .map(|(n, v)| ((*n).into(), (*v).into()))
                .collect(),
            tags: self.tags.iter().map(|t| CompactString::from(*t)).collect(),
            email: self.email.as_ref().map(|e| EmailContact {
                normalized: e.normalized.into(),
                reason: e.reason.map(CompactString::from),
            }),
            phone: self.phone.as_ref().map(|c| PhoneContact {
                valid: c.valid,
                e164: c.e164.map(CompactString::from),
                region: c.region.map(CompactString::from),
                kind: c.kind.map(crate::contacts::phone_kind),
                reason: c.reason.map(CompactString::from),
            }),
            subscriptions: self
                .subscriptions
                .iter()
                .map(|s| s.to_subscription().expect("checked"))
                .collect(),
            created_at: self.created_at(),
            updated_at: self.updated_at(),
        }
    }
}

impl SubscriptionRef<'_> {
    /// The channel.
    pub fn channel(&self) -> Channel {
        channel_from(self.channel).expect("checked")
    }

    /// What set it.
    pub fn source(&self) -> Source {
        source_from(self.source).expect("checked")
    }

    /// When it was last set.
    pub fn at(&self) -> Timestamp {
        timestamp(self.at).expect("checked")
    }

    fn to_subscription(&self) -> Result<Subscription, PackError> {
        Ok(Subscription {
            resource: self.resource.into(),
            channel: channel_from(self.channel)?,
            category: self.category.into(),
            status: if self.subscribed {
                SubscriptionStatus::Subscribed
            } else {
                SubscriptionStatus::Unsubscribed
            },
            at: timestamp(self.at)?,
            source: source_from(self.source)?,
        })
    }
}

/// Encodes a profile straight from memory, field by field in [`ProfileView`]'s order,
/// without building a record first.
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
            ValueRef::from(value).encode(e)?;
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
            .map(|c| EmailRef {
                normalized: &c.normalized,
                reason: c.reason.as_deref(),
            })
            .encode(e)?;
        p.phone
            .as_ref()
            .map(|c| PhoneRef {
                valid: c.valid,
                e164: c.e164.as_deref(),
                region: c.region.as_deref(),
                kind: c.kind,
                reason: c.reason.as_deref(),
            })
            .encode(e)?;
        (p.subscriptions.len() as u64).encode(e)?;
        for s in &p.subscriptions {
            SubscriptionRef {
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

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Str(s) => ValueRef::Str(s),
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Date(d) => ValueRef::Date(d.year(), d.month(), d.day()),
            Value::DateTime(t) => ValueRef::DateTime(t.as_second(), t.subsec_nanosecond()),
            Value::Ip(ip) => ValueRef::Ip(*ip),
            Value::Tags(t) => ValueRef::Tags(t.iter().map(CompactString::as_str).collect()),
            Value::Json(j) => ValueRef::Json(Cow::Owned(j.to_string())),
        }
    }
}

impl ValueRef<'_> {
    /// The owned value, or why these bytes cannot be one.
    pub fn into_value(self) -> Result<Value, PackError> {
        Ok(match self {
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Str(s) => Value::Str(s.into()),
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Date(y, m, d) => Value::Date(
                Date::new(y, m, d).map_err(|e| PackError::Invalid(format!("date: {e}")))?,
            ),
            ValueRef::DateTime(s, n) => Value::DateTime(timestamp((s, n))?),
            ValueRef::Ip(ip) => Value::Ip(ip),
            ValueRef::Tags(t) => Value::Tags(t.into_iter().map(CompactString::from).collect()),
            ValueRef::Json(j) => Value::Json(Arc::new(
                serde_json::from_str(&j).map_err(|e| PackError::Invalid(format!("json: {e}")))?,
            )),
        })
    }
}

/// The same JSON as [`Value`]'s: values of checked profiles only (a date or instant out
/// of range, impossible there, shows as `null`).
impl Serialize for ValueRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ValueRef::Int(i) => s.serialize_i64(*i),
            ValueRef::Float(f) => s.serialize_f64(*f),
            ValueRef::Str(v) => s.serialize_str(v),
            ValueRef::Bool(b) => s.serialize_bool(*b),
            ValueRef::Date(y, m, d) => match Date::new(*y, *m, *d) {
                Ok(d) => s.collect_str(&d),
                Err(_) => s.serialize_none(),
            },
            ValueRef::DateTime(secs, nanos) => match Timestamp::new(*secs, *nanos) {
                Ok(t) => s.collect_str(&t),
                Err(_) => s.serialize_none(),
            },
            ValueRef::Ip(ip) => s.collect_str(ip),
            ValueRef::Tags(tags) => {
                let mut seq = s.serialize_seq(Some(tags.len()))?;
                for t in tags {
                    seq.serialize_element(t)?;
                }
                seq.end()
            }
            ValueRef::Json(text) => {
                match serde_json::from_str::<&serde_json::value::RawValue>(text) {
                    Ok(raw) => raw.serialize(s),
                    Err(_) => s.serialize_none(),
                }
            }
        }
    }
}

// Seconds and nanoseconds apart, not one i128 of nanoseconds: splitting an i128 back
// needs a 128-bit division, which was a measurable part of a snapshot load.
pub(crate) fn parts(t: Timestamp) -> (i64, i32) {
    (t.as_second(), t.subsec_nanosecond())
}

fn timestamp((secs, nanos): (i64, i32)) -> Result<Timestamp, PackError> {
    Timestamp::new(secs, nanos).map_err(|e| PackError::Invalid(format!("time: {e}")))
}

fn channel_from(n: u8) -> Result<Channel, PackError> {
    [Channel::Email, Channel::Sms, Channel::Push]
        .into_iter()
        .find(|c| *c as u8 == n)
        .ok_or_else(|| PackError::Invalid(format!("channel {n}")))
}

fn source_from(n: u8) -> Result<Source, PackError> {
    [Source::Api, Source::Import, Source::Webhook, Source::Event]
        .into_iter()
        .find(|s| *s as u8 == n)
        .ok_or_else(|| PackError::Invalid(format!("source {n}")))
}
