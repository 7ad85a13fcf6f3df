//! Segment `identify` and `track` messages to profile updates.
//!
//! Reads one message, or a batch of them (a JSON array, or Segment's `{"batch": [...]}`).
//! The profile is the customer id `userId` when the message has one; otherwise it is
//! found by the anonymous id (identifier `segment_anonymous`, attached so that the
//! visitor's later messages find the same profile), then by the trait `email`; a new one
//! is created if neither names a profile. An identify sets the profile's fields from its
//! traits; a track becomes a custom event.
//!
//! In a batch, a message that cannot be read is reported against its index and the
//! others still apply; a single such message refuses the payload.

use persona_plugin::{
    CustomEvent, Event, EventData, Guest, Identifier, Output, Payload, PluginError, RecordError,
    Update, Value as FieldValue, export, external,
};
use serde_json::Value;

/// The identifier namespace of Segment's anonymous ids.
const ANONYMOUS: &str = "segment_anonymous";

/// Traits with a mapping of their own; the others go to the field of their name.
const MAPPED: &[&str] = &[
    "email",
    "phone",
    "first_name",
    "firstName",
    "last_name",
    "lastName",
    "name",
    "birthday",
    "address",
    "createdAt",
];

struct Segment;

impl Guest for Segment {
    fn transform(input: Payload) -> Result<Output, PluginError> {
        let body: Value = serde_json::from_slice(&input.body)
            .map_err(|e| PluginError::Invalid(format!("the body is not JSON: {e}")))?;
        let fields: Vec<&str> = input.fields.iter().map(|f| f.name.as_str()).collect();
        if let Some(messages) = body
            .as_array()
            .or_else(|| body.get("batch").and_then(Value::as_array))
        {
            let mut output = Output {
                updates: Vec::with_capacity(messages.len()),
                errors: Vec::new(),
            };
            for (i, m) in messages.iter().enumerate() {
                match message(m, &fields) {
                    Ok(update) => output.updates.push(update.from_record(i)),
                    Err(r) => output.errors.push(RecordError::new(i, r.code, r.message)),
                }
            }
            return Ok(output);
        }
        let update = message(&body, &fields).map_err(Refusal::into_error)?;
        Ok(Output {
            updates: vec![update],
            errors: Vec::new(),
        })
    }
}

/// Why a message could not be read.
struct Refusal {
    /// The record error's code in a batch.
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            code,
            message: message.into(),
        }
    }

    /// A lone message's refusal: a type this plugin does not read is not a malformed
    /// payload, and the host tells the two apart.
    fn into_error(self) -> PluginError {
        if self.code == "unsupported_type" {
            PluginError::Unsupported(self.message)
        } else {
            PluginError::Invalid(self.message)
        }
    }
}

fn message(m: &Value, fields: &[&str]) -> Result<Update, Refusal> {
    if !m.is_object() {
        return Err(Refusal::new(
            "invalid_message",
            "a Segment message is a JSON object",
        ));
    }
    match m.get("type").and_then(Value::as_str) {
        Some("identify") => identify(m, fields),
        Some("track") => track(m),
        Some(other) => Err(Refusal::new(
            "unsupported_type",
            format!("`{other}` messages are not read by this plugin (identify, track)"),
        )),
        None => Err(Refusal::new("invalid_message", "the message has no `type`")),
    }
}

/// The text of an id, exact even above 2^53 (serde_json keeps integers as u64).
fn id(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// The update of the profile the message's ids name.
fn who(m: &Value) -> Update {
    let update = match m.get("userId").and_then(id) {
        Some(user_id) => Update::for_customer(user_id),
        None => Update::empty(),
    };
    match m.get("anonymousId").and_then(id) {
        Some(anonymous_id) => update
            .or_find_by(external(ANONYMOUS, anonymous_id.clone()))
            .identifier(ANONYMOUS, anonymous_id),
        None => update,
    }
}

fn names_someone(update: &Update) -> bool {
    update.customer_id.is_some() || !update.find_by.is_empty()
}

fn identify(m: &Value, fields: &[&str]) -> Result<Update, Refusal> {
    let traits = m
        .get("traits")
        .filter(|t| t.is_object())
        .unwrap_or(&Value::Null);
    let email = text(traits, "email");
    let mut update = who(m);
    if let Some(email) = email {
        update = update.or_find_by(Identifier::Email(email.into()));
    }
    if !names_someone(&update) {
        return Err(Refusal::new(
            "no_identity",
            "the identify names no one: it has no userId, no anonymousId and no email trait",
        ));
    }
    // `name` fills only the parts the message does not give on their own.
    let (name_first, name_last) = text(traits, "name").map_or((None, None), split_name);
    let address = traits.get("address").unwrap_or(&Value::Null);
    let mut update = update
        .set_opt("email", email)
        .set_opt("phone", text(traits, "phone"))
        .set_opt(
            "first_name",
            text(traits, "first_name")
                .or_else(|| text(traits, "firstName"))
                .or(name_first),
        )
        .set_opt(
            "last_name",
            text(traits, "last_name")
                .or_else(|| text(traits, "lastName"))
                .or(name_last),
        )
        .set_opt("birth_date", text(traits, "birthday").map(date_part))
        .set_opt("city", text(address, "city"))
        .set_opt("country", text(address, "country"))
        .set_opt("registered_at", text(traits, "createdAt"));
    for (key, value) in traits.as_object().into_iter().flatten() {
        if MAPPED.contains(&key.as_str()) {
            continue;
        }
        let name = snake_case(key);
        // A field the schema lacks would refuse the whole update, and one already set
        // (`city` beside `address.city`) is the mapped trait's.
        if !fields.contains(&name.as_str()) || update.set.iter().any(|f| f.name == name) {
            continue;
        }
        let value = match value {
            Value::Null => continue,
            Value::String(s) if s.trim().is_empty() => continue,
            Value::String(s) => FieldValue::Text(s.clone()),
            Value::Number(n) => FieldValue::Text(n.to_string()),
            Value::Bool(b) => FieldValue::Text(b.to_string()),
            Value::Object(_) | Value::Array(_) => FieldValue::Json(value.to_string()),
        };
        update = update.set(&name, value);
    }
    Ok(update)
}

fn track(m: &Value) -> Result<Update, Refusal> {
    let update = who(m);
    if !names_someone(&update) {
        return Err(Refusal::new(
            "no_identity",
            "the track names no one: it has no userId and no anonymousId",
        ));
    }
    let name = text(m, "event")
        .ok_or_else(|| Refusal::new("invalid_message", "the track has no `event` name"))?;
    let properties = match m.get("properties") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(p @ Value::Object(_)) => p.to_string(),
        Some(other) => {
            return Err(Refusal::new(
                "invalid_message",
                format!("the track's `properties` is not an object: {other}"),
            ));
        }
    };
    Ok(update.event(Event {
        time: text(m, "timestamp").map(str::to_owned),
        data: EventData::Custom(CustomEvent {
            name: name.to_owned(),
            properties,
        }),
    }))
}

/// First word, then the rest: surnames of several words (`van der Berg`) are more
/// common than given names of several.
fn split_name(name: &str) -> (Option<&str>, Option<&str>) {
    let name = name.trim();
    match name.split_once(char::is_whitespace) {
        Some((first, last)) => (Some(first), Some(last.trim_start())),
        None => (Some(name), None),
    }
}

/// A birthday often comes as a full timestamp (a JavaScript `Date`, serialized); the
/// profile's birth date is the calendar date it starts with.
fn date_part(s: &str) -> &str {
    match (s.get(..10), s.as_bytes().get(10)) {
        (Some(date), Some(b'T' | b' ')) => date,
        _ => s,
    }
}

/// `loyaltyScore`, `LoyaltyScore` and `loyalty score` all name the field `loyalty_score`;
/// a run of capitals is one word (`userID` is `user_id`, `HTTPReferrer` `http_referrer`).
fn snake_case(key: &str) -> String {
    let chars: Vec<char> = key.trim().chars().collect();
    let mut out = String::with_capacity(key.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' || c == '-' || c == '.' {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
            continue;
        }
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let word_start = prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit())
                || (prev.is_some_and(char::is_uppercase) && next.is_some_and(|n| n.is_lowercase()));
            if word_start && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

export!(Segment);
