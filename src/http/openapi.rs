//! The OpenAPI document, generated from the handlers' annotations, and the `/docs` page.

use actix_web::HttpResponse;
use actix_web::http::header;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    databases, events, fields, imports, keys, ops, plugins, profiles, segments, subscriptions,
    suppression, webhooks,
};

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API description served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Persona", description = "In-memory customer profile server"),
    modifiers(&Bearer),
    paths(
        ops::healthz, ops::readyz, ops::metrics,
        databases::list, databases::create, databases::get, databases::patch, databases::delete,
        fields::list, fields::create, fields::delete,
        profiles::put, profiles::patch, profiles::get, profiles::get_by, profiles::lookup,
        profiles::list, profiles::delete, profiles::export,
        events::post, events::activity,
        imports::create, imports::get, imports::list,
        webhooks::receive,
        plugins::put, plugins::list, plugins::get, plugins::delete,
        databases::snapshot,
        keys::create, keys::list, keys::delete,
        segments::query,
        segments::put,
        segments::get,
        segments::list,
        segments::delete,
        segments::members,
        subscriptions::manager, subscriptions::of_profile, subscriptions::audience,
        suppression::list, suppression::get, suppression::put, suppression::delete,
        suppression::entries, suppression::add, suppression::remove,
    )
)]
pub struct ApiDoc;

/// `/docs/` (the vendored Swagger UI) and `/openapi.json` (the document it renders).
pub fn swagger() -> utoipa_swagger_ui::SwaggerUi {
    utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", ApiDoc::openapi())
}

/// `GET /docs`: a page that renders `/openapi.json` with the vendored Swagger UI.
pub async fn docs() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}
