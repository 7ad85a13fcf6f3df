//! `/v1/databases/{db}/profiles...`: write, read, find, list and erase profiles.
//!
//! The read handlers are the lookup path: authenticate, find the database, clone the
//! profile's `Arc`, serialize. Nothing here waits on the database actor except writes.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Db, JsonBody, Read, Write, json, ulid_cursor};
use crate::db::Database;
use crate::db::{Applied, Change, lookup_key};
use crate::document::{self, Projection};
use crate::error::{ErrorCode, Problem};
use crate::schema::{ProfileBody, Schema, Source};
use crate::store::Packed;
use serde_json::value::RawValue;

/// `?fields=` on reads.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct GetQuery {
    /// Comma-separated field names and dotted paths (`email,stats.receipts_count,rfm`).
    fields: Option<String>,
}

fn projection(schema: &Schema, fields: Option<&str>) -> Result<Option<Projection>, Problem> {
    fields
        .map(|list| Projection::parse(list, schema))
        .transpose()
}

/// One profile's document, rendered with the schema the request loaded once.
fn doc(
    db: &Database,
    schema: &Schema,
    profile: &Packed,
    projection: Option<&Projection>,
) -> Vec<u8> {
    let settings = db.state.settings.load();
    document::render(profile, schema, projection, &db.state.context(&settings))
}

/// The answer for one profile.
fn render(
    state: &Database,
    schema: &Schema,
    profile: &Packed,
    projection: Option<&Projection>,
) -> HttpResponse {
    let body = doc(state, schema, profile, projection);
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(body)
}

/// The profile a path's customer id names (its own, or the survivor of a merge that
/// absorbed it), or `404 profile_not_found`.
pub(super) fn found(db: &crate::db::Database, customer_id: &str) -> Result<Packed, Problem> {
    db.state
        .store
        .lookup(customer_id)
        .ok_or_else(|| not_found(customer_id))
}

/// The problem for a customer id without a profile.
pub(super) fn not_found(customer_id: &str) -> Problem {
    Problem::new(
        ErrorCode::ProfileNotFound,
        format!("no profile `{customer_id}`"),
    )
    .with("customer_id", customer_id)
}

async fn write(
    db: Db<Write>,
    path: web::Path<(String, String)>,
    body: ProfileBody,
    replace: bool,
) -> Result<HttpResponse, Problem> {
    let (_, customer_id) = path.into_inner();
    let mut update = body.into_update(&customer_id, replace, Source::Api)?;
    // Phone and email parsing happen here, on an HTTP worker, not on the actor.
    update.prepare(db.state.settings.load().default_region.as_deref());
    match db.apply(Change::Upsert(update)).await? {
        Applied::Profile(profile) => Ok(render(&db, &db.state.schema.load(), &profile, None)),
        Applied::Done | Applied::Imported { .. } => Err(Problem::new(
            ErrorCode::Internal,
            "the write returned no profile",
        )),
    }
}

/// Creates or replaces a profile (identity kept: internal id and creation time).
#[utoipa::path(put, path = "/v1/databases/{db}/profiles/{customer_id}", tag = "profiles",
    request_body = ProfileBody, responses((status = 200, description = "the profile document")),
    security(("bearer" = [])))]
pub async fn put(
    db: Db<Write>,
    path: web::Path<(String, String)>,
    body: JsonBody<ProfileBody>,
) -> Result<HttpResponse, Problem> {
    write(db, path, body.0, true).await
}

/// Merges into a profile, creating it if absent.
#[utoipa::path(patch, path = "/v1/databases/{db}/profiles/{customer_id}", tag = "profiles",
    request_body = ProfileBody, responses((status = 200, description = "the profile document")),
    security(("bearer" = [])))]
pub async fn patch(
    db: Db<Write>,
    path: web::Path<(String, String)>,
    body: JsonBody<ProfileBody>,
) -> Result<HttpResponse, Problem> {
    write(db, path, body.0, false).await
}

/// Reads a profile by customer id, whole or projected.
#[utoipa::path(get, path = "/v1/databases/{db}/profiles/{customer_id}", tag = "profiles",
    params(GetQuery), responses((status = 200, description = "the profile document"),
    (status = 404, description = "profile_not_found")), security(("bearer" = [])))]
pub async fn get(
    db: Db<Read>,
    path: web::Path<(String, String)>,
    q: web::Query<GetQuery>,
) -> Result<HttpResponse, Problem> {
    let (_, customer_id) = path.into_inner();
    let schema = db.state.schema.load();
    let projection = projection(&schema, q.fields.as_deref())?;
    let profile = found(&db, &customer_id)?;
    Ok(render(&db, &schema, &profile, projection.as_ref()))
}

/// Reads a profile by email, phone or an external identifier.
#[utoipa::path(get, path = "/v1/databases/{db}/profiles/by/{identifier}/{value}", tag = "profiles",
    params(GetQuery), responses((status = 200, description = "the profile document"),
    (status = 404, description = "profile_not_found")), security(("bearer" = [])))]
pub async fn get_by(
    db: Db<Read>,
    path: web::Path<(String, String, String)>,
    q: web::Query<GetQuery>,
) -> Result<HttpResponse, Problem> {
    let (_, kind, value) = path.into_inner();
    let schema = db.state.schema.load();
    let projection = projection(&schema, q.fields.as_deref())?;
    let key = lookup_key(&kind, &value, &db.state.settings.load())?;
    let profile = db.state.store.find(&key).ok_or_else(|| {
        Problem::new(
            ErrorCode::ProfileNotFound,
            format!("no profile with {kind} `{value}`"),
        )
        .with("identifier", kind.clone())
    })?;
    Ok(render(&db, &schema, &profile, projection.as_ref()))
}

/// The body of a batch lookup.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LookupBody {
    /// Up to 1000 customer ids.
    customer_ids: Vec<String>,
    /// Projection, as in `?fields=`.
    #[serde(default)]
    fields: Option<Vec<String>>,
}

const MAX_BATCH: usize = 1000;

/// Reads many profiles at once; unknown ids are listed in `missing`.
#[utoipa::path(post, path = "/v1/databases/{db}/profiles/lookup", tag = "profiles",
    request_body = LookupBody, responses((status = 200, description = "{profiles, missing}")),
    security(("bearer" = [])))]
pub async fn lookup(db: Db<Read>, body: JsonBody<LookupBody>) -> Result<HttpResponse, Problem> {
    let body = body.0;
    if body.customer_ids.len() > MAX_BATCH {
        return Err(Problem::new(
            ErrorCode::InvalidBody,
            format!(
                "at most {MAX_BATCH} customer ids a lookup; got {}",
                body.customer_ids.len()
            ),
        ));
    }
    let schema = db.state.schema.load();
    let projection = body
        .fields
        .as_ref()
        .map(|f| Projection::from_paths(f.iter().map(String::as_str), &schema))
        .transpose()?;
    let mut profiles = Vec::with_capacity(body.customer_ids.len());
    let mut missing = Vec::new();
    for id in body.customer_ids {
        match db.state.store.lookup(&id) {
            Some(p) => profiles.push(raw(doc(&db, &schema, &p, projection.as_ref()))),
            None => missing.push(id),
        }
    }
    Ok(json(StatusCode::OK, &Batch { profiles, missing }))
}

/// A rendered document as a JSON value to embed: each is rendered on its own, so no
/// two profiles' activity locks are ever held together.
fn raw(bytes: Vec<u8>) -> Box<RawValue> {
    let text = String::from_utf8(bytes).expect("documents are UTF-8");
    RawValue::from_string(text).expect("documents are JSON")
}

#[derive(Serialize)]
struct Batch {
    profiles: Vec<Box<RawValue>>,
    missing: Vec<String>,
}

/// `GET .../profiles` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<usize>,
    /// Projection, as in `GET .../profiles/{customer_id}`.
    fields: Option<String>,
}

#[derive(Serialize)]
struct Page {
    profiles: Vec<Box<RawValue>>,
    next_cursor: Option<String>,
}

/// Lists every profile, oldest first, in pages.
#[utoipa::path(get, path = "/v1/databases/{db}/profiles", tag = "profiles", params(ListQuery),
    responses((status = 200, description = "{profiles, next_cursor}")), security(("bearer" = [])))]
pub async fn list(db: Db<Read>, q: web::Query<ListQuery>) -> Result<HttpResponse, Problem> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::new(
            ErrorCode::InvalidQuery,
            format!("limit {limit} is outside 1 to 1000"),
        ));
    }
    let after = ulid_cursor(q.cursor.as_deref())?;
    let schema = db.state.schema.load();
    let projection = projection(&schema, q.fields.as_deref())?;
    let (profiles, next) = db.state.store.page(after, limit);
    let page = Page {
        profiles: profiles
            .iter()
            .map(|p| raw(doc(&db, &schema, p, projection.as_ref())))
            .collect(),
        next_cursor: next.map(|u| u.to_string()),
    };
    Ok(json(StatusCode::OK, &page))
}

/// Erases a profile, its identifiers and (later) its activity.
#[utoipa::path(delete, path = "/v1/databases/{db}/profiles/{customer_id}", tag = "profiles",
    responses((status = 204), (status = 404, description = "profile_not_found")), security(("bearer" = [])))]
pub async fn delete(
    db: Db<Write>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let (_, customer_id) = path.into_inner();
    db.apply(Change::Delete { customer_id }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Everything held about a customer, as one JSON document: the profile document, every
/// subscription change kept and the whole activity timeline.
#[utoipa::path(get, path = "/v1/databases/{db}/profiles/{customer_id}/export", tag = "profiles",
    responses((status = 200, description = "{database, exported_at, profile, subscription_history, activity}"),
        (status = 404, description = "profile_not_found")), security(("bearer" = [])))]
pub async fn export(
    db: Db<Read>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let (_, customer_id) = path.into_inner();
    let profile = found(&db, &customer_id)?;
    let schema = db.state.schema.load();
    let settings = db.state.settings.load();
    let body = document::export(
        &profile.view(),
        &schema,
        &db.state.context(&settings),
        &settings.name,
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            // A customer id may hold quotes and other characters a header must not.
            format!(
                "attachment; filename=\"{}-{}.json\"",
                settings.name,
                customer_id.replace(
                    |c: char| !c.is_ascii_alphanumeric() && !"._-".contains(c),
                    "_"
                )
            ),
        ))
        .body(body))
}
