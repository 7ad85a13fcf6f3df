//! Stripe customer events to profile updates.
//!
//! Reads the `customer.created` and `customer.updated` events (the event's `type`). The
//! profile is found by the Stripe customer id (identifier `stripe`), then by email; a new
//! one is created if neither names a profile. The customer's email, phone, name and
//! address city and country are set when Stripe has them: it requires none of them,
//! and an event where all are null only attaches the id.

use persona_plugin::{Guest, Identifier, Output, Payload, PluginError, Update, export};
use serde_json::Value;

struct Stripe;

impl Guest for Stripe {
    fn transform(input: Payload) -> Result<Output, PluginError> {
        let event: Value = serde_json::from_slice(&input.body)
            .map_err(|e| PluginError::Invalid(format!("the body is not JSON: {e}")))?;
        let kind = text(&event, "type").ok_or_else(|| {
            PluginError::Invalid("the body has no `type`: it is not a Stripe event".into())
        })?;
        let update = match kind {
            "customer.created" | "customer.updated" => {
                let object = event
                    .get("data")
                    .and_then(|d| d.get("object"))
                    .filter(|o| o.is_object())
                    .ok_or_else(|| {
                        PluginError::Invalid(format!("the `{kind}` event has no `data.object`"))
                    })?;
                customer(object)?
            }
            other => {
                return Err(PluginError::Unsupported(format!(
                    "event type `{other}` is not read by this plugin (customer.created, customer.updated)"
                )));
            }
        };
        Ok(Output {
            updates: vec![update],
            errors: Vec::new(),
        })
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

fn customer(c: &Value) -> Result<Update, PluginError> {
    let stripe_id =
        text(c, "id").ok_or_else(|| PluginError::Invalid("the customer has no id".into()))?;
    let mut update = Update::find_by_external("stripe", stripe_id).identifier("stripe", stripe_id);
    let email = text(c, "email");
    if let Some(email) = email {
        update = update.or_find_by(Identifier::Email(email.into()));
    }
    // `description` often holds a full name too, but as often a company or a note: only
    // `name` is taken as the customer's name.
    let (first, last) = text(c, "name").map_or((None, None), split_name);
    let address = c.get("address").unwrap_or(&Value::Null);
    Ok(update
        .set_opt("email", email)
        .set_opt("phone", text(c, "phone"))
        .set_opt("first_name", first)
        .set_opt("last_name", last)
        .set_opt("city", text(address, "city"))
        .set_opt("country", text(address, "country")))
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

export!(Stripe);
