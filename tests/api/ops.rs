use reqwest::Method;
use serde_json::json;

use crate::common::{Server, send};

#[test]
fn health_readiness_and_metrics_need_no_key() {
    let s = Server::start();
    let h = send(s.anon(Method::GET, "/healthz"));
    assert_eq!((h.status, h.body.clone()), (200, json!({"status":"ok"})));
    assert_eq!(send(s.anon(Method::GET, "/readyz")).status, 200);

    s.create_db("shop", json!({}));
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"city":"Porto"}}),
    );
    s.get("/v1/databases/shop/profiles/c1");
    let text = s
        .anon(Method::GET, "/metrics")
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        text.contains("persona_profiles{database=\"shop\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("persona_http_requests_total{method=\"GET\",route=\"/v1/databases/{db}/profiles/{customer_id}\",status=\"200\"}"),
        "{text}"
    );
    assert!(
        text.contains("persona_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

#[test]
fn unknown_routes_and_methods_are_problems() {
    let s = Server::start();
    send(s.anon(Method::GET, "/nope")).assert_problem(404, "route_not_found");
    send(s.anon(Method::POST, "/healthz")).assert_problem(405, "method_not_allowed");
}

#[test]
fn openapi_document_and_docs_page() {
    let s = Server::start();
    let spec = send(s.anon(Method::GET, "/openapi.json"));
    assert_eq!(spec.status, 200);
    let paths = spec.body["paths"].as_object().unwrap();
    for p in [
        "/v1/databases",
        "/v1/databases/{db}",
        "/v1/databases/{db}/fields",
        "/v1/databases/{db}/profiles/{customer_id}",
        "/v1/databases/{db}/profiles/by/{identifier}/{value}",
        "/v1/databases/{db}/profiles/lookup",
        "/v1/keys",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} missing from the OpenAPI document"
        );
    }
    let page = s.anon(Method::GET, "/docs/").send().unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().to_lowercase().contains("swagger"));
}

#[test]
fn sigterm_stops_gracefully_with_status_zero() {
    let s = Server::start();
    assert_eq!(s.terminate().code(), Some(0));
}

#[test]
fn settings_layer_file_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    // The file asks for JSON logs and a bad listen address; the flag wins over the file.
    std::fs::write(
        dir.path().join("persona.toml"),
        "log_format = \"json\"\nlisten = \"127.0.0.1:1\"\nmax_body_bytes = 64\n",
    )
    .unwrap();
    let s = Server::start_in(dir, &[], &[("PERSONA_LOG_LEVEL", "debug")], true);
    s.create_db("shop", json!({}));
    let log = s.log();
    assert!(
        log.lines()
            .any(|l| l.starts_with('{') && l.contains("\"level\":\"DEBUG\"")),
        "{log}"
    );
    let big = s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"city":"a city name long enough to take the body past sixty-four bytes"}}),
    );
    big.assert_problem(413, "payload_too_large");
}

#[test]
fn a_typo_in_the_settings_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("persona.toml"), "lisen = \"127.0.0.1:0\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_persona"))
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"));
}

#[test]
fn every_error_code_is_in_the_readme_catalogue() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let missing: Vec<&str> = persona::error::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|c| !readme.contains(&format!("| `{c}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "codes missing from the README's error catalogue: {missing:?}"
    );
}

/// A body that arrives slowly, so the request is still in flight when the signal comes.
struct SlowBody {
    chunks: Vec<Vec<u8>>,
}

impl std::io::Read for SlowBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.chunks.is_empty() {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(150));
        let chunk = self.chunks.remove(0);
        buf[..chunk.len()].copy_from_slice(&chunk);
        Ok(chunk.len())
    }
}

#[test]
fn sigterm_lets_requests_in_flight_finish() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    let body = br#"{"fields":{"city":"Porto"}}"#;
    let chunks = body.chunks(6).map(<[u8]>::to_vec).collect();
    let req = s
        .req(Method::PATCH, "/v1/databases/shop/profiles/c1")
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(reqwest::blocking::Body::sized(
            SlowBody { chunks },
            body.len() as u64,
        ));
    let in_flight = std::thread::spawn(move || send(req));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = s.terminate();
    let res = in_flight.join().unwrap();
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["fields"]["city"], "Porto");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn head_is_answered_wherever_get_is() {
    let s = Server::start();
    let head = s.anon(Method::HEAD, "/healthz").send().unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.text().unwrap(), "");
    s.create_db("shop", json!({}));
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"city":"Porto"}}),
    );
    let head = s
        .req(Method::HEAD, "/v1/databases/shop/profiles/c1")
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.text().unwrap(), "");
}

#[test]
fn admin_keys_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_persona"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("PERSONA_ADMIN_KEY", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 16"), "{err}");
    assert!(!err.contains("short\""), "the key is not echoed: {err}");

    // A key of digits only is a string like any other, not a number to parse.
    let digits = "12345678901234567890";
    let s = Server::start_with(&[], &[("PERSONA_ADMIN_KEY", digits)]);
    let listed = crate::common::send(s.anon(Method::GET, "/v1/keys").bearer_auth(digits));
    assert_eq!(listed.status, 200, "{:#}", listed.body);
}
