//! The HTTP API: routes mirror the URL tree, one file per resource.
//!
//! Handlers only translate: extract (key, path, body) → call `db`, `auth` or `document`
//! → render JSON or a problem. No business rule lives here. Reads go straight to a
//! database's shared state; writes go through `Database::apply`.

mod databases;
mod events;
mod extract;
mod fields;
mod imports;
mod keys;
pub mod openapi;
mod ops;
mod plugins;
mod problem;
mod profiles;
mod segments;
mod subscriptions;
mod suppression;
mod webhooks;

use actix_web::dev::HttpServiceFactory;
use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::{HttpResponse, Resource, guard, web};
use serde::Serialize;

pub use extract::{Admin, Caller, Db, JsonBody, ListsAdd, ListsRead, ListsRemove, Read, Write};
pub use ops::Telemetry;

use crate::auth::KeyRing;
use crate::config::Settings;
use crate::db::Databases;
use crate::ingest::Jobs;
use crate::plugins::Plugins;
use crate::suppression::SuppressionLists;
use std::sync::Arc;

/// What every handler shares.
pub struct AppState {
    /// Resolved settings.
    pub settings: Settings,
    /// The profile databases.
    pub databases: Databases,
    /// The API keys.
    pub keys: KeyRing,
    /// Prometheus rendering.
    pub telemetry: Telemetry,
    /// Import jobs, running and finished.
    pub imports: Jobs,
    /// Uploaded plugins and their sandbox.
    pub plugins: Arc<Plugins>,
    /// The suppression lists (the databases hold them too).
    pub suppression: Arc<SuppressionLists>,
}

/// Shorthand for handler state.
pub type State = web::Data<AppState>;

/// A JSON response.
pub fn json<T: Serialize>(status: actix_web::http::StatusCode, body: &T) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(serde_json::to_vec(body).expect("views serialize"))
}

/// Runs slow or blocking work (file writes, compiling, a plugin call) on the blocking
/// pool, off the worker that also serves lookups.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, crate::error::Problem> + Send + 'static,
) -> Result<T, crate::error::Problem> {
    web::block(work).await.map_err(|_| {
        crate::error::Problem::new(
            crate::error::ErrorCode::Unavailable,
            "the server is shutting down",
        )
    })?
}

/// A paging cursor this server gave (a profile's id); empty or absent is the start.
pub fn ulid_cursor(cursor: Option<&str>) -> Result<Option<ulid::Ulid>, crate::error::Problem> {
    cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<ulid::Ulid>().map_err(|_| {
                crate::error::Problem::new(
                    crate::error::ErrorCode::CursorInvalid,
                    format!("`{c}` is not a cursor this server gave"),
                )
            })
        })
        .transpose()
}

/// A GET route that answers HEAD too (the body is left out for HEAD by actix-http):
/// monitors and caches ask with HEAD.
fn get() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

const V1: &str = "/v1";
const DB: &str = "/v1/databases/{db}";

/// A resource registered under `scope`, counted and timed under its full `pattern`.
///
/// The route label is known here, statically, so the metrics middleware never asks the
/// router to match the path a second time.
fn resource(
    scope: &'static str,
    pattern: &'static str,
    routes: impl FnOnce(Resource) -> Resource,
) -> impl HttpServiceFactory {
    let path = pattern
        .strip_prefix(scope)
        .expect("a resource pattern starts with its scope");
    routes(web::resource(path).default_service(web::to(problem::method_not_allowed)))
        .wrap(from_fn(move |req, next| ops::track(pattern, req, next)))
}

/// Registers every route. Within a scope actix tries resources in order, so the lookup
/// path (`/profiles/{customer_id}`) comes first after the one literal it would shadow.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(extract::query_error))
        .app_data(web::PathConfig::default().error_handler(extract::path_error))
        .service(
            web::scope(DB)
                .service(resource(DB, "/v1/databases/{db}/profiles/lookup", |r| {
                    r.route(web::post().to(profiles::lookup))
                }))
                .service(resource(
                    DB,
                    "/v1/databases/{db}/profiles/{customer_id}",
                    |r| {
                        r.route(get().to(profiles::get))
                            .route(web::put().to(profiles::put))
                            .route(web::patch().to(profiles::patch))
                            .route(web::delete().to(profiles::delete))
                    },
                ))
                .service(resource(
                    DB,
                    "/v1/databases/{db}/profiles/{customer_id}/activity",
                    |r| r.route(get().to(events::activity)),
                ))
                .service(resource(
                    DB,
                    "/v1/databases/{db}/profiles/{customer_id}/export",
                    |r| r.route(get().to(profiles::export)),
                ))
                .service(resource(
                    DB,
                    "/v1/databases/{db}/profiles/{customer_id}/subscriptions",
                    |r| r.route(get().to(subscriptions::of_profile)),
                ))
                .service(resource(
                    DB,
                    "/v1/databases/{db}/subscription-manager",
                    |r| r.route(get().to(subscriptions::manager)),
                ))
                .service(resource(DB, "/v1/databases/{db}/query", |r| {
                    r.route(web::post().to(segments::query))
                }))
                .service(resource(DB, "/v1/databases/{db}/segments", |r| {
                    r.route(get().to(segments::list))
                }))
                .service(resource(DB, "/v1/databases/{db}/segments/{name}", |r| {
                    r.route(get().to(segments::get))
                        .route(web::put().to(segments::put))
                        .route(web::delete().to(segments::delete))
                }))
                .service(resource(
                    DB,
                    "/v1/databases/{db}/segments/{name}/members",
                    |r| r.route(get().to(segments::members)),
                ))
                .service(resource(DB, "/v1/databases/{db}/audience", |r| {
                    r.route(get().to(subscriptions::audience))
                }))
                .service(resource(DB, "/v1/databases/{db}/events", |r| {
                    r.route(web::post().to(events::post))
                }))
                .service(resource(
                    DB,
                    "/v1/databases/{db}/profiles/by/{identifier}/{value}",
                    |r| r.route(get().to(profiles::get_by)),
                ))
                .service(resource(DB, "/v1/databases/{db}/profiles", |r| {
                    r.route(get().to(profiles::list))
                }))
                .service(resource(DB, "/v1/databases/{db}/ceiling", |r| {
                    r.route(get().to(ops::ceiling))
                }))
                .service(resource(DB, "/v1/databases/{db}/fields", |r| {
                    r.route(get().to(fields::list))
                        .route(web::post().to(fields::create))
                }))
                .service(resource(DB, "/v1/databases/{db}/fields/{name}", |r| {
                    r.route(web::delete().to(fields::delete))
                }))
                .service(resource(DB, "/v1/databases/{db}/imports", |r| {
                    r.route(get().to(imports::list))
                        .route(web::post().to(imports::create))
                }))
                .service(resource(DB, "/v1/databases/{db}/imports/{job}", |r| {
                    r.route(get().to(imports::get))
                }))
                .service(resource(DB, "/v1/databases/{db}/webhooks/{plugin}", |r| {
                    r.route(web::post().to(webhooks::receive))
                }))
                .service(resource(DB, "/v1/databases/{db}/snapshot", |r| {
                    r.route(web::post().to(databases::snapshot))
                }))
                .service(resource(DB, "/v1/databases/{db}", |r| {
                    r.route(get().to(databases::get))
                        .route(web::patch().to(databases::patch))
                        .route(web::delete().to(databases::delete))
                }))
                .default_service(web::to(problem::route_not_found)),
        )
        .service(
            web::scope(V1)
                .service(resource(V1, "/v1/databases", |r| {
                    r.route(get().to(databases::list))
                        .route(web::post().to(databases::create))
                }))
                .service(resource(V1, "/v1/plugins", |r| {
                    r.route(get().to(plugins::list))
                }))
                .service(resource(V1, "/v1/plugins/{name}", |r| {
                    r.route(get().to(plugins::get))
                        .route(web::put().to(plugins::put))
                        .route(web::delete().to(plugins::delete))
                }))
                .service(resource(V1, "/v1/suppression-lists", |r| {
                    r.route(get().to(suppression::list))
                }))
                .service(resource(V1, "/v1/suppression-lists/{name}", |r| {
                    r.route(get().to(suppression::get))
                        .route(web::put().to(suppression::put))
                        .route(web::delete().to(suppression::delete))
                }))
                .service(resource(V1, "/v1/suppression-lists/{name}/entries", |r| {
                    r.route(get().to(suppression::entries))
                        .route(web::post().to(suppression::add))
                        .route(web::delete().to(suppression::remove))
                }))
                .service(resource(V1, "/v1/keys", |r| {
                    r.route(get().to(keys::list))
                        .route(web::post().to(keys::create))
                }))
                .service(resource(V1, "/v1/keys/{id}", |r| {
                    r.route(web::delete().to(keys::delete))
                }))
                .default_service(web::to(problem::route_not_found)),
        )
        .service(resource("", "/healthz", |r| {
            r.route(get().to(ops::healthz))
        }))
        .service(resource("", "/readyz", |r| r.route(get().to(ops::readyz))))
        .service(resource("", "/metrics", |r| {
            r.route(get().to(ops::metrics))
        }))
        .service(resource("", "/docs", |r| r.route(get().to(openapi::docs))))
        .service(openapi::swagger())
        .default_service(web::to(problem::route_not_found));
}
