//! Operations routes: health, readiness, Prometheus metrics, the request metrics
//! middleware, and the load harness's constant-body ceiling.

use std::fmt::Write;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use metrics::SharedString;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::Deserialize;

use super::{Db, Read, State, json};
use crate::error::{ErrorCode, Problem};

/// The Prometheus recorder's handle.
pub struct Telemetry {
    handle: PrometheusHandle,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// How often histogram samples are folded into buckets.
const UPKEEP: Duration = Duration::from_secs(5);

impl Telemetry {
    /// Installs the process-wide metrics recorder (once; later calls share nothing).
    pub fn install() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .expect("buckets are non-empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was installed already; /metrics will be partial");
        } else {
            // Histogram samples pile up (8 bytes a request) until they are folded into
            // the buckets, which `build_recorder` leaves to whoever renders /metrics: a
            // server nobody scrapes grew ~15 MB a million requests. Fold them here.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP);
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawn the metrics upkeep thread");
        }
        Telemetry { handle }
    }
}

/// Counts and times a request of the resource registered as `route`.
pub async fn track(
    route: &'static str,
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = method_label(req.method());
    let res = next.call(req).await?;
    record(route, method, res.status().as_u16(), start.elapsed());
    Ok(res)
}

/// Records one request in the request counter and the latency histogram.
pub fn record(route: &'static str, method: &'static str, status: u16, elapsed: Duration) {
    tracing::debug!(
        method,
        route,
        status,
        micros = elapsed.as_micros() as u64,
        "request"
    );
    metrics::counter!("persona_http_requests_total", "method" => method, "route" => route, "status" => status_label(status))
        .increment(1);
    metrics::histogram!("persona_http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
}

/// Static label values keep the metrics path free of allocations for common answers.
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn status_label(status: u16) -> SharedString {
    const KNOWN: &[(u16, &str)] = &[
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (302, "302"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (409, "409"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (503, "503"),
    ];
    match KNOWN.iter().find(|(code, _)| *code == status) {
        Some((_, label)) => SharedString::const_str(label),
        None => SharedString::from(status.to_string()),
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200)))]
pub async fn healthz() -> HttpResponse {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

/// Readiness: every database is loaded. A database that could not be recovered keeps
/// the server unready (with the reason) rather than serving without it.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200), (status = 503)))]
pub async fn readyz(state: State) -> Result<HttpResponse, Problem> {
    if !state.databases.ready() {
        return Err(Problem::new(
            ErrorCode::Starting,
            "databases are still loading",
        ));
    }
    let failed = state.databases.failed();
    if failed.is_empty() {
        return Ok(json(
            StatusCode::OK,
            &serde_json::json!({"status": "ready"}),
        ));
    }
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    let detail = format!("databases not loaded: {}", names.join(", "));
    let reasons: serde_json::Map<String, serde_json::Value> = failed
        .into_iter()
        .map(|(name, reason)| (name, reason.into()))
        .collect();
    Err(Problem::new(ErrorCode::DatabaseUnavailable, detail).with("failed", reasons))
}

/// Prometheus text: request counters and latency histograms, profiles per database.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200)))]
pub async fn metrics(state: State) -> HttpResponse {
    let mut out = state.telemetry.handle.render();
    out.push_str(
        "# HELP persona_profiles Profiles held per database.\n# TYPE persona_profiles gauge\n",
    );
    for db in state.databases.list() {
        let _ = writeln!(
            out,
            "persona_profiles{{database=\"{}\"}} {}",
            db.name(),
            db.state.store.len()
        );
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4"))
        .body(out)
}

/// `?bytes=` of the ceiling route.
#[derive(Deserialize)]
pub struct CeilingQuery {
    bytes: Option<usize>,
}

static FILLER: [u8; 65536] = [b'x'; 65536];

/// The load harness's ceiling: the same auth, database check and middleware as a lookup,
/// answering a constant body of `bytes` bytes without the lookup and serialization.
pub async fn ceiling(
    state: State,
    _db: Db<Read>,
    q: web::Query<CeilingQuery>,
) -> Result<HttpResponse, Problem> {
    if !state.settings.bench_routes {
        return Err(Problem::new(
            ErrorCode::RouteNotFound,
            "start the server with --bench-routes true",
        ));
    }
    let n = q.bytes.unwrap_or(1024).min(FILLER.len());
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(&FILLER[..n]))
}
