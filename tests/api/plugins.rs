//! Plugins over HTTP: uploads, webhooks, imports through a plugin, hostile plugins, the
//! example plugins on real payloads, and `persona plugin`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Res, Server, fixture, plugin, send};

fn upload(s: &Server, key: &str, name: &str, query: &str, wasm: Vec<u8>) -> Res {
    send(
        s.anon(Method::PUT, &format!("/v1/plugins/{name}?{query}"))
            .bearer_auth(key)
            .body(wasm),
    )
}

fn webhook(s: &Server, plugin: &str, body: impl Into<reqwest::blocking::Body>) -> Res {
    webhook_with(s, plugin, body, &[])
}

fn webhook_with(
    s: &Server,
    plugin: &str,
    body: impl Into<reqwest::blocking::Body>,
    headers: &[(&str, &str)],
) -> Res {
    let mut req = s
        .req(
            Method::POST,
            &format!("/v1/databases/shop/webhooks/{plugin}"),
        )
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(req)
}

/// A server with database `shop` and the hostile test plugin uploaded as `hostile`.
fn with_hostile(query: &str) -> Server {
    let s = Server::start();
    s.create_db("shop", json!({}));
    let res = upload(&s, &s.admin.clone(), "hostile", query, plugin("hostile"));
    assert_eq!(res.status, 201, "{:#}", res.body);
    s
}

#[test]
fn a_webhook_applies_good_updates_and_refuses_bad_ones_alone() {
    let s = with_hostile("");
    let res = webhook(&s, "hostile", "mixed");
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["applied"], 1);
    let rejected = res.body["rejected"].as_array().unwrap();
    let codes: Vec<(&Value, &str, &Value)> = rejected
        .iter()
        .map(|r| (&r["update"], r["code"].as_str().unwrap(), &r["field"]))
        .collect();
    assert_eq!(
        codes,
        vec![
            (&json!(1), "field_unknown", &json!("no_such_field")),
            (&json!(2), "field_type_mismatch", &json!("first_name")),
        ]
    );
    assert_eq!(
        s.get("/v1/databases/shop/profiles/good").body["fields"]["first_name"],
        "Ada"
    );
    s.get("/v1/databases/shop/profiles/unknown")
        .assert_problem(404, "profile_not_found");

    // Record errors of the plugin's own are reported with the record they name.
    let res = webhook(&s, "hostile", "c1,Ana\nno comma here\nc2,Bea");
    assert_eq!(res.body["applied"], 2, "{:#}", res.body);
    assert_eq!(
        res.body["rejected"],
        json!([{"record": 1, "code": "plugin_record_error", "detail": "no_comma: expected id,name"}])
    );

    webhook(&s, "missing", "x").assert_problem(404, "plugin_not_found");

    // Malformed updates are refused alone, before they reach the database.
    let res = webhook(&s, "hostile", "nameless");
    assert_eq!(res.body["applied"], 1, "{:#}", res.body);
    let codes: Vec<_> = res.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["update"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [(0, "plugin_output_invalid"), (1, "plugin_output_invalid")]
    );
    assert_eq!(res.body["rejected"][1]["field"], "first_name");
    assert_eq!(s.get("/v1/databases/shop/profiles/named").status, 200);

    // Events a plugin returns are checked as posted ones are; a bad one refuses its
    // update alone, with the event's own code.
    let res = webhook(&s, "hostile", "events");
    assert_eq!(res.body["applied"], 1, "{:#}", res.body);
    let codes: Vec<_> = res.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["update"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(codes, [(1, "event_invalid"), (2, "event_time_invalid")]);
    let p = s
        .get("/v1/databases/shop/profiles/ev1?fields=bonuses.active")
        .body;
    assert_eq!(p["bonuses"]["active"], 50.0, "{p:#}");
    let t = s.get("/v1/databases/shop/profiles/ev1/activity").body;
    assert_eq!(t["events"].as_array().unwrap().len(), 2, "{t:#}");
    s.get("/v1/databases/shop/profiles/ev2")
        .assert_problem(404, "profile_not_found");
}

#[test]
fn a_replaced_plugin_finishes_the_calls_it_started() {
    let s = with_hostile("timeout_ms=1500");
    let (old, new) = std::thread::scope(|scope| {
        let running = scope.spawn(|| webhook(&s, "hostile", "loop"));
        // The call is under way (it runs for its whole budget) when the name changes.
        std::thread::sleep(Duration::from_millis(300));
        let new = upload(&s, &s.admin.clone(), "hostile", "", plugin("shopify"));
        (running.join().unwrap(), new)
    });
    assert_eq!(new.status, 200, "{:#}", new.body);
    // The old version ran to its end: its own budget, its own code.
    old.assert_problem(422, "plugin_timeout");
    assert!(old.body["detail"].as_str().unwrap().contains("1500 ms"));
    // The next call reaches the new version, which reads only Shopify JSON.
    webhook(&s, "hostile", "c1,Ana").assert_problem(422, "plugin_payload_refused");
}

#[test]
fn hostile_plugins_get_their_own_codes_and_the_server_goes_on() {
    // A budget that tests running side by side on two cores cannot eat up by accident.
    let s = with_hostile("timeout_ms=1000");
    s.patch(
        "/v1/databases/shop/profiles/reader",
        json!({"fields": {"first_name": "Rita"}}),
    );
    // Lookups are answered while a plugin loops on another thread.
    let looping = std::thread::scope(|scope| {
        let call = scope.spawn(|| webhook(&s, "hostile", "loop"));
        let mut lookups = 0;
        while !call.is_finished() || lookups == 0 {
            assert_eq!(s.get("/v1/databases/shop/profiles/reader").status, 200);
            lookups += 1;
        }
        call.join().unwrap()
    });
    looping.assert_problem(422, "plugin_timeout");
    for (payload, code) in [
        ("alloc", "plugin_memory_exceeded"),
        ("trap", "plugin_trap"),
        ("panic", "plugin_trap"),
        ("refuse", "plugin_payload_refused"),
    ] {
        webhook(&s, "hostile", payload).assert_problem(422, code);
        // The next call of the same plugin is fine.
        let res = webhook(&s, "hostile", "after,Fine");
        assert_eq!(
            (res.status, &res.body["applied"]),
            (200, &json!(1)),
            "after {payload}"
        );
    }
    let panic = webhook(&s, "hostile", "panic");
    assert!(
        panic.body["detail"]
            .as_str()
            .unwrap()
            .contains("panics on purpose"),
        "the panic message is passed on: {:#}",
        panic.body
    );
    let res = s.get("/v1/plugins/hostile");
    assert_eq!(res.body["stats"]["errors"], 6, "{:#}", res.body);
    assert_eq!(res.body["stats"]["calls"], 10);
    assert_eq!(s.get("/healthz").status, 200);
}

#[test]
fn a_flood_of_updates_is_capped_with_its_own_code() {
    // Room enough to build the flood, so the output cap is what stops it.
    let s = with_hostile("timeout_ms=10000&memory_mib=512");
    let res = webhook(&s, "hostile", "flood 1000000");
    res.assert_problem(422, "plugin_output_too_large");
    let res = webhook(&s, "hostile", "flood 150000");
    res.assert_problem(422, "plugin_output_too_large");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("150000 updates")
    );
    let res = webhook(&s, "hostile", "flood 3");
    assert_eq!(res.body["applied"], 3, "{:#}", res.body);
}

#[test]
fn uploads_are_checked_versioned_kept_and_deleted() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    let publisher = s.key("plugin_publisher", &[]);
    let editor = s.key("editor", &["default"]);
    let wasm = plugin("hostile");

    upload(&s, &editor, "p", "", wasm.clone()).assert_problem(403, "forbidden");
    upload(&s, &publisher, "p", "", b"not wasm".to_vec()).assert_problem(400, "plugin_invalid");
    let module = upload(&s, &publisher, "p", "", b"\0asm\x01\0\0\0".to_vec());
    module.assert_problem(400, "plugin_invalid");
    assert!(
        module.body["detail"]
            .as_str()
            .unwrap()
            .contains("wasm32-wasip2")
    );
    upload(&s, &publisher, "Bad.Name", "", wasm.clone()).assert_problem(400, "plugin_name_invalid");
    upload(&s, &publisher, "p", "timeout_ms=0", wasm.clone()).assert_problem(400, "invalid_query");
    upload(&s, &publisher, "p", "memory_mib=4096", wasm.clone())
        .assert_problem(400, "invalid_query");
    let huge = upload(&s, &publisher, "p", "", vec![0; (32 << 20) + 1]);
    huge.assert_problem(413, "payload_too_large");

    let first = upload(&s, &publisher, "p", "timeout_ms=250", wasm.clone());
    assert_eq!(first.status, 201, "{:#}", first.body);
    assert_eq!(first.body["size"], wasm.len());
    assert_eq!(first.body["exports"], json!(["transform"]));
    assert_eq!(
        first.body["settings"],
        json!({"timeout_ms": 250, "memory_mib": 64})
    );
    let sha = first.body["sha256"].as_str().unwrap().to_owned();
    assert_eq!(first.body["version"], sha[..16]);
    // Another component under the same name replaces it: a new version.
    let second = upload(&s, &publisher, "p", "", plugin("shopify"));
    assert_eq!(second.status, 200);
    assert_ne!(second.body["version"], first.body["version"]);
    let again = upload(&s, &publisher, "p", "", wasm.clone());
    assert_eq!(
        (again.status, &again.body["version"]),
        (200, &first.body["version"])
    );

    let list = s.get("/v1/plugins");
    assert_eq!(list.body["plugins"][0]["name"], "p");
    // Any key may see which plugins exist; only publishers change them.
    let reader = s.key("reader", &["default"]);
    assert_eq!(
        s.call_as(&reader, Method::GET, "/v1/plugins/p", None)
            .status,
        200
    );
    s.call_as(&reader, Method::DELETE, "/v1/plugins/p", None)
        .assert_problem(403, "forbidden");

    // Kept across a restart, and callable from the compiled code on disk.
    let s = s.restart(true);
    let kept = s.get("/v1/plugins/p");
    assert_eq!(kept.body["sha256"], sha.as_str());
    assert!(s.data_dir().join("plugins/p.cwasm").exists());
    let res = webhook(&s, "p", "k1,Kept");
    assert_eq!(res.body["applied"], 1, "{:#}", res.body);

    assert_eq!(s.delete("/v1/plugins/p").status, 204);
    s.get("/v1/plugins/p")
        .assert_problem(404, "plugin_not_found");
    s.delete("/v1/plugins/p")
        .assert_problem(404, "plugin_not_found");
    assert!(!s.data_dir().join("plugins/p.wasm").exists());
}

#[test]
fn the_example_plugins_read_real_payloads() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    for name in ["shopify", "segment", "stripe"] {
        let res = upload(&s, &s.admin.clone(), name, "", plugin(name));
        assert_eq!(res.status, 201, "{name}: {:#}", res.body);
    }

    // Shopify orders/create: the customer's fields and the order as a receipt.
    let res = webhook_with(
        &s,
        "shopify",
        fixture("shopify_orders_create.json"),
        &[("x-shopify-topic", "orders/create")],
    );
    assert_eq!(res.body["applied"], 1, "{:#}", res.body);
    assert_eq!(res.body["rejected"], json!([]), "{:#}", res.body);
    let p = s.get("/v1/databases/shop/profiles/by/shopify/115310627314723954");
    assert_eq!(
        p.status, 200,
        "the id above 2^53 is kept exactly: {:#}",
        p.body
    );
    assert_eq!(p.body["fields"]["email"], "john@example.com");
    assert_eq!(p.body["fields"]["first_name"], "John");
    assert_eq!(p.body["fields"]["city"], "Ottawa");
    assert_eq!(p.body["tags"], json!(["shopify"]));
    let shopify_profile = p.body["customer_id"].clone();
    // The order was cancelled: on the timeline, not in the statistics.
    assert_eq!(p.body["stats"]["receipts_count"], 0);
    let id = shopify_profile.as_str().unwrap();
    let t = s
        .get(&format!(
            "/v1/databases/shop/profiles/{id}/activity?category=receipts"
        ))
        .body;
    assert_eq!(
        t["events"][0]["data"]["receipt_id"], "820982911946154508",
        "{t:#}"
    );
    assert_eq!(t["events"][0]["data"]["status"], "cancelled");
    assert_eq!(t["events"][0]["data"]["items"].as_array().unwrap().len(), 5);

    // customers/create for another customer: a new profile.
    let res = webhook(&s, "shopify", fixture("shopify_customers_create.json"));
    assert_eq!(res.body["applied"], 1, "{:#}", res.body);
    let p = s.get("/v1/databases/shop/profiles/by/email/bob@biller.com");
    assert_eq!(p.body["identifiers"]["shopify"], "706405506930370084");
    assert_eq!(p.body["fields"]["registered_at"], "2022-01-01T00:00:00Z");

    // Stripe customer.created: found (and created) by the Stripe id.
    let res = webhook(&s, "stripe", fixture("stripe_customer.created.json"));
    assert_eq!(res.body["applied"], 1, "{:#}", res.body);
    let p = s.get("/v1/databases/shop/profiles/by/stripe/cus_6lsBvm5rJ0zyHc");
    assert_eq!(p.body["fields"]["email"], "michael.smith@example.com");
    // The same order again lands on the same profile, found by its Shopify id.
    let res = webhook_with(
        &s,
        "shopify",
        fixture("shopify_orders_create.json"),
        &[("x-shopify-topic", "orders/create")],
    );
    assert_eq!(res.body["applied"], 1);
    assert_eq!(
        s.get("/v1/databases/shop/profiles/by/email/john@example.com")
            .body["customer_id"],
        shopify_profile
    );

    // Segment identify: the user id is the customer id.
    let res = webhook(&s, "segment", fixture("segment_identify.json"));
    assert_eq!(res.body["applied"], 1, "{:#}", res.body);
    let p = s.get("/v1/databases/shop/profiles/97980cfea0067");
    assert_eq!(p.body["fields"]["email"], "peter@example.com");
    assert_eq!(p.body["fields"]["first_name"], "Peter");
    assert_eq!(p.body["fields"]["city"], "San Francisco");
    // A track event that names no one is refused as a whole.
    webhook(&s, "segment", fixture("segment_track_minimal.json"))
        .assert_problem(422, "plugin_payload_refused");
    // Stripe events it does not read are refused with the type named.
    let res = webhook(&s, "stripe", fixture("stripe_charge.succeeded.json"));
    res.assert_problem(422, "plugin_payload_refused");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("charge.succeeded")
    );
}

#[test]
fn an_import_goes_through_a_plugin_chunk_by_chunk() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    let res = s.post(
        "/v1/databases/shop/fields",
        json!({"name": "tier", "type": "string"}),
    );
    assert_eq!(res.status, 201);
    let res = upload(
        &s,
        &s.admin.clone(),
        "crm",
        "timeout_ms=2000",
        plugin("csv"),
    );
    assert_eq!(res.status, 201, "{:#}", res.body);
    // Over a megabyte, so several chunks of 256 KiB; one short row and one with a quoted line
    // break, which must not be cut.
    let mut file = String::from("customer_id,first_name,city,tier,ignored\n");
    for i in 1..=40_000 {
        match i {
            777 => file.push_str("c777,short\n"),
            30_001 => file.push_str("c30001,\"Two\nLines\",Faro,gold,x\n"),
            _ => file.push_str(&format!("c{i},Name{i},Porto,silver,x\n")),
        }
    }
    let started = Instant::now();
    let res = s.import("shop", "format=csv&plugin=crm&wait=true", file);
    assert_eq!(res.status, 200, "{:#}", res.body);
    let job = &res.body;
    assert_eq!(job["status"], "done", "{job:#}");
    assert_eq!(job["rows_accepted"], 39_999, "{job:#}");
    assert_eq!(job["rows_rejected"], 1);
    assert_eq!(job["errors"][0]["row"], 777, "{job:#}");
    assert_eq!(job["errors"][0]["code"], "plugin_record_error");
    let p = s.get("/v1/databases/shop/profiles/c30001");
    assert_eq!(p.body["fields"]["first_name"], "Two\nLines");
    assert_eq!(
        s.get("/v1/databases/shop/profiles/c40000").body["fields"]["tier"],
        "silver"
    );
    assert!(started.elapsed() < Duration::from_secs(120));

    // A plugin that fails on a chunk fails those rows, and the job says which.
    let res = upload(&s, &s.admin.clone(), "hostile", "", plugin("hostile"));
    assert_eq!(res.status, 201);
    let res = s.import("shop", "format=ndjson&plugin=hostile&wait=true", "trap\n");
    assert_eq!(res.body["rows_rejected"], 1, "{:#}", res.body);
    assert_eq!(res.body["errors"][0]["code"], "plugin_trap");
    send(s.req(
        Method::POST,
        "/v1/databases/shop/imports?format=csv&plugin=nope",
    ))
    .assert_problem(404, "plugin_not_found");
    // Options of the built-in importer mean nothing to a plugin: refused, not ignored.
    let res = send(s.req(
        Method::POST,
        "/v1/databases/shop/imports?format=csv&plugin=crm&delimiter=%3B",
    ));
    res.assert_problem(400, "invalid_query");
    assert_eq!(res.body["parameter"], "delimiter");
    // A JSON file goes to a plugin whole, so it has a size limit of its own.
    let big = format!("[{}]", "1,".repeat(9 << 20));
    let res = s.import("shop", "format=json&plugin=crm&wait=true", big);
    assert_eq!(res.status, 413, "{:#}", res.body);
    assert_eq!(res.code(), "import_too_large");
}

/// Runs `persona plugin ...`; returns the exit code, stdout and stderr.
fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_persona"))
        .arg("plugin")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn partners_check_and_run_plugins_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("shopify.wasm");
    std::fs::write(&wasm, plugin("shopify")).unwrap();
    let payload = dir.path().join("order.json");
    std::fs::write(&payload, fixture("shopify_orders_create.json")).unwrap();
    let wasm = wasm.to_str().unwrap();

    let (code, out, _) = cli(&["check", wasm]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("valid persona:plugin/importer@1.0.0"));
    let (code, _, err) = cli(&["check", payload.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("plugin_invalid"), "{err}");

    let (code, out, err) = cli(&[
        "run",
        wasm,
        "--input",
        payload.to_str().unwrap(),
        "--header",
        "X-Shopify-Topic: orders/create",
    ]);
    assert_eq!(code, 0, "{err}");
    let output: Value = serde_json::from_str(&out).unwrap();
    let receipt = &output["updates"][0]["events"][0]["data"]["Receipt"];
    assert_eq!(receipt["id"], "820982911946154508");
    assert_eq!(receipt["total"], 404.95);
    assert_eq!(receipt["currency"], "USD");
    assert_eq!(receipt["items"].as_array().unwrap().len(), 5);
    assert_eq!(receipt["status"], "cancelled");

    // A payload the plugin refuses: exit 1 with the code.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{").unwrap();
    let (code, _, err) = cli(&["run", wasm, "--input", junk.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("plugin_payload_refused"), "{err}");
}
