//! Events and activity over HTTP: posting, the timeline, derived values and RFM.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Res, Server, send};

fn shop() -> Server {
    let s = Server::start();
    s.create_db("shop", json!({}));
    s
}

fn post_ndjson(s: &Server, lines: &[Value]) -> Res {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    send(
        s.req(Method::POST, "/v1/databases/shop/events")
            .header("content-type", "application/x-ndjson")
            .body(body),
    )
}

fn receipt(customer: &str, id: &str, time: &str, total: f64, items: Value) -> Value {
    json!({"customer_id": customer, "type": "receipt", "time": time,
           "data": {"receipt_id": id, "total": total, "items": items,
                    "store": {"id": "s1", "name": "Downtown"}}})
}

#[test]
fn events_build_the_computed_profile() {
    let s = shop();
    let now = jiff::Timestamp::now();
    let ago = |days: i64| (now - jiff::SignedDuration::from_hours(24 * days)).to_string();
    let events = json!([
        receipt("c1", "r1", &ago(10), 40.0, json!([{"sku":"A1","name":"Monitor","category":"monitors","price":20.0,"quantity":2}])),
        // The same receipt again: one receipt.
        receipt("c1", "r1", &ago(10), 40.0, json!([{"sku":"A1","name":"Monitor","category":"monitors","price":20.0,"quantity":2}])),
        receipt("c1", "r2", &ago(3), 9.5, json!([{"sku":"B2","category":"cables","price":9.5}])),
        {"customer_id":"c1","type":"category_view","time":ago(12),"data":{"category":"monitors"}},
        {"customer_id":"c1","type":"product_view","time":ago(2),"data":{"sku":"K1","category":"keyboards"}},
        {"customer_id":"c1","type":"product_view","time":ago(1),"data":{"sku":"K2","category":"keyboards"}},
        {"customer_id":"c1","type":"category_view","time":ago(40),"data":{"category":"lamps"}},
        {"customer_id":"c1","type":"cart_add","time":ago(2),"data":{"sku":"K1","name":"Keyboard","price":30.0}},
        {"customer_id":"c1","type":"cart_add","time":ago(4),"data":{"sku":"B2","price":9.5}},
        {"customer_id":"c1","type":"bonus","time":ago(5),"data":{"bonus_id":"b1","amount":100,"status":"active","expires_at":"2999-01-01T00:00:00Z"}},
        {"customer_id":"c1","type":"bonus","time":ago(5),"data":{"amount":25,"status":"pending_activation"}},
        {"customer_id":"c1","type":"mailing","time":ago(6),"data":{"mailing_id":"m1","name":"Spring","channel":"email","control_group":true}},
        {"customer_id":"c1","type":"promo_code","time":ago(6),"data":{"code":"SPRING10","campaign":"spring","reissued":true}},
        {"customer_id":"c1","type":"poll","time":ago(7),"data":{"poll_id":"p1","answers":[{"question":"Happy?","answer":"yes"}]}},
        {"customer_id":"c1","type":"tag_set","time":ago(1),"data":{"add":["buyer"]}},
        {"customer_id":"c1","type":"app.opened","time":ago(0),"data":{"screen":"home"}},
    ]);
    let res = s.post("/v1/databases/shop/events", events);
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["accepted"], 16, "{:#}", res.body);
    assert_eq!(res.body["rejected"], json!([]));

    let p = s.get("/v1/databases/shop/profiles/c1").body;
    let stats = &p["stats"];
    assert_eq!(stats["receipts_count"], 2, "{p:#}");
    assert_eq!(stats["receipts_total"], 49.5);
    assert_eq!(stats["last_receipt_total"], 9.5);
    assert_eq!(stats["average_receipt"], 24.75);
    assert_eq!(stats["average_items"], 1.5);
    assert_eq!(stats["days_since_first_receipt"], 10);
    assert_eq!(stats["days_since_last_receipt"], 3);
    // The only profile with receipts: nobody below it, every score 1.
    assert_eq!(p["rfm"], json!({"r":1,"f":1,"m":1,"segment":"hibernating"}));
    // Monitors were bought after the view; lamps fell out of the 30-day window.
    assert_eq!(
        p["interests"].as_array().unwrap().len(),
        1,
        "{:#}",
        p["interests"]
    );
    assert_eq!(p["interests"][0]["category"], "keyboards");
    assert_eq!(p["interests"][0]["views"], 2);
    assert_eq!(
        p["favorite_stores"],
        json!([{"id":"s1","name":"Downtown","receipts":2}])
    );
    // B2 was bought after it was added; K1 was not.
    assert_eq!(p["abandoned_cart"].as_array().unwrap().len(), 1);
    assert_eq!(p["abandoned_cart"][0]["sku"], "K1");
    assert_eq!(p["bonuses"]["active"], 100.0);
    assert_eq!(p["bonuses"]["pending_activation"], 25.0);
    assert_eq!(p["bonuses"]["next_deactivation_at"], "2999-01-01T00:00:00Z");
    assert_eq!(p["mailings"][0]["control_group"], true);
    assert_eq!(p["promo_codes"][0]["reissued"], true);
    assert_eq!(p["polls"][0]["poll_id"], "p1");
    assert_eq!(p["tags"], json!(["buyer"]));

    // Projections reach derived values.
    let proj = s
        .get("/v1/databases/shop/profiles/c1?fields=stats.receipts_count,rfm.segment,interests")
        .body;
    assert_eq!(proj["stats"], json!({"receipts_count": 2}));
    assert_eq!(proj["rfm"], json!({"segment": "hibernating"}));
    assert_eq!(proj["interests"][0]["category"], "keyboards");

    // The timeline: newest first, by category, in pages.
    let all = s
        .get("/v1/databases/shop/profiles/c1/activity?limit=100")
        .body;
    let events = all["events"].as_array().unwrap();
    assert_eq!(events.len(), 16);
    assert_eq!(events[0]["type"], "app.opened");
    assert_eq!(events[0]["category"], "custom");
    let times: Vec<&str> = events.iter().map(|e| e["time"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);
    let receipts = s
        .get("/v1/databases/shop/profiles/c1/activity?category=receipts&limit=2")
        .body;
    assert_eq!(receipts["events"].as_array().unwrap().len(), 2);
    let cursor = receipts["next_cursor"].as_str().unwrap();
    let rest = s
        .get(&format!(
            "/v1/databases/shop/profiles/c1/activity?category=receipts&limit=2&cursor={cursor}"
        ))
        .body;
    assert_eq!(rest["events"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    s.get("/v1/databases/shop/profiles/c1/activity?category=nope")
        .assert_problem(400, "invalid_query");
    s.get("/v1/databases/shop/profiles/c1/activity?limit=0")
        .assert_problem(400, "invalid_query");
    s.get("/v1/databases/shop/profiles/c1/activity?cursor=zz")
        .assert_problem(400, "cursor_invalid");
    s.get("/v1/databases/shop/profiles/nobody/activity")
        .assert_problem(404, "profile_not_found");
}

/// The DESIGN.md definition, computed the slow way: for each profile with a receipt,
/// `1 + floor(5 * L / N)` with L the profiles strictly below.
fn expected_rfm(
    profiles: &HashMap<String, (i64, u32, f64)>,
) -> HashMap<String, (u64, u64, u64, &'static str)> {
    let n = profiles.len() as u64;
    let score = |l: usize| 1 + (5 * l as u64) / n;
    profiles
        .iter()
        .map(|(id, (day, count, total))| {
            let r = score(profiles.values().filter(|o| o.0 < *day).count());
            let f = score(profiles.values().filter(|o| o.1 < *count).count());
            let m = score(profiles.values().filter(|o| o.2 < *total).count());
            let segment = match (r, f) {
                (1..=2, 1..=2) => "hibernating",
                (1..=2, 3..=4) => "at_risk",
                (1..=2, _) => "cant_lose",
                (3, 1..=2) => "about_to_sleep",
                (3, 3) => "need_attention",
                (3..=4, 4..=5) => "loyal",
                (4, 1) => "promising",
                (5, 1) => "new",
                (4..=5, 2..=3) => "potential_loyalist",
                _ => "champions",
            };
            (id.clone(), (r, f, m, segment))
        })
        .collect()
}

#[test]
fn rfm_scores_follow_the_definition_exactly() {
    let s = shop();
    // 23 customers; customer i has (i % 5) + 1 receipts on days that repeat, with totals
    // that tie; events arrive shuffled (a fixed permutation), some receipts twice.
    let mut lines = Vec::new();
    let mut truth: HashMap<String, (i64, u32, f64)> = HashMap::new();
    for i in 0..23u32 {
        let cid = format!("c{i}");
        let count = i % 5 + 1;
        let mut total = 0.0;
        let mut last_day = 0;
        for k in 0..count {
            let day = i64::from((i * 7 + k * 3) % 11);
            let amount = f64::from((i * 13 + k) % 4) * 10.0 + 5.0;
            let time = format!("2024-03-{:02}T{:02}:30:00Z", day + 1, (i + k) % 24);
            lines.push(receipt(
                &cid,
                &format!("r{i}-{k}"),
                &time,
                amount,
                json!([]),
            ));
            if k == 0 {
                lines.push(receipt(
                    &cid,
                    &format!("r{i}-{k}"),
                    &time,
                    amount,
                    json!([]),
                ));
            }
            total += amount;
            last_day = last_day.max(day);
        }
        truth.insert(cid, (last_day, count, total));
    }
    // A profile without receipts is not ranked.
    lines.push(json!({"customer_id":"browser","type":"page_view","data":{"url":"/"}}));
    let len = lines.len();
    let shuffled: Vec<Value> = (0..len).map(|k| lines[(k * 17) % len].clone()).collect();
    let res = post_ndjson(&s, &shuffled);
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["rejected"], json!([]), "{:#}", res.body);

    let want = expected_rfm(&truth);
    for (cid, (r, f, m, segment)) in &want {
        let p = s
            .get(&format!(
                "/v1/databases/shop/profiles/{cid}?fields=rfm,stats.receipts_count"
            ))
            .body;
        assert_eq!(
            p["rfm"],
            json!({"r": r, "f": f, "m": m, "segment": segment}),
            "{cid}"
        );
        assert_eq!(p["stats"]["receipts_count"], truth[cid].1, "{cid}");
    }
    let browser = s.get("/v1/databases/shop/profiles/browser").body;
    assert_eq!(browser["rfm"], Value::Null);
    let projected = s
        .get("/v1/databases/shop/profiles/browser?fields=rfm.segment")
        .body;
    assert_eq!(projected["rfm"], Value::Null, "{projected:#}");
    assert_eq!(browser["stats"]["receipts_count"], 0);

    // Ranks are of the database as it is at read time: erasing a profile moves others.
    s.delete("/v1/databases/shop/profiles/c22");
    let mut fewer = truth.clone();
    fewer.remove("c22");
    for (cid, (r, f, m, _)) in &expected_rfm(&fewer) {
        let p = s
            .get(&format!("/v1/databases/shop/profiles/{cid}?fields=rfm"))
            .body;
        assert_eq!(
            (&p["rfm"]["r"], &p["rfm"]["f"], &p["rfm"]["m"]),
            (&json!(r), &json!(f), &json!(m)),
            "{cid}"
        );
    }

    // And they come back the same after a restart (snapshot and WAL).
    let s = s.restart(false);
    for (cid, (r, f, m, segment)) in &expected_rfm(&fewer) {
        let p = s
            .get(&format!("/v1/databases/shop/profiles/{cid}?fields=rfm"))
            .body;
        assert_eq!(
            p["rfm"],
            json!({"r": r, "f": f, "m": m, "segment": segment}),
            "{cid}"
        );
    }
    s.get("/v1/databases/shop/profiles/c22/activity")
        .assert_problem(404, "profile_not_found");
}

#[test]
fn bad_events_are_refused_one_by_one_and_the_rest_applied() {
    let s = shop();
    let items: Vec<Value> = (0..10_000)
        .map(|i| json!({"sku": format!("s{i}"), "price": 1}))
        .collect();
    let lines = [
        json!({"type":"page_view","data":{"url":"/"}}),
        json!({"customer_id":"c1","type":"receipt","data":{"receipt_id":"r","total":"ten"}}),
        json!({"customer_id":"c1","type":"receipt","data":{"receipt_id":"r","total":1,
            "items":[{"sku":"a","price":1,"quantity":-2}]}}),
        json!({"customer_id":"c1","type":"page_view","time":"last tuesday","data":{"url":"/"}}),
        json!({"customer_id":"c1","type":"page_view","time":"2999-01-01T00:00:00Z","data":{"url":"/"}}),
        json!({"customer_id":"c1","type":"receipt","data":{"receipt_id":"big","total":10000,"items":items}}),
        json!({"customer_id":"c1","type":"Not A Type"}),
        json!({"customer_id":"c1","type":"receipt","data":{"receipt_id":"m","total":50,
            "items":[{"sku":"a","price":10,"quantity":2}]}}),
        json!({"customer_id":"c1","type":"cart_add","data":{"sku":"a","colour":"red"}}),
        json!({"customer_id":"bad/id","type":"page_view","data":{"url":"/"}}),
        json!({"customer_id":"c1","type":"page_view","data":{"url":"/ok"}}),
    ];
    let mut body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    body.insert_str(0, "{\"customer_id\": broken\n");
    let res = send(
        s.req(Method::POST, "/v1/databases/shop/events")
            .header("content-type", "application/x-ndjson")
            .body(body),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    let codes: Vec<(u64, &str)> = res.body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [
            (0, "invalid_json"),
            (1, "event_customer_missing"),
            (2, "event_invalid"),
            (3, "event_invalid"),
            (4, "event_time_invalid"),
            (5, "event_time_invalid"),
            (6, "event_too_large"),
            (7, "event_type_invalid"),
            (9, "event_invalid"),
            (10, "customer_id_invalid"),
        ],
        "{:#}",
        res.body
    );
    assert_eq!(res.body["accepted"], 2);
    assert_eq!(res.body["warnings"][0]["index"], 8);
    assert_eq!(res.body["warnings"][0]["code"], "receipt_total_mismatch");
    // The mismatched receipt counts with its own total, flagged on the timeline.
    let p = s
        .get("/v1/databases/shop/profiles/c1?fields=stats.receipts_total")
        .body;
    assert_eq!(p["stats"]["receipts_total"], 50.0);
    let t = s
        .get("/v1/databases/shop/profiles/c1/activity?category=receipts")
        .body;
    assert_eq!(t["events"][0]["data"]["items_total_mismatch"], true);

    // A body that is not JSON, or too many events, is refused whole.
    send(s.req(Method::POST, "/v1/databases/shop/events").body("[{"))
        .assert_problem(400, "invalid_json");
    let many: Vec<Value> = (0..10_001)
        .map(|_| json!({"customer_id":"c","type":"x"}))
        .collect();
    let big = send(
        s.req(Method::POST, "/v1/databases/shop/events")
            .header("content-type", "application/x-ndjson")
            .body(many.iter().map(|l| format!("{l}\n")).collect::<String>()),
    );
    big.assert_problem(413, "events_too_many");
}

#[test]
fn retention_trims_the_timeline_but_not_the_statistics() {
    let s = shop();
    let res = s.patch("/v1/databases/shop", json!({"max_events": 10}));
    assert_eq!(res.status, 200, "{:#}", res.body);
    let lines: Vec<Value> = (0..30)
        .map(|i| {
            receipt(
                "c1",
                &format!("r{i}"),
                &format!("2024-01-01T00:{i:02}:00Z"),
                2.0,
                json!([]),
            )
        })
        .collect();
    assert_eq!(post_ndjson(&s, &lines).body["accepted"], 30);
    let t = s
        .get("/v1/databases/shop/profiles/c1/activity?limit=100")
        .body;
    assert_eq!(t["events"].as_array().unwrap().len(), 10);
    assert_eq!(t["events"][0]["data"]["receipt_id"], "r29");
    let p = s.get("/v1/databases/shop/profiles/c1").body;
    assert_eq!(p["stats"]["receipts_count"], 30);
    assert_eq!(p["stats"]["receipts_total"], 60.0);
    assert_eq!(p["stats"]["first_receipt_at"], "2024-01-01T00:00:00Z");
    // A late copy of a trimmed receipt is still the same receipt.
    assert_eq!(post_ndjson(&s, &lines[..1]).body["accepted"], 1);
    assert_eq!(
        s.get("/v1/databases/shop/profiles/c1").body["stats"]["receipts_count"],
        30
    );
    assert_eq!(
        s.patch("/v1/databases/shop", json!({"max_events": 20}))
            .status,
        200
    );
    s.patch("/v1/databases/shop", json!({"max_events": 1}))
        .assert_problem(400, "setting_invalid");
}

#[test]
fn events_find_profiles_by_email_and_survive_a_crash() {
    let s = shop();
    let res = s.post(
        "/v1/databases/shop/events",
        json!([
            {"email":"Ana@Example.com","type":"page_view","data":{"url":"/a"}},
            {"email":"ana@example.com","type":"page_view","data":{"url":"/b"}},
            {"email":"ana@example.com","type":"receipt","data":{"receipt_id":"r","total":50,
                "items":[{"sku":"a","price":10}]}},
        ]),
    );
    assert_eq!(res.body["accepted"], 3, "{:#}", res.body);
    assert_eq!(res.body["warnings"][0]["code"], "receipt_total_mismatch");
    let p = s
        .get("/v1/databases/shop/profiles/by/email/ana@example.com")
        .body;
    let id = p["customer_id"].as_str().unwrap().to_owned();
    assert_eq!(s.count("/v1/databases/shop/profiles", "profiles"), 1);
    // Killed without a shutdown: the WAL alone brings the activity back.
    let dir = s.kill();
    let s = Server::start_in(dir, &[], &[], false);
    let t = s
        .get(&format!("/v1/databases/shop/profiles/{id}/activity"))
        .body;
    assert_eq!(t["events"].as_array().unwrap().len(), 3, "{t:#}");
    // The flagged receipt reads back from the log (its flag is the server's own).
    assert_eq!(
        t["events"][0]["data"]["items_total_mismatch"], true,
        "{t:#}"
    );
    let p = s
        .get(&format!(
            "/v1/databases/shop/profiles/{id}?fields=stats.receipts_total"
        ))
        .body;
    assert_eq!(p["stats"]["receipts_total"], 50.0);
}

#[test]
fn events_import_from_ndjson_files_as_jobs() {
    let s = shop();
    let mut body = String::new();
    for i in 0..500 {
        let line = receipt(
            &format!("c{}", i % 50),
            &format!("r{i}"),
            "2024-05-01T10:00:00Z",
            3.0,
            json!([{"sku":"a","price":1.0,"quantity":3}]),
        );
        body.push_str(&format!("{line}\n"));
    }
    body.push_str("{\"customer_id\":\"c1\",\"type\":\"receipt\",\"data\":{\"total\":1}}\n");
    body.push_str("{\"customer_id\":\"c1\",\"type\":\"receipt\",\"data\":{\"receipt_id\":\"odd\",\"total\":9,\"items\":[{\"sku\":\"b\",\"price\":1}]}}\n");
    let res = s.import("shop", "format=ndjson&kind=events&wait=true", body);
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["status"], "done", "{:#}", res.body);
    assert_eq!(res.body["rows_accepted"], 501, "{:#}", res.body);
    assert_eq!(res.body["rows_rejected"], 1, "{:#}", res.body);
    let codes: Vec<&str> = res.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"event_invalid"), "{codes:?}");
    assert!(codes.contains(&"receipt_total_mismatch"), "{codes:?}");
    let p = s.get("/v1/databases/shop/profiles/c7?fields=stats").body;
    assert_eq!(p["stats"]["receipts_count"], 10);
    assert_eq!(p["stats"]["average_items"], 3.0);
    s.import("shop", "format=csv&kind=events", "a\n")
        .assert_problem(400, "invalid_query");
}

#[test]
fn an_atomic_import_of_events_applies_all_or_none() {
    let s = shop();
    let good = "{\"customer_id\":\"a1\",\"type\":\"receipt\",\"data\":{\"receipt_id\":\"r1\",\"total\":10}}\n\
                {\"customer_id\":\"a2\",\"type\":\"page_view\",\"data\":{\"url\":\"/\"}}\n";
    let bad =
        format!("{good}{{\"customer_id\":\"a3\",\"type\":\"receipt\",\"data\":{{\"total\":1}}}}\n");
    let res = s.import(
        "shop",
        "format=ndjson&kind=events&atomic=true&wait=true",
        bad,
    );
    assert_eq!(res.body["status"], "failed", "{:#}", res.body);
    assert_eq!(res.body["error"]["code"], "import_not_applied");
    s.get("/v1/databases/shop/profiles/a1")
        .assert_problem(404, "profile_not_found");

    let res = s.import(
        "shop",
        "format=ndjson&kind=events&atomic=true&wait=true",
        good,
    );
    assert_eq!(res.body["status"], "done", "{:#}", res.body);
    assert_eq!(res.body["rows_accepted"], 2);
    let p = s
        .get("/v1/databases/shop/profiles/a1?fields=stats.receipts_count")
        .body;
    assert_eq!(p["stats"]["receipts_count"], 1, "{p:#}");
    // Applied between Begin and Commit in the log: a crash after it keeps it all.
    let dir = s.kill();
    let s = Server::start_in(dir, &[], &[], false);
    let t = s.get("/v1/databases/shop/profiles/a2/activity").body;
    assert_eq!(t["events"][0]["type"], "page_view", "{t:#}");
    let p = s
        .get("/v1/databases/shop/profiles/a1?fields=rfm.segment")
        .body;
    assert_eq!(p["rfm"]["segment"], "hibernating", "{p:#}");
}
