//! `/v1/plugins[/{name}]`: upload, list, show and delete import plugins.
//!
//! Compiling a component takes 60-110 ms, so uploads run on the blocking pool, not on
//! the worker that also serves lookups.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{declared_length, read_body};
use super::{Caller, State, blocking, json};
use crate::error::Problem;
use crate::plugins::{MAX_PLUGIN_BYTES, Plugin, PluginInfo, PluginSettings, StatsView};

/// `PUT /v1/plugins/{name}` query: the plugin's limits.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PutQuery {
    /// Time budget per payload in milliseconds (1 to 10000; default 100).
    timeout_ms: Option<u32>,
    /// Memory cap in MiB (1 to 1024; default 64).
    memory_mib: Option<u32>,
}

/// A plugin as shown: what is known of it and its calls since start.
#[derive(Serialize, ToSchema)]
pub struct PluginView {
    #[serde(flatten)]
    info: PluginInfo,
    stats: StatsView,
}

impl From<&Plugin> for PluginView {
    fn from(p: &Plugin) -> Self {
        PluginView {
            info: p.info.clone(),
            stats: p.stats.view(),
        }
    }
}

/// Uploads (or replaces) a plugin: the body is the WebAssembly component.
#[utoipa::path(put, path = "/v1/plugins/{name}", tag = "plugins", params(PutQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = PluginView, description = "a new plugin"),
        (status = 200, body = PluginView, description = "replaced; calls in flight finish on the old version"),
        (status = 400, description = "plugin_invalid: not a component of the contract")),
    security(("bearer" = [])))]
pub async fn put(
    state: State,
    caller: Caller,
    name: web::Path<String>,
    query: web::Query<PutQuery>,
    req: HttpRequest,
    mut body: web::Payload,
) -> Result<HttpResponse, Problem> {
    caller.require_publish()?;
    let defaults = PluginSettings::default();
    let settings = PluginSettings {
        timeout_ms: query.timeout_ms.unwrap_or(defaults.timeout_ms),
        memory_mib: query.memory_mib.unwrap_or(defaults.memory_mib),
    };
    settings.check()?;
    let wasm = read_body(
        &mut body,
        declared_length(&req),
        MAX_PLUGIN_BYTES,
        "the plugin size limit",
    )
    .await?;
    let plugins = state.plugins.clone();
    let name = name.into_inner();
    let (plugin, created) =
        blocking(move || plugins.put(&name, &wasm, settings).map_err(Problem::from)).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &PluginView::from(&*plugin)))
}

/// Every plugin, by name.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, description = "`{\"plugins\": [...]}`")),
    security(("bearer" = [])))]
pub async fn list(state: State, _caller: Caller) -> HttpResponse {
    let plugins: Vec<PluginView> = state
        .plugins
        .list()
        .iter()
        .map(|p| PluginView::from(&**p))
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "plugins": plugins }))
}

/// One plugin: version, size, exports, limits, calls, errors and mean time.
#[utoipa::path(get, path = "/v1/plugins/{name}", tag = "plugins",
    responses((status = 200, body = PluginView), (status = 404, description = "plugin_not_found")),
    security(("bearer" = [])))]
pub async fn get(
    state: State,
    _caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let plugin = state.plugins.get(&name)?;
    Ok(json(StatusCode::OK, &PluginView::from(&*plugin)))
}

/// Deletes a plugin; calls in flight finish.
#[utoipa::path(delete, path = "/v1/plugins/{name}", tag = "plugins",
    responses((status = 204), (status = 404, description = "plugin_not_found")),
    security(("bearer" = [])))]
pub async fn delete(
    state: State,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    caller.require_publish()?;
    let plugins = state.plugins.clone();
    blocking(move || plugins.delete(&name).map_err(Problem::from)).await?;
    Ok(HttpResponse::NoContent().finish())
}
