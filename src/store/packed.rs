//! A profile's bytes: the one encoding the map holds, the WAL logs and snapshots store.
//!
//! A [`Packed`] profile is a single shared allocation of a compact bincode record
//! (~170 bytes for ten fields, against ~800 bytes of structs and side allocations for
//! the same profile as a [`Profile`]). Fields are named by their number in the schema
//! ([`FieldId`]), and the contacts point at their fields' text rather than hold it again
//! when it is their key. A cold lookup touches one contiguous block
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
use serde::ser::{Serialize, Serializer};
use ulid::Ulid;

use super::profile::{Fields, Profile, Subscription, identifier_key};
use crate::contacts::{self, EmailContact, PhoneContact};
use crate::schema::{Channel, FieldId, Schema, Source, SubscriptionStatus, Value};

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
        thread_local! {
            // The record is written here, then copied into its own allocation of its
            // exact size: a fresh buffer a profile was an allocation and a free more.
            static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        BUF.with_borrow_mut(|out| {
            out.clear();
            // Writing into a Vec cannot fail.
            bincode::encode_into_std_write(ProfileOut(p), out, config())
                .expect("encode into memory");
            let packed = Packed(Arc::from(&out[..]));
            // A huge record does not keep its buffer alive on this thread.
            if out.capacity() > 64 << 10 {
                *out = Vec::new();
            }
            packed
        })
    }

    /// The same profile published as of `updated_at`, with a new internal id and
    /// creation time when given: what [`Packed::encode`] makes of the profile with
    /// those three changed, without decoding it. (An id below 2^64, old or new, or
    /// bytes not in the encoder's form take the long way: decoded against `schema`,
    /// whose fields must be the profile's, and encoded again.)
    pub fn restamped(
        &self,
        schema: &Schema,
        id: Option<Ulid>,
        created_at: Option<Timestamp>,
        updated_at: Timestamp,
    ) -> Packed {
        let view = self.view();
        let old_tail = time_bytes(view.created_at(), view.updated_at());
        let b: &[u8] = &self.0;
        if id.is_some_and(|id| !id_fits(b, id)) || !b.ends_with(&old_tail) {
            let mut p = view.to_profile(schema);
            p.id = id.unwrap_or(p.id);
            p.created_at = created_at.unwrap_or(p.created_at);
            p.updated_at = updated_at;
            return Packed::encode(&p);
        }
        let mut out = Vec::with_capacity(b.len() + 8);
        out.extend_from_slice(&b[..b.len() - old_tail.len()]);
        if let Some(id) = id {
            out[1..17].copy_from_slice(&id.0.to_le_bytes());
        }
        out.extend_from_slice(&time_bytes(
            created_at.unwrap_or(view.created_at()),
            updated_at,
        ));
        Packed(Arc::from(out))
    }

    /// The same profile under another internal id (a profile built off the writer's
    /// thread gets its id when it is published): written over the old id in place when
    /// this is the only handle to the bytes and both ids take bincode's 16-byte form,
    /// else by [`Packed::restamped`].
    pub fn with_id(mut self, schema: &Schema, id: Ulid) -> Packed {
        if id_fits(&self.0, id)
            && let Some(b) = Arc::get_mut(&mut self.0)
        {
            b[1..17].copy_from_slice(&id.0.to_le_bytes());
            return self;
        }
        let updated_at = self.view().updated_at();
        self.restamped(schema, Some(id), None, updated_at)
    }

    /// Checks the first profile in `bytes` and copies it out; returns it, its view (of
    /// `bytes`, so that a caller indexing it need not walk the bytes again) and how many
    /// bytes it took.
    pub fn read_first(bytes: &[u8]) -> Result<(Packed, ProfileView<'_>, usize), PackError> {
        let (view, used) = ProfileView::decode(Reader::checking(bytes))?;
        view.check()?;
        Ok((Packed(Arc::from(&bytes[..used])), view, used))
    }

    /// Checks bytes that hold exactly one profile and copies them.
    pub fn from_bytes(bytes: &[u8]) -> Result<Packed, PackError> {
        let (p, _, used) = Packed::read_first(bytes)?;
        if used != bytes.len() {
            return Err(PackError::Invalid(format!(
                "{} bytes after the profile",
                bytes.len() - used
            )));
        }
        Ok(p)
    }

    /// Reads the first profile of `bytes` in the record form from before fields had
    /// numbers (snapshot format 3 and older, WAL format 1), against the schema of that
    /// point of the log: field names for numbers, and contacts holding their keys
    /// whatever their fields hold. Values of fields `schema` lacks are left out, as
    /// unpacking leaves them out. Returns the profile in today's form, checked, and the
    /// bytes it took.
    pub fn read_unnumbered(bytes: &[u8], schema: &Schema) -> Result<(Packed, usize), PackError> {
        let mut r = Reader::checking(bytes);
        let id = r.u128()?;
        let mut p = Profile::new(r.str()?.into(), Timestamp::UNIX_EPOCH);
        p.id = Ulid(id);
        for _ in 0..r.len()? {
            let name = r.str()?;
            let value = owned(r.value()?)?;
            if let Some(def) = schema.get(name) {
                p.fields.push((def.id, value));
            }
        }
        p.fields.sort_by_key(|(id, _)| *id);
        p.fields.dedup_by_key(|(id, _)| *id);
        for _ in 0..r.len()? {
            let (ns, value) = r.str_pair()?;
            p.external_ids.push((ns.into(), value.into()));
        }
        for _ in 0..r.len()? {
            p.tags.push(r.str()?.into());
        }
        p.email = r.option(|r| {
            Ok(EmailContact {
                normalized: r.str()?.into(),
                reason: r.option(Reader::str)?.map(CompactString::from),
            })
        })?;
        p.phone = r.option(|r| {
            Ok(PhoneContact {
                valid: r.bool()?,
                e164: r.option(Reader::str)?.map(CompactString::from),
                region: r.option(Reader::str)?.map(CompactString::from),
                kind: r.option(Reader::str)?.map(contacts::phone_kind),
                reason: r.option(Reader::str)?.map(CompactString::from),
            })
        })?;
        for _ in 0..r.len()? {
            p.subscriptions.push(r.subscription()?.to_owned());
        }
        p.created_at = instant(r.instant()?)?;
        p.updated_at = instant(r.instant()?)?;
        let used = bytes.len() - r.b.len();
        // Encoded again and checked as bytes from outside are: the old record's text
        // (JSON values, tags) was not checked above.
        let packed = Packed::from_bytes(Packed::encode(&p).bytes())?;
        Ok((packed, used))
    }

    /// Whether both are the same stored version (one allocation), not merely equal.
    pub fn same(&self, other: &Packed) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The profile, borrowed from the bytes.
    #[inline]
    pub fn view(&self) -> ProfileView<'_> {
        ProfileView::decode(Reader::trusted(&self.0))
            .expect("a packed profile was encoded or checked when it was made")
            .0
    }

    /// The profile as owned values; a value of a field the schema no longer has is
    /// left out.
    pub fn unpack(&self, schema: &Schema) -> Profile {
        self.view().to_profile(schema)
    }
}

/// A profile borrowed from its bytes: what lookups serialize and indexes read.
///
/// Building one walks the bytes once to find where each list starts, checking nothing
/// and allocating nothing; lists are decoded as they are iterated, so a projection of
/// three fields never decodes the other seven.
#[derive(Debug, Clone, Copy)]
pub struct ProfileView<'a> {
    id: u128,
    /// The given id.
    pub customer_id: &'a str,
    fields: Section<'a>,
    external_ids: Section<'a>,
    tags: Section<'a>,
    /// What the `email` field is known to be.
    pub email: Option<EmailRef<'a>>,
    /// What the `phone` field is known to be.
    pub phone: Option<PhoneRef<'a>>,
    subscriptions: Section<'a>,
    created_at: (i64, i32),
    updated_at: (i64, i32),
}

/// `contacts.email` as stored.
#[derive(Debug, Clone, Copy)]
pub struct EmailRef<'a> {
    /// The lookup key.
    pub normalized: &'a str,
    /// Why it is not valid (`None`: valid).
    pub reason: Option<&'a str>,
}

/// `contacts.phone` as stored.
#[derive(Debug, Clone, Copy)]
pub struct PhoneRef<'a> {
    /// Whether the number is valid.
    pub valid: bool,
    /// E.164 form, the lookup key.
    pub e164: Option<&'a str>,
    /// ISO 3166 region.
    pub region: Option<&'a str>,
    /// Number type.
    pub kind: Option<&'static str>,
    /// Why it is not valid.
    pub reason: Option<&'a str>,
}

/// The value of field `id` in a checked fields section.
fn field_in<'a>(fields: Section<'a>, id: FieldId) -> Option<ValueRef<'a>> {
    let mut r = Reader::trusted(fields.bytes);
    for _ in 0..fields.len {
        let here = r.field_id().expect(CHECKED);
        if here == id {
            return Some(r.value().expect(CHECKED));
        }
        // Numbers ascend: past it, it is not there.
        if here > id {
            return None;
        }
        r.skip_value().expect(CHECKED);
    }
    None
}

/// The head of a profile's bytes: its ids and its field values, found without walking
/// the rest, which is all a scan that reads only fields needs (a [`ProfileView`] walks
/// every list to find where each starts).
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    id: u128,
    /// The given id.
    pub customer_id: &'a str,
    fields: Section<'a>,
}

impl<'a> Head<'a> {
    /// Internal id.
    pub fn id(&self) -> Ulid {
        Ulid(self.id)
    }

    /// The value of a field, if set; only that value is decoded.
    pub fn field(&self, id: FieldId) -> Option<ValueRef<'a>> {
        field_in(self.fields, id)
    }

    /// Field values in schema order, by field number (numbers of dropped fields
    /// included: a reader names them through its schema and skips those it lacks).
    pub fn fields(&self) -> impl Iterator<Item = (FieldId, ValueRef<'a>)> + 'a {
        self.fields.iter(Reader::field)
    }
}

impl Packed {
    /// The head of the profile: ids and fields, read without walking the rest.
    #[inline]
    pub fn head(&self) -> Head<'_> {
        let mut r = Reader::trusted(&self.0);
        let id = r.u128().expect(CHECKED);
        let customer_id = r.str().expect(CHECKED);
        let len = r.len().expect(CHECKED);
        // The section's bytes run to the record's end: lookups stop after `len` values.
        Head {
            id,
            customer_id,
            fields: Section { bytes: r.b, len },
        }
    }
}

/// A subscription as stored.
#[derive(Debug, Clone, Copy)]
pub struct SubscriptionRef<'a> {
    /// Resource name.
    pub resource: &'a str,
    /// Channel.
    pub channel: Channel,
    /// Category within the resource.
    pub category: &'a str,
    /// Subscribed or unsubscribed.
    pub status: SubscriptionStatus,
    /// When it was last set.
    pub at: Timestamp,
    /// What set it.
    pub source: Source,
}

impl SubscriptionRef<'_> {
    /// The record as owned values.
    pub fn to_owned(&self) -> Subscription {
        Subscription {
            resource: self.resource.into(),
            channel: self.channel,
            category: self.category.into(),
            status: self.status,
            at: self.at,
            source: self.source,
        }
    }

    /// Whether both records are of the same (resource, channel, category).
    pub fn same_key(&self, other: &SubscriptionRef<'_>) -> bool {
        self.resource == other.resource
            && self.channel == other.channel
            && self.category == other.category
    }
}

/// A field value read from a profile's bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// `integer`.
    Int(i64),
    /// `float`.
    Float(f64),
    /// `string` and `list`.
    Str(&'a str),
    /// `boolean`.
    Bool(bool),
    /// `date`.
    Date(Date),
    /// `datetime`.
    DateTime(Timestamp),
    /// `ip`.
    Ip(IpAddr),
    /// `tags`.
    Tags(StrList<'a>),
    /// `object` and `array`, as JSON text.
    Json(&'a str),
}

/// A list of strings in a profile's bytes, decoded as it is iterated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StrList<'a>(Section<'a>);

impl<'a> StrList<'a> {
    /// The strings.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter(Reader::str)
    }
}

impl Serialize for StrList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// A field value as encoded: the persisted shape, also of schema defaults.
#[derive(Debug, Clone, PartialEq, Encode, BorrowDecode)]
pub enum ValueRec<'a> {
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

/// The elements of one list in a profile's bytes: where they start, how many.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Section<'a> {
    bytes: &'a [u8],
    len: usize,
}

impl<'a> Section<'a> {
    /// Each element, read by `read`; for checked bytes only.
    #[inline]
    fn iter<T: 'a>(
        self,
        read: impl Fn(&mut Reader<'a>) -> Result<T, Bad> + 'a,
    ) -> impl Iterator<Item = T> + 'a {
        let mut r = Reader::trusted(self.bytes);
        (0..self.len).map(move |_| read(&mut r).expect(CHECKED))
    }

    #[inline]
    fn try_iter<T: 'a>(
        self,
        read: impl Fn(&mut Reader<'a>) -> Result<T, Bad> + 'a,
    ) -> impl Iterator<Item = Result<T, Bad>> + 'a {
        let mut r = Reader::checking(self.bytes);
        (0..self.len).map(move |_| read(&mut r))
    }
}

const CHECKED: &str = "a packed profile was encoded or checked when it was made";

impl<'a> ProfileView<'a> {
    fn decode(mut r: Reader<'a>) -> Result<(Self, usize), PackError> {
        let bytes = r.b;
        let id = r.u128()?;
        let customer_id = r.str()?;
        // The contacts may point at the text of the `email` and `phone` fields instead
        // of holding it again: note where those are on the way past.
        let (mut email_text, mut phone_text) = (None, None);
        let fields = r.section(|r| {
            let text = match r.field_id()? {
                FieldId::EMAIL => &mut email_text,
                FieldId::PHONE => &mut phone_text,
                _ => return r.skip_value(),
            };
            if let ValueRef::Str(s) = r.value()? {
                *text = Some(s);
            }
            Ok(())
        })?;
        let view = ProfileView {
            id,
            customer_id,
            fields,
            external_ids: r.section(|r| {
                r.skip_str()?;
                r.skip_str()
            })?,
            tags: r.section(Reader::skip_str)?,
            email: r.option(|r| {
                Ok(EmailRef {
                    normalized: r.text(email_text)?.ok_or(Bad)?,
                    reason: r.option(Reader::str)?,
                })
            })?,
            phone: r.option(|r| {
                Ok(PhoneRef {
                    valid: r.bool()?,
                    e164: r.text(phone_text)?,
                    region: r.option(Reader::str)?,
                    kind: r.phone_kind()?,
                    reason: r.option(Reader::str)?,
                })
            })?,
            subscriptions: r.section(|r| {
                r.skip_str()?;
                r.byte()?;
                r.skip_str()?;
                r.bool()?;
                r.instant()?;
                r.byte().map(drop)
            })?,
            created_at: r.instant()?,
            updated_at: r.instant()?,
        };
        Ok((view, bytes.len() - r.b.len()))
    }

    /// Reads every list element, which checks what the walk in `decode` skipped: text,
    /// dates, instants, enum numbers and JSON.
    fn check(&self) -> Result<(), PackError> {
        let mut last = None;
        for field in self.fields.try_iter(Reader::field) {
            let (id, value) = field?;
            // Values are kept in schema order, which is number order, once each.
            if last.is_some_and(|l| l >= id) {
                return Err(PackError::Invalid(format!(
                    "field number {} out of order",
                    id.0
                )));
            }
            last = Some(id);
            match value {
                ValueRef::Json(text) => {
                    // The same parse as unpacking does: a depth or a number it refuses
                    // must be refused here, not panic later.
                    serde_json::from_str::<serde_json::Value>(text)
                        .map_err(|e| PackError::Invalid(format!("json: {e}")))?;
                }
                ValueRef::Tags(list) => {
                    for tag in list.0.try_iter(Reader::str) {
                        tag?;
                    }
                }
                _ => {}
            }
        }
        for id in self.external_ids.try_iter(Reader::str_pair) {
            id?;
        }
        for tag in self.tags.try_iter(Reader::str) {
            tag?;
        }
        for sub in self.subscriptions.try_iter(Reader::subscription) {
            sub?;
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
        timestamp(self.created_at).expect(CHECKED)
    }

    /// When it was last written.
    pub fn updated_at(&self) -> Timestamp {
        timestamp(self.updated_at).expect(CHECKED)
    }

    /// Field values in schema order, by field number (see [`Head::fields`]).
    pub fn fields(&self) -> impl Iterator<Item = (FieldId, ValueRef<'a>)> + 'a {
        self.fields.iter(Reader::field)
    }

    /// The value of a field, if set; only that value is decoded.
    pub fn field(&self, id: FieldId) -> Option<ValueRef<'a>> {
        field_in(self.fields, id)
    }

    /// External identifiers `(namespace, value)`, sorted by namespace.
    pub fn external_ids(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        self.external_ids.iter(Reader::str_pair)
    }

    /// Tags, sorted and distinct.
    pub fn tags(&self) -> StrList<'a> {
        StrList(self.tags)
    }

    /// Current subscriptions: the latest record of each (resource, channel, category).
    pub fn subscriptions(&self) -> impl Iterator<Item = SubscriptionRef<'a>> + 'a {
        // Records are grouped by key in time order (`Profile::record_subscription`);
        // a record is current unless the next one has its key.
        let mut records = self.subscriptions.iter(Reader::subscription).peekable();
        std::iter::from_fn(move || {
            loop {
                let s = records.next()?;
                match records.peek() {
                    Some(n) if n.same_key(&s) => continue,
                    _ => return Some(s),
                }
            }
        })
    }

    /// Every subscription record kept: per key, its changes oldest first.
    pub fn subscription_history(&self) -> impl Iterator<Item = SubscriptionRef<'a>> + 'a {
        self.subscriptions.iter(Reader::subscription)
    }

    /// Every identifier index key this profile owns (email, phone, external ids).
    pub fn identifier_keys(&self) -> Vec<CompactString> {
        self.identifiers()
            .map(|(ns, v)| identifier_key(ns, v))
            .collect()
    }

    /// The identifier keys this profile owns as (namespace, value) pairs: `email`, `phone`,
    /// then the external ids. Nothing is allocated, where a key is a string joined from
    /// the two ([`identifier_key`]).
    pub fn identifiers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let email = self.email.as_ref().map(|e| ("email", e.normalized));
        let phone = self
            .phone
            .as_ref()
            .and_then(|p| p.e164)
            .map(|e| ("phone", e));
        email.into_iter().chain(phone).chain(self.external_ids())
    }

    /// Whether this profile owns the identifier key `namespace:value`.
    pub fn holds(&self, namespace: &str, value: &str) -> bool {
        self.identifiers().any(|k| k == (namespace, value))
    }

    /// The owned profile, without values of fields `schema` no longer has.
    pub fn to_profile(&self, schema: &Schema) -> Profile {
        let fields: Fields = self
            .fields()
            .filter(|(id, _)| schema.by_id(*id).is_some())
            .map(|(id, v)| (id, v.to_value()))
            .collect();
        Profile {
            id: self.id(),
            customer_id: self.customer_id.into(),
            fields,
            external_ids: self
                .external_ids()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
            tags: self.tags().iter().map(CompactString::from).collect(),
            email: self.email.as_ref().map(|e| EmailContact {
                normalized: e.normalized.into(),
                reason: e.reason.map(CompactString::from),
            }),
            phone: self.phone.as_ref().map(|c| PhoneContact {
                valid: c.valid,
                e164: c.e164.map(CompactString::from),
                region: c.region.map(CompactString::from),
                kind: c.kind,
                reason: c.reason.map(CompactString::from),
            }),
            subscriptions: self.subscription_history().map(|s| s.to_owned()).collect(),
            created_at: self.created_at(),
            updated_at: self.updated_at(),
        }
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
        debug_assert!(
            p.fields.windows(2).all(|w| w[0].0 < w[1].0),
            "field values in number order, once each"
        );
        p.id.0.encode(e)?;
        p.customer_id.as_str().encode(e)?;
        (p.fields.len() as u64).encode(e)?;
        let (mut email_text, mut phone_text) = (None, None);
        for (id, value) in &p.fields {
            id.0.encode(e)?;
            ValueRec::from(value).encode(e)?;
            match (*id, value) {
                (FieldId::EMAIL, Value::Str(s)) => email_text = Some(s.as_str()),
                (FieldId::PHONE, Value::Str(s)) => phone_text = Some(s.as_str()),
                _ => {}
            }
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
        match &p.email {
            None => 0u8.encode(e)?,
            Some(c) => {
                1u8.encode(e)?;
                Text::of(Some(&c.normalized), email_text).encode(e)?;
                c.reason.as_deref().encode(e)?;
            }
        }
        match &p.phone {
            None => 0u8.encode(e)?,
            Some(c) => {
                1u8.encode(e)?;
                c.valid.encode(e)?;
                Text::of(c.e164.as_deref(), phone_text).encode(e)?;
                c.region.as_deref().encode(e)?;
                contacts::phone_kind_number(c.kind).encode(e)?;
                c.reason.as_deref().encode(e)?;
            }
        }
        (p.subscriptions.len() as u64).encode(e)?;
        for s in &p.subscriptions {
            s.resource.as_str().encode(e)?;
            (s.channel as u8).encode(e)?;
            s.category.as_str().encode(e)?;
            (s.status == SubscriptionStatus::Subscribed).encode(e)?;
            parts(s.at).encode(e)?;
            (s.source as u8).encode(e)?;
        }
        parts(p.created_at).encode(e)?;
        parts(p.updated_at).encode(e)
    }
}

/// A contact's key as stored: most often the text of its own field (an email given in
/// lower case, a phone given in E.164), which the record then does not hold twice.
enum Text<'a> {
    /// None.
    Absent,
    /// The text of the contact's field.
    Field,
    /// Text of its own.
    Own(&'a str),
}

impl<'a> Text<'a> {
    fn of(text: Option<&'a str>, field: Option<&str>) -> Self {
        match text {
            None => Text::Absent,
            Some(t) if Some(t) == field => Text::Field,
            Some(t) => Text::Own(t),
        }
    }
}

impl Encode for Text<'_> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        match self {
            Text::Absent => 0u8.encode(e),
            Text::Field => 1u8.encode(e),
            Text::Own(t) => {
                2u8.encode(e)?;
                t.encode(e)
            }
        }
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
    /// The owned value, or why these bytes cannot be one.
    pub fn into_value(self) -> Result<Value, PackError> {
        Ok(match self {
            ValueRec::Int(i) => Value::Int(i),
            ValueRec::Float(f) => Value::Float(f),
            ValueRec::Str(s) => Value::Str(s.into()),
            ValueRec::Bool(b) => Value::Bool(b),
            ValueRec::Date(y, m, d) => Value::Date(date(y, m, d)?),
            ValueRec::DateTime(s, n) => Value::DateTime(timestamp((s, n))?),
            ValueRec::Ip(ip) => Value::Ip(ip),
            ValueRec::Tags(t) => Value::Tags(t.into_iter().map(CompactString::from).collect()),
            ValueRec::Json(j) => Value::Json(Arc::new(
                serde_json::from_str(&j).map_err(|e| PackError::Invalid(format!("json: {e}")))?,
            )),
        })
    }
}

/// The owned value of an unchecked record's value: JSON text that does not parse is
/// refused, where [`ValueRef::to_value`] trusts it.
fn owned(v: ValueRef<'_>) -> Result<Value, PackError> {
    match v {
        ValueRef::Json(text) => serde_json::from_str(text)
            .map(|j| Value::Json(Arc::new(j)))
            .map_err(|e| PackError::Invalid(format!("json: {e}"))),
        // A checking walk steps over a list's strings without reading them.
        ValueRef::Tags(list) => Ok(Value::Tags(
            list.0
                .try_iter(Reader::str)
                .map(|t| t.map(CompactString::from))
                .collect::<Result<_, Bad>>()?,
        )),
        v => Ok(v.to_value()),
    }
}

impl ValueRef<'_> {
    /// The owned value (of a checked profile).
    pub fn to_value(&self) -> Value {
        match *self {
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Str(s) => Value::Str(s.into()),
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Date(d) => Value::Date(d),
            ValueRef::DateTime(t) => Value::DateTime(t),
            ValueRef::Ip(ip) => Value::Ip(ip),
            ValueRef::Tags(t) => Value::Tags(t.iter().map(CompactString::from).collect()),
            ValueRef::Json(j) => Value::Json(Arc::new(serde_json::from_str(j).expect(CHECKED))),
        }
    }
}

/// The same JSON as [`Value`]'s.
impl Serialize for ValueRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ValueRef::Int(i) => s.serialize_i64(*i),
            ValueRef::Float(f) => s.serialize_f64(*f),
            ValueRef::Str(v) => s.serialize_str(v),
            ValueRef::Bool(b) => s.serialize_bool(*b),
            ValueRef::Date(d) => s.collect_str(d),
            ValueRef::DateTime(t) => s.collect_str(t),
            ValueRef::Ip(ip) => s.collect_str(ip),
            ValueRef::Tags(tags) => tags.serialize(s),
            ValueRef::Json(text) => serde_json::from_str::<&serde_json::value::RawValue>(text)
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
        }
    }
}

/// A decoder of bincode's standard encoding (what [`ProfileOut`] writes), by hand.
///
/// Why not bincode's own decoder: it decodes a whole record into heap vectors, through
/// per-read limit accounting, and that was a third of a lookup's time. This one reads a
/// slice with a cursor, can skip what a reader does not ask for, and returns errors
/// only for `Packed::read_first` to check bytes from outside. The round-trip property
/// test holds it to bincode's encoder.
struct Reader<'a> {
    b: &'a [u8],
    /// The bytes are a [`Packed`]'s: their text was checked when they were made.
    trusted: bool,
}

/// Bytes that are not a profile. Carries nothing, so that every read's result fits in
/// registers; `Packed::read_first` turns it into a [`PackError`].
#[derive(Debug)]
struct Bad;

impl From<Bad> for PackError {
    #[cold]
    fn from(_: Bad) -> Self {
        PackError::Invalid("malformed profile bytes".into())
    }
}

fn instant((secs, nanos): (i64, i32)) -> Result<Timestamp, Bad> {
    Timestamp::new(secs, nanos).map_err(|_| Bad)
}

impl<'a> Reader<'a> {
    /// A reader of a [`Packed`]'s bytes, or of a part of them.
    #[inline]
    fn trusted(b: &'a [u8]) -> Self {
        Reader { b, trusted: true }
    }

    /// A reader of bytes from outside, which checks all it reads.
    fn checking(b: &'a [u8]) -> Self {
        Reader { b, trusted: false }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], Bad> {
        if n > self.b.len() {
            return Err(Bad);
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Bad> {
        match self.b.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.b = rest;
                Ok(*head)
            }
            None => Err(Bad),
        }
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, Bad> {
        Ok(self.array::<1>()?[0])
    }

    fn bool(&mut self) -> Result<bool, Bad> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Bad),
        }
    }

    /// bincode's varint: one byte below 251, else a marker and 2, 4, 8 or 16 bytes.
    #[inline]
    fn u128(&mut self) -> Result<u128, Bad> {
        Ok(match self.byte()? {
            b @ 0..=250 => u128::from(b),
            251 => u128::from(u16::from_le_bytes(self.array()?)),
            252 => u128::from(u32::from_le_bytes(self.array()?)),
            253 => u128::from(u64::from_le_bytes(self.array()?)),
            254 => u128::from_le_bytes(self.array()?),
            _ => return Err(Bad),
        })
    }

    #[inline]
    fn u64(&mut self) -> Result<u64, Bad> {
        match self.b.first() {
            // The common case, without the 128-bit detour.
            Some(&b @ 0..=250) => {
                self.b = &self.b[1..];
                Ok(u64::from(b))
            }
            _ => u64::try_from(self.u128()?).map_err(|_| Bad),
        }
    }

    /// Signed integers are zigzag-encoded varints.
    #[inline]
    fn i64(&mut self) -> Result<i64, Bad> {
        let u = self.u64()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    fn int<T: TryFrom<i64>>(&mut self) -> Result<T, Bad> {
        T::try_from(self.i64()?).map_err(|_| Bad)
    }

    #[inline]
    fn len(&mut self) -> Result<usize, Bad> {
        let n = usize::try_from(self.u64()?).unwrap_or(usize::MAX);
        // Every element takes at least a byte: a length beyond the rest is corrupt.
        if n > self.b.len() {
            return Err(Bad);
        }
        Ok(n)
    }

    #[inline]
    fn str(&mut self) -> Result<&'a str, Bad> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        if self.trusted {
            debug_assert!(
                std::str::from_utf8(bytes).is_ok(),
                "a Packed holds checked text"
            );
            // SAFETY: a trusted reader reads a `Packed`'s bytes, and a `Packed` is only
            // made by `encode` (from `str`s) or by `read_first`, which reads every
            // string of the record through a checking reader (`decode`, then `check`)
            // before it copies the bytes. The lookup path reads every string of a
            // document, and checking them again was ~7% of its time.
            Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
        } else {
            std::str::from_utf8(bytes).map_err(|_| Bad)
        }
    }

    #[inline]
    fn skip_str(&mut self) -> Result<(), Bad> {
        let n = self.len()?;
        self.take(n).map(drop)
    }

    fn str_pair(&mut self) -> Result<(&'a str, &'a str), Bad> {
        Ok((self.str()?, self.str()?))
    }

    fn instant(&mut self) -> Result<(i64, i32), Bad> {
        Ok((self.i64()?, self.int()?))
    }

    fn option<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, Bad>) -> Result<Option<T>, Bad> {
        match self.byte()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            _ => Err(Bad),
        }
    }

    /// A list: its length, then its elements, stepped over with `skip`.
    #[inline]
    fn section(
        &mut self,
        mut skip: impl FnMut(&mut Self) -> Result<(), Bad>,
    ) -> Result<Section<'a>, Bad> {
        let len = self.len()?;
        let start = self.b;
        for _ in 0..len {
            skip(self)?;
        }
        Ok(Section {
            bytes: &start[..start.len() - self.b.len()],
            len,
        })
    }

    // Inlined: returned through memory, the pair's halves were written and read back
    // in different widths, a store-forwarding stall per field (a third of a hot
    // projection's time).
    #[inline(always)]
    fn field(&mut self) -> Result<(FieldId, ValueRef<'a>), Bad> {
        Ok((self.field_id()?, self.value()?))
    }

    #[inline]
    fn field_id(&mut self) -> Result<FieldId, Bad> {
        u32::try_from(self.u64()?).map(FieldId).map_err(|_| Bad)
    }

    /// A [`Text`]: absent, the text of the contact's field (`field`), or its own.
    fn text(&mut self, field: Option<&'a str>) -> Result<Option<&'a str>, Bad> {
        match self.byte()? {
            0 => Ok(None),
            1 => field.map(Some).ok_or(Bad),
            2 => self.str().map(Some),
            _ => Err(Bad),
        }
    }

    fn phone_kind(&mut self) -> Result<Option<&'static str>, Bad> {
        contacts::phone_kind_of(self.byte()?).ok_or(Bad)
    }

    // Variant numbers follow the order of `ValueRec`'s variants (bincode's derive).
    fn value(&mut self) -> Result<ValueRef<'a>, Bad> {
        Ok(match self.u64()? {
            0 => ValueRef::Int(self.i64()?),
            1 => ValueRef::Float(f64::from_le_bytes(self.array()?)),
            2 => ValueRef::Str(self.str()?),
            3 => ValueRef::Bool(self.bool()?),
            4 => {
                let y = self.int()?;
                let [m, d] = self.array::<2>()?;
                ValueRef::Date(Date::new(y, m as i8, d as i8).map_err(|_| Bad)?)
            }
            5 => ValueRef::DateTime(instant(self.instant()?)?),
            6 => ValueRef::Ip(match self.u64()? {
                0 => IpAddr::from(self.array::<4>()?),
                1 => IpAddr::from(self.array::<16>()?),
                _ => return Err(Bad),
            }),
            7 => ValueRef::Tags(StrList(self.section(Reader::skip_str)?)),
            8 => ValueRef::Json(self.str()?),
            _ => return Err(Bad),
        })
    }

    fn skip_value(&mut self) -> Result<(), Bad> {
        match self.u64()? {
            0 => self.u64().map(drop),
            1 => self.array::<8>().map(drop),
            2 | 8 => self.skip_str(),
            3 => self.byte().map(drop),
            4 => {
                self.u64()?;
                self.array::<2>().map(drop)
            }
            5 => {
                self.u64()?;
                self.u64().map(drop)
            }
            6 => match self.u64()? {
                0 => self.array::<4>().map(drop),
                1 => self.array::<16>().map(drop),
                _ => Err(Bad),
            },
            7 => self.section(Reader::skip_str).map(drop),
            _ => Err(Bad),
        }
    }

    fn subscription(&mut self) -> Result<SubscriptionRef<'a>, Bad> {
        Ok(SubscriptionRef {
            resource: self.str()?,
            channel: channel_from(self.byte()?).map_err(|_| Bad)?,
            category: self.str()?,
            status: if self.bool()? {
                SubscriptionStatus::Subscribed
            } else {
                SubscriptionStatus::Unsubscribed
            },
            at: instant(self.instant()?)?,
            source: source_from(self.byte()?).map_err(|_| Bad)?,
        })
    }
}

/// Whether `id` can be written over the record's own id in place (bytes 1 to 16): both
/// are over 2^64, as every current ULID is, which bincode writes as 254 and 16 bytes.
fn id_fits(record: &[u8], id: Ulid) -> bool {
    record[0] == 254 && id.0 > u128::from(u64::MAX)
}

/// The last bytes of a record: its creation and last-write times as encoded.
fn time_bytes(created_at: Timestamp, updated_at: Timestamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    bincode::encode_into_std_write((parts(created_at), parts(updated_at)), &mut out, config())
        .expect("encode into memory");
    out
}

// Seconds and nanoseconds apart, not one i128 of nanoseconds: splitting an i128 back
// needs a 128-bit division, which was a measurable part of a snapshot load.
pub(crate) fn parts(t: Timestamp) -> (i64, i32) {
    (t.as_second(), t.subsec_nanosecond())
}

fn timestamp((secs, nanos): (i64, i32)) -> Result<Timestamp, PackError> {
    Timestamp::new(secs, nanos).map_err(|e| PackError::Invalid(format!("time: {e}")))
}

fn date(y: i16, m: i8, d: i8) -> Result<Date, PackError> {
    Date::new(y, m, d).map_err(|e| PackError::Invalid(format!("date: {e}")))
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

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::schema::{FieldSpec, FieldType};

    /// The default fields and one custom field of most types; shared by the persistence
    /// tests.
    pub(crate) fn schema() -> Schema {
        let mut s = Schema::default();
        for (n, t) in [
            ("score", "float"),
            ("visits", "integer"),
            ("ip", "ip"),
            ("meta", "object"),
            ("labels", "tags"),
            ("flag", "boolean"),
        ] {
            let spec: FieldSpec =
                serde_json::from_value(serde_json::json!({"name": n, "type": t})).unwrap();
            s = s.with_field(spec.into_def().unwrap()).unwrap();
        }
        s
    }

    fn text() -> impl Strategy<Value = String> {
        // Short and long (past the inline size of compact strings), any scalar values.
        prop_oneof![".{0,8}", ".{20,300}"]
    }

    fn value(ty: FieldType) -> BoxedStrategy<Value> {
        match ty {
            FieldType::Integer => any::<i64>().prop_map(Value::Int).boxed(),
            FieldType::Float => (-1e300f64..1e300).prop_map(Value::Float).boxed(),
            FieldType::Boolean => any::<bool>().prop_map(Value::Bool).boxed(),
            FieldType::Date => (-9999i16..=9999, 1i8..=12, 1i8..=28)
                .prop_map(|(y, m, d)| Value::Date(Date::new(y, m, d).unwrap()))
                .boxed(),
            FieldType::DateTime => (-377_705_116_800i64..253_402_207_200, 0i32..1_000_000_000)
                .prop_map(|(s, n)| Value::DateTime(Timestamp::new(s, n).unwrap()))
                .boxed(),
            FieldType::Ip => any::<IpAddr>().prop_map(Value::Ip).boxed(),
            FieldType::Tags => prop::collection::vec(text(), 0..4)
                .prop_map(|t| Value::Tags(t.into_iter().map(Into::into).collect()))
                .boxed(),
            FieldType::Object | FieldType::Array => text()
                .prop_map(|t| Value::Json(Arc::new(serde_json::json!({"k": t, "n": [1, null]}))))
                .boxed(),
            _ => text().prop_map(|t| Value::Str(t.into())).boxed(),
        }
    }

    /// Profiles of [`schema`] with every part present or not, texts of any scalar values.
    pub(crate) fn profile() -> impl Strategy<Value = Profile> {
        let s = schema();
        type MaybeField = BoxedStrategy<Option<(FieldId, Value)>>;
        let fields: Vec<MaybeField> = s
            .fields()
            .iter()
            .map(|d| {
                let id = d.id;
                prop::option::of(value(d.ty).prop_map(move |v| (id, v))).boxed()
            })
            .collect();
        let strs = || prop::collection::vec(text(), 0..3);
        (
            (any::<u128>(), text(), fields),
            (prop::collection::vec((text(), text()), 0..3), strs()),
            (
                prop::option::of((text(), prop::option::of(text()))),
                any::<bool>(),
            ),
            (
                prop::option::of((any::<bool>(), prop::option::of(text()))),
                prop::collection::vec((text(), 0u8..3, text(), any::<bool>(), 0u8..4), 0..3),
            ),
            (0i64..4_000_000_000, 0i32..1_000_000_000),
        )
            .prop_map(
                |((id, cid, fields), (ext, tags), (email, _), (phone, subs), (t, n))| {
                    let at = Timestamp::new(t, n).unwrap();
                    let mut p = Profile::new(cid.into(), at);
                    p.id = Ulid(id);
                    p.fields = fields.into_iter().flatten().collect();
                    p.external_ids = ext.into_iter().map(|(a, b)| (a.into(), b.into())).collect();
                    p.tags = tags.into_iter().map(Into::into).collect();
                    p.email = email.map(|(n, r)| EmailContact {
                        normalized: n.into(),
                        reason: r.map(Into::into),
                    });
                    p.phone = phone.map(|(valid, e164)| PhoneContact {
                        valid,
                        e164: e164.map(Into::into),
                        region: Some("PT".into()),
                        kind: Some("mobile"),
                        reason: None,
                    });
                    p.subscriptions = subs
                        .into_iter()
                        .map(|(r, c, cat, on, src)| Subscription {
                            resource: r.into(),
                            channel: channel_from(c).unwrap(),
                            category: cat.into(),
                            status: if on {
                                SubscriptionStatus::Subscribed
                            } else {
                                SubscriptionStatus::Unsubscribed
                            },
                            at,
                            source: source_from(src).unwrap(),
                        })
                        .collect();
                    p
                },
            )
    }

    fn read_everything(p: &Packed) {
        let v = p.view();
        for (_, value) in v.fields() {
            serde_json::to_string(&value).unwrap();
            let _ = value.to_value();
        }
        let _ = (
            v.tags().iter().count(),
            v.subscriptions().count(),
            v.identifier_keys(),
        );
        let _ = (v.created_at(), v.updated_at(), p.unpack(&schema()));
    }

    #[test]
    fn json_that_unpacking_would_refuse_is_refused_when_checked() {
        // Found in review: each passed a lighter check, then panicked when unpacked.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for text in [deep.as_str(), "[1e400]", "\"\\ud800\""] {
            let mut p = Profile::new("c".into(), Timestamp::UNIX_EPOCH);
            p.fields.push((
                schema().id_of("meta").unwrap(),
                Value::Json(Arc::new(serde_json::Value::Null)),
            ));
            let bytes = Packed::encode(&p).bytes().to_vec();
            // Swap the encoded `null` for the text, fixing its length prefix.
            let at = bytes.windows(4).position(|w| w == b"null").unwrap();
            let mut out = bytes[..at - 1].to_vec();
            out.push(u8::try_from(text.len()).unwrap_or(251));
            if text.len() > 250 {
                out.extend_from_slice(&u16::try_from(text.len()).unwrap().to_le_bytes());
            }
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(&bytes[at + 4..]);
            assert!(Packed::from_bytes(&out).is_err(), "{text}");
        }
    }

    #[test]
    fn records_the_fuzz_target_found_are_refused() {
        // Found by the packed_profile fuzz target when records named their fields: a
        // field named "\0" went into a document unescaped.
        let bytes = [
            7, 0, 1, 1, 0, 0, 13, 252, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(Packed::from_bytes(&bytes).is_err());
    }

    /// Edits one byte of an encoded profile: the byte after the first run of `after`.
    fn edited(p: &Profile, after: &[u8], to: u8) -> Vec<u8> {
        let mut bytes = Packed::encode(p).bytes().to_vec();
        let at = bytes
            .windows(after.len())
            .position(|w| w == after)
            .expect("the bytes to edit");
        bytes[at + after.len()] = to;
        bytes
    }

    /// A record in the form from before fields had numbers, by hand: id 0, customer id
    /// `c`, one field `labels` of tags, nothing else.
    fn unnumbered_with_tag(tag: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 1, b'c', 1, 6];
        b.extend_from_slice(b"labels");
        b.extend_from_slice(&[7, 1, tag.len() as u8]);
        b.extend_from_slice(tag);
        // External ids, tags, email, phone, subscriptions; two instants.
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn records_without_field_numbers_are_read_against_the_schema_and_checked() {
        let s = schema();
        let (p, used) = Packed::read_unnumbered(&unnumbered_with_tag(b"ok"), &s).unwrap();
        assert_eq!(used, unnumbered_with_tag(b"ok").len());
        let labels = s.id_of("labels").unwrap();
        assert_eq!(
            p.unpack(&s).field(labels),
            Some(&Value::Tags(vec!["ok".into()]))
        );
        // A field the schema lacks is left out.
        let (p, _) =
            Packed::read_unnumbered(&unnumbered_with_tag(b"ok"), &Schema::default()).unwrap();
        assert_eq!(p.view().fields().count(), 0);
        // Found in review: a tag that is not UTF-8 was read as text before any check.
        assert!(Packed::read_unnumbered(&unnumbered_with_tag(&[0xFF, 0xFE]), &s).is_err());
    }

    #[test]
    fn field_numbers_out_of_order_or_twice_are_refused() {
        let mut p = Profile::new("c".into(), Timestamp::UNIX_EPOCH);
        p.fields.push((FieldId(1), Value::Str("FIRST".into())));
        p.fields.push((FieldId(2), Value::Str("LAST".into())));
        assert!(Packed::from_bytes(Packed::encode(&p).bytes()).is_ok());
        // The second field's number follows the first's text: the first's again, or
        // one before it.
        for to in [1, 0] {
            let bytes = edited(&p, b"FIRST", to);
            let err = Packed::from_bytes(&bytes).unwrap_err().to_string();
            assert!(err.contains("out of order"), "{err}");
        }
    }

    #[test]
    fn contacts_keep_their_keys_once_and_refuse_a_missing_field() {
        let mut p = Profile::new("c".into(), Timestamp::UNIX_EPOCH);
        p.fields
            .push((FieldId::EMAIL, Value::Str("ana@example.com".into())));
        p.fields
            .push((FieldId::PHONE, Value::Str("+351912345678".into())));
        p.email = Some(EmailContact::new("ana@example.com"));
        p.phone = Some(crate::contacts::PhoneContact::new("+351912345678", None));
        let packed = Packed::encode(&p);
        let text = |t: &str| {
            packed
                .bytes()
                .windows(t.len())
                .filter(|w| *w == t.as_bytes())
                .count()
        };
        assert_eq!((text("ana@example.com"), text("+351912345678")), (1, 1));
        let view = packed.view();
        assert_eq!(view.email.unwrap().normalized, "ana@example.com");
        assert_eq!(view.phone.unwrap().e164, Some("+351912345678"));
        assert_eq!(view.phone.unwrap().kind, Some("mobile"));
        assert_eq!(packed.unpack(&Schema::default()), p);
        // A contact that points at its field, without the field, is not a profile.
        p.fields.clear();
        let mut bytes = Packed::encode(&p).bytes().to_vec();
        let own = b"\x02\x0fana@example.com";
        let at = bytes.windows(own.len()).position(|w| w == own).unwrap();
        assert!(Packed::from_bytes(&bytes).is_ok());
        bytes.splice(at..at + own.len(), [1u8]);
        assert!(Packed::from_bytes(&bytes).is_err());
        // A phone type number we do not know is not a profile either.
        let bytes = edited(&p, b"PT", 200);
        assert!(Packed::from_bytes(&bytes).is_err());
    }

    /// Text that is not UTF-8, in any string of a profile, is refused: lookups read a
    /// `Packed`'s strings without checking them again.
    #[test]
    fn invalid_text_in_any_string_is_refused() {
        let mut p = Profile::new("CUSTOMERID".into(), Timestamp::UNIX_EPOCH);
        let s = schema();
        p.fields
            .push((s.id_of("city").unwrap(), Value::Str("CITYVALUE".into())));
        p.fields.push((
            s.id_of("meta").unwrap(),
            Value::Json(Arc::new(serde_json::json!({"k": "JSONTEXT"}))),
        ));
        p.fields.push((
            s.id_of("labels").unwrap(),
            Value::Tags(vec!["LABELTAG".into()]),
        ));
        p.external_ids
            .push(("NAMESPACE".into(), "EXTERNALID".into()));
        p.tags.push("TAGVALUE".into());
        p.email = Some(EmailContact {
            normalized: "emailaddr@example.com".into(),
            reason: Some("EMAILREASON".into()),
        });
        p.phone = Some(crate::contacts::PhoneContact {
            valid: false,
            e164: Some("PHONEE164".into()),
            region: Some("PHONEREGION".into()),
            kind: Some("fixed_line_or_mobile"),
            reason: Some("PHONEREASON".into()),
        });
        p.subscriptions.push(Subscription {
            resource: "RESOURCENAME".into(),
            channel: Channel::Email,
            category: "CATEGORYNAME".into(),
            status: SubscriptionStatus::Subscribed,
            at: Timestamp::UNIX_EPOCH,
            source: Source::Api,
        });
        let bytes = Packed::encode(&p).bytes().to_vec();
        assert!(Packed::from_bytes(&bytes).is_ok());
        for text in [
            "CUSTOMERID",
            "CITYVALUE",
            "LABELTAG",
            "JSONTEXT",
            "NAMESPACE",
            "EXTERNALID",
            "TAGVALUE",
            "emailaddr",
            "EMAILREASON",
            "PHONEE164",
            "PHONEREGION",
            "PHONEREASON",
            "RESOURCENAME",
            "CATEGORYNAME",
        ] {
            let at = bytes
                .windows(text.len())
                .position(|w| w == text.as_bytes())
                .unwrap_or_else(|| panic!("{text} in the bytes"));
            let mut bad = bytes.clone();
            bad[at + 1] = 0xFF;
            assert!(Packed::from_bytes(&bad).is_err(), "{text}");
        }
    }

    proptest! {
        /// A new id, written in place or not, makes what encoding the profile with
        /// that id makes.
        #[test]
        fn a_profile_with_another_id_is_that_profiles_encoding(p in profile(), shared in any::<bool>()) {
            let id = ulid::Ulid::new();
            let packed = Packed::encode(&p);
            // A second handle to the bytes: they may not be written over.
            let other = shared.then(|| packed.clone());
            let renamed = packed.with_id(&schema(), id);
            let mut r = p.clone();
            r.id = id;
            let expected = Packed::encode(&r);
            prop_assert_eq!(renamed.bytes(), expected.bytes());
            if let Some(other) = other {
                let unchanged = Packed::encode(&p);
                prop_assert_eq!(other.bytes(), unchanged.bytes());
            }
        }

        /// Restamping the bytes makes what encoding the restamped profile makes.
        #[test]
        fn restamped_bytes_are_the_restamped_profiles(
            p in profile(),
            new in any::<bool>(),
            secs in 0i64..4_000_000_000,
            nanos in 0i32..1_000_000_000,
        ) {
            let now = Timestamp::new(secs, nanos).unwrap();
            let id = new.then(ulid::Ulid::new);
            let restamped = Packed::encode(&p).restamped(&schema(), id, new.then_some(now), now);
            // The long way too: an id below 2^64 is not written in place.
            let small = ulid::Ulid(u128::from(secs as u64));
            let long = Packed::encode(&p).restamped(&schema(), Some(small), Some(now), now);
            let mut r = p.clone();
            r.id = small;
            r.created_at = now;
            r.updated_at = now;
            let expected_long = Packed::encode(&r);
            prop_assert_eq!(long.bytes(), expected_long.bytes());
            let mut q = p.clone();
            q.id = id.unwrap_or(q.id);
            if new {
                q.created_at = now;
            }
            q.updated_at = now;
            let expected = Packed::encode(&q);
            prop_assert_eq!(restamped.bytes(), expected.bytes());
            prop_assert!(Packed::from_bytes(restamped.bytes()).is_ok());
        }

        /// The hand-written reader reads exactly what bincode's encoder wrote.
        #[test]
        fn packed_profiles_round_trip(p in profile()) {
            let packed = Packed::encode(&p);
            let bytes = packed.bytes();
            let checked = Packed::from_bytes(bytes).unwrap();
            prop_assert_eq!(&checked, &packed);
            prop_assert_eq!(checked.unpack(&schema()), p);
            // Cut anywhere, the bytes are refused, never misread.
            for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
                prop_assert!(Packed::from_bytes(&bytes[..cut]).is_err());
            }
        }

        /// A profile's bytes with one byte changed are refused, or read whole without a
        /// panic: every reader trusts a `Packed`.
        #[test]
        fn damaged_bytes_are_refused_or_read_whole(
            p in profile(),
            at in any::<prop::sample::Index>(),
            xor in 1u8..,
        ) {
            let mut bytes = Packed::encode(&p).bytes().to_vec();
            let at = at.index(bytes.len());
            bytes[at] ^= xor;
            if let Ok(p) = Packed::from_bytes(&bytes) {
                read_everything(&p);
            }
        }

        /// Any bytes are a profile or an error, never a panic.
        #[test]
        fn garbage_is_refused_or_read(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(p) = Packed::from_bytes(&bytes) {
                prop_assert_eq!(p.bytes(), &bytes[..]);
                read_everything(&p);
            }
        }
    }
}
