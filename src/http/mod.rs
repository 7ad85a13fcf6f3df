//! The HTTP API: routes mirror the URL tree, one file per resource.
//!
//! Handlers only translate: extract (key, path, body) → call `db`, `auth` or `document`
//! → render JSON or a problem. No business rule lives here. Reads go straight to a
//! database's shared state; writes go through `Database::apply`.

mod databases;
mod extract;
mod fields;
mod keys;
pub mod openapi;
mod ops;
mod problem;
mod profiles;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Serialize;

pub use extract::{Caller, JsonBody};
pub use ops::{Telemetry, track as ops_track};

use crate::auth::{Access, KeyRing};
use crate::config::Settings;
use crate::db::{self, Database, Databases};
use crate::error::Problem;

/// What every handler shares.
pub struct AppState {
    /// Resolved settings.
    pub settings: Settings,
    /// The profile databases.
    pub databases: Databases,
    /// The API keys.
    pub keys: KeyRing,
    /// Set once every database is loaded.
    pub ready: AtomicBool,
    /// Prometheus rendering.
    pub telemetry: Telemetry,
}

/// Shorthand for handler state.
pub type State = web::Data<AppState>;

impl AppState {
    /// The database `name`, if the caller may `access` it.
    pub fn database(
        &self,
        caller: &Caller,
        name: &str,
        access: Access,
    ) -> Result<Arc<Database>, Problem> {
        let db = self
            .databases
            .get(name)
            .ok_or_else(|| db::not_found(name))?;
        caller.require(access, name, &db.state.settings.load().group)?;
        Ok(db)
    }
}

/// A JSON response.
pub fn json<T: Serialize>(status: actix_web::http::StatusCode, body: &T) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(serde_json::to_vec(body).expect("views serialize"))
}

fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(problem::method_not_allowed))
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(extract::query_error))
        .app_data(web::PathConfig::default().error_handler(extract::path_error))
        .service(resource("/healthz").route(web::get().to(ops::healthz)))
        .service(resource("/readyz").route(web::get().to(ops::readyz)))
        .service(resource("/metrics").route(web::get().to(ops::metrics)))
        .service(resource("/docs").route(web::get().to(openapi::docs)))
        .service(openapi::swagger())
        .service(
            web::scope("/v1")
                .service(
                    resource("/databases")
                        .route(web::get().to(databases::list))
                        .route(web::post().to(databases::create)),
                )
                .service(
                    resource("/databases/{db}")
                        .route(web::get().to(databases::get))
                        .route(web::patch().to(databases::patch))
                        .route(web::delete().to(databases::delete)),
                )
                .service(resource("/databases/{db}/ceiling").route(web::get().to(ops::ceiling)))
                .service(
                    resource("/databases/{db}/fields")
                        .route(web::get().to(fields::list))
                        .route(web::post().to(fields::create)),
                )
                .service(
                    resource("/databases/{db}/fields/{name}")
                        .route(web::delete().to(fields::delete)),
                )
                .service(resource("/databases/{db}/profiles").route(web::get().to(profiles::list)))
                .service(
                    resource("/databases/{db}/profiles/lookup")
                        .route(web::post().to(profiles::lookup)),
                )
                .service(
                    resource("/databases/{db}/profiles/by/{identifier}/{value}")
                        .route(web::get().to(profiles::get_by)),
                )
                .service(
                    resource("/databases/{db}/profiles/{customer_id}")
                        .route(web::get().to(profiles::get))
                        .route(web::put().to(profiles::put))
                        .route(web::patch().to(profiles::patch))
                        .route(web::delete().to(profiles::delete)),
                )
                .service(
                    resource("/keys")
                        .route(web::get().to(keys::list))
                        .route(web::post().to(keys::create)),
                )
                .service(resource("/keys/{id}").route(web::delete().to(keys::delete))),
        )
        .default_service(web::to(problem::route_not_found));
}
