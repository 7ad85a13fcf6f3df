//! The bincode form of what the WAL and snapshots hold, and the conversions between it
//! and the in-memory types.
//!
//! A profile is logged and snapshotted as its packed bytes, unchanged (`store::packed`
//! owns that encoding); this module frames them and encodes the rest (removals, schema,
//! settings). Persisted shapes are declared here, not derived on the in-memory types, so
//! that a change of representation in memory never changes the bytes on disk by
//! accident; the enum variant order is part of the format.

use std::borrow::Cow;
use std::sync::Arc;

use bincode::{BorrowDecode, Encode};
use compact_str::CompactString;

use crate::activity::{Activity, Event, Kind, event};
use crate::schema::{DatabaseSettings, FieldDef, FieldId, FieldType, Schema};
use crate::segments::SegmentDef;
use crate::store::{MergeRecord, PackError, Packed, ProfileView, ValueRec};

pub use crate::store::packed::{MAX_RECORD, config};

/// One applied effect, as the WAL logs it and replay re-applies it.
///
/// Effects are results, not requests: a `Put` carries the whole new profile, a schema
/// change the whole new schema. Applying one twice is the same as applying it once, which
/// is what lets a snapshot be taken while writes go on (see `persist::snapshot`).
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A profile as published.
    Put(Packed),
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
    /// The records up to the matching [`Entry::Commit`] are one transaction (an atomic
    /// import): replay applies them only if the commit made it to the log.
    Begin,
    /// The end of a transaction begun by [`Entry::Begin`].
    Commit,
    /// Events applied to a profile's activity, with the profile as published when the
    /// events created or changed it (a `tag_set`, a first event). Replaying the record
    /// again changes nothing: an activity remembers the last LSN applied to it.
    Events {
        /// The profile's customer id.
        customer_id: CompactString,
        /// The profile, when it changed.
        profile: Option<Packed>,
        /// The events, in order.
        events: Vec<Event>,
    },
    /// Every saved segment definition after one was saved or deleted.
    Segments(Arc<Vec<SegmentDef>>),
    /// An identity merge: the survivor as published, its whole activity after the merge
    /// (before `events`), the profiles it absorbed (removed), its whole merge history,
    /// and the events the merging update carried.
    Merge {
        /// The surviving profile.
        survivor: Packed,
        /// Its activity with the absorbed ones folded in.
        activity: Option<Box<Activity>>,
        /// The customer ids of the absorbed profiles.
        absorbed: Vec<CompactString>,
        /// Every profile the survivor has absorbed, ever.
        history: Arc<[MergeRecord]>,
        /// The update's events, applied after the merge.
        events: Vec<Event>,
    },
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

impl From<PackError> for RecordError {
    fn from(e: PackError) -> Self {
        match e {
            PackError::Decode(d) => RecordError::Decode(d),
            PackError::Invalid(why) => RecordError::Invalid(why),
        }
    }
}

/// A WAL record's effect as decoded; `S` is how a schema is logged ([`SchemaRec`], or a
/// list of [`FieldRecV1`] in WAL format 1).
#[derive(BorrowDecode)]
enum EntryRec<'a, S> {
    // Decoded by hand in `decode_entry` (the profile's bytes follow the tag inline);
    // here to keep the variant numbers.
    Put(()),
    Remove(&'a str),
    Schema(S),
    DropField(&'a str, S),
    Settings(Cow<'a, str>),
    Begin,
    Commit,
    Events(&'a str, Option<&'a [u8]>, Vec<EventRec<'a>>),
    Segments(Vec<SegmentRec<'a>>),
    Merge(MergeIn<'a>),
}

/// A merge as logged: the survivor's bytes, its activity, the absorbed ids, its
/// history and the update's events.
#[derive(Encode)]
struct MergeOut<'a>(
    &'a [u8],
    Option<&'a Activity>,
    Vec<&'a str>,
    Vec<MergeRec<'a>>,
    Vec<EventRec<'a>>,
);

/// The decoding side of [`MergeOut`].
#[derive(BorrowDecode)]
struct MergeIn<'a>(
    &'a [u8],
    Option<Box<Activity>>,
    Vec<&'a str>,
    Vec<MergeRec<'a>>,
    Vec<EventRec<'a>>,
);

/// A merge record: customer id, id, created and merged (ns since the epoch), keys.
#[derive(Encode, BorrowDecode)]
struct MergeRec<'a>(&'a str, u128, i128, i128, Vec<&'a str>);

fn merge_recs(history: &[MergeRecord]) -> Vec<MergeRec<'_>> {
    history
        .iter()
        .map(|r| {
            MergeRec(
                &r.customer_id,
                r.id.0,
                r.created_at.as_nanosecond(),
                r.merged_at.as_nanosecond(),
                r.identifiers.iter().map(CompactString::as_str).collect(),
            )
        })
        .collect()
}

fn merges_from(recs: Vec<MergeRec<'_>>) -> Result<Vec<MergeRecord>, RecordError> {
    let at = |ns: i128| {
        jiff::Timestamp::from_nanosecond(ns)
            .map_err(|e| RecordError::Invalid(format!("merge time: {e}")))
    };
    recs.into_iter()
        .map(|MergeRec(cid, id, created, merged, keys)| {
            Ok(MergeRecord {
                customer_id: cid.into(),
                id: ulid::Ulid(id),
                created_at: at(created)?,
                merged_at: at(merged)?,
                identifiers: keys.into_iter().map(CompactString::from).collect(),
            })
        })
        .collect()
}

fn events_out(events: &[Event]) -> Vec<EventRec<'_>> {
    events
        .iter()
        .map(|e| EventRec {
            time: e.time,
            kind: e.kind as u8,
            custom: e.custom.as_deref(),
            data: &e.data,
        })
        .collect()
}

fn events_in(recs: Vec<EventRec<'_>>) -> Result<Vec<Event>, RecordError> {
    recs.into_iter()
        .map(|e| {
            let kind = Kind::from_u8(e.kind)
                .ok_or_else(|| RecordError::Invalid(format!("event kind {}", e.kind)))?;
            event::restore(kind, e.custom, e.time, e.data).map_err(RecordError::Invalid)
        })
        .collect()
}

/// An event as logged: its time, kind, custom name and payload text.
#[derive(Encode, BorrowDecode)]
struct EventRec<'a> {
    time: i64,
    kind: u8,
    custom: Option<&'a str>,
    data: &'a str,
}

/// The encoding side of [`EntryRec`]: the same variants in the same order, so the same
/// bytes (the round-trip tests hold the two together).
#[derive(Encode)]
enum EntryOut<'a> {
    Put(Inline<'a>),
    Remove(&'a str),
    Schema(SchemaRec<'a>),
    DropField(&'a str, SchemaRec<'a>),
    Settings(&'a str),
    Begin,
    Commit,
    Events(&'a str, Option<&'a [u8]>, Vec<EventRec<'a>>),
    Segments(Vec<SegmentRec<'a>>),
    Merge(MergeOut<'a>),
}

/// A WAL record: a log sequence number and the effect.
#[derive(BorrowDecode)]
struct WalRec<'a, S> {
    lsn: u64,
    entry: EntryRec<'a, S>,
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
        Entry::Put(p) => EntryOut::Put(Inline(p.bytes())),
        Entry::Remove(id) => EntryOut::Remove(id),
        Entry::Schema(s) => EntryOut::Schema(schema_rec(s)),
        Entry::DropField { name, schema } => EntryOut::DropField(name, schema_rec(schema)),
        Entry::Settings(s) => {
            settings_json = settings_text(s);
            EntryOut::Settings(&settings_json)
        }
        Entry::Begin => EntryOut::Begin,
        Entry::Commit => EntryOut::Commit,
        Entry::Events {
            customer_id,
            profile,
            events,
        } => EntryOut::Events(
            customer_id,
            profile.as_ref().map(Packed::bytes),
            events_out(events),
        ),
        Entry::Segments(defs) => EntryOut::Segments(segments_rec(defs)),
        Entry::Merge {
            survivor,
            activity,
            absorbed,
            history,
            events,
        } => EntryOut::Merge(MergeOut(
            survivor.bytes(),
            activity.as_deref(),
            absorbed.iter().map(CompactString::as_str).collect(),
            merge_recs(history),
            events_out(events),
        )),
    };
    encode_into(&WalOut { lsn, entry }, out);
}

/// The LSN of a WAL record's payload, which it starts with.
pub fn entry_lsn(bytes: &[u8]) -> Result<u64, RecordError> {
    Ok(bincode::decode_from_slice(bytes, config())?.0)
}

/// Decodes a WAL record's payload (WAL format 2).
pub fn decode_entry(bytes: &[u8]) -> Result<(u64, Entry), RecordError> {
    decode_entry_as::<SchemaRec<'_>>(bytes, &|b| Ok(Packed::from_bytes(b)?), &schema_from)
}

/// Decodes a WAL format 1 record's payload, from before fields had numbers: its
/// profiles and schemas are read against `prior`, the schema as of the record (the last
/// one logged before it, or the snapshot's).
pub fn decode_entry_unnumbered(bytes: &[u8], prior: &Schema) -> Result<(u64, Entry), RecordError> {
    let profile = |b: &[u8]| {
        let (p, used) = Packed::read_unnumbered(b, prior)?;
        match used == b.len() {
            true => Ok(p),
            false => Err(RecordError::Invalid(format!(
                "{} bytes after the profile",
                b.len() - used
            ))),
        }
    };
    decode_entry_as::<Vec<FieldRecV1<'_>>>(bytes, &profile, &|fields| {
        schema_from_v1(fields, Some(prior))
    })
}

fn decode_entry_as<'a, S: BorrowDecode<'a, ()>>(
    bytes: &'a [u8],
    profile: &dyn Fn(&[u8]) -> Result<Packed, RecordError>,
    schema: &dyn Fn(S) -> Result<Schema, RecordError>,
) -> Result<(u64, Entry), RecordError> {
    let (lsn, n): (u64, usize) = bincode::decode_from_slice(bytes, config())?;
    let (variant, m): (u32, usize) = bincode::decode_from_slice(&bytes[n..], config())?;
    if variant == PUT {
        return Ok((lsn, Entry::Put(profile(&bytes[n + m..])?)));
    }
    let (rec, _): (WalRec<'_, S>, usize) = bincode::borrow_decode_from_slice(bytes, config())?;
    let entry = match rec.entry {
        EntryRec::Put(()) => unreachable!("a put is decoded above"),
        EntryRec::Remove(id) => Entry::Remove(id.into()),
        EntryRec::Schema(fields) => Entry::Schema(Arc::new(schema(fields)?)),
        EntryRec::DropField(name, fields) => Entry::DropField {
            name: name.to_owned(),
            schema: Arc::new(schema(fields)?),
        },
        EntryRec::Settings(json) => Entry::Settings(Arc::new(settings_from(&json)?)),
        EntryRec::Begin => Entry::Begin,
        EntryRec::Commit => Entry::Commit,
        EntryRec::Events(customer_id, packed, events) => Entry::Events {
            customer_id: customer_id.into(),
            profile: packed.map(profile).transpose()?,
            events: events_in(events)?,
        },
        EntryRec::Segments(recs) => Entry::Segments(Arc::new(segments_from(recs)?)),
        EntryRec::Merge(MergeIn(survivor, activity, absorbed, history, events)) => Entry::Merge {
            survivor: profile(survivor)?,
            activity,
            absorbed: absorbed.into_iter().map(CompactString::from).collect(),
            history: Arc::from(merges_from(history)?),
            events: events_in(events)?,
        },
    };
    Ok((rec.lsn, entry))
}

/// `EntryRec::Put`'s variant number.
const PUT: u32 = 0;

/// Bytes written as they are, with no length: a packed profile marks its own end. (The
/// WAL held profiles inline before profiles were packed, in these same bytes.)
struct Inline<'a>(&'a [u8]);

impl Encode for Inline<'_> {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        use bincode::enc::write::Writer;
        e.writer().write(self.0)
    }
}

fn encode_into<T: Encode>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and every record type is encodable.
    bincode::encode_into_std_write(value, out, config()).expect("encode into memory");
}

/// The settings, schema and saved segments at the head of a snapshot; `S` is how the
/// schema is kept ([`SchemaRec`], or a list of [`FieldRecV1`] up to format 3).
#[derive(Encode, BorrowDecode)]
struct HeadRec<'a, S> {
    settings: Cow<'a, str>,
    schema: S,
    segments: Vec<SegmentRec<'a>>,
    merges: Vec<(&'a str, Vec<MergeRec<'a>>)>,
}

/// What a snapshot's head holds beside settings and schema (format 3).
#[derive(Debug, Default, PartialEq)]
pub struct HeadExtra {
    /// Saved segment definitions.
    pub segments: Vec<SegmentDef>,
    /// Merge histories by survivor.
    pub merges: Vec<(CompactString, Arc<[MergeRecord]>)>,
}

/// The head of a format 1 or 2 snapshot: no saved segments.
#[derive(BorrowDecode)]
struct HeadRecV2<'a> {
    settings: Cow<'a, str>,
    schema: Vec<FieldRecV1<'a>>,
}

/// A saved segment's definition: name, filter text, when saved (ns since the epoch).
#[derive(Encode, BorrowDecode)]
struct SegmentRec<'a>(&'a str, &'a str, i128);

fn segments_rec(defs: &[SegmentDef]) -> Vec<SegmentRec<'_>> {
    defs.iter()
        .map(|d| SegmentRec(&d.name, &d.filter, d.saved_at.as_nanosecond()))
        .collect()
}

fn segments_from(recs: Vec<SegmentRec<'_>>) -> Result<Vec<SegmentDef>, RecordError> {
    recs.into_iter()
        .map(|SegmentRec(name, filter, at)| {
            Ok(SegmentDef {
                name: name.to_owned(),
                filter: filter.to_owned(),
                saved_at: jiff::Timestamp::from_nanosecond(at)
                    .map_err(|e| RecordError::Invalid(format!("segment time: {e}")))?,
            })
        })
        .collect()
}

/// Encodes a snapshot's settings, schema and saved segments.
pub fn encode_head(
    settings: &DatabaseSettings,
    schema: &Schema,
    extra: &HeadExtra,
    out: &mut Vec<u8>,
) {
    let json = settings_text(settings);
    encode_into(
        &HeadRec {
            settings: Cow::Borrowed(&json),
            schema: schema_rec(schema),
            segments: segments_rec(&extra.segments),
            merges: extra
                .merges
                .iter()
                .map(|(cid, h)| (cid.as_str(), merge_recs(h)))
                .collect(),
        },
        out,
    );
}

/// The snapshot formats [`decode_head`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadFormat {
    /// Formats 1 and 2: settings and schema, fields without numbers.
    V2,
    /// Format 3: saved segments and merge histories too.
    V3,
    /// Format 4: fields numbered.
    V4,
}

/// Decodes a snapshot's settings, schema and (from format 3) saved segments and merge
/// histories.
pub fn decode_head(
    bytes: &[u8],
    format: HeadFormat,
) -> Result<(DatabaseSettings, Schema, HeadExtra), RecordError> {
    let (rec, schema) = match format {
        HeadFormat::V2 => {
            let (rec, _): (HeadRecV2<'_>, usize) =
                bincode::borrow_decode_from_slice(bytes, config())?;
            return Ok((
                settings_from(&rec.settings)?,
                schema_from_v1(rec.schema, None)?,
                HeadExtra::default(),
            ));
        }
        HeadFormat::V3 => head_with::<Vec<FieldRecV1<'_>>>(bytes, |s| schema_from_v1(s, None))?,
        HeadFormat::V4 => head_with::<SchemaRec<'_>>(bytes, schema_from)?,
    };
    let merges = rec
        .merges
        .into_iter()
        .map(|(cid, h)| Ok((CompactString::from(cid), Arc::from(merges_from(h)?))))
        .collect::<Result<_, RecordError>>()?;
    Ok((
        settings_from(&rec.settings)?,
        schema,
        HeadExtra {
            segments: segments_from(rec.segments)?,
            merges,
        },
    ))
}

/// A snapshot head of format 3 or later, its schema (kept as `S`) read by `schema`.
fn head_with<'a, S: BorrowDecode<'a, ()>>(
    bytes: &'a [u8],
    schema: impl FnOnce(S) -> Result<Schema, RecordError>,
) -> Result<(HeadRec<'a, ()>, Schema), RecordError> {
    let (rec, _): (HeadRec<'a, S>, usize) = bincode::borrow_decode_from_slice(bytes, config())?;
    let schema = schema(rec.schema)?;
    let rec = HeadRec {
        settings: rec.settings,
        schema: (),
        segments: rec.segments,
        merges: rec.merges,
    };
    Ok((rec, schema))
}

/// Encodes a chunk of profiles (a snapshot body part): a count, then each profile's
/// bytes as they are.
pub fn encode_profiles<'p>(profiles: impl ExactSizeIterator<Item = &'p Packed>, out: &mut Vec<u8>) {
    encode_into(&(profiles.len() as u64), out);
    for p in profiles {
        out.extend_from_slice(p.bytes());
    }
}

/// Decodes a chunk of profiles, checking each, and hands each to `each` with its view
/// (borrowed from `bytes`): a load indexes a profile from the walk that checked it.
///
/// A profile may hold a field that the snapshot's schema (taken at its start) lacks: a
/// snapshot is taken while writes go on, so it may have captured a profile written after
/// the field was added; replaying the WAL after the snapshot's LSN adds the field.
///
/// `unnumbered`: the profiles are in the form from before fields had numbers (snapshot
/// format 3 and older), read against the snapshot's schema.
pub fn decode_profiles(
    bytes: &[u8],
    unnumbered: Option<&Schema>,
    mut each: impl FnMut(Packed, &ProfileView<'_>),
) -> Result<(), RecordError> {
    let (count, mut at): (u64, usize) = bincode::decode_from_slice(bytes, config())?;
    for _ in 0..count {
        match unnumbered {
            None => {
                let (p, view, used) = Packed::read_first(&bytes[at..])?;
                each(p, &view);
                at += used;
            }
            Some(schema) => {
                let (p, used) = Packed::read_unnumbered(&bytes[at..], schema)?;
                each(p.clone(), &p.view());
                at += used;
            }
        }
    }
    if at != bytes.len() {
        return Err(RecordError::Invalid(format!(
            "{} bytes after the last profile",
            bytes.len() - at
        )));
    }
    Ok(())
}

/// Encodes one activity of a chunk (a snapshot body part: a count, see
/// [`encode_count`], then each customer id and activity).
pub fn encode_activity(customer_id: &str, act: &Activity, out: &mut Vec<u8>) {
    encode_into(&customer_id, out);
    encode_into(act, out);
}

/// Encodes the count that heads a chunk.
pub fn encode_count(n: u64, out: &mut Vec<u8>) {
    encode_into(&n, out);
}

/// Decodes a chunk of activities and hands each to `each`.
pub fn decode_activities(
    bytes: &[u8],
    mut each: impl FnMut(CompactString, Activity),
) -> Result<(), RecordError> {
    let (count, mut at): (u64, usize) = bincode::decode_from_slice(bytes, config())?;
    for _ in 0..count {
        let (id, n): (&str, usize) = bincode::borrow_decode_from_slice(&bytes[at..], config())?;
        at += n;
        let (act, n): (Activity, usize) = bincode::decode_from_slice(&bytes[at..], config())?;
        at += n;
        each(id.into(), act);
    }
    if at != bytes.len() {
        return Err(RecordError::Invalid(format!(
            "{} bytes after the last activity",
            bytes.len() - at
        )));
    }
    Ok(())
}

fn settings_text(s: &DatabaseSettings) -> String {
    // Settings are small, rarely written and already have the API's serde shape, which
    // keeps them readable in a hex dump and lets them evolve with the API types.
    serde_json::to_string(s).expect("settings serialize")
}

fn settings_from(json: &str) -> Result<DatabaseSettings, RecordError> {
    serde_json::from_str(json).map_err(|e| RecordError::Invalid(format!("settings: {e}")))
}

/// A schema as logged and snapshotted: the number the next field gets, and the fields.
#[derive(Encode, BorrowDecode)]
struct SchemaRec<'a> {
    next_id: u32,
    fields: Vec<FieldRec<'a>>,
}

/// A field as persisted: its number, then what formats before numbers held (bincode
/// writes a struct as its members in order, so the nesting adds no bytes).
#[derive(Encode, BorrowDecode)]
struct FieldRec<'a> {
    id: u32,
    def: FieldRecV1<'a>,
}

/// A field as persisted before fields had numbers (WAL format 1, snapshot format 3 and
/// older), and the rest of a field after its number since.
#[derive(Encode, BorrowDecode)]
struct FieldRecV1<'a> {
    name: &'a str,
    ty: &'a str,
    default: Option<ValueRec<'a>>,
    required: bool,
    subscription_manager: bool,
    values: Vec<&'a str>,
    builtin: bool,
}

fn schema_rec(schema: &Schema) -> SchemaRec<'_> {
    let fields = schema
        .fields()
        .iter()
        .map(|f| FieldRec {
            id: f.id.0,
            def: FieldRecV1 {
                name: &f.name,
                ty: f.ty.as_str(),
                default: f.default.as_ref().map(ValueRec::from),
                required: f.required,
                subscription_manager: f.subscription_manager,
                values: f.values.iter().map(String::as_str).collect(),
                builtin: f.builtin,
            },
        })
        .collect();
    SchemaRec {
        next_id: schema.next_id(),
        fields,
    }
}

/// A field definition from its persisted parts, numbered `id`.
fn field_def(id: u32, f: FieldRecV1<'_>) -> Result<FieldDef, RecordError> {
    let ty = FieldType::ALL
        .iter()
        .copied()
        .find(|t| t.as_str() == f.ty)
        .ok_or_else(|| RecordError::Invalid(format!("field type `{}`", f.ty)))?;
    let mut def = FieldDef::custom(f.name, ty);
    def.id = FieldId(id);
    def.default = f.default.map(ValueRec::into_value).transpose()?;
    def.values = f.values.into_iter().map(str::to_owned).collect();
    (def.required, def.subscription_manager, def.builtin) =
        (f.required, f.subscription_manager, f.builtin);
    Ok(def)
}

fn schema_from(rec: SchemaRec<'_>) -> Result<Schema, RecordError> {
    let defs = rec
        .fields
        .into_iter()
        .map(|f| field_def(f.id, f.def))
        .collect::<Result<Vec<_>, RecordError>>()?;
    Schema::restore(defs, rec.next_id).map_err(|e| RecordError::Invalid(e.to_string()))
}

/// A schema persisted before fields had numbers, numbered as
/// [`Schema::restore_unnumbered`] does.
fn schema_from_v1(
    fields: Vec<FieldRecV1<'_>>,
    prior: Option<&Schema>,
) -> Result<Schema, RecordError> {
    let defs = fields
        .into_iter()
        .map(|f| field_def(0, f))
        .collect::<Result<Vec<_>, RecordError>>()?;
    Schema::restore_unnumbered(defs, prior).map_err(|e| RecordError::Invalid(e.to_string()))
}

#[cfg(test)]
pub(crate) mod tests {
    use jiff::Timestamp;
    use jiff::civil::Date;

    use super::*;
    use crate::contacts::{EmailContact, PhoneContact};
    use crate::schema::{Channel, Source, SubscriptionStatus, Value};
    use crate::store::{Profile, Subscription};

    pub(crate) fn sample_profile(schema: &Schema) -> Profile {
        let mut p = Profile::new("c-1".into(), Timestamp::from_second(1_700_000_000).unwrap());
        let name = |n: &str| schema.id_of(n).unwrap();
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

    pub(crate) use crate::store::packed::tests::schema as sample_schema;

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
            Entry::Put(Packed::encode(&sample_profile(&schema))),
            Entry::Remove("gone".into()),
            Entry::Schema(Arc::new(schema.clone())),
            Entry::DropField {
                name: "visits".into(),
                schema: Arc::new(schema.without_field("visits").unwrap()),
            },
            Entry::Settings(Arc::new(settings)),
            Entry::Begin,
            Entry::Commit,
            Entry::Events {
                customer_id: "c1".into(),
                profile: Some(Packed::encode(&sample_profile(&schema))),
                events: events(),
            },
            Entry::Events {
                customer_id: "c2".into(),
                profile: None,
                events: events()[..1].to_vec(),
            },
            Entry::Segments(Arc::new(vec![SegmentDef {
                name: "lisbon".into(),
                filter: "city = \"Lisbon\"".into(),
                saved_at: Timestamp::from_second(1_700_000_000).unwrap(),
            }])),
            Entry::Segments(Arc::new(Vec::new())),
            Entry::Merge {
                survivor: Packed::encode(&sample_profile(&schema)),
                activity: Some(Box::new({
                    let mut a = Activity::default();
                    a.apply(3, &events(), 100);
                    a
                })),
                absorbed: vec!["gone".into(), "also-gone".into()],
                history: Arc::from(vec![MergeRecord {
                    customer_id: "gone".into(),
                    id: ulid::Ulid(42),
                    created_at: Timestamp::from_second(1_600_000_000).unwrap(),
                    merged_at: Timestamp::from_second(1_700_000_000).unwrap(),
                    identifiers: vec!["email:a@example.com".into()],
                }]),
                events: events(),
            },
            Entry::Merge {
                survivor: Packed::encode(&sample_profile(&schema)),
                activity: None,
                absorbed: Vec::new(),
                history: Arc::from(Vec::new()),
                events: Vec::new(),
            },
        ];
        for (i, e) in entries.iter().enumerate() {
            let mut buf = Vec::new();
            encode_entry(i as u64 + 7, e, &mut buf);
            let (lsn, back) = decode_entry(&buf).unwrap();
            assert_eq!(lsn, i as u64 + 7);
            assert_eq!(e, &back);
        }
    }

    fn events() -> Vec<Event> {
        let receipt = serde_json::json!({"receipt_id":"r1","total":12.5,
            "items":[{"sku":"a","price":12.5}]});
        vec![
            event::build("receipt", 1_700_000_000_000_000, Some(receipt))
                .unwrap()
                .0,
            event::build(
                "app.opened",
                1_700_000_000_000_001,
                Some(serde_json::json!({"b":1,"a":[2]})),
            )
            .unwrap()
            .0,
        ]
    }

    #[test]
    fn activities_round_trip_through_a_chunk() {
        let mut a = Activity::default();
        a.apply(9, &events(), 1000);
        let mut buf = Vec::new();
        encode_count(2, &mut buf);
        encode_activity("c1", &a, &mut buf);
        encode_activity("c2", &Activity::default(), &mut buf);
        let mut back = Vec::new();
        decode_activities(&buf, |id, act| back.push((id, act))).unwrap();
        assert_eq!(back, [("c1".into(), a), ("c2".into(), Activity::default())]);
        buf.push(0);
        assert!(decode_activities(&buf, |_, _| {}).is_err());
    }

    #[test]
    fn a_put_holds_the_profile_bytes_inline() {
        let schema = sample_schema();
        let p = Packed::encode(&sample_profile(&schema));
        let mut buf = Vec::new();
        encode_entry(300, &Entry::Put(p.clone()), &mut buf);
        // LSN 300 as a varint (251, u16), the variant 0, then the profile as it is.
        assert_eq!(&buf[..4], &[251, 44, 1, 0]);
        assert_eq!(&buf[4..], p.bytes());
        let mut longer = buf.clone();
        longer.push(0);
        assert!(decode_entry(&longer).is_err());
    }

    #[test]
    fn profiles_in_a_chunk_keep_their_bytes_and_unpack_against_any_schema() {
        let schema = sample_schema();
        let profile = sample_profile(&schema);
        let p = Packed::encode(&profile);
        let mut buf = Vec::new();
        encode_profiles([&p, &p].into_iter(), &mut buf);
        let mut back = Vec::new();
        decode_profiles(&buf, None, |p, _| back.push(p)).unwrap();
        assert_eq!(back, [p.clone(), p.clone()]);
        // A field the schema lacks (added after a snapshot's start) is left out.
        let older = back[0].unpack(&Schema::default());
        let names: Vec<_> = older
            .fields
            .iter()
            .map(|(n, _)| schema.by_id(*n).unwrap().name.to_string())
            .collect();
        assert_eq!(names, ["first_name", "email", "phone", "birth_date"]);
        assert_eq!(back[0].unpack(&schema), profile);
        buf.push(0);
        assert!(decode_profiles(&buf, None, |_, _| {}).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&[][..], &[0xff; 9], &[0, 0, 200, 1, 2]] {
            assert!(decode_entry(bytes).is_err());
            assert!(decode_profiles(bytes, None, |_, _| {}).is_err());
            assert!(decode_profiles(bytes, Some(&Schema::default()), |_, _| {}).is_err());
            assert!(decode_entry_unnumbered(bytes, &Schema::default()).is_err());
        }
    }
}
