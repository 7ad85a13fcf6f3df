//! Request extractors: the caller's key, JSON bodies, and the problem answers of actix's
//! own extractors. Each failure becomes a [`Problem`] with its own code.

use std::future::{Ready, ready};
use std::marker::PhantomData;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::AppState;
use crate::auth::{Access, KeyRecord};
use crate::db::Database;
use crate::error::{ErrorCode, Problem};

/// The authenticated key of the request.
pub struct Caller(pub Arc<KeyRecord>);

impl std::ops::Deref for Caller {
    type Target = KeyRecord;
    fn deref(&self) -> &KeyRecord {
        &self.0
    }
}

impl FromRequest for Caller {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<Caller, Problem> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("AppState is registered");
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Err(Problem::new(
            ErrorCode::Unauthorized,
            "send the header `Authorization: Bearer <key>`",
        ));
    };
    let secret = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            Problem::new(
                ErrorCode::Unauthorized,
                "the Authorization header must be `Bearer <key>`",
            )
        })?;
    state
        .keys
        .authenticate(secret)
        .map(Caller)
        .ok_or_else(|| Problem::new(ErrorCode::Unauthorized, "the key is not known"))
}

/// A JSON body of type `T`, read up to the server's body limit.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = Problem;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(1 << 20, |s| s.settings.max_body_bytes);
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let declared = declared_length(req);
        let mut payload = payload.take();
        Box::pin(async move {
            if let Some(ct) = content_type {
                let essence = ct
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                // curl's `-d` sends form-urlencoded by default; reading it as JSON spares
                // every newcomer a round trip. Anything else named is refused.
                let json_like = essence == "application/json"
                    || essence.ends_with("+json")
                    || essence == "application/x-www-form-urlencoded";
                if !json_like {
                    return Err(Problem::new(
                        ErrorCode::UnsupportedMediaType,
                        format!("send JSON with `Content-Type: application/json`, not `{ct}`"),
                    ));
                }
            }
            let body = read_body(&mut payload, declared, limit, "max_body_bytes").await?;
            parse_json(&body).map(JsonBody)
        })
    }
}

/// Reads a whole body of at most `limit` bytes (`setting` names the limit in the
/// error), refusing early when `Content-Length` already says it is larger.
pub async fn read_body<S>(
    payload: &mut S,
    declared: Option<usize>,
    limit: usize,
    setting: &str,
) -> Result<web::BytesMut, Problem>
where
    S: futures_util::Stream<Item = Result<web::Bytes, actix_web::error::PayloadError>> + Unpin,
{
    let too_large = || {
        Problem::new(
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes ({setting})"),
        )
        .with("limit", limit)
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            Problem::new(
                ErrorCode::InvalidBody,
                format!("could not read the body: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `Content-Length` a request declares, if any.
pub fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Parses JSON, telling syntax errors (`invalid_json`) from shape errors (`invalid_body`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let at = if path == "." {
                    String::new()
                } else {
                    format!(" at `{path}`")
                };
                Problem::new(ErrorCode::InvalidBody, format!("{inner}{at}")).with("path", path)
            }
            _ => Problem::new(
                ErrorCode::InvalidJson,
                format!("the body is not valid JSON: {inner}"),
            )
            .with("line", inner.line())
            .with("column", inner.column()),
        }
    })?;
    // One JSON value and nothing after it: `{..} garbage` is not a body we half-read.
    de.end().map_err(|e| {
        Problem::new(
            ErrorCode::InvalidJson,
            format!("the body is not valid JSON: {e}"),
        )
        .with("line", e.line())
        .with("column", e.column())
    })?;
    Ok(value)
}

/// Answers for failures of actix's path and query extractors.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    Problem::new(ErrorCode::InvalidQuery, err.to_string()).into()
}

/// Answers for failures of actix's path extractor.
pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    Problem::new(ErrorCode::RouteNotFound, err.to_string()).into()
}

/// The access a [`Db`] extractor demands.
pub trait Level {
    /// Read or write.
    const ACCESS: Access;
}

/// Look up, list, query.
pub struct Read;

/// Write profiles, fields and settings.
pub struct Write;

impl Level for Read {
    const ACCESS: Access = Access::Read;
}

impl Level for Write {
    const ACCESS: Access = Access::Write;
}

/// The database of the route's `{db}` segment, which the caller may access at level `L`.
///
/// The permission a handler needs is in its argument type. Listed before a body, it is
/// checked before the body is read.
pub struct Db<L> {
    /// The database.
    pub db: Arc<Database>,
    /// The key that asked.
    pub caller: Caller,
    level: PhantomData<L>,
}

impl<L> std::ops::Deref for Db<L> {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.db
    }
}

impl<L: Level> FromRequest for Db<L> {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|caller| {
            let state = req
                .app_data::<web::Data<AppState>>()
                .expect("AppState is registered");
            let name = req
                .match_info()
                .get("db")
                .expect("Db is used on routes with a {db} segment");
            let db = state.databases.find(name)?;
            caller.require(L::ACCESS, name, &db.state.settings.load().group)?;
            Ok(Db {
                db,
                caller,
                level: PhantomData,
            })
        }))
    }
}

/// A caller holding the admin role.
pub struct Admin(pub Caller);

impl FromRequest for Admin {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|caller| {
            caller.require_admin()?;
            Ok(Admin(caller))
        }))
    }
}

/// A caller who may read suppression lists (admins, editors, readers), checked before
/// the body is read.
pub struct ListsRead(pub Caller);

impl FromRequest for ListsRead {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|caller| {
            caller.require_lists(crate::auth::ListAccess::Read)?;
            Ok(ListsRead(caller))
        }))
    }
}

/// A caller who may add entries and create lists (admins, editors), checked before the
/// body is read.
pub struct ListsAdd(pub Caller);

impl FromRequest for ListsAdd {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|caller| {
            caller.require_lists(crate::auth::ListAccess::Add)?;
            Ok(ListsAdd(caller))
        }))
    }
}

/// A caller who may remove entries and delete lists (admins), checked before the body
/// is read.
pub struct ListsRemove(pub Caller);

impl FromRequest for ListsRemove {
    type Error = Problem;
    type Future = Ready<Result<Self, Problem>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|caller| {
            caller.require_lists(crate::auth::ListAccess::Remove)?;
            Ok(ListsRemove(caller))
        }))
    }
}
