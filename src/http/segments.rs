//! `POST /v1/databases/{db}/query`: an ad-hoc segment query over a whole database.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::{Db, JsonBody, Read, blocking, json, read_context, ulid_cursor};
use crate::document::{self, Projection};
use crate::error::{ErrorCode, Problem};
use crate::segments::{self, FilterError, query};

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
pub async fn query(db: Db<Read>, body: JsonBody<QueryBody>) -> Result<HttpResponse, Problem> {
    let body = body.0;
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
    let compiled = segments::compile(&expr, &schema).map_err(|e| invalid(&body.filter, e))?;
    let reading = query::projection(&compiled, &schema).map_err(|e| invalid(&body.filter, e))?;
    let shown = body
        .fields
        .as_ref()
        .map(|f| Projection::from_paths(f.iter().map(String::as_str), &schema))
        .transpose()?;
    let db = db.db.clone();
    let count_only = body.count_only;
    let result = blocking(move || {
        let settings = db.state.settings.load();
        let cx = read_context(&db, &settings);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let page_size = if count_only { 0 } else { limit };
        let found = query::run(
            &db.state.store,
            &schema,
            &compiled,
            &reading,
            &cx,
            after,
            page_size,
            threads,
        );
        let profiles = (!count_only).then(|| {
            found
                .page
                .iter()
                .map(|p| {
                    let bytes = document::render(&p.view(), &schema, shown.as_ref(), &cx);
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
