//! `/v1/keys[/{id}]`: API keys (admin only).
//!
//! Key changes write `keys.json`, so they run on the blocking pool, not on the worker
//! that also serves lookups.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Admin, JsonBody, State, blocking, json};
use crate::auth::{KeyRecord, Role};
use crate::error::Problem;

/// The body of `POST /v1/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// Human name.
    name: String,
    /// Role.
    role: Role,
    /// Groups whose databases the key reaches.
    #[serde(default)]
    groups: Vec<String>,
}

/// A key as the API shows it: never its secret or digest.
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    id: String,
    name: String,
    role: Role,
    groups: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
}

impl From<&KeyRecord> for KeyView {
    fn from(r: &KeyRecord) -> Self {
        KeyView {
            id: r.id.clone(),
            name: r.name.clone(),
            role: r.role,
            groups: r.groups.clone(),
            created_at: r.created_at,
        }
    }
}

/// A new key: its view and the secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct NewKey {
    #[serde(flatten)]
    view: KeyView,
    /// The bearer secret; not stored, not shown again.
    key: String,
}

/// The key list.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    keys: Vec<KeyView>,
}

/// Creates a key.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = KeySpec,
    responses((status = 201, body = NewKey)), security(("bearer" = [])))]
pub async fn create(
    state: State,
    _admin: Admin,
    body: JsonBody<KeySpec>,
) -> Result<HttpResponse, Problem> {
    let spec = body.0;
    let (record, key) =
        blocking(move || state.keys.create(spec.name, spec.role, spec.groups)).await?;
    tracing::info!(key = %record.id, role = ?record.role, "key created");
    let view = KeyView::from(&record);
    Ok(json(StatusCode::CREATED, &NewKey { view, key }))
}

/// Lists keys (never their secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", responses((status = 200, body = KeyList)),
    security(("bearer" = [])))]
pub async fn list(state: State, _admin: Admin) -> Result<HttpResponse, Problem> {
    let keys = state
        .keys
        .list()
        .iter()
        .map(|k| KeyView::from(&**k))
        .collect();
    Ok(json(StatusCode::OK, &KeyList { keys }))
}

/// Deletes a key; it stops working at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    responses((status = 204), (status = 404, description = "key_not_found")), security(("bearer" = [])))]
pub async fn delete(
    state: State,
    _admin: Admin,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = path.into_inner();
    blocking(move || state.keys.delete(&id)).await?;
    Ok(HttpResponse::NoContent().finish())
}
