//! `/v1/databases/{db}/fields[/{name}]`: the field schema.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::{Db, JsonBody, Read, Write, json};
use crate::db::Change;
use crate::error::Problem;
use crate::schema::{FieldDef, FieldSpec, FieldType};

/// A field as the API shows it.
#[derive(Serialize, ToSchema)]
pub struct FieldView {
    name: String,
    #[serde(rename = "type")]
    ty: FieldType,
    #[schema(value_type = Object)]
    default: Option<serde_json::Value>,
    required: bool,
    subscription_manager: bool,
    values: Option<Vec<String>>,
    builtin: bool,
}

impl From<&FieldDef> for FieldView {
    fn from(f: &FieldDef) -> Self {
        FieldView {
            name: f.name.to_string(),
            ty: f.ty,
            default: f
                .default
                .as_ref()
                .map(|d| serde_json::to_value(d).unwrap_or_default()),
            required: f.required,
            subscription_manager: f.subscription_manager,
            values: (f.ty == FieldType::List).then(|| f.values.clone()),
            builtin: f.builtin,
        }
    }
}

/// The field list.
#[derive(Serialize, ToSchema)]
pub struct FieldList {
    fields: Vec<FieldView>,
}

/// Lists fields, default fields first.
#[utoipa::path(get, path = "/v1/databases/{db}/fields", tag = "fields",
    responses((status = 200, body = FieldList)), security(("bearer" = [])))]
pub async fn list(db: Db<Read>) -> Result<HttpResponse, Problem> {
    let schema = db.state.schema.load();
    let fields = schema.fields().iter().map(FieldView::from).collect();
    Ok(json(StatusCode::OK, &FieldList { fields }))
}

/// Adds a custom field.
#[utoipa::path(post, path = "/v1/databases/{db}/fields", tag = "fields", request_body = FieldSpec,
    responses((status = 201, body = FieldView), (status = 409, description = "field_exists or field_is_default")),
    security(("bearer" = [])))]
pub async fn create(db: Db<Write>, body: JsonBody<FieldSpec>) -> Result<HttpResponse, Problem> {
    let name = body.0.name.clone();
    db.apply(Change::AddField(body.0)).await?;
    let schema = db.state.schema.load();
    let field = schema.get(&name).map(FieldView::from);
    Ok(json(StatusCode::CREATED, &field))
}

/// Drops a custom field and its values from every profile.
#[utoipa::path(delete, path = "/v1/databases/{db}/fields/{name}", tag = "fields",
    responses((status = 204), (status = 409, description = "field_is_default")), security(("bearer" = [])))]
pub async fn delete(
    db: Db<Write>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let (_, name) = path.into_inner();
    db.apply(Change::DropField(name)).await?;
    Ok(HttpResponse::NoContent().finish())
}
