//! Events as they arrive: the envelope, the built-in types and their payloads, and the
//! checks every payload passes before it reaches a database actor.
//!
//! Parsing happens off the actor (on an HTTP worker, an import or a plugin thread): the
//! actor only folds an already valid [`Event`] into a profile's activity. The payload
//! kept for the timeline is the canonical JSON of the typed payload (defaults filled
//! in, members in a fixed order), so what a timeline shows is what the aggregates saw.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::money::Fixed;
use crate::error::{ErrorCode, Problem};
use crate::schema::Channel;

/// The most items one receipt may hold.
pub const MAX_ITEMS: usize = 1000;
/// The largest payload (`data`) one event may carry, as JSON text.
pub const MAX_DATA: usize = 64 * 1024;
/// The longest id, name, sku or category string in a built-in payload.
const MAX_TEXT: usize = 256;

/// Every event type: the built-in ones with meaning, and custom ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// A purchase.
    Receipt = 0,
    /// A product page seen.
    ProductView = 1,
    /// A category page seen.
    CategoryView = 2,
    /// Any other page seen.
    PageView = 3,
    /// A product put in the cart.
    CartAdd = 4,
    /// A product taken out of the cart.
    CartRemove = 5,
    /// A campaign message sent.
    Mailing = 6,
    /// A promo code issued.
    PromoCode = 7,
    /// Answers to a poll.
    Poll = 8,
    /// A loyalty bonus accrued or changed.
    Bonus = 9,
    /// A call to or from the call centre.
    CallCenter = 10,
    /// Tags added or removed.
    TagSet = 11,
    /// Any other type, named by the sender.
    Custom = 12,
    /// A subscription chosen or withdrawn.
    Subscription = 13,
}

/// The built-in type names, by kind.
const NAMES: &[(&str, Kind)] = &[
    ("receipt", Kind::Receipt),
    ("product_view", Kind::ProductView),
    ("category_view", Kind::CategoryView),
    ("page_view", Kind::PageView),
    ("cart_add", Kind::CartAdd),
    ("cart_remove", Kind::CartRemove),
    ("mailing", Kind::Mailing),
    ("promo_code", Kind::PromoCode),
    ("poll", Kind::Poll),
    ("bonus", Kind::Bonus),
    ("call_center", Kind::CallCenter),
    ("tag_set", Kind::TagSet),
    ("subscription", Kind::Subscription),
];

/// Timeline categories and the kinds each holds.
pub const CATEGORIES: &[(&str, &[Kind])] = &[
    ("receipts", &[Kind::Receipt]),
    ("mailings", &[Kind::Mailing]),
    ("orders", &[Kind::CartAdd, Kind::CartRemove]),
    (
        "website",
        &[Kind::ProductView, Kind::CategoryView, Kind::PageView],
    ),
    ("loyalty", &[Kind::Bonus, Kind::PromoCode]),
    ("polls", &[Kind::Poll]),
    ("call_center", &[Kind::CallCenter]),
    ("tags", &[Kind::TagSet]),
    ("subscriptions", &[Kind::Subscription]),
    ("custom", &[Kind::Custom]),
];

impl Kind {
    /// The kind of a built-in type name; `None` for a custom type.
    pub fn builtin(name: &str) -> Option<Kind> {
        NAMES.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    /// The kind stored as this byte.
    pub fn from_u8(b: u8) -> Option<Kind> {
        if b == Kind::Custom as u8 {
            return Some(Kind::Custom);
        }
        NAMES.iter().find(|(_, k)| *k as u8 == b).map(|(_, k)| *k)
    }

    /// The built-in type name (`custom` for custom types, whose own name is kept apart).
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("custom", |(n, _)| n)
    }

    /// The timeline category the kind belongs to.
    pub fn category(self) -> &'static str {
        CATEGORIES
            .iter()
            .find(|(_, kinds)| kinds.contains(&self))
            .map_or("custom", |(n, _)| n)
    }
}

/// A receipt's state: only `completed` receipts count in statistics and RFM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// Paid and kept (the default).
    #[default]
    Completed,
    /// Brought back.
    Returned,
    /// Voided.
    Cancelled,
}

/// A loyalty bonus's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BonusStatus {
    /// Spendable.
    Active,
    /// Granted, not spendable yet.
    PendingActivation,
    /// Spendable, about to be withdrawn.
    PendingDeactivation,
    /// Past its expiry.
    Expired,
    /// Withdrawn.
    Cancelled,
}

/// A store where a receipt was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// The store's id.
    pub id: String,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One line of a receipt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Stock-keeping unit.
    pub sku: String,
    /// Product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Product category (feeds interests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Unit price.
    pub price: f64,
    /// How many (default 1; fractions for goods sold by weight).
    #[serde(default = "one")]
    pub quantity: f64,
}

fn one() -> f64 {
    1.0
}

/// `receipt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The receipt's id: a second receipt with the same id is the same receipt.
    pub receipt_id: String,
    /// What the customer paid: the figure statistics use.
    pub total: f64,
    /// ISO 4217 code, kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// The lines.
    #[serde(default)]
    pub items: Vec<Item>,
    /// Where.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<Store>,
    /// Completed, returned or cancelled.
    #[serde(default)]
    pub status: ReceiptStatus,
    /// Whether the items' prices times quantities fail to add up to `total` (the
    /// receipt is kept; `total` is what counts). Worked out by the server on every
    /// check, whatever a sender put here, so a logged copy reads back as it was.
    #[serde(default, skip_serializing_if = "is_false")]
    pub items_total_mismatch: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// `product_view`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductView {
    /// Stock-keeping unit.
    pub sku: String,
    /// Product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Product category (feeds interests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Price shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
}

/// `category_view`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryView {
    /// The category (feeds interests).
    pub category: String,
    /// Its display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `page_view`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageView {
    /// The page.
    pub url: String,
    /// Its title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Where the visitor came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
}

/// `cart_add`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartAdd {
    /// Stock-keeping unit.
    pub sku: String,
    /// Product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Product category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Unit price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f64>,
    /// How many (default 1).
    #[serde(default = "one")]
    pub quantity: f64,
}

/// `cart_remove`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartRemove {
    /// Stock-keeping unit.
    pub sku: String,
}

/// `mailing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mailing {
    /// The mailing's id.
    pub mailing_id: String,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Email, SMS or push.
    pub channel: Channel,
    /// The customer was held out as a control (nothing was sent).
    #[serde(default)]
    pub control_group: bool,
}

/// `promo_code`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoCode {
    /// The code.
    pub code: String,
    /// The campaign it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    /// Issued again (the customer had it before).
    #[serde(default)]
    pub reissued: bool,
}

/// One answer of a poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    /// The question.
    pub question: String,
    /// The answer: text, a number, a boolean or a list of choices.
    pub answer: Json,
}

/// `poll`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Poll {
    /// The poll's id.
    pub poll_id: String,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The answers given.
    #[serde(default)]
    pub answers: Vec<Answer>,
}

/// `bonus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bonus {
    /// The bonus's id: later events with the same id change it. Without one, every
    /// event is a bonus of its own (so a resent event counts twice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bonus_id: Option<String>,
    /// Points or money, never negative.
    pub amount: f64,
    /// Its state.
    pub status: BonusStatus,
    /// When it is withdrawn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

/// `call_center`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallCenter {
    /// What the call was about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// `inbound` or `outbound`, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// The agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// How long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u32>,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Free notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `tag_set`: tags changed on the profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagSet {
    /// Tags to add.
    #[serde(default)]
    pub add: Vec<String>,
    /// Tags to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `subscription`: the customer subscribed or unsubscribed at the event's time; the
/// profile's subscriptions take it (the latest by time wins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionSet {
    /// A resource of the database.
    pub resource: String,
    /// `email`, `sms` or `push`.
    pub channel: crate::schema::Channel,
    /// Category within the resource (default `default`).
    #[serde(default = "default_category")]
    pub category: String,
    /// `subscribed` or `unsubscribed`.
    pub status: crate::schema::SubscriptionStatus,
}

fn default_category() -> String {
    "default".into()
}

/// An event's typed payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// `receipt`.
    Receipt(Receipt),
    /// `product_view`.
    ProductView(ProductView),
    /// `category_view`.
    CategoryView(CategoryView),
    /// `page_view`.
    PageView(PageView),
    /// `cart_add`.
    CartAdd(CartAdd),
    /// `cart_remove`.
    CartRemove(CartRemove),
    /// `mailing`.
    Mailing(Mailing),
    /// `promo_code`.
    PromoCode(PromoCode),
    /// `poll`.
    Poll(Poll),
    /// `bonus`.
    Bonus(Bonus),
    /// `call_center`.
    CallCenter(CallCenter),
    /// `tag_set`.
    TagSet(TagSet),
    /// `subscription`.
    Subscription(SubscriptionSet),
    /// A custom type: any JSON object, kept as given.
    Custom,
}

/// A valid event, ready for a database actor.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// When it happened, in microseconds since the Unix epoch.
    pub time: i64,
    /// Its kind.
    pub kind: Kind,
    /// The custom type's name (`None` for built-in kinds).
    pub custom: Option<Box<str>>,
    /// The payload as canonical JSON text: what the timeline shows.
    pub data: Box<str>,
    /// The payload, typed.
    pub payload: Payload,
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    /// The envelope names no customer.
    #[error("the event names no customer: give `customer_id` (or `email` or `phone`)")]
    CustomerMissing,
    /// The type is not a built-in one and not a valid custom name.
    #[error("{0}")]
    Type(String),
    /// `time` is not an RFC 3339 instant.
    #[error("{0}")]
    Time(String),
    /// The envelope or the payload has the wrong shape or a bad value.
    #[error("{0}")]
    Invalid(String),
    /// The text is not JSON.
    #[error("{0}")]
    Syntax(String),
    /// The payload is larger than an event may be.
    #[error("{0}")]
    TooLarge(String),
}

impl From<EventError> for Problem {
    fn from(e: EventError) -> Self {
        let code = match &e {
            EventError::CustomerMissing => ErrorCode::EventCustomerMissing,
            EventError::Type(_) => ErrorCode::EventTypeInvalid,
            EventError::Time(_) => ErrorCode::EventTimeInvalid,
            EventError::Invalid(_) => ErrorCode::EventInvalid,
            EventError::Syntax(_) => ErrorCode::InvalidJson,
            EventError::TooLarge(_) => ErrorCode::EventTooLarge,
        };
        Problem::new(code, e.to_string())
    }
}

/// The envelope of one event as posted: who, what, when and the payload. The payload
/// is borrowed as text and parsed once, straight into its typed form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope<'a> {
    /// The customer; an unknown one is created.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Or the profile holding this email (created if none does).
    #[serde(default)]
    pub email: Option<String>,
    /// Or the profile holding this phone (created if none does).
    #[serde(default)]
    pub phone: Option<String>,
    /// The event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// When; the time of arrival if absent.
    #[serde(default)]
    pub time: Option<String>,
    /// The payload.
    #[serde(default, borrow)]
    pub data: Option<&'a serde_json::value::RawValue>,
}

/// Notes on an accepted event: `(code, detail)`.
pub type Warnings = Vec<(&'static str, String)>;

/// An event with the customer it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Addressed {
    /// The customer id, empty when only `find_by` names the profile.
    pub customer_id: String,
    /// Identifiers to find the profile by (`email`, `phone`).
    pub find_by: Vec<(String, String)>,
    /// The event.
    pub event: Event,
    /// Things accepted but worth telling the sender (such as a receipt whose items
    /// do not add up to its total): `(code, detail)`.
    pub warnings: Warnings,
}

/// Parses and checks one posted event (`now` stands in for a missing time).
pub fn parse(value: Json, now: Timestamp) -> Result<Addressed, EventError> {
    parse_slice(
        &serde_json::to_vec(&value).expect("a JSON value serializes"),
        now,
    )
}

/// Parses and checks one posted event from its JSON text.
pub fn parse_slice(bytes: &[u8], now: Timestamp) -> Result<Addressed, EventError> {
    let env: Envelope<'_> = serde_json::from_slice(bytes).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            EventError::Syntax(format!("the event is not JSON: {e}"))
        } else {
            EventError::Invalid(format!("event: {e}"))
        }
    })?;
    let mut find_by = Vec::new();
    let customer_id = match env.customer_id {
        Some(id) if !id.is_empty() => id,
        _ => {
            for (ns, v) in [("email", env.email), ("phone", env.phone)] {
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    find_by.push((ns.to_owned(), v));
                }
            }
            if find_by.is_empty() {
                return Err(EventError::CustomerMissing);
            }
            String::new()
        }
    };
    let time = match env.time {
        None => now,
        Some(t) => parse_time(&t, now)?,
    };
    let data = env.data.map_or("{}", |d| d.get());
    let (event, warnings) = build_text(&env.kind, time.as_microsecond(), data)?;
    Ok(Addressed {
        customer_id,
        find_by,
        event,
        warnings,
    })
}

/// How far ahead of the server's clock an event may be dated (clock skew, time zones
/// written wrong): beyond that, "days since" would go negative and recency would be
/// pinned by a date that has not come.
const MAX_AHEAD: jiff::SignedDuration = jiff::SignedDuration::from_hours(24);

/// Parses an event time: RFC 3339, from 1970 to a day after `now`.
pub fn parse_time(t: &str, now: Timestamp) -> Result<Timestamp, EventError> {
    let time = t.parse::<Timestamp>().map_err(|_| {
        EventError::Time(format!(
            "event time `{t}` is not an RFC 3339 instant such as 2024-03-01T10:00:00Z"
        ))
    })?;
    if time < Timestamp::UNIX_EPOCH || time > now + MAX_AHEAD {
        return Err(EventError::Time(format!(
            "event time `{t}` is before 1970 or more than a day after the server's clock ({now})"
        )));
    }
    Ok(time)
}

/// Checks a custom type name: `[a-z][a-z0-9_.-]{0,63}`.
fn check_custom(name: &str) -> Result<(), EventError> {
    let ok = (1..=64).contains(&name.len())
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(EventError::Type(format!(
            "event type `{}` is neither built in nor a custom type name (a lowercase letter, then lowercase letters, digits, `_`, `.` or `-`; 64 at most)",
            name.escape_debug()
        )))
    }
}

/// Builds an event from its type name, time and payload, checking the payload.
pub fn build(
    kind_name: &str,
    time: i64,
    data: Option<Json>,
) -> Result<(Event, Warnings), EventError> {
    let text = data.map_or_else(|| "{}".to_owned(), |d| d.to_string());
    build_text(kind_name, time, &text)
}

/// [`build`] from the payload's JSON text (already known to be JSON).
pub fn build_text(kind_name: &str, time: i64, data: &str) -> Result<(Event, Warnings), EventError> {
    let kind = Kind::builtin(kind_name);
    let data = data.trim();
    if !data.starts_with('{') {
        return Err(EventError::Invalid(format!(
            "`data` of a `{kind_name}` event must be a JSON object"
        )));
    }
    if data.len() > MAX_DATA {
        return Err(EventError::TooLarge(format!(
            "the `{kind_name}` event's data is {} bytes; an event may carry {MAX_DATA}",
            data.len()
        )));
    }
    let mut warnings = Vec::new();
    let payload = match kind {
        None => {
            check_custom(kind_name)?;
            Payload::Custom
        }
        Some(kind) => typed(kind, data, &mut warnings)?,
    };
    let text = match &payload {
        // Kept as given: the sender's members in the sender's order.
        Payload::Custom => data.to_owned(),
        typed => canonical(typed),
    };
    Ok((
        Event {
            time,
            kind: kind.unwrap_or(Kind::Custom),
            custom: kind.is_none().then(|| kind_name.into()),
            data: text.into_boxed_str(),
            payload,
        },
        warnings,
    ))
}

/// Rebuilds an event read back from the log: its payload passed the checks when it
/// was written, so it is parsed, not checked again for warnings.
pub fn restore(kind: Kind, custom: Option<&str>, time: i64, data: &str) -> Result<Event, String> {
    if (kind == Kind::Custom) != custom.is_some() {
        return Err(format!("event kind {kind:?} with custom name {custom:?}"));
    }
    let name = custom.unwrap_or(kind.name());
    let (mut event, _) = build_text(name, time, data).map_err(|e| e.to_string())?;
    // The text as logged, byte for byte.
    event.data = data.into();
    Ok(event)
}

fn canonical(p: &Payload) -> String {
    let text = match p {
        Payload::Receipt(x) => serde_json::to_string(x),
        Payload::ProductView(x) => serde_json::to_string(x),
        Payload::CategoryView(x) => serde_json::to_string(x),
        Payload::PageView(x) => serde_json::to_string(x),
        Payload::CartAdd(x) => serde_json::to_string(x),
        Payload::CartRemove(x) => serde_json::to_string(x),
        Payload::Mailing(x) => serde_json::to_string(x),
        Payload::PromoCode(x) => serde_json::to_string(x),
        Payload::Poll(x) => serde_json::to_string(x),
        Payload::Bonus(x) => serde_json::to_string(x),
        Payload::CallCenter(x) => serde_json::to_string(x),
        Payload::TagSet(x) => serde_json::to_string(x),
        Payload::Subscription(x) => serde_json::to_string(x),
        Payload::Custom => unreachable!("custom payloads are kept as given"),
    };
    text.expect("payloads serialize")
}

fn de<T: serde::de::DeserializeOwned>(kind: Kind, data: &str) -> Result<T, EventError> {
    serde_json::from_str(data)
        .map_err(|e| EventError::Invalid(format!("`{}` data: {e}", kind.name())))
}

fn text(kind: Kind, what: &str, s: &str) -> Result<(), EventError> {
    if s.is_empty() || s.len() > MAX_TEXT {
        return Err(EventError::Invalid(format!(
            "`{}` data: `{what}` must be 1 to {MAX_TEXT} bytes",
            kind.name()
        )));
    }
    Ok(())
}

fn opt_text(kind: Kind, what: &str, s: &Option<String>) -> Result<(), EventError> {
    s.as_deref().map_or(Ok(()), |s| text(kind, what, s))
}

fn amount(kind: Kind, what: &str, x: f64) -> Result<(), EventError> {
    if !x.is_finite() || x < 0.0 || Fixed::from_f64(x).is_none() {
        return Err(EventError::Invalid(format!(
            "`{}` data: `{what}` must be a number from 0 to {}, not {x}",
            kind.name(),
            Fixed::MAX_UNITS
        )));
    }
    Ok(())
}

fn quantity(kind: Kind, what: &str, x: f64) -> Result<(), EventError> {
    if !x.is_finite() || x <= 0.0 || Fixed::from_f64(x).is_none() {
        return Err(EventError::Invalid(format!(
            "`{}` data: `{what}` must be a positive number, not {x}",
            kind.name()
        )));
    }
    Ok(())
}

fn typed(kind: Kind, data: &str, warnings: &mut Warnings) -> Result<Payload, EventError> {
    Ok(match kind {
        Kind::Receipt => {
            let mut r: Receipt = de(kind, data)?;
            text(kind, "receipt_id", &r.receipt_id)?;
            amount(kind, "total", r.total)?;
            if r.items.len() > MAX_ITEMS {
                return Err(EventError::TooLarge(format!(
                    "receipt `{}` has {} items; a receipt may have {MAX_ITEMS}",
                    r.receipt_id,
                    r.items.len()
                )));
            }
            let mut sum = Fixed::ZERO;
            for (i, item) in r.items.iter().enumerate() {
                text(kind, &format!("items[{i}].sku"), &item.sku)?;
                opt_text(kind, &format!("items[{i}].category"), &item.category)?;
                amount(kind, &format!("items[{i}].price"), item.price)?;
                quantity(kind, &format!("items[{i}].quantity"), item.quantity)?;
                sum = sum.saturating_add(
                    Fixed::from_f64(item.price * item.quantity).unwrap_or(Fixed::ZERO),
                );
            }
            if let Some(s) = &r.store {
                text(kind, "store.id", &s.id)?;
            }
            // A cent of slack per item for prices rounded on the till.
            let slack = Fixed::from_f64(0.01 * r.items.len() as f64).unwrap_or(Fixed::ZERO);
            let total = Fixed::from_f64(r.total).unwrap_or(Fixed::ZERO);
            r.items_total_mismatch =
                !r.items.is_empty() && (sum.units() - total.units()).abs() > slack.units();
            if r.items_total_mismatch {
                warnings.push((
                    "receipt_total_mismatch",
                    format!(
                        "receipt `{}`: the items add up to {} but the total is {}; the total counts",
                        r.receipt_id,
                        sum.to_f64(),
                        r.total
                    ),
                ));
            }
            Payload::Receipt(r)
        }
        Kind::ProductView => {
            let v: ProductView = de(kind, data)?;
            text(kind, "sku", &v.sku)?;
            opt_text(kind, "category", &v.category)?;
            if let Some(p) = v.price {
                amount(kind, "price", p)?;
            }
            Payload::ProductView(v)
        }
        Kind::CategoryView => {
            let v: CategoryView = de(kind, data)?;
            text(kind, "category", &v.category)?;
            Payload::CategoryView(v)
        }
        Kind::PageView => {
            let v: PageView = de(kind, data)?;
            if v.url.is_empty() || v.url.len() > 4096 {
                return Err(EventError::Invalid(
                    "`page_view` data: `url` must be 1 to 4096 bytes".into(),
                ));
            }
            Payload::PageView(v)
        }
        Kind::CartAdd => {
            let v: CartAdd = de(kind, data)?;
            text(kind, "sku", &v.sku)?;
            opt_text(kind, "category", &v.category)?;
            if let Some(p) = v.price {
                amount(kind, "price", p)?;
            }
            quantity(kind, "quantity", v.quantity)?;
            Payload::CartAdd(v)
        }
        Kind::CartRemove => {
            let v: CartRemove = de(kind, data)?;
            text(kind, "sku", &v.sku)?;
            Payload::CartRemove(v)
        }
        Kind::Mailing => {
            let v: Mailing = de(kind, data)?;
            text(kind, "mailing_id", &v.mailing_id)?;
            Payload::Mailing(v)
        }
        Kind::PromoCode => {
            let v: PromoCode = de(kind, data)?;
            text(kind, "code", &v.code)?;
            opt_text(kind, "campaign", &v.campaign)?;
            Payload::PromoCode(v)
        }
        Kind::Poll => {
            let v: Poll = de(kind, data)?;
            text(kind, "poll_id", &v.poll_id)?;
            for (i, a) in v.answers.iter().enumerate() {
                let plain = |j: &Json| j.is_string() || j.is_number() || j.is_boolean();
                let ok = plain(&a.answer)
                    || a.answer
                        .as_array()
                        .is_some_and(|xs| xs.iter().all(Json::is_string));
                if !ok {
                    return Err(EventError::Invalid(format!(
                        "`poll` data: `answers[{i}].answer` must be text, a number, a boolean or a list of texts"
                    )));
                }
            }
            Payload::Poll(v)
        }
        Kind::Bonus => {
            let v: Bonus = de(kind, data)?;
            opt_text(kind, "bonus_id", &v.bonus_id)?;
            amount(kind, "amount", v.amount)?;
            Payload::Bonus(v)
        }
        Kind::CallCenter => Payload::CallCenter(de(kind, data)?),
        Kind::TagSet => {
            let v: TagSet = de(kind, data)?;
            if v.add.is_empty() && v.remove.is_empty() {
                return Err(EventError::Invalid(
                    "`tag_set` data: give tags to `add` or `remove`".into(),
                ));
            }
            Payload::TagSet(v)
        }
        Kind::Subscription => {
            let v: SubscriptionSet = de(kind, data)?;
            text(kind, "resource", &v.resource)?;
            text(kind, "category", &v.category)?;
            Payload::Subscription(v)
        }
        Kind::Custom => Payload::Custom,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2024-03-01T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_receipt_parses_with_defaults_filled_in() {
        let a = parse(
            json!({"customer_id":"c1","type":"receipt","time":"2024-02-01T09:00:00+01:00",
                   "data":{"receipt_id":"r1","total":40.0,
                           "items":[{"sku":"A1","category":"monitors","price":20.0,"quantity":2}]}}),
            now(),
        )
        .unwrap();
        assert_eq!(a.customer_id, "c1");
        assert_eq!(a.event.kind, Kind::Receipt);
        assert_eq!(
            a.event.time,
            "2024-02-01T08:00:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .as_microsecond()
        );
        assert!(a.warnings.is_empty());
        let data: Json = serde_json::from_str(&a.event.data).unwrap();
        assert_eq!(data["status"], "completed");
    }

    #[test]
    fn bad_events_get_their_own_errors() {
        let cases = [
            (
                json!({"type":"receipt","data":{}}),
                ErrorCode::EventCustomerMissing,
            ),
            (
                json!({"customer_id":"c","type":"Bad Type"}),
                ErrorCode::EventTypeInvalid,
            ),
            (
                json!({"customer_id":"c","type":"page_view","time":"yesterday","data":{"url":"/"}}),
                ErrorCode::EventTimeInvalid,
            ),
            (
                json!({"customer_id":"c","type":"receipt","data":{"receipt_id":"r","total":"10"}}),
                ErrorCode::EventInvalid,
            ),
            (
                json!({"customer_id":"c","type":"receipt","data":{"receipt_id":"r","total":1,"colour":"red"}}),
                ErrorCode::EventInvalid,
            ),
            (
                json!({"customer_id":"c","type":"receipt","data":{"receipt_id":"r","total":1,
                    "items":[{"sku":"a","price":1,"quantity":-1}]}}),
                ErrorCode::EventInvalid,
            ),
            (
                json!({"customer_id":"c","type":"bonus","data":{"amount":-5,"status":"active"}}),
                ErrorCode::EventInvalid,
            ),
            (
                json!({"customer_id":"c","type":"custom_thing","data":[1]}),
                ErrorCode::EventInvalid,
            ),
            (
                json!({"customer_id":"c","type":"receipt","extra":1,"data":{}}),
                ErrorCode::EventInvalid,
            ),
        ];
        for (value, code) in cases {
            let err = parse(value.clone(), now()).unwrap_err();
            assert_eq!(Problem::from(err).code, code, "{value}");
        }
        let items: Vec<Json> = (0..10_000)
            .map(|i| json!({"sku":format!("s{i}"),"price":1}))
            .collect();
        let big = json!({"customer_id":"c","type":"receipt","data":{"receipt_id":"r","total":10000,"items":items}});
        assert_eq!(
            Problem::from(parse(big, now()).unwrap_err()).code,
            ErrorCode::EventTooLarge
        );
    }

    #[test]
    fn a_receipt_whose_items_do_not_add_up_is_kept_and_flagged() {
        let a = parse(
            json!({"customer_id":"c","type":"receipt","data":{"receipt_id":"r","total":50,
                   "items":[{"sku":"a","price":10,"quantity":2}]}}),
            now(),
        )
        .unwrap();
        assert_eq!(a.warnings[0].0, "receipt_total_mismatch");
        assert!(a.event.data.contains("\"items_total_mismatch\":true"));
        // A sender's own flag is worked out again, never taken.
        let lying = parse(
            json!({"customer_id":"c","type":"receipt","data":{"receipt_id":"r","total":20,
                   "items":[{"sku":"a","price":10,"quantity":2}],"items_total_mismatch":true}}),
            now(),
        )
        .unwrap();
        assert!(lying.warnings.is_empty());
        assert!(!lying.event.data.contains("items_total_mismatch"));
        // Read back from the log, it keeps its flag and text.
        let back = restore(a.event.kind, None, a.event.time, &a.event.data).unwrap();
        assert_eq!(back.data, a.event.data);
    }

    #[test]
    fn custom_events_keep_their_payload_and_restore_from_the_log() {
        let a = parse(
            json!({"customer_id":"c","type":"app.opened","data":{"screen":"home"}}),
            now(),
        )
        .unwrap();
        assert_eq!(a.event.kind, Kind::Custom);
        assert_eq!(a.event.custom.as_deref(), Some("app.opened"));
        let back = restore(
            a.event.kind,
            a.event.custom.as_deref(),
            a.event.time,
            &a.event.data,
        )
        .unwrap();
        assert_eq!(back, a.event);
        for (name, kind) in NAMES {
            assert_eq!(Kind::from_u8(*kind as u8), Some(*kind));
            assert_eq!(kind.name(), *name);
        }
    }
}
