//! `/v1/keys[/{id}]`: API keys (admin only).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Caller, JsonBody, State, json};
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

/// A new key: its record and the secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct NewKey {
    #[serde(flatten)]
    record: KeyRecord,
    /// The bearer secret; not stored, not shown again.
    key: String,
}

/// The key list.
#[derive(Serialize, ToSchema)]
pub struct KeyList {
    keys: Vec<KeyRecord>,
}

/// Creates a key.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = KeySpec,
    responses((status = 201, body = NewKey)), security(("bearer" = [])))]
pub async fn create(
    state: State,
    caller: Caller,
    body: JsonBody<KeySpec>,
) -> Result<HttpResponse, Problem> {
    caller.require_admin()?;
    let spec = body.0;
    let (mut record, key) = state.keys.create(spec.name, spec.role, spec.groups)?;
    record.digest.clear();
    tracing::info!(key = %record.id, role = ?record.role, "key created");
    Ok(json(StatusCode::CREATED, &NewKey { record, key }))
}

/// Lists keys (never their secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "keys", responses((status = 200, body = KeyList)),
    security(("bearer" = [])))]
pub async fn list(state: State, caller: Caller) -> Result<HttpResponse, Problem> {
    caller.require_admin()?;
    Ok(json(
        StatusCode::OK,
        &KeyList {
            keys: state.keys.list(),
        },
    ))
}

/// Deletes a key; it stops working at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    responses((status = 204), (status = 404, description = "key_not_found")), security(("bearer" = [])))]
pub async fn delete(
    state: State,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    caller.require_admin()?;
    state.keys.delete(&path)?;
    Ok(HttpResponse::NoContent().finish())
}
