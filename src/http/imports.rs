//! `/v1/databases/{db}/imports...`: start an import with the file as the body, follow it.
//!
//! The handler only pumps the request body into the job (`ingest::Upload`) chunk by
//! chunk, as it arrives; parsing and applying happen in `ingest`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use super::{Db, Read, State, Write, json};
use crate::error::{ErrorCode, Problem};
use crate::ingest::chunks::Transform;
use crate::ingest::job::RECORDS;
use crate::ingest::{Format, JobView, Options, Upload};
use crate::plugins::PluginImport;

/// What to do with a column the schema does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnknownColumns {
    /// Refuse the file before any row is read (the default).
    Refuse,
    /// Skip the column.
    Ignore,
}

/// What an import's rows are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// Profiles (the default).
    Profiles,
    /// Events.
    Events,
}

/// `POST .../imports` query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `csv`, `csv-long`, `json` or `ndjson`.
    format: Format,
    /// Answer when the job is done (`200` and the job) rather than when the body is read
    /// (`202` and the job id).
    #[serde(default)]
    wait: bool,
    /// CSV delimiter: `,` (default), `;`, `tab` or `|`.
    delimiter: Option<String>,
    /// `refuse` (default) or `ignore`.
    unknown_columns: Option<UnknownColumns>,
    /// Apply every row or none (checked batch by batch, published together at the end).
    #[serde(default)]
    atomic: bool,
    /// `profiles` (default) or `events` (JSON and NDJSON: one event a row, as
    /// `POST .../events` takes them).
    kind: Option<RowKind>,
    /// Read the file with this uploaded plugin instead of the built-in importer; the
    /// format then says how the file is cut into chunks (CSV and NDJSON at record
    /// boundaries, about 256 KiB each; JSON whole, up to 16 MiB).
    plugin: Option<String>,
}

impl ImportQuery {
    fn options(&self) -> Result<Options, Problem> {
        if self.plugin.is_some() {
            // The plugin reads the cells: these would be silently ignored.
            for (given, name) in [
                (self.delimiter.is_some(), "delimiter"),
                (self.unknown_columns.is_some(), "unknown_columns"),
                (self.kind.is_some(), "kind"),
            ] {
                if given {
                    return Err(Problem::new(
                        ErrorCode::InvalidQuery,
                        format!("`{name}` is for the built-in importer; with `plugin` the plugin reads the file"),
                    )
                    .with("parameter", name));
                }
            }
        }
        if self.kind == Some(RowKind::Events)
            && matches!(self.format, Format::Csv | Format::CsvLong)
        {
            return Err(Problem::new(
                ErrorCode::InvalidQuery,
                "events are imported from JSON or NDJSON (`format=json` or `format=ndjson`)",
            )
            .with("parameter", "kind"));
        }
        let delimiter = match self.delimiter.as_deref() {
            None | Some(",") => b',',
            Some(";") => b';',
            Some("tab" | "\t") => b'\t',
            Some("|") => b'|',
            Some(other) => {
                return Err(Problem::new(
                    ErrorCode::InvalidQuery,
                    format!("delimiter `{other}` is not one of `,` `;` `tab` `|`"),
                )
                .with("parameter", "delimiter"));
            }
        };
        Ok(Options {
            format: self.format,
            delimiter,
            ignore_unknown_columns: self.unknown_columns == Some(UnknownColumns::Ignore),
            atomic: self.atomic,
            events: self.kind == Some(RowKind::Events),
        })
    }
}

/// Imports a file into a database; the body is the file, read as it arrives.
#[utoipa::path(post, path = "/v1/databases/{db}/imports", tag = "imports", params(ImportQuery),
    request_body(content = String, description = "the file"),
    responses((status = 202, description = "`{\"job\": id}`: the body was read; the job goes on"),
        (status = 200, description = "with `wait=true`: the finished job", body = JobView),
        (status = 400, description = "the file was refused before any row was read")),
    security(("bearer" = [])))]
pub async fn create(
    state: State,
    db: Db<Write>,
    query: web::Query<ImportQuery>,
    req: HttpRequest,
    mut body: web::Payload,
) -> Result<HttpResponse, Problem> {
    let opts = query.options()?;
    let expected = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let archive = state.databases.dir_of(&db.name()).join(RECORDS);
    let transform = match &query.plugin {
        Some(name) => {
            let plugin = state.plugins.get(name)?;
            let schema = db.state.schema.load();
            let t = PluginImport::new(
                state.plugins.clone(),
                plugin,
                &db.name(),
                &schema,
                opts.format,
            );
            Some(Box::new(t) as Box<dyn Transform + Send>)
        }
        None => None,
    };
    let mut upload = Upload::start(
        &state.imports,
        db.db.clone(),
        opts,
        expected,
        Some(archive),
        transform,
    )?;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) => {
                if !upload.send(chunk).await {
                    // The parser stopped: the file was refused or the job failed.
                    break;
                }
            }
            Err(e) => {
                upload.abort(Problem::new(
                    ErrorCode::ImportUploadFailed,
                    format!("the upload broke off: {e}"),
                ));
                break;
            }
        }
    }
    let job = upload.finish().await;
    if let Some(p) = job.refused() {
        // Nothing is left to apply: answer once the job's record says it failed.
        job.finished().await;
        return Err(p.with("job", job.id.to_string()));
    }
    if query.wait {
        job.finished().await;
        return Ok(json(StatusCode::OK, &job.view()));
    }
    Ok(json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "job": job.id.to_string() }),
    ))
}

/// An import job: status, counts, progress and the first 1000 refused rows.
#[utoipa::path(get, path = "/v1/databases/{db}/imports/{job}", tag = "imports",
    responses((status = 200, body = JobView), (status = 404, description = "job_not_found")),
    security(("bearer" = [])))]
pub async fn get(
    state: State,
    db: Db<Read>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let (_, id) = path.into_inner();
    let job = state.imports.get(&db.name(), &id).ok_or_else(|| {
        Problem::new(
            ErrorCode::JobNotFound,
            format!("no import job `{id}` in database `{}`", db.name()),
        )
        .with("job", id.as_str())
    })?;
    Ok(json(StatusCode::OK, &job.view()))
}

/// A database's import jobs, newest first (the last 100 finished, and any running).
#[utoipa::path(get, path = "/v1/databases/{db}/imports", tag = "imports",
    responses((status = 200, description = "`{\"jobs\": [...]}`")),
    security(("bearer" = [])))]
pub async fn list(state: State, db: Db<Read>) -> HttpResponse {
    let jobs: Vec<JobView> = state
        .imports
        .list(&db.name())
        .iter()
        .map(|j| j.view())
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "jobs": jobs }))
}
