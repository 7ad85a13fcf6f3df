//! Between the contract's records and ours: the schema a plugin is shown, and the
//! [`ProfileUpdate`]s its output becomes.
//!
//! Conversion checks only what the contract's types cannot say (a JSON text that is not
//! JSON, a float that is not finite, an update that names no profile); everything else
//! (unknown fields, wrong types, bad identifiers) is checked by the database actor, as
//! for any write, and refuses that update alone.

use serde::Serialize;
use serde_json::{Number, Value as Json};

use super::host::{
    Channel, EventData, Field, FieldType as WitType, Identifier, Output, Update, Value,
};
use crate::error::{ErrorCode, Problem};
use crate::schema::{
    self, FieldType, ProfileUpdate, RawValue, Schema, Source, SubscriptionChange,
    SubscriptionStatus,
};

/// The schema as a plugin sees it.
pub fn fields_of(schema: &Schema) -> Vec<Field> {
    schema
        .fields()
        .iter()
        .map(|f| Field {
            name: f.name.to_string(),
            type_: match f.ty {
                FieldType::Integer => WitType::Integer,
                FieldType::Float => WitType::Float,
                FieldType::String => WitType::String,
                FieldType::Date => WitType::Date,
                FieldType::DateTime => WitType::Datetime,
                FieldType::Boolean => WitType::Boolean,
                FieldType::List => WitType::List,
                FieldType::Ip => WitType::Ip,
                FieldType::Tags => WitType::Tags,
                FieldType::Object => WitType::Object,
                FieldType::Array => WitType::Array,
            },
            required: f.required,
            values: f.values.clone(),
        })
        .collect()
}

/// An update of the output, ready for the actor, with where it came from.
#[derive(Debug)]
pub struct Converted {
    /// Position in the plugin's output.
    pub index: usize,
    /// The payload record it came from, if the plugin said.
    pub record: Option<u32>,
    /// The update.
    pub update: ProfileUpdate,
}

/// Something of the output that was not applied, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    /// Position of the update in the plugin's output; absent for a record the plugin
    /// itself could not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update: Option<usize>,
    /// The payload record it came from, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record: Option<u32>,
    /// The error code.
    pub code: ErrorCode,
    /// What was wrong.
    pub detail: String,
    /// The field at fault, if one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Rejected {
    /// A refused update: the problem's code, detail and field.
    pub fn of(index: usize, record: Option<u32>, p: &Problem) -> Self {
        Rejected {
            update: Some(index),
            record,
            code: p.code,
            detail: p.detail.clone(),
            field: p
                .members
                .get("field")
                .and_then(|f| f.as_str())
                .map(str::to_owned),
        }
    }
}

/// Splits an output into updates for the actor and what is refused already: the
/// plugin's own record errors, malformed updates, and events (not stored yet).
pub fn convert(output: Output, source: Source) -> (Vec<Converted>, Vec<Rejected>) {
    let mut rejected: Vec<Rejected> = output
        .errors
        .into_iter()
        .map(|e| Rejected {
            update: None,
            record: Some(e.record),
            code: ErrorCode::PluginRecordError,
            detail: format!("{}: {}", e.code, e.message),
            field: None,
        })
        .collect();
    let mut updates = Vec::with_capacity(output.updates.len());
    for (index, u) in output.updates.into_iter().enumerate() {
        let record = u.record;
        let events = u.events.len();
        match update(u, source) {
            Ok(update) => {
                if events > 0 {
                    // The profile part is applied; the events are reported, not lost
                    // silently, until the activity store exists.
                    rejected.push(Rejected {
                        update: Some(index),
                        record,
                        code: ErrorCode::EventsUnsupported,
                        detail: format!(
                            "{events} event(s) not stored: this server does not keep activity yet; the update's other changes were applied"
                        ),
                        field: None,
                    });
                }
                updates.push(Converted {
                    index,
                    record,
                    update,
                });
            }
            Err(p) => rejected.push(Rejected::of(index, record, &p)),
        }
    }
    (updates, rejected)
}

fn invalid(detail: String) -> Problem {
    Problem::new(ErrorCode::PluginOutputInvalid, detail)
}

/// One update of the contract as ours.
fn update(u: Update, source: Source) -> Result<ProfileUpdate, Problem> {
    let mut out = ProfileUpdate::new(u.customer_id.unwrap_or_default(), source);
    out.find_by = u
        .find_by
        .into_iter()
        .map(|id| match id {
            Identifier::Email(v) => ("email".to_owned(), v),
            Identifier::Phone(v) => ("phone".to_owned(), v),
            Identifier::External(x) => (x.namespace, x.value),
        })
        .collect();
    if out.customer_id.is_empty() && out.find_by.is_empty() {
        return Err(invalid(
            "the update names no profile: give it a customer id or an identifier to find it by"
                .into(),
        ));
    }
    for f in u.set {
        let raw = value(&f.name, f.value)?;
        out.fields.push((f.name, raw));
    }
    out.unset = u.unset;
    out.tags_add = u.tags_add;
    out.tags_remove = u.tags_remove;
    out.identifiers = u
        .identifiers
        .into_iter()
        .map(|x| (x.namespace, Some(x.value)))
        .collect();
    out.subscriptions = u
        .subscriptions
        .into_iter()
        .map(|s| SubscriptionChange {
            resource: s.resource,
            channel: match s.channel {
                Channel::Email => schema::Channel::Email,
                Channel::Sms => schema::Channel::Sms,
                Channel::Push => schema::Channel::Push,
            },
            category: s.category.unwrap_or_else(|| "default".into()),
            status: if s.subscribed {
                SubscriptionStatus::Subscribed
            } else {
                SubscriptionStatus::Unsubscribed
            },
        })
        .collect();
    // Events are counted by `convert`; their shapes are the contract's own.
    for e in &u.events {
        if let EventData::Custom(c) = &e.data {
            serde_json::from_str::<serde_json::Map<String, Json>>(&c.properties).map_err(
                |err| {
                    invalid(format!(
                        "event `{}`: properties are not a JSON object: {err}",
                        c.name
                    ))
                },
            )?;
        }
    }
    Ok(out)
}

/// A field value of the contract as a raw value, typed later against the schema.
fn value(name: &str, v: Value) -> Result<RawValue, Problem> {
    Ok(match v {
        Value::Text(t) => RawValue::Text(t),
        Value::Integer(i) => RawValue::Json(Json::from(i)),
        Value::Float(x) => RawValue::Json(Json::Number(Number::from_f64(x).ok_or_else(|| {
            invalid(format!("field `{name}`: {x} is not a finite number")).with("field", name)
        })?)),
        Value::Boolean(b) => RawValue::Json(Json::Bool(b)),
        Value::Strings(list) => RawValue::Json(Json::from(list)),
        Value::Json(text) => RawValue::Json(serde_json::from_str(&text).map_err(|e| {
            invalid(format!("field `{name}`: the JSON text does not parse: {e}"))
                .with("field", name)
        })?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::host::{CustomEvent, Event, ExternalId, FieldValue, RecordError};

    fn blank() -> Update {
        Update {
            record: None,
            customer_id: None,
            find_by: vec![],
            set: vec![],
            unset: vec![],
            tags_add: vec![],
            tags_remove: vec![],
            identifiers: vec![],
            subscriptions: vec![],
            events: vec![],
        }
    }

    #[test]
    fn updates_become_ours_and_bad_ones_are_refused_alone() {
        let good = Update {
            customer_id: Some("c1".into()),
            set: vec![
                FieldValue {
                    name: "age".into(),
                    value: Value::Integer(42),
                },
                FieldValue {
                    name: "score".into(),
                    value: Value::Float(0.5),
                },
                FieldValue {
                    name: "meta".into(),
                    value: Value::Json(r#"{"a":1}"#.into()),
                },
            ],
            identifiers: vec![ExternalId {
                namespace: "shopify".into(),
                value: "820982911946154508".into(),
            }],
            ..blank()
        };
        let found = Update {
            record: Some(3),
            find_by: vec![Identifier::Email("A@x.io".into())],
            events: vec![Event {
                time: None,
                data: EventData::Custom(CustomEvent {
                    name: "signup".into(),
                    properties: "{}".into(),
                }),
            }],
            ..blank()
        };
        let nameless = blank();
        let bad_json = Update {
            customer_id: Some("c2".into()),
            set: vec![FieldValue {
                name: "meta".into(),
                value: Value::Json("{".into()),
            }],
            ..blank()
        };
        let output = Output {
            updates: vec![good, found, nameless, bad_json],
            errors: vec![RecordError {
                record: 7,
                code: "no_email".into(),
                message: "x".into(),
            }],
        };
        let (ok, refused) = convert(output, Source::Webhook);
        assert_eq!(ok.len(), 2);
        assert_eq!(
            ok[0].update.fields[0],
            ("age".into(), RawValue::Json(Json::from(42)))
        );
        assert_eq!(
            ok[0].update.identifiers,
            vec![("shopify".into(), Some("820982911946154508".into()))]
        );
        assert_eq!(
            ok[1].update.find_by,
            vec![("email".into(), "A@x.io".into())]
        );
        let codes: Vec<_> = refused
            .iter()
            .map(|r| (r.update, r.record, r.code))
            .collect();
        assert_eq!(
            codes,
            vec![
                (None, Some(7), ErrorCode::PluginRecordError),
                (Some(1), Some(3), ErrorCode::EventsUnsupported),
                (Some(2), None, ErrorCode::PluginOutputInvalid),
                (Some(3), None, ErrorCode::PluginOutputInvalid),
            ]
        );
        assert_eq!(refused[3].field.as_deref(), Some("meta"));
    }

    #[test]
    fn non_finite_floats_are_refused() {
        assert!(value("x", Value::Float(f64::NAN)).is_err());
        assert!(value("x", Value::Float(f64::INFINITY)).is_err());
    }
}
