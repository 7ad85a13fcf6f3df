//! The one place a [`Problem`] becomes an HTTP response (`application/problem+json`).

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};

use crate::error::{ErrorCode, Problem};

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if self.code == ErrorCode::Unauthorized {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        res.body(self.to_json().to_string())
    }
}

/// The default service: no route matched.
pub async fn route_not_found(req: actix_web::HttpRequest) -> HttpResponse {
    let method = super::ops::method_label(req.method());
    super::ops::record("unmatched", method, 404, std::time::Duration::ZERO);
    Problem::new(
        ErrorCode::RouteNotFound,
        format!("no route {} {}", req.method(), req.path()),
    )
    .error_response()
}

/// The default service of a resource: the route exists, the method does not.
pub async fn method_not_allowed(req: actix_web::HttpRequest) -> HttpResponse {
    Problem::new(
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on {}", req.method(), req.path()),
    )
    .error_response()
}
