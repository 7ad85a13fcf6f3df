//! The one update type every write source produces.
//!
//! The HTTP API, CSV/JSON importers, webhooks and plugins all turn their input into
//! [`ProfileUpdate`]s; only the database actor validates one against the schema and
//! applies it. Values stay raw here ([`RawValue`]) because typing them needs the schema
//! the actor holds at apply time.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use utoipa::ToSchema;

use super::database::Channel;
use super::value::RawValue;
use crate::activity::Event;
use crate::contacts::{EmailContact, PhoneContact};
use crate::error::{ErrorCode, Problem};

/// Where a write came from; recorded with subscription changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The HTTP API.
    Api,
    /// A file import.
    Import,
    /// A webhook through a plugin.
    Webhook,
    /// An event.
    Event,
}

/// Subscribed or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// May be sent to.
    Subscribed,
    /// Asked not to be sent to.
    Unsubscribed,
}

/// A subscription change as written (`subscriptions` in a PATCH body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionChange {
    /// A resource declared on the database.
    pub resource: String,
    /// One of the resource's channels.
    pub channel: Channel,
    /// Free category within the resource (default `default`).
    #[serde(default = "default_category")]
    pub category: String,
    /// The new status.
    pub status: SubscriptionStatus,
    /// When the customer made this choice (RFC 3339; default: when the write is
    /// applied). A change older than the current state goes into the history only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<jiff::Timestamp>,
}

fn default_category() -> String {
    "default".into()
}

/// One write to one profile, from any source.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileUpdate {
    /// The profile's given id; created if absent.
    pub customer_id: CompactString,
    /// Replace the whole profile (PUT) instead of merging (PATCH).
    pub replace: bool,
    /// Field values to set, by field name.
    pub fields: Vec<(CompactString, RawValue)>,
    /// Fields to clear.
    pub unset: Vec<String>,
    /// Tags to add.
    pub tags_add: Vec<String>,
    /// Tags to remove.
    pub tags_remove: Vec<String>,
    /// External identifiers by namespace; `None` removes one.
    pub identifiers: Vec<(String, Option<String>)>,
    /// Subscription changes.
    pub subscriptions: Vec<SubscriptionChange>,
    /// Where the write came from.
    pub source: Source,
    /// Contacts derived from this update's email and phone values before it reached
    /// the actor (see [`Prepared`]).
    pub prepared: Prepared,
    /// With an empty `customer_id`: find the profile by the first of these identifiers
    /// that names one (`email`, `phone` or a namespace, and its value, normalized as
    /// lookups are), or create one under a generated customer id.
    pub find_by: Vec<(String, String)>,
    /// Events for the profile's activity, applied after the rest of the update.
    pub events: Vec<Event>,
}

/// Email and phone contacts derived ahead of time, off the database actor's thread:
/// parsing a phone number is the costliest part of a write. The actor uses one only if
/// the profile ends up with exactly that value (and, for a phone, that default region);
/// otherwise it derives the contact itself, so a stale or missing one changes nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prepared {
    /// The email value and what it is.
    pub email: Option<(CompactString, EmailContact)>,
    /// The phone value, the default region it was parsed with, and what it is.
    pub phone: Option<(CompactString, Option<CompactString>, PhoneContact)>,
}

impl Prepared {
    /// The contact for this email value, if it was derived.
    pub fn email(&self, value: &str) -> Option<&EmailContact> {
        self.email
            .as_ref()
            .filter(|(v, _)| v == value)
            .map(|(_, c)| c)
    }

    /// The contact for this phone value under this default region, if it was derived.
    pub fn phone(&self, value: &str, region: Option<&str>) -> Option<&PhoneContact> {
        self.phone
            .as_ref()
            .filter(|(v, r, _)| v == value && r.as_deref() == region)
            .map(|(_, _, c)| c)
    }
}

impl ProfileUpdate {
    /// Derives the contacts of the email and phone values this update sets (see
    /// [`Prepared`]). Call it on any thread but the actor's.
    pub fn prepare(&mut self, default_region: Option<&str>) {
        for (name, raw) in &self.fields {
            let Some(text) = raw.text() else { continue };
            match name.as_str() {
                "email" => self.prepared.email = Some((text.into(), EmailContact::new(text))),
                "phone" => {
                    self.prepared.phone = Some((
                        text.into(),
                        default_region.map(CompactString::from),
                        PhoneContact::new(text, default_region),
                    ));
                }
                _ => {}
            }
        }
    }
}

impl ProfileUpdate {
    /// An empty merge update for `customer_id`.
    pub fn new(customer_id: impl Into<CompactString>, source: Source) -> Self {
        ProfileUpdate {
            customer_id: customer_id.into(),
            replace: false,
            fields: Vec::new(),
            unset: Vec::new(),
            tags_add: Vec::new(),
            tags_remove: Vec::new(),
            identifiers: Vec::new(),
            subscriptions: Vec::new(),
            source,
            prepared: Prepared::default(),
            find_by: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Whether the update changes the profile itself (not only its activity).
    pub fn touches_profile(&self) -> bool {
        self.replace
            || !self.fields.is_empty()
            || !self.unset.is_empty()
            || !self.tags_add.is_empty()
            || !self.tags_remove.is_empty()
            || !self.identifiers.is_empty()
            || !self.subscriptions.is_empty()
    }
}

/// Tag changes in a profile body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    /// Tags to add.
    #[serde(default)]
    pub add: Vec<String>,
    /// Tags to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// The body of `PUT` and `PATCH .../profiles/{customer_id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    /// If given, must equal the path's customer id (it cannot change).
    pub customer_id: Option<String>,
    /// Refused: the internal id is assigned by the server.
    pub id: Option<String>,
    /// Field values by name; `null` clears a field.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Json>,
    /// Fields to clear.
    #[serde(default)]
    pub unset: Vec<String>,
    /// Tags to add and remove.
    #[serde(default)]
    pub tags: TagsBody,
    /// External identifiers by namespace (`crm`, `device`...); `null` removes one.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub identifiers: Map<String, Json>,
    /// Subscription changes.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionChange>,
}

impl ProfileBody {
    /// The update this body asks for, for the profile `customer_id` (the path's, or a
    /// file row's).
    pub fn into_update(
        self,
        customer_id: &str,
        replace: bool,
        source: Source,
    ) -> Result<ProfileUpdate, Problem> {
        if let Some(given) = &self.customer_id
            && given != customer_id
        {
            return Err(Problem::new(
                ErrorCode::CustomerIdImmutable,
                format!(
                    "the body names customer `{given}` but the path names `{customer_id}`; a customer id never changes"
                ),
            ));
        }
        if self.id.is_some() {
            return Err(Problem::new(
                ErrorCode::InvalidBody,
                "`id` is assigned by the server and cannot be set or changed",
            )
            .with("path", "id"));
        }
        let mut u = ProfileUpdate::new(customer_id, source);
        u.replace = replace;
        u.fields = self
            .fields
            .into_iter()
            .map(|(k, v)| (k.into(), RawValue::Json(v)))
            .collect();
        u.unset = self.unset;
        u.tags_add = self.tags.add;
        u.tags_remove = self.tags.remove;
        for (ns, v) in self.identifiers {
            let v = match v {
                Json::Null => None,
                Json::String(s) => Some(s),
                other => {
                    return Err(Problem::new(
                        ErrorCode::IdentifierInvalid,
                        format!("identifier `{ns}` must be a string or null, not {other}"),
                    ));
                }
            };
            u.identifiers.push((ns, v));
        }
        u.subscriptions = self.subscriptions;
        Ok(u)
    }
}

/// Checks a customer id: 1 to 128 bytes, no control characters, no `/`.
pub fn check_customer_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err(format!(
            "a customer id is 1 to 128 bytes; `{id}` is {} bytes",
            id.len()
        ));
    }
    // U+FFFD is what invalid UTF-8 in a URL decodes to: two different ids would meet.
    if id
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\u{FFFD}')
    {
        return Err(format!(
            "customer id `{}` holds a control character, `/` or invalid UTF-8",
            id.escape_debug()
        ));
    }
    if id == "lookup" {
        return Err("`lookup` is reserved: POST .../profiles/lookup is the batch lookup".into());
    }
    Ok(())
}

/// Checks an external identifier namespace such as `crm` or `device`.
pub fn check_namespace(ns: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&ns.len())
        && ns.as_bytes()[0].is_ascii_lowercase()
        && ns
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        return Err(format!(
            "`{ns}` is not an identifier namespace: a lowercase letter, then lowercase letters, digits or `_` (32 at most)"
        ));
    }
    if ns == "email" || ns == "phone" {
        return Err(format!(
            "`{ns}` is set through the `{ns}` field, not `identifiers`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_ids_and_namespaces() {
        assert!(check_customer_id("c-42@shop").is_ok());
        for bad in ["", "a/b", "a\nb", "\u{FFFD}", "lookup", &"x".repeat(129)] {
            assert!(check_customer_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_namespace("crm").is_ok());
        for bad in ["email", "phone", "CRM", "1x", "a:b", ""] {
            assert!(check_namespace(bad).is_err(), "{bad:?}");
        }
    }
}
