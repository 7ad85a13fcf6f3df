//! A profile database's settings: what `POST/PATCH /v1/databases` take and return.
//!
//! [`DatabaseSpec`] is the request body (every member optional, unknown ones refused);
//! [`DatabaseSettings`] is the validated, complete settings a database runs with. Only
//! the database actor swaps settings; readers see them through an `Arc`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::contacts;
use crate::error::{ErrorCode, Problem};

/// A channel a customer can be reached on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Email.
    Email,
    /// SMS.
    Sms,
    /// Mobile or web push.
    Push,
}

impl Channel {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
        }
    }
}

/// Title and language of the subscription manager page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionManager {
    /// Page title.
    pub title: String,
    /// Page language (BCP 47, such as `en` or `pt-BR`).
    pub language: String,
}

impl Default for SubscriptionManager {
    fn default() -> Self {
        SubscriptionManager {
            title: "Your subscriptions".into(),
            language: "en".into(),
        }
    }
}

/// Something a customer subscribes to (a blog, an app, a form...) and its channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    /// Unique within the database.
    pub name: String,
    /// The channels it sends on.
    pub channels: Vec<Channel>,
}

/// Who campaigns from this database come from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sender {
    /// Display name.
    #[serde(default)]
    pub from_name: Option<String>,
    /// Sending address.
    #[serde(default)]
    pub from_email: Option<String>,
    /// Reply-to address.
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// The complete settings of a database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DatabaseSettings {
    /// `[a-z0-9_-]{1,64}`, unique, immutable.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The access-control group; keys see databases of their groups.
    pub group: String,
    /// Labels to filter the database list by.
    pub tags: Vec<String>,
    /// The subscription manager page.
    pub subscription_manager: SubscriptionManager,
    /// Attached suppression lists; `global` is always among them.
    pub suppression_lists: Vec<String>,
    /// Subscription resources and their channels.
    pub resources: Vec<Resource>,
    /// A watchers database receives every campaign too (the owner's own staff).
    pub watchers: bool,
    /// Sender settings.
    pub sender: Sender,
    /// Days of category views that count as interest.
    pub interest_window_days: u32,
    /// Events kept per profile in its timeline (the oldest go first); derived values
    /// count every event ever applied, kept or not.
    #[serde(default = "default_max_events")]
    pub max_events: u32,
    /// ISO 3166 region for phone numbers written without a country code.
    pub default_region: Option<String>,
    /// The owner confirmed consent to hold this data (required at creation).
    pub consent_confirmed: bool,
    /// When the database was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

/// The body of `POST /v1/databases` and `PATCH /v1/databases/{db}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    /// Required at creation; on PATCH it may only repeat the current name.
    pub name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Access-control group (default `default`).
    pub group: Option<String>,
    /// Labels.
    pub tags: Option<Vec<String>>,
    /// Subscription manager page.
    pub subscription_manager: Option<SubscriptionManager>,
    /// Suppression lists to attach.
    pub suppression_lists: Option<Vec<String>>,
    /// Subscription resources.
    pub resources: Option<Vec<Resource>>,
    /// Watchers flag.
    pub watchers: Option<bool>,
    /// Sender settings.
    pub sender: Option<Sender>,
    /// Interest window in days (1 to 3650, default 30).
    pub interest_window_days: Option<u32>,
    /// Events kept per profile's timeline (10 to 100,000, default 1000).
    pub max_events: Option<u32>,
    /// Default phone region, such as `PT`.
    pub default_region: Option<String>,
    /// Must be `true` at creation.
    pub consent_confirmed: Option<bool>,
}

fn default_max_events() -> u32 {
    1000
}

fn invalid(setting: &str, detail: String) -> Problem {
    Problem::new(ErrorCode::SettingInvalid, detail).with("setting", setting)
}

/// Checks a database or group name: `[a-z0-9_-]{1,64}`.
pub fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl DatabaseSettings {
    /// Validates a creation body.
    pub fn create(spec: DatabaseSpec, now: Timestamp) -> Result<Self, Problem> {
        let name = spec.name.clone().ok_or_else(|| {
            Problem::new(ErrorCode::InvalidBody, "`name` is required").with("setting", "name")
        })?;
        if !is_name(&name) {
            return Err(Problem::new(
                ErrorCode::DatabaseNameInvalid,
                format!("`{name}` is not a database name: 1 to 64 of a-z, 0-9, `_`, `-`"),
            ));
        }
        if spec.consent_confirmed != Some(true) {
            return Err(Problem::new(
                ErrorCode::ConsentRequired,
                "confirm that you may hold this customer data: send \"consent_confirmed\": true",
            ));
        }
        let base = DatabaseSettings {
            name,
            description: String::new(),
            group: "default".into(),
            tags: Vec::new(),
            subscription_manager: SubscriptionManager::default(),
            suppression_lists: vec!["global".into()],
            resources: Vec::new(),
            watchers: false,
            sender: Sender::default(),
            interest_window_days: 30,
            max_events: default_max_events(),
            default_region: None,
            consent_confirmed: true,
            created_at: now,
        };
        base.patched(spec)
    }

    /// Applies a PATCH body, validating the result as a whole.
    pub fn patched(&self, spec: DatabaseSpec) -> Result<Self, Problem> {
        if let Some(name) = &spec.name
            && name != &self.name
        {
            return Err(invalid(
                "name",
                format!("a database cannot be renamed (`{}` to `{name}`)", self.name),
            ));
        }
        if spec.consent_confirmed == Some(false) {
            return Err(Problem::new(
                ErrorCode::ConsentRequired,
                "consent confirmation cannot be withdrawn from a database; delete it instead",
            ));
        }
        let mut s = self.clone();
        if let Some(v) = spec.description {
            s.description = v;
        }
        if let Some(v) = spec.group {
            if !is_name(&v) {
                return Err(invalid(
                    "group",
                    format!("`{v}` is not a group name: 1 to 64 of a-z, 0-9, `_`, `-`"),
                ));
            }
            s.group = v;
        }
        if let Some(v) = spec.tags {
            if let Some(bad) = v.iter().find(|t| t.is_empty() || t.len() > 64) {
                return Err(invalid(
                    "tags",
                    format!("tag `{bad}` must be 1 to 64 bytes"),
                ));
            }
            s.tags = dedup(v);
        }
        if let Some(v) = spec.subscription_manager {
            if !is_language(&v.language) {
                return Err(invalid(
                    "subscription_manager.language",
                    format!(
                        "`{}` is not a language tag such as `en` or `pt-BR`",
                        v.language
                    ),
                ));
            }
            s.subscription_manager = v;
        }
        if let Some(v) = spec.suppression_lists {
            if let Some(bad) = v.iter().find(|n| !is_name(n)) {
                return Err(invalid(
                    "suppression_lists",
                    format!("`{bad}` is not a list name"),
                ));
            }
            let mut lists = vec!["global".to_owned()];
            lists.extend(v);
            s.suppression_lists = dedup(lists);
        }
        if let Some(v) = spec.resources {
            let mut names = std::collections::HashSet::new();
            for r in &v {
                if r.name.is_empty() || !names.insert(r.name.as_str()) {
                    return Err(invalid(
                        "resources",
                        format!(
                            "resource names must be distinct and non-empty; `{}` is not",
                            r.name
                        ),
                    ));
                }
                if r.channels.is_empty() {
                    return Err(invalid(
                        "resources",
                        format!("resource `{}` needs at least one channel", r.name),
                    ));
                }
            }
            s.resources = v;
        }
        if let Some(v) = spec.watchers {
            s.watchers = v;
        }
        if let Some(v) = spec.sender {
            for (what, addr) in [
                ("sender.from_email", &v.from_email),
                ("sender.reply_to", &v.reply_to),
            ] {
                if let Some(a) = addr
                    && let Err(reason) = contacts::check_email(a)
                {
                    return Err(invalid(
                        what,
                        format!("`{a}` is not a valid email address: {reason}"),
                    ));
                }
            }
            s.sender = v;
        }
        if let Some(v) = spec.interest_window_days {
            if !(1..=3650).contains(&v) {
                return Err(invalid(
                    "interest_window_days",
                    format!("{v} is outside 1 to 3650 days"),
                ));
            }
            s.interest_window_days = v;
        }
        if let Some(v) = spec.max_events {
            if !(10..=100_000).contains(&v) {
                return Err(invalid(
                    "max_events",
                    format!("{v} is outside 10 to 100,000 events"),
                ));
            }
            s.max_events = v;
        }
        if let Some(v) = spec.default_region {
            let region = v.to_ascii_uppercase();
            if !contacts::is_region(&region) {
                return Err(invalid(
                    "default_region",
                    format!("`{v}` is not an ISO 3166 region with phone numbering, such as `PT`"),
                ));
            }
            s.default_region = Some(region);
        }
        Ok(s)
    }

    /// The resource of this name, if declared.
    pub fn resource(&self, name: &str) -> Option<&Resource> {
        self.resources.iter().find(|r| r.name == name)
    }

    /// Checks that a subscription names a resource of this database, a channel it
    /// sends on, and a category of 1 to 128 bytes; the error says which is wrong.
    pub fn check_subscription(
        &self,
        resource: &str,
        channel: Channel,
        category: &str,
    ) -> Result<(), String> {
        let r = self.resource(resource).ok_or_else(|| {
            format!(
                "resource `{resource}` is not declared on database `{}`",
                self.name
            )
        })?;
        if !r.channels.contains(&channel) {
            return Err(format!(
                "resource `{}` does not send on `{}`",
                r.name,
                channel.as_str()
            ));
        }
        if category.is_empty() || category.len() > 128 {
            return Err("a subscription category is 1 to 128 bytes".into());
        }
        Ok(())
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for x in v {
        if !out.contains(&x) {
            out.push(x);
        }
    }
    out
}

fn is_language(s: &str) -> bool {
    let mut parts = s.split('-');
    let primary = parts.next().unwrap_or("");
    (2..=3).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_lowercase())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> DatabaseSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn creation_needs_name_and_consent() {
        let now = Timestamp::UNIX_EPOCH;
        let err = DatabaseSettings::create(spec(serde_json::json!({"name":"shop"})), now);
        assert_eq!(err.unwrap_err().code, ErrorCode::ConsentRequired);
        let err = DatabaseSettings::create(
            spec(serde_json::json!({"name":"Shop!","consent_confirmed":true})),
            now,
        );
        assert_eq!(err.unwrap_err().code, ErrorCode::DatabaseNameInvalid);
        let ok = DatabaseSettings::create(
            spec(serde_json::json!({"name":"shop","consent_confirmed":true,"default_region":"pt"})),
            now,
        )
        .unwrap();
        assert_eq!(ok.default_region.as_deref(), Some("PT"));
        assert_eq!(ok.suppression_lists, vec!["global"]);
        assert_eq!(ok.group, "default");
    }

    #[test]
    fn patch_validates_each_setting() {
        let now = Timestamp::UNIX_EPOCH;
        let s = DatabaseSettings::create(
            spec(serde_json::json!({"name":"shop","consent_confirmed":true})),
            now,
        )
        .unwrap();
        for bad in [
            serde_json::json!({"name":"other"}),
            serde_json::json!({"interest_window_days":0}),
            serde_json::json!({"default_region":"XX"}),
            serde_json::json!({"sender":{"from_email":"not-an-email"}}),
            serde_json::json!({"resources":[{"name":"blog","channels":[]}]}),
            serde_json::json!({"subscription_manager":{"title":"t","language":"English"}}),
        ] {
            assert!(s.patched(spec(bad.clone())).is_err(), "{bad}");
        }
        let p = s
            .patched(spec(
                serde_json::json!({"tags":["b2c","b2c"],"watchers":true}),
            ))
            .unwrap();
        assert_eq!(p.tags, vec!["b2c"]);
        assert!(p.watchers);
    }
}
