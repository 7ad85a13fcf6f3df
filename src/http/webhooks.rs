//! `POST /v1/databases/{db}/webhooks/{plugin}`: a partner's payload through a plugin.
//!
//! The body, its content type and headers (all but `authorization` and `cookie`) go to
//! the plugin on a plugin thread; its updates go to the database actor as one batch,
//! like an import's. A failing plugin is a `422` for this payload alone.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{declared_length, read_body};
use super::{Db, State, Write, json};
use crate::db::prebuilt::ImportRow;
use crate::db::{Applied, Change};
use crate::error::Problem;
use crate::plugins::Payload;
use crate::plugins::convert::{self, Rejected};
use crate::plugins::host::{Header, Source as PayloadSource};
use crate::schema::Source;

/// What a webhook did.
#[derive(Serialize, ToSchema)]
pub struct WebhookResult {
    /// Updates applied.
    applied: usize,
    /// Updates (and records) not applied, with their codes.
    #[schema(value_type = Vec<Object>)]
    rejected: Vec<Rejected>,
}

/// Headers a plugin never sees: the caller's credentials.
const HIDDEN: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// Runs the body through the plugin and applies its updates.
#[utoipa::path(post, path = "/v1/databases/{db}/webhooks/{plugin}", tag = "plugins",
    request_body(content = Vec<u8>, description = "the partner's payload, as sent"),
    responses((status = 200, body = WebhookResult),
        (status = 404, description = "plugin_not_found"),
        (status = 422, description = "plugin_trap, plugin_timeout, plugin_memory_exceeded, plugin_output_too_large or plugin_payload_refused")),
    security(("bearer" = [])))]
pub async fn receive(
    state: State,
    db: Db<Write>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    mut body: web::Payload,
) -> Result<HttpResponse, Problem> {
    let plugin = state.plugins.get(&path.1)?;
    let limit = state.settings.max_body_bytes;
    let bytes = read_body(&mut body, declared_length(&req), limit, "max_body_bytes").await?;
    let headers = req
        .headers()
        .iter()
        .filter(|(name, _)| !HIDDEN.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            Some(Header {
                name: name.as_str().to_owned(),
                value: value.to_str().ok()?.to_owned(),
            })
        })
        .collect();
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let payload = Payload {
        body: bytes.to_vec(),
        content_type,
        headers,
        source: PayloadSource::Webhook,
        database: db.name(),
        fields: convert::fields_of(&db.state.schema.load()),
        chunk: None,
    };
    let output = state.plugins.run(plugin, payload).await?;
    let (converted, mut rejected) = convert::convert(output, Source::Webhook);
    let mut applied = converted.len();
    if !converted.is_empty() {
        let origin: Vec<(usize, Option<u32>)> =
            converted.iter().map(|c| (c.index, c.record)).collect();
        let updates = converted
            .into_iter()
            .map(|c| ImportRow::from(c.update))
            .collect();
        if let Applied::Imported {
            rejected: refused, ..
        } = db
            .db
            .apply(Change::Import {
                rows: updates,
                to_come: 0,
            })
            .await?
        {
            applied -= refused.len();
            for (i, p) in refused {
                let (index, record) = origin[i];
                rejected.push(Rejected::of(index, record, &p));
            }
        }
    }
    rejected.sort_by_key(|r| (r.update, r.record));
    Ok(json(StatusCode::OK, &WebhookResult { applied, rejected }))
}
