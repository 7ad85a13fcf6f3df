//! `/v1/databases[/{db}]`: create, list, read, change and delete databases.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::fields::FieldView;
use super::{Caller, Db, JsonBody, Read, State, Write, blocking, json};
use crate::auth::Access;
use crate::db::{Change, Database};
use crate::error::Problem;
use crate::schema::{DatabaseSettings, DatabaseSpec};

/// A database as the API shows it: its settings, fields and profile count.
#[derive(Serialize, ToSchema)]
pub struct DatabaseView {
    #[serde(flatten)]
    settings: DatabaseSettings,
    fields: Vec<FieldView>,
    profiles: usize,
}

impl DatabaseView {
    fn of(db: &Database) -> Self {
        let schema = db.state.schema.load();
        DatabaseView {
            settings: (**db.state.settings.load()).clone(),
            fields: schema.fields().iter().map(FieldView::from).collect(),
            profiles: db.state.store.len(),
        }
    }
}

/// `GET /v1/databases` query.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only databases with this tag.
    tag: Option<String>,
}

/// The database list.
#[derive(Serialize, ToSchema)]
pub struct DatabaseList {
    databases: Vec<DatabaseView>,
}

/// Lists the databases the key may read, optionally by tag.
#[utoipa::path(get, path = "/v1/databases", tag = "databases", params(ListQuery),
    responses((status = 200, body = DatabaseList)), security(("bearer" = [])))]
pub async fn list(state: State, caller: Caller, q: web::Query<ListQuery>) -> HttpResponse {
    let databases = state
        .databases
        .list()
        .into_iter()
        .filter(|db| {
            let s = db.state.settings.load();
            caller.can(Access::Read, &s.group) && q.tag.as_ref().is_none_or(|t| s.tags.contains(t))
        })
        .map(|db| DatabaseView::of(&db))
        .collect();
    json(StatusCode::OK, &DatabaseList { databases })
}

/// Creates a database (admin, or an editor of its group).
#[utoipa::path(post, path = "/v1/databases", tag = "databases", request_body = DatabaseSpec,
    responses((status = 201, body = DatabaseView), (status = 409, description = "database_exists")),
    security(("bearer" = [])))]
pub async fn create(
    state: State,
    caller: Caller,
    body: JsonBody<DatabaseSpec>,
) -> Result<HttpResponse, Problem> {
    let spec = body.0;
    caller.require_manage(spec.group.as_deref().unwrap_or("default"))?;
    // Creating writes and fsyncs the database's first snapshot: off the async workers.
    let db = blocking(move || state.databases.create(spec)).await?;
    tracing::info!(database = %db.name(), "database created");
    Ok(json(StatusCode::CREATED, &DatabaseView::of(&db)))
}

/// Reads a database.
#[utoipa::path(get, path = "/v1/databases/{db}", tag = "databases",
    responses((status = 200, body = DatabaseView), (status = 404, description = "database_not_found")),
    security(("bearer" = [])))]
pub async fn get(db: Db<Read>) -> HttpResponse {
    json(StatusCode::OK, &DatabaseView::of(&db))
}

/// Changes settings; members left out keep their value.
#[utoipa::path(patch, path = "/v1/databases/{db}", tag = "databases", request_body = DatabaseSpec,
    responses((status = 200, body = DatabaseView)), security(("bearer" = [])))]
pub async fn patch(db: Db<Write>, body: JsonBody<DatabaseSpec>) -> Result<HttpResponse, Problem> {
    if let Some(group) = &body.0.group {
        // Moving a database to a group the key is not in would lock the key out.
        db.caller.require_manage(group)?;
    }
    db.apply(Change::Settings(body.0)).await?;
    Ok(json(StatusCode::OK, &DatabaseView::of(&db)))
}

/// Deletes a database and every profile in it.
#[utoipa::path(delete, path = "/v1/databases/{db}", tag = "databases",
    responses((status = 204)), security(("bearer" = [])))]
pub async fn delete(state: State, db: Db<Write>) -> Result<HttpResponse, Problem> {
    state.databases.delete(&db.db).await?;
    state.imports.forget(&db.name());
    tracing::info!(database = %db.name(), "database deleted");
    Ok(HttpResponse::NoContent().finish())
}

/// Takes a snapshot now and says what was written (`lsn`, `path`, `bytes`, `profiles`).
#[utoipa::path(post, path = "/v1/databases/{db}/snapshot", tag = "databases",
    responses((status = 200, description = "the snapshot written"),
        (status = 500, description = "snapshot_failed")),
    security(("bearer" = [])))]
pub async fn snapshot(db: Db<Write>) -> Result<HttpResponse, Problem> {
    let info = db.snapshot().await?;
    Ok(json(StatusCode::OK, &info))
}
