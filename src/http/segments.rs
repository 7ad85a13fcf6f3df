//! Segments over HTTP: `POST /v1/databases/{db}/query` (an ad-hoc query over a whole
//! database) and the saved segments under `/v1/databases/{db}/segments`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::{Db, JsonBody, Read, State, Write, blocking, json, ulid_cursor};
use crate::db::Change;
use crate::document::{self, Projection};
use crate::error::{ErrorCode, Problem};
use crate::segments::saved::{self, Saved};
use crate::segments::{self, FilterError, SegmentDef, SegmentError, query};
use crate::store::{ColumnKind, Packed};

/// The body of a query.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    /// The filter, in the segment filter language.
    filter: String,
    /// Projection of the profiles returned, as in `?fields=` (default: whole documents).
    #[serde(default)]
    fields: Option<Vec<String>>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
    /// Only `total`.
    #[serde(default)]
    count_only: bool,
}

/// A query's answer.
#[derive(Serialize, ToSchema)]
pub struct QueryResult {
    total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    profiles: Option<Vec<Box<RawValue>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<Option<String>>,
}

fn invalid(filter: &str, e: FilterError) -> Problem {
    Problem::new(ErrorCode::FilterInvalid, e.to_string())
        .with("column", e.column)
        .with("filter", filter)
}

/// Evaluates a filter over every profile: `total`, a page of documents and a cursor.
#[utoipa::path(post, path = "/v1/databases/{db}/query", tag = "segments", request_body = QueryBody,
    responses((status = 200, body = QueryResult), (status = 400, description = "filter_invalid, with `column`")),
    security(("bearer" = [])))]
pub async fn query(
    state: State,
    db: Db<Read>,
    body: JsonBody<QueryBody>,
) -> Result<HttpResponse, Problem> {
    let body = body.0;
    let budget = state
        .settings
        .query_budget()
        .map_err(|e| Problem::new(ErrorCode::Internal, e.to_string()))?;
    let limit = body.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::new(
            ErrorCode::InvalidBody,
            format!("limit {limit} is outside 1 to 1000"),
        ));
    }
    let after = ulid_cursor(body.cursor.as_deref())?;
    let schema = db.state.schema.load_full();
    let expr = segments::parse(&body.filter).map_err(|e| invalid(&body.filter, e))?;
    let saved = &db.state.segments;
    let compiled = segments::compile_with(&expr, &schema, &|name| saved.expr(name), None)
        .map_err(|e| invalid(&body.filter, e))?;
    let reading = query::projection(&compiled, &schema).map_err(|e| invalid(&body.filter, e))?;
    let shown = body
        .fields
        .as_ref()
        .map(|f| Projection::from_paths(f.iter().map(String::as_str), &schema))
        .transpose()?;
    // A filter on fields alone scans their columns (built once, by the writer, the
    // first time a field is asked for).
    let wanted = compiled.column_fields().and_then(|fields| {
        fields
            .iter()
            .map(|f| {
                let def = schema.get(f)?;
                Some((def.name.clone(), ColumnKind::of(def.ty)?))
            })
            .collect::<Option<Vec<_>>>()
    });
    let plan = match wanted {
        Some(w) => compiled.column_plan(&db.columns(w).await?),
        None => None,
    };
    let db = db.db.clone();
    let count_only = body.count_only;
    let started = std::time::Instant::now();
    let result = blocking(move || {
        let settings = db.state.settings.load();
        let cx = db.state.context(&settings);
        let ask = query::Ask {
            compiled: &compiled,
            projection: &reading,
            plan: plan.as_ref(),
            after,
            limit: if count_only { 0 } else { limit },
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            deadline: Some(started + budget),
        };
        let found = query::run(&db.state.store, &schema, &cx, &ask).map_err(|_| {
            Problem::new(
                ErrorCode::QueryTimeout,
                format!(
                    "the query ran past its time budget of {budget:?} (`--query-budget`); narrow the filter or save it as a segment"
                ),
            )
        })?;
        let profiles = (!count_only).then(|| {
            found
                .page
                .iter()
                .map(|p| {
                    let bytes = document::render(p, &schema, shown.as_ref(), &cx);
                    RawValue::from_string(String::from_utf8(bytes).expect("documents are UTF-8"))
                        .expect("documents are JSON")
                })
                .collect()
        });
        Ok(QueryResult {
            total: found.total,
            profiles,
            next_cursor: (!count_only).then(|| found.next.map(|u| u.to_string())),
        })
    })
    .await?;
    Ok(json(StatusCode::OK, &result))
}

/// The body of `PUT .../segments/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SegmentBody {
    /// The filter, in the segment filter language; may use `segment("other")`.
    filter: String,
}

/// A saved segment as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct SegmentView {
    name: String,
    filter: String,
    /// Members now.
    count: u64,
    /// When this definition was saved.
    #[schema(value_type = String, format = DateTime)]
    saved_at: jiff::Timestamp,
    /// Whether membership also moves with the clock, RFM ranks or suppression lists
    /// (refreshed in the background as well as on every write).
    volatile: bool,
}

impl From<&Saved> for SegmentView {
    fn from(s: &Saved) -> Self {
        SegmentView {
            name: s.def.name.clone(),
            filter: s.def.filter.clone(),
            count: s.count(),
            saved_at: s.def.saved_at,
            volatile: s.compiled().is_volatile(),
        }
    }
}

fn found(db: &crate::db::Database, name: &str) -> Result<std::sync::Arc<Saved>, Problem> {
    db.state
        .segments
        .get(name)
        .ok_or_else(|| SegmentError::NotFound(name.to_owned()).into())
}

/// Saves a segment (new: `201`; replacing its namesake: `200`); its members are
/// evaluated before the answer.
#[utoipa::path(put, path = "/v1/databases/{db}/segments/{name}", tag = "segments",
    request_body = SegmentBody,
    responses((status = 200, body = SegmentView), (status = 201, body = SegmentView),
        (status = 400, description = "filter_invalid (with `column`), segment_name_invalid"),
        (status = 409, description = "segments_too_many")),
    security(("bearer" = [])))]
pub async fn put(
    db: Db<Write>,
    path: web::Path<(String, String)>,
    body: JsonBody<SegmentBody>,
) -> Result<HttpResponse, Problem> {
    let (_, name) = path.into_inner();
    let filter = body.0.filter;
    // Parsed here too, so the problem can quote the filter.
    segments::parse(&filter).map_err(|e| invalid(&filter, e))?;
    let existed = db.state.segments.get(&name).is_some();
    let def = SegmentDef {
        name: name.clone(),
        filter,
        saved_at: jiff::Timestamp::now(),
    };
    db.apply(Change::SaveSegment(def)).await?;
    let view = SegmentView::from(&*found(&db, &name)?);
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json(status, &view))
}

/// A saved segment with its count now.
#[utoipa::path(get, path = "/v1/databases/{db}/segments/{name}", tag = "segments",
    responses((status = 200, body = SegmentView), (status = 404, description = "segment_not_found")),
    security(("bearer" = [])))]
pub async fn get(db: Db<Read>, path: web::Path<(String, String)>) -> Result<HttpResponse, Problem> {
    let (_, name) = path.into_inner();
    Ok(json(
        StatusCode::OK,
        &SegmentView::from(&*found(&db, &name)?),
    ))
}

/// Every saved segment, by name, with counts.
#[utoipa::path(get, path = "/v1/databases/{db}/segments", tag = "segments",
    responses((status = 200, body = Vec<SegmentView>)), security(("bearer" = [])))]
pub async fn list(db: Db<Read>) -> Result<HttpResponse, Problem> {
    let all: Vec<SegmentView> = db
        .state
        .segments
        .all()
        .iter()
        .map(|s| SegmentView::from(&**s))
        .collect();
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "segments": all }),
    ))
}

/// Deletes a saved segment (not one another refers to).
#[utoipa::path(delete, path = "/v1/databases/{db}/segments/{name}", tag = "segments",
    responses((status = 204), (status = 404, description = "segment_not_found"),
        (status = 409, description = "segment_in_use")),
    security(("bearer" = [])))]
pub async fn delete(
    db: Db<Write>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let (_, name) = path.into_inner();
    db.apply(Change::DeleteSegment(name)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Paging through a saved segment's members.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MembersQuery {
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<usize>,
    /// Projection of the documents, as in a lookup.
    fields: Option<String>,
}

/// A page of members.
#[derive(Serialize, ToSchema)]
pub struct MembersPage {
    /// Members now.
    count: u64,
    #[schema(value_type = Vec<Object>)]
    profiles: Vec<Box<RawValue>>,
    /// Where the next page starts; `null` at the end. Valid until the server restarts.
    next_cursor: Option<String>,
}

/// A page of a saved segment's members, oldest first.
#[utoipa::path(get, path = "/v1/databases/{db}/segments/{name}/members", tag = "segments",
    params(MembersQuery),
    responses((status = 200, body = MembersPage), (status = 404, description = "segment_not_found"),
        (status = 400, description = "cursor_invalid")),
    security(("bearer" = [])))]
pub async fn members(
    db: Db<Read>,
    path: web::Path<(String, String)>,
    q: web::Query<MembersQuery>,
) -> Result<HttpResponse, Problem> {
    let (_, name) = path.into_inner();
    let segment = found(&db, &name)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::new(
            ErrorCode::InvalidQuery,
            format!("limit {limit} is outside 1 to 1000"),
        ));
    }
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(saved::cursor_slot(c).ok_or_else(|| {
            Problem::new(
                ErrorCode::CursorInvalid,
                format!("`{c}` is not a cursor this server gave since it started; start again from the first page"),
            )
        })?),
    };
    let schema = db.state.schema.load();
    let shown = q
        .fields
        .as_deref()
        .map(|f| Projection::parse(f, &schema))
        .transpose()?;
    let (slots, more) = segment.page(after, limit);
    let profiles: Vec<Packed> = db.state.store.by_slots(slots.iter().copied());
    let settings = db.state.settings.load();
    let cx = db.state.context(&settings);
    let docs = profiles
        .iter()
        .map(|p| {
            let bytes = document::render(p, &schema, shown.as_ref(), &cx);
            RawValue::from_string(String::from_utf8(bytes).expect("documents are UTF-8"))
                .expect("documents are JSON")
        })
        .collect();
    let page = MembersPage {
        count: segment.count(),
        profiles: docs,
        next_cursor: more
            .then(|| slots.last().map(|s| saved::cursor_of(*s)))
            .flatten(),
    };
    Ok(json(StatusCode::OK, &page))
}
