//! `POST /v1/databases/{db}/events` and `GET .../profiles/{customer_id}/activity`.
//!
//! Posting reads the body (one event, an array, or NDJSON), has `ingest::events` check
//! and group it on a blocking thread, and sends the updates to the database actor as
//! one batch. The timeline is read in place from the activity store.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{declared_length, read_body};
use super::{Db, Read, State, Write, blocking, json};
use crate::activity::Kind;
use crate::activity::event::CATEGORIES;
use crate::activity::view::{EventView, page};
use crate::db::prebuilt::ImportRow;
use crate::db::{Applied, Change};
use crate::error::{ErrorCode, Problem};
use crate::ingest::events;

/// One refused event.
#[derive(Serialize, ToSchema)]
pub struct EventRejected {
    /// Its place in the request, from 0.
    index: usize,
    /// The error code.
    #[schema(value_type = String)]
    code: ErrorCode,
    /// What was wrong.
    detail: String,
}

/// A note on an accepted event.
#[derive(Serialize, ToSchema)]
pub struct EventWarning {
    /// Its place in the request, from 0.
    index: usize,
    /// `receipt_total_mismatch`.
    code: &'static str,
    /// What was noticed.
    detail: String,
}

/// What a post of events did.
#[derive(Serialize, ToSchema)]
pub struct EventsResult {
    /// Events applied.
    accepted: usize,
    /// Events not applied, with their codes.
    rejected: Vec<EventRejected>,
    /// Events applied with a note.
    warnings: Vec<EventWarning>,
}

/// Applies events to profiles' activity; an unknown customer is created.
#[utoipa::path(post, path = "/v1/databases/{db}/events", tag = "events",
    request_body(content = Object, description = "one event, an array, or NDJSON (Content-Type: application/x-ndjson)"),
    responses((status = 200, body = EventsResult),
        (status = 400, description = "invalid_json, invalid_body"),
        (status = 413, description = "events_too_many, payload_too_large")),
    security(("bearer" = [])))]
pub async fn post(
    state: State,
    db: Db<Write>,
    req: HttpRequest,
    mut body: web::Payload,
) -> Result<HttpResponse, Problem> {
    let limit = state.settings.max_body_bytes;
    let bytes = read_body(&mut body, declared_length(&req), limit, "max_body_bytes").await?;
    let ndjson = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-ndjson"));
    let settings = db.state.settings.load_full();
    let batch =
        blocking(move || events::read(&bytes, ndjson, Timestamp::now(), Some(&settings))).await?;
    let mut rejected: Vec<EventRejected> = batch
        .rejected
        .into_iter()
        .map(|(index, p)| EventRejected {
            index,
            code: p.code,
            detail: p.detail,
        })
        .collect();
    let mut warnings: Vec<EventWarning> = batch
        .warnings
        .into_iter()
        .map(|(index, code, detail)| EventWarning {
            index,
            code,
            detail,
        })
        .collect();
    if !batch.updates.is_empty()
        && let Applied::Imported {
            rejected: refused, ..
        } = db
            .apply(Change::Import {
                rows: batch.updates.into_iter().map(ImportRow::from).collect(),
                to_come: 0,
            })
            .await?
    {
        for (u, p) in refused {
            for &index in &batch.origin[u] {
                rejected.push(EventRejected {
                    index,
                    code: p.code,
                    detail: p.detail.clone(),
                });
            }
        }
        // A refused event's notes go with it (one pass, not one per refused event).
        let refused: std::collections::HashSet<usize> = rejected.iter().map(|r| r.index).collect();
        warnings.retain(|w| !refused.contains(&w.index));
    }
    rejected.sort_by_key(|r| r.index);
    Ok(json(
        StatusCode::OK,
        &EventsResult {
            accepted: batch.count - rejected.len(),
            rejected,
            warnings,
        },
    ))
}

/// `GET .../activity` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    /// Comma-separated categories: receipts, mailings, orders, website, loyalty, polls,
    /// call_center, tags, subscriptions, custom (all if absent).
    category: Option<String>,
    /// Page size, 1 to 1000 (default 20).
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn kinds(list: &str) -> Result<Vec<Kind>, Problem> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let (_, ks) = CATEGORIES.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            let names: Vec<&str> = CATEGORIES.iter().map(|(n, _)| *n).collect();
            Problem::new(
                ErrorCode::InvalidQuery,
                format!("`{name}` is not an activity category; use one of {names:?}"),
            )
            .with("parameter", "category")
        })?;
        out.extend_from_slice(ks);
    }
    Ok(out)
}

fn cursor(c: &str) -> Result<(i64, u64), Problem> {
    let bad = || {
        Problem::new(
            ErrorCode::CursorInvalid,
            format!("`{c}` is not a cursor this server gave"),
        )
    };
    let (t, s) = c.split_once('_').ok_or_else(bad)?;
    Ok((t.parse().map_err(|_| bad())?, s.parse().map_err(|_| bad())?))
}

/// A profile's timeline, newest first.
#[utoipa::path(get, path = "/v1/databases/{db}/profiles/{customer_id}/activity", tag = "events",
    params(ActivityQuery),
    responses((status = 200, description = "{events, next_cursor}"),
        (status = 404, description = "profile_not_found")),
    security(("bearer" = [])))]
pub async fn activity(
    db: Db<Read>,
    path: web::Path<(String, String)>,
    q: web::Query<ActivityQuery>,
) -> Result<HttpResponse, Problem> {
    let (_, customer_id) = path.into_inner();
    let limit = q.limit.unwrap_or(20);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::new(
            ErrorCode::InvalidQuery,
            format!("limit {limit} is outside 1 to 1000"),
        ));
    }
    let kinds = q
        .category
        .as_deref()
        .map(kinds)
        .transpose()?
        .unwrap_or_default();
    let before = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(cursor)
        .transpose()?;
    // An absorbed customer id reads its survivor's timeline.
    let profile = super::profiles::found(&db, &customer_id)?;
    let customer_id = profile.view().customer_id.to_owned();
    #[derive(Serialize)]
    struct Page<'a> {
        events: Vec<EventView<'a>>,
        next_cursor: Option<String>,
    }
    let body = db.state.activity.read(&customer_id, |act, _| {
        let (events, next) = match act {
            Some(a) => page(a, &kinds, before, limit),
            None => (Vec::new(), None),
        };
        serde_json::to_vec(&Page {
            events: events.into_iter().map(EventView).collect(),
            next_cursor: next.map(|(t, s)| format!("{t}_{s}")),
        })
    });
    let body = body.map_err(|e| Problem::new(ErrorCode::Internal, e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(body))
}
