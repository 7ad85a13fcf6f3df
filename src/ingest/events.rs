//! Events as posted: one JSON object, a JSON array, or NDJSON, into profile updates.
//!
//! Every event is checked on its own (`activity::event::parse`); a bad one is reported
//! by its index and the rest go on. Good events are grouped by customer, in the order
//! they came, into one [`ProfileUpdate`] each, the one update type; a `tag_set` event
//! also changes the update's tags. Pure.

use jiff::Timestamp;
use serde_json::Value as Json;
use serde_json::value::RawValue as RawJson;

use crate::activity::event::{self, Addressed, Payload};
use crate::error::{ErrorCode, Problem};
use crate::schema::{DatabaseSettings, ProfileUpdate, RawValue, Source, SubscriptionChange};

/// The most events one request may carry.
pub const MAX_EVENTS: usize = 10_000;

/// A posted batch of events, read.
#[derive(Debug, Default)]
pub struct Batch {
    /// One update per customer, in the order customers first appear.
    pub updates: Vec<ProfileUpdate>,
    /// For each update, the indexes of its events in the request.
    pub origin: Vec<Vec<usize>>,
    /// Events refused before reaching a database: index and why.
    pub rejected: Vec<(usize, Problem)>,
    /// Events accepted with a note: index, code and detail.
    pub warnings: Vec<(usize, &'static str, String)>,
    /// Events in the request.
    pub count: usize,
}

/// The update one event makes: its customer (or identifiers to find it by), the event,
/// and the tags of a `tag_set`.
pub fn update_of(a: Addressed, source: Source) -> ProfileUpdate {
    let mut u = ProfileUpdate::new(a.customer_id.as_str(), source);
    // A profile found by email or phone keeps it (one created for the event gets it),
    // so the next event with the same address finds the same profile.
    u.fields = a
        .find_by
        .iter()
        .map(|(k, v)| (k.as_str().into(), RawValue::Json(Json::String(v.clone()))))
        .collect();
    u.find_by = a.find_by;
    add_event(&mut u, a.event);
    u
}

/// Adds an event to an update; a `tag_set` changes the update's tags too, and a
/// `subscription` its subscriptions (at the event's time).
pub fn add_event(u: &mut ProfileUpdate, e: event::Event) {
    if let Payload::Subscription(s) = &e.payload {
        u.subscriptions.push(SubscriptionChange {
            resource: s.resource.clone(),
            channel: s.channel,
            category: s.category.clone(),
            status: s.status,
            at: jiff::Timestamp::from_microsecond(e.time).ok(),
        });
    }
    if let Payload::TagSet(t) = &e.payload {
        // In the order events come: a later add undoes an earlier remove of the same
        // tag within one update, and the other way round. (Tags are the profile's
        // state, changed as writes arrive, like a PATCH's.)
        for tag in &t.add {
            u.tags_remove.retain(|r| r != tag);
            u.tags_add.push(tag.clone());
        }
        for tag in &t.remove {
            u.tags_add.retain(|a| a != tag);
            u.tags_remove.push(tag.clone());
        }
    }
    u.events.push(e);
}

/// Reads a request body: NDJSON when `ndjson`, else one object or an array. A body
/// that is not JSON at all, or holds more than [`MAX_EVENTS`], is refused whole. With
/// `settings`, a `subscription` event the database cannot take is refused on its own
/// rather than failing every event of its customer at the actor.
pub fn read(
    body: &[u8],
    ndjson: bool,
    now: Timestamp,
    settings: Option<&DatabaseSettings>,
) -> Result<Batch, Problem> {
    // Each event's text; parsed once, straight into its typed form.
    let mut texts: Vec<&[u8]> = Vec::new();
    if ndjson {
        for line in body.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            texts.push(line);
            if texts.len() > MAX_EVENTS {
                return Err(too_many());
            }
        }
    } else {
        let not_json = |e: serde_json::Error| {
            Problem::new(
                ErrorCode::InvalidJson,
                format!(
                    "the body is not JSON: {e}; send one event, an array, or NDJSON with Content-Type: application/x-ndjson"
                ),
            )
        };
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => {
                let items: Vec<&RawJson> = serde_json::from_slice(body).map_err(not_json)?;
                if items.len() > MAX_EVENTS {
                    return Err(too_many());
                }
                texts.extend(items.iter().map(|r| r.get().as_bytes()));
            }
            _ => {
                serde_json::from_slice::<&RawJson>(body).map_err(not_json)?;
                texts.push(body);
            }
        }
    }
    if texts.is_empty() {
        return Err(Problem::new(
            ErrorCode::InvalidBody,
            "the body holds no events",
        ));
    }
    let mut batch = Batch {
        count: texts.len(),
        ..Batch::default()
    };
    // Customers by key: the customer id, or the identifiers that find the profile.
    let mut by_customer: std::collections::HashMap<(String, Vec<(String, String)>), usize> =
        std::collections::HashMap::new();
    for (i, text) in texts.into_iter().enumerate() {
        let a = match event::parse_slice(text, now).map_err(Problem::from) {
            Ok(a) => a,
            Err(p) => {
                batch.rejected.push((i, p));
                continue;
            }
        };
        if let (Some(settings), Payload::Subscription(sub)) = (settings, &a.event.payload)
            && let Err(why) = settings.check_subscription(&sub.resource, sub.channel, &sub.category)
        {
            batch
                .rejected
                .push((i, Problem::new(ErrorCode::SubscriptionInvalid, why)));
            continue;
        }
        for (code, detail) in &a.warnings {
            batch.warnings.push((i, code, detail.clone()));
        }
        let key = (a.customer_id.clone(), a.find_by.clone());
        match by_customer.get(&key) {
            Some(&u) => {
                add_event(&mut batch.updates[u], a.event);
                batch.origin[u].push(i);
            }
            None => {
                by_customer.insert(key, batch.updates.len());
                batch.updates.push(update_of(a, Source::Event));
                batch.origin.push(vec![i]);
            }
        }
    }
    Ok(batch)
}

fn too_many() -> Problem {
    Problem::new(
        ErrorCode::EventsTooMany,
        format!(
            "a request may carry {MAX_EVENTS} events; send more as an import (POST .../imports?format=ndjson&kind=events)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_group_by_customer_and_bad_lines_stand_alone() {
        let body = br#"{"customer_id":"a","type":"page_view","data":{"url":"/"}}
{"customer_id":"b","type":"tag_set","data":{"add":["vip"]}}
{"customer_id":"a","type":"receipt","data":{"receipt_id":"r","total":-1}}
not json
{"customer_id":"a","type":"category_view","data":{"category":"tv"}}
"#;
        let b = read(body, true, Timestamp::UNIX_EPOCH, None).unwrap();
        assert_eq!(b.count, 5);
        assert_eq!(b.origin, [vec![0, 4], vec![1]]);
        assert_eq!(b.updates[1].tags_add, ["vip"]);
        let flip = br#"{"customer_id":"a","type":"tag_set","data":{"remove":["vip"]}}
{"customer_id":"a","type":"tag_set","data":{"add":["vip"]}}"#;
        let f = read(flip, true, Timestamp::UNIX_EPOCH, None).unwrap();
        assert_eq!(
            (f.updates[0].tags_add.len(), f.updates[0].tags_remove.len()),
            (1, 0)
        );
        let bad: Vec<(usize, ErrorCode)> = b.rejected.iter().map(|(i, p)| (*i, p.code)).collect();
        assert_eq!(
            bad,
            [(2, ErrorCode::EventInvalid), (3, ErrorCode::InvalidJson)]
        );
    }

    #[test]
    fn one_object_or_an_array() {
        let one = read(
            br#"{"customer_id":"a","type":"x"}"#,
            false,
            Timestamp::UNIX_EPOCH,
            None,
        )
        .unwrap();
        assert_eq!(one.count, 1);
        let arr = read(
            br#"[{"customer_id":"a","type":"x"},{"email":"a@b.pt","type":"x"}]"#,
            false,
            Timestamp::UNIX_EPOCH,
            None,
        )
        .unwrap();
        assert_eq!(arr.updates.len(), 2);
        assert_eq!(
            arr.updates[1].find_by,
            [("email".to_string(), "a@b.pt".to_string())]
        );
        assert_eq!(
            read(b"[", false, Timestamp::UNIX_EPOCH, None)
                .unwrap_err()
                .code,
            ErrorCode::InvalidJson
        );
        assert_eq!(
            read(b"[]", false, Timestamp::UNIX_EPOCH, None)
                .unwrap_err()
                .code,
            ErrorCode::InvalidBody
        );
    }
}
