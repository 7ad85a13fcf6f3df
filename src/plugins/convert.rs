//! Between the contract's records and ours: the schema a plugin is shown, and the
//! [`ProfileUpdate`]s its output becomes.
//!
//! Conversion checks only what the contract's types cannot say (a JSON text that is not
//! JSON, a float that is not finite, an update that names no profile, an event whose
//! payload fails the checks a posted event passes); everything else
//! (unknown fields, wrong types, bad identifiers) is checked by the database actor, as
//! for any write, and refuses that update alone.

use serde::Serialize;
use serde_json::{Number, Value as Json};

use super::host::{
    Channel, Event, EventData, Field, FieldType as WitType, Identifier, Output, Update, Value,
};
use crate::activity;
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
/// plugin's own record errors and malformed updates (an update with a bad event is
/// refused whole, with the event's code).
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
        match update(u, source) {
            Ok(update) => updates.push(Converted {
                index,
                record,
                update,
            }),
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
        out.fields.push((f.name.into(), raw));
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
            at: None,
        })
        .collect();
    let now = jiff::Timestamp::now();
    for (i, e) in u.events.into_iter().enumerate() {
        let event = event(e, now).map_err(|p| {
            let detail = format!("event {i}: {}", p.detail);
            Problem { detail, ..p }
        })?;
        crate::ingest::events::add_event(&mut out, event);
    }
    Ok(out)
}

/// A receipt's status as a platform names it, as ours: full refunds are returns;
/// voided, cancelled and failed payments are cancellations; anything else (`paid`,
/// `pending`, `partially_refunded`, none) is a completed receipt.
fn receipt_status(status: Option<&str>) -> &'static str {
    match status.map(str::to_ascii_lowercase).as_deref() {
        // A partial refund leaves the purchase standing (its amount is not known).
        Some("refunded" | "returned") => "returned",
        Some("voided" | "void" | "cancelled" | "canceled" | "failed") => "cancelled",
        _ => "completed",
    }
}

/// One event of the contract as ours, checked as a posted one is. A custom event named
/// like a built-in type (`mailing`, `bonus`...) is that type, its properties the payload.
fn event(e: Event, now: jiff::Timestamp) -> Result<activity::Event, Problem> {
    let time = match e.time {
        None => now,
        Some(t) => activity::event::parse_time(&t, now).map_err(Problem::from)?,
    };
    let (name, data) = match e.data {
        EventData::Receipt(r) => {
            let items: Vec<Json> = r
                .items
                .into_iter()
                .map(|i| {
                    serde_json::json!({"sku": i.sku, "name": i.name, "category": i.category,
                        "price": i.price, "quantity": i.quantity})
                })
                .collect();
            let mut data = serde_json::json!({"receipt_id": r.id, "total": r.total, "items": items,
                "status": receipt_status(r.status.as_deref())});
            if let Some(c) = r.currency {
                data["currency"] = Json::String(c);
            }
            if let Some(s) = r.store {
                data["store"] = serde_json::json!({"id": s});
            }
            // Optional members the contract leaves out are absent, not null.
            for item in data["items"].as_array_mut().into_iter().flatten() {
                if let Some(obj) = item.as_object_mut() {
                    obj.retain(|_, v| !v.is_null());
                }
            }
            ("receipt".to_owned(), data)
        }
        EventData::Custom(c) => {
            let props: serde_json::Map<String, Json> = serde_json::from_str(&c.properties)
                .map_err(|err| {
                    invalid(format!(
                        "event `{}`: properties are not a JSON object: {err}",
                        c.name
                    ))
                })?;
            (c.name, Json::Object(props))
        }
    };
    activity::event::build(&name, time.as_microsecond(), Some(data))
        .map(|(event, _)| event)
        .map_err(Problem::from)
}

/// A field value of the contract as a raw value, typed later against the schema.
fn value(name: &str, v: Value) -> Result<RawValue, Problem> {
    Ok(match v {
        Value::Text(t) => RawValue::Text(t.into()),
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
                (Some(2), None, ErrorCode::PluginOutputInvalid),
                (Some(3), None, ErrorCode::PluginOutputInvalid),
            ]
        );
        assert_eq!(refused[2].field.as_deref(), Some("meta"));
        assert_eq!(ok[1].update.events[0].custom.as_deref(), Some("signup"));
    }

    #[test]
    fn events_become_ours_and_a_bad_one_refuses_its_update() {
        use crate::plugins::host::{Receipt, ReceiptItem};
        let receipt = Update {
            customer_id: Some("c1".into()),
            events: vec![
                Event {
                    time: Some("2024-03-01T10:00:00Z".into()),
                    data: EventData::Receipt(Receipt {
                        id: "o1".into(),
                        total: 20.0,
                        currency: Some("EUR".into()),
                        items: vec![ReceiptItem {
                            sku: "a".into(),
                            name: None,
                            category: Some("tv".into()),
                            price: 10.0,
                            quantity: 2.0,
                        }],
                        store: Some("web".into()),
                        status: Some("refunded".into()),
                    }),
                },
                Event {
                    time: None,
                    data: EventData::Custom(CustomEvent {
                        name: "tag_set".into(),
                        properties: r#"{"add":["vip"]}"#.into(),
                    }),
                },
            ],
            ..blank()
        };
        let bad = Update {
            customer_id: Some("c2".into()),
            events: vec![Event {
                time: None,
                data: EventData::Custom(CustomEvent {
                    name: "bonus".into(),
                    properties: r#"{"amount":-1,"status":"active"}"#.into(),
                }),
            }],
            ..blank()
        };
        let (ok, refused) = convert(
            Output {
                updates: vec![receipt, bad],
                errors: vec![],
            },
            Source::Webhook,
        );
        let u = &ok[0].update;
        assert_eq!(u.events.len(), 2);
        assert!(
            u.events[0].data.contains("\"status\":\"returned\""),
            "{}",
            u.events[0].data
        );
        assert!(u.events[0].data.contains("\"store\":{\"id\":\"web\"}"));
        assert_eq!(u.tags_add, ["vip"]);
        assert_eq!(refused[0].code, ErrorCode::EventInvalid);
        assert!(
            refused[0].detail.starts_with("event 0:"),
            "{}",
            refused[0].detail
        );
    }

    #[test]
    fn non_finite_floats_are_refused() {
        assert!(value("x", Value::Float(f64::NAN)).is_err());
        assert!(value("x", Value::Float(f64::INFINITY)).is_err());
    }
}
