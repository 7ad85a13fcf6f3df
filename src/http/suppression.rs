//! `/v1/suppression-lists[/{name}[/entries]]`: the server's suppression lists.
//!
//! Changes journal to disk (an fsync each), so they run on the blocking pool.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{JsonBody, ListsAdd, ListsRead, ListsRemove, State, blocking, json};
use crate::auth::{Access, KeyRecord, ListAccess};
use crate::error::Problem;
use crate::suppression::{Entries, Kind, ListView};

/// The body of `PUT /v1/suppression-lists/{name}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSpec {
    /// Free text; left out, an existing list keeps its own.
    description: Option<String>,
}

/// Every list.
#[derive(Serialize, ToSchema)]
pub struct Lists {
    lists: Vec<ListView>,
}

/// A list and the databases that attach it.
#[derive(Serialize, ToSchema)]
pub struct ListDetail {
    #[serde(flatten)]
    list: ListView,
    /// Databases whose `suppression_lists` name it (every database reads `global`).
    databases: Vec<String>,
}

/// Lists the suppression lists.
#[utoipa::path(get, path = "/v1/suppression-lists", tag = "suppression",
    responses((status = 200, body = Lists)), security(("bearer" = [])))]
pub async fn list(state: State, _caller: ListsRead) -> Result<HttpResponse, Problem> {
    Ok(json(
        StatusCode::OK,
        &Lists {
            lists: state.suppression.list(),
        },
    ))
}

/// The names of the databases that read list `name` among those the key may read.
fn visible(state: &State, caller: &KeyRecord, name: &str) -> Vec<String> {
    state
        .databases
        .list()
        .into_iter()
        .filter(|d| {
            let s = d.state.settings.load();
            caller.can(Access::Read, &s.group) && s.suppression_lists.iter().any(|l| l == name)
        })
        .map(|d| d.name())
        .collect()
}

/// The list, with the databases that read it among those the key may read.
fn detail(state: &State, caller: &KeyRecord, name: &str) -> Result<ListDetail, Problem> {
    let list = state.suppression.find(name)?.view();
    let databases = visible(state, caller, name);
    Ok(ListDetail { list, databases })
}

/// Reads a list: its description, entry counts and the databases that read it.
#[utoipa::path(get, path = "/v1/suppression-lists/{name}", tag = "suppression",
    responses((status = 200, body = ListDetail), (status = 404, description = "suppression_list_not_found")),
    security(("bearer" = [])))]
pub async fn get(
    state: State,
    caller: ListsRead,
    name: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    Ok(json(StatusCode::OK, &detail(&state, &caller.0, &name)?))
}

/// Creates a list (`201`) or changes its description (`200`).
#[utoipa::path(put, path = "/v1/suppression-lists/{name}", tag = "suppression", request_body = ListSpec,
    responses((status = 201, body = ListDetail), (status = 200, body = ListDetail)),
    security(("bearer" = [])))]
pub async fn put(
    state: State,
    caller: ListsAdd,
    name: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, Problem> {
    let name = name.into_inner();
    // The body is optional: `PUT` with none makes a list without a description.
    let spec: ListSpec = if body.iter().all(u8::is_ascii_whitespace) {
        ListSpec::default()
    } else {
        super::extract::parse_json(&body)?
    };
    let description = spec.description;
    let (lists, n) = (state.suppression.clone(), name.clone());
    let (_, created) = blocking(move || lists.put(&n, description)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &detail(&state, &caller.0, &name)?))
}

/// Deletes a list no database attaches (never `global`).
#[utoipa::path(delete, path = "/v1/suppression-lists/{name}", tag = "suppression",
    responses((status = 204), (status = 409, description = "suppression_list_in_use or suppression_list_protected")),
    security(("bearer" = [])))]
pub async fn delete(
    state: State,
    caller: ListsRemove,
    name: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let name = name.into_inner();
    // Held while the attachments are counted and the list goes, so no database can
    // attach it in between (settings changes hold it shared).
    let _attach = state.suppression.attachments().write().await;
    let attached = state.databases.attaching(&name);
    let shown = visible(&state, &caller.0, &name);
    let lists = state.suppression.clone();
    blocking(move || lists.delete(&name, attached.len(), &shown)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `GET .../entries` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EntriesQuery {
    /// `email`, `domain` or `phone`.
    kind: Kind,
    /// Page size, 1 to 10,000 (default 1000).
    limit: Option<usize>,
    /// `next_after` of the previous page: entries after this one, in byte order.
    after: Option<String>,
}

/// A page of a list's entries of one kind.
#[derive(Serialize, ToSchema)]
pub struct EntriesPage {
    kind: Kind,
    entries: Vec<String>,
    /// Where the next page starts (`after=`), `null` at the end.
    next_after: Option<String>,
}

/// Lists a list's entries of one kind, in lookup form and byte order, in pages.
#[utoipa::path(get, path = "/v1/suppression-lists/{name}/entries", tag = "suppression",
    params(EntriesQuery), responses((status = 200, body = EntriesPage)), security(("bearer" = [])))]
pub async fn entries(
    state: State,
    caller: ListsRead,
    name: web::Path<String>,
    q: web::Query<EntriesQuery>,
) -> Result<HttpResponse, Problem> {
    caller.0.require_lists(ListAccess::Entries)?;
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(Problem::new(
            crate::error::ErrorCode::InvalidQuery,
            format!("limit {limit} is outside 1 to 10000"),
        ));
    }
    let list = state.suppression.find(&name)?;
    let (page, more) = list.entries(q.kind, q.after.as_deref(), limit);
    let next_after = if more {
        page.last().map(|e| e.to_string())
    } else {
        None
    };
    Ok(json(
        StatusCode::OK,
        &EntriesPage {
            kind: q.kind,
            entries: page.into_iter().map(|e| e.to_string()).collect(),
            next_after,
        },
    ))
}

/// Adds entries: every one, or none if any is not a valid email, domain or phone.
#[utoipa::path(post, path = "/v1/suppression-lists/{name}/entries", tag = "suppression",
    request_body = Entries, responses((status = 200, body = crate::suppression::ChangeView),
        (status = 400, description = "suppression_entry_invalid, with `errors`")),
    security(("bearer" = [])))]
pub async fn add(
    state: State,
    _caller: ListsAdd,
    name: web::Path<String>,
    body: JsonBody<Entries>,
) -> Result<HttpResponse, Problem> {
    let lists = state.suppression.clone();
    let view = blocking(move || lists.add(&name, &body.0)).await?;
    Ok(json(StatusCode::OK, &view))
}

/// Removes entries (all, or none if any is not valid); absent ones are not an error.
#[utoipa::path(delete, path = "/v1/suppression-lists/{name}/entries", tag = "suppression",
    request_body = Entries, responses((status = 200, body = crate::suppression::ChangeView)),
    security(("bearer" = [])))]
pub async fn remove(
    state: State,
    _caller: ListsRemove,
    name: web::Path<String>,
    body: JsonBody<Entries>,
) -> Result<HttpResponse, Problem> {
    let lists = state.suppression.clone();
    let view = blocking(move || lists.remove(&name, &body.0)).await?;
    Ok(json(StatusCode::OK, &view))
}
