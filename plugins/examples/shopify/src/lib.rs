//! Shopify webhooks to profile updates.
//!
//! Reads the `orders/create` and `customers/create` topics (the `x-shopify-topic`
//! header, or the body's shape when the header is missing). The profile is found by the
//! Shopify customer id (identifier `shopify`), then by email; a new one is created if
//! neither names a profile. An order becomes a receipt event.
//!
//! Shopify ids go above 2^53: they are read as exact integers and passed on as text.

use persona_plugin::{
    Event, EventData, Guest, Output, Payload, PluginError, Receipt, ReceiptItem, Update, export,
    external,
};
use serde_json::Value;

struct Shopify;

impl Guest for Shopify {
    fn transform(input: Payload) -> Result<Output, PluginError> {
        let body: Value = serde_json::from_slice(&input.body)
            .map_err(|e| PluginError::Invalid(format!("the body is not JSON: {e}")))?;
        let topic = input
            .headers
            .iter()
            .find(|h| h.name == "x-shopify-topic")
            .map(|h| h.value.as_str())
            .unwrap_or(if body.get("line_items").is_some() {
                "orders/create"
            } else {
                "customers/create"
            });
        let update = match topic {
            "orders/create" | "orders/paid" | "orders/updated" => order(&body)?,
            "customers/create" | "customers/update" => customer(&body, Update::empty())?,
            other => {
                return Err(PluginError::Unsupported(format!(
                    "topic `{other}` is not read by this plugin (orders/create, customers/create)"
                )));
            }
        };
        Ok(Output {
            updates: vec![update],
            errors: Vec::new(),
        })
    }
}

/// The text of an id, exact even above 2^53 (serde_json keeps integers as u64).
fn id(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// Shopify sends money as decimal strings (`"404.95"`).
fn money(v: &Value, key: &str) -> Result<f64, PluginError> {
    let raw = v
        .get(key)
        .ok_or_else(|| PluginError::Invalid(format!("`{key}` is missing")))?;
    match raw {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
    .ok_or_else(|| PluginError::Invalid(format!("`{key}` is not an amount: {raw}")))
}

/// The customer's fields and identifiers, added to `update`.
fn customer(c: &Value, update: Update) -> Result<Update, PluginError> {
    let mut update = match c.get("id").and_then(id) {
        Some(shopify_id) => update
            .or_find_by(external("shopify", shopify_id.clone()))
            .identifier("shopify", shopify_id),
        None => update,
    };
    if let Some(email) = text(c, "email") {
        update = update.or_find_by(persona_plugin::Identifier::Email(email.into()));
    }
    let address = c.get("default_address").unwrap_or(&Value::Null);
    let update = update
        .set_opt("email", text(c, "email"))
        .set_opt("first_name", text(c, "first_name"))
        .set_opt("last_name", text(c, "last_name"))
        // The address's phone is often a placeholder (`555-555-5555`): only the
        // customer's own phone is taken.
        .set_opt("phone", text(c, "phone"))
        .set_opt("city", text(address, "city"))
        .set_opt("country", text(address, "country_code"))
        .set_opt("registered_at", text(c, "created_at"));
    if update.find_by.is_empty() {
        return Err(PluginError::Invalid(
            "the customer has neither an id nor an email".into(),
        ));
    }
    Ok(update.tag("shopify"))
}

fn order(o: &Value) -> Result<Update, PluginError> {
    let order_id = o
        .get("id")
        .and_then(id)
        .ok_or_else(|| PluginError::Invalid("the order has no id".into()))?;
    let mut update = Update::empty();
    // The order's own email is where the receipt went; the customer record may hold
    // another one, which stays the profile's email.
    match o.get("customer").filter(|c| c.is_object()) {
        Some(c) => update = customer(c, update)?,
        None => {
            let email = text(o, "email").ok_or_else(|| {
                PluginError::Invalid("the order has no customer and no email".into())
            })?;
            update = update
                .or_find_by(persona_plugin::Identifier::Email(email.into()))
                .set_text("email", email);
        }
    }
    let items = o
        .get("line_items")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|line| {
            Ok(ReceiptItem {
                sku: text(line, "sku")
                    .map(str::to_owned)
                    .or_else(|| line.get("product_id").and_then(id))
                    .unwrap_or_default(),
                name: text(line, "name").map(str::to_owned),
                category: text(line, "product_type").map(str::to_owned),
                price: money(line, "price")?,
                quantity: line.get("quantity").and_then(Value::as_f64).unwrap_or(1.0),
            })
        })
        .collect::<Result<Vec<_>, PluginError>>()?;
    let status = if o.get("cancelled_at").is_some_and(|v| !v.is_null()) {
        Some("cancelled".to_owned())
    } else {
        text(o, "financial_status").map(str::to_owned)
    };
    let receipt = Receipt {
        id: order_id,
        total: money(o, "total_price")?,
        currency: text(o, "currency").map(str::to_owned),
        items,
        store: text(o, "source_name").map(str::to_owned),
        status,
    };
    Ok(update.event(Event {
        time: text(o, "created_at").map(str::to_owned),
        data: EventData::Receipt(receipt),
    }))
}

export!(Shopify);
