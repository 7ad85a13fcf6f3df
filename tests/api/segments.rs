//! Ad-hoc segment queries over HTTP.

use serde_json::{Value, json};

use crate::common::Server;

fn query(s: &Server, body: Value) -> crate::common::Res {
    s.post("/v1/databases/shop/query", body)
}

#[test]
fn a_query_counts_pages_and_projects_what_its_filter_selects() {
    let s = Server::start();
    s.create_db(
        "shop",
        json!({"default_region": "PT", "resources": [{"name": "news", "channels": ["email", "sms"]}]}),
    );
    let res = s.post(
        "/v1/databases/shop/fields",
        json!({"name": "score", "type": "integer"}),
    );
    assert_eq!(res.status, 201, "{:#}", res.body);
    for i in 0..12 {
        let city = if i % 3 == 0 { "Porto" } else { "Lisbon" };
        let mut body = json!({"fields": {"city": city, "score": i, "email": format!("c{i}@example.com"),
                                         "phone": if i % 2 == 0 { "912 345 6" } else { "212 345 6" }},
                              "tags": {"add": if i < 4 { json!(["vip"]) } else { json!([]) }}});
        body["fields"]["phone"] = json!(format!(
            "{}{:02}",
            body["fields"]["phone"].as_str().unwrap(),
            i
        ));
        if i % 2 == 0 {
            body["subscriptions"] =
                json!([{"resource": "news", "channel": "sms", "status": "subscribed"}]);
        }
        let res = s.patch(&format!("/v1/databases/shop/profiles/c{i:02}"), body);
        assert_eq!(res.status, 200, "{:#}", res.body);
    }
    let res = s.post(
        "/v1/databases/shop/events",
        json!([{"customer_id": "c01", "type": "receipt", "data": {"receipt_id": "r1", "total": 50.0}},
               {"customer_id": "c02", "type": "receipt", "data": {"receipt_id": "r2", "total": 10.0}}]),
    );
    assert_eq!(res.body["accepted"], 2, "{:#}", res.body);

    let count = |filter: &str| {
        let res = query(&s, json!({"filter": filter, "count_only": true}));
        assert_eq!(res.status, 200, "{filter}: {:#}", res.body);
        assert!(res.body.get("profiles").is_none());
        res.body["total"].as_u64().unwrap()
    };
    assert_eq!(count(r#"city = "Lisbon""#), 8);
    assert_eq!(count(r#"city = "Lisbon" AND score >= 6"#), 4);
    assert_eq!(count(r#"tags CONTAINS "vip""#), 4);
    assert_eq!(count(r#"score < 2"#), 2);
    assert_eq!(count(r#"tags CONTAINS "vip" AND score < 2"#), 2);
    assert_eq!(
        count(r#"city = "Porto" OR tags CONTAINS "vip" AND score < 2"#),
        4 + 1
    );
    assert_eq!(count(r#"NOT tags CONTAINS "vip""#), 8);
    assert_eq!(count(r#"stats.receipts_count > 0"#), 2);
    // M: among 2 buyers, 1 spent strictly less: 1 + floor(5 * 1 / 2) = 3.
    assert_eq!(count(r#"stats.receipts_total >= 20 AND rfm.m = 3"#), 1);
    assert_eq!(count(r#"rfm EXISTS"#), 2);
    // Channels, as issue 7 promised: even numbers are mobiles subscribed to SMS.
    assert_eq!(count(r#"channels.sms.eligible = true"#), 6);
    assert_eq!(count(r#"channels.sms.reason = "landline""#), 6);
    assert_eq!(count(r#"contacts.phone.type IN ["mobile"]"#), 6);
    assert_eq!(count(r#"subscriptions.news.sms = "subscribed""#), 6);
    assert_eq!(count(r#"subscriptions.news.sms = null"#), 6);
    assert_eq!(count(r#"subscriptions.news.email EXISTS"#), 0);
    assert_eq!(count(r#"created_at > "2000-01-01""#), 12);

    // Pages of 5, oldest first, with the projection asked for.
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let res = query(
            &s,
            json!({"filter": r#"city = "Lisbon""#, "fields": ["score"], "limit": 5, "cursor": cursor}),
        );
        assert_eq!(res.status, 200, "{:#}", res.body);
        assert_eq!(res.body["total"], 8);
        for p in res.body["profiles"].as_array().unwrap() {
            assert!(p.get("tags").is_none(), "projected: {p:#}");
            seen.push(p["fields"]["score"].as_i64().unwrap());
        }
        cursor = res.body["next_cursor"].clone();
        if cursor.is_null() {
            break;
        }
    }
    assert_eq!(seen, [1, 2, 4, 5, 7, 8, 10, 11]);

    // Bad filters: the code, the column, a message a person can act on.
    for (filter, column, says) in [
        (r#"score >= "#, 10, "expected a value after `>=`"),
        (r#"city = Lisbon"#, 8, "double quotes"),
        (
            r#"city = "x" AND score = "seven""#,
            16,
            "`score` holds a number",
        ),
        (r#"shoe_size = 3"#, 1, "`shoe_size` is neither a field"),
        (r#"segment("big")"#, 1, "no saved segment"),
    ] {
        let res = query(&s, json!({"filter": filter}));
        res.assert_problem(400, "filter_invalid");
        assert_eq!(res.body["column"], column, "{filter}: {:#}", res.body);
        assert!(
            res.body["detail"].as_str().unwrap().contains(says),
            "{filter}: {:#}",
            res.body
        );
    }
    query(&s, json!({"filter": "score > 1", "limit": 0})).assert_problem(400, "invalid_body");
    query(&s, json!({"filter": "score > 1", "cursor": "nope"}))
        .assert_problem(400, "cursor_invalid");
    query(&s, json!({"filter": "score > 1", "fields": ["nope"]}))
        .assert_problem(400, "field_unknown");
}

/// Members of a saved segment: every page, oldest first, as customer ids.
fn members(s: &Server, name: &str) -> Vec<String> {
    let path = format!("/v1/databases/shop/segments/{name}/members?limit=2&fields=email");
    s.pages(&path, "profiles")
        .iter()
        .map(|p| p["customer_id"].as_str().unwrap().to_owned())
        .collect()
}

fn count(s: &Server, name: &str) -> u64 {
    let res = s.get(&format!("/v1/databases/shop/segments/{name}"));
    assert_eq!(res.status, 200, "{:#}", res.body);
    res.body["count"].as_u64().unwrap()
}

#[test]
fn saved_segments_keep_their_members_on_every_write_and_across_a_restart() {
    let s = Server::shop_with_score();
    for i in 0..6 {
        let city = if i % 2 == 0 { "Lisbon" } else { "Porto" };
        let res = s.patch(
            &format!("/v1/databases/shop/profiles/c{i}"),
            json!({"fields": {"city": city, "score": i}}),
        );
        assert_eq!(res.status, 200, "{:#}", res.body);
    }
    // Saving evaluates over what is there: c0, c2, c4.
    let res = s.put(
        "/v1/databases/shop/segments/lisbon",
        json!({"filter": r#"city = "Lisbon""#}),
    );
    assert_eq!(res.status, 201, "{:#}", res.body);
    assert_eq!(res.body["count"], 3);
    assert_eq!(res.body["volatile"], false);
    assert_eq!(members(&s, "lisbon"), ["c0", "c2", "c4"]);
    // A segment built on another, and one on derived values.
    let res = s.put(
        "/v1/databases/shop/segments/lisbon-high",
        json!({"filter": r#"segment("lisbon") AND score >= 2"#}),
    );
    assert_eq!(res.status, 201, "{:#}", res.body);
    assert_eq!(res.body["count"], 2);
    let res = s.put(
        "/v1/databases/shop/segments/buyers",
        json!({"filter": "stats.receipts_count > 0"}),
    );
    assert_eq!(res.body["count"], 0, "{:#}", res.body);

    // Writes move profiles in and out at once: a move, a new profile, an erasure, an event.
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields": {"city": "Lisbon"}}),
    );
    s.patch(
        "/v1/databases/shop/profiles/c9",
        json!({"fields": {"city": "Lisbon", "score": 9}}),
    );
    assert_eq!(s.delete("/v1/databases/shop/profiles/c2").status, 204);
    s.patch(
        "/v1/databases/shop/profiles/c4",
        json!({"fields": {"city": "Faro"}}),
    );
    let res = s.post(
        "/v1/databases/shop/events",
        json!({"customer_id": "c3", "type": "receipt", "data": {"receipt_id": "r1", "total": 5.0}}),
    );
    assert_eq!(res.body["accepted"], 1, "{:#}", res.body);
    assert_eq!(members(&s, "lisbon"), ["c0", "c1", "c9"]);
    assert_eq!(count(&s, "lisbon"), 3);
    assert_eq!(members(&s, "lisbon-high"), ["c9"]);
    assert_eq!(members(&s, "buyers"), ["c3"]);
    // The profile document lists what it belongs to.
    let res = s.get("/v1/databases/shop/profiles/c9");
    assert_eq!(
        res.body["segments"],
        json!(["lisbon", "lisbon-high"]),
        "{:#}",
        res.body
    );
    let res = s.get("/v1/databases/shop/profiles/c9?fields=segments");
    assert_eq!(
        res.body["segments"],
        json!(["lisbon", "lisbon-high"]),
        "{:#}",
        res.body
    );
    // An ad-hoc query may use a saved segment too.
    let res = query(
        &s,
        json!({"filter": r#"segment("lisbon") AND NOT segment("lisbon-high")"#, "count_only": true}),
    );
    assert_eq!(res.body["total"], 2, "{:#}", res.body);
    let res = s.get("/v1/databases/shop/segments");
    let names: Vec<&str> = res.body["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["buyers", "lisbon", "lisbon-high"]);

    // Definitions come back from the log, and members are evaluated again.
    let s = s.restart(false);
    assert_eq!(members(&s, "lisbon"), ["c0", "c1", "c9"]);
    assert_eq!(members(&s, "buyers"), ["c3"]);
    let res = s.post("/v1/databases/shop/snapshot", json!({}));
    assert_eq!(res.status, 200, "{:#}", res.body);
    // And from a snapshot.
    let s = s.restart(false);
    assert_eq!(members(&s, "lisbon-high"), ["c9"]);
    // Redefining a segment changes what refers to it.
    let res = s.put(
        "/v1/databases/shop/segments/lisbon",
        json!({"filter": r#"city IN ["Lisbon", "Faro"]"#}),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(members(&s, "lisbon"), ["c0", "c1", "c4", "c9"]);
    assert_eq!(members(&s, "lisbon-high"), ["c4", "c9"]);
    assert_eq!(s.delete("/v1/databases/shop/segments/buyers").status, 204);
    s.get("/v1/databases/shop/segments/buyers")
        .assert_problem(404, "segment_not_found");
}

#[test]
fn saved_segments_refuse_what_cannot_be_kept() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    let res = s.post(
        "/v1/databases/shop/fields",
        json!({"name": "score", "type": "integer"}),
    );
    assert_eq!(res.status, 201);
    let put = |name: &str, filter: &str| {
        s.put(
            &format!("/v1/databases/shop/segments/{name}"),
            json!({ "filter": filter }),
        )
    };
    let res = put("a", "score >= ");
    res.assert_problem(400, "filter_invalid");
    assert_eq!(res.body["column"], 10, "{:#}", res.body);
    put("a", r#"score = "x""#).assert_problem(400, "filter_invalid");
    put("Bad Name", "score > 1").assert_problem(400, "segment_name_invalid");
    put("a", r#"segment("nope")"#).assert_problem(400, "filter_invalid");
    put("a", r#"segment("a")"#).assert_problem(400, "filter_invalid");
    assert_eq!(put("a", "score > 1").status, 201);
    assert_eq!(put("b", r#"segment("a") OR score = 0"#).status, 201);
    // A loop through a redefinition: a → b → a.
    let res = put("a", r#"segment("b")"#);
    res.assert_problem(400, "filter_invalid");
    assert!(
        res.body["detail"]
            .as_str()
            .unwrap()
            .contains("refers to itself"),
        "{:#}",
        res.body
    );
    // Still the old definition.
    assert_eq!(
        s.get("/v1/databases/shop/segments/a").body["filter"],
        "score > 1"
    );
    s.delete("/v1/databases/shop/segments/a")
        .assert_problem(409, "segment_in_use");
    s.delete("/v1/databases/shop/fields/score")
        .assert_problem(409, "field_in_use");
    s.delete("/v1/databases/shop/segments/zzz")
        .assert_problem(404, "segment_not_found");
    s.get("/v1/databases/shop/segments/a/members?cursor=nonsense")
        .assert_problem(400, "cursor_invalid");
    s.get("/v1/databases/shop/segments/a/members?limit=0")
        .assert_problem(400, "invalid_query");
    let res = s.put("/v1/databases/shop/segments/c", json!({"filter": 3}));
    assert_eq!(res.status, 400, "{:#}", res.body);
    // A reader may look but not define.
    let reader = s.key("reader", &["default"]);
    let res = s.call_as(
        &reader,
        reqwest::Method::PUT,
        "/v1/databases/shop/segments/r",
        Some(json!({"filter": "score > 1"})),
    );
    res.assert_problem(403, "forbidden");
    let res = s.call_as(
        &reader,
        reqwest::Method::GET,
        "/v1/databases/shop/segments/a",
        None,
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
}

#[test]
fn volatile_segments_follow_ranks_and_lists_without_a_write_to_the_profile() {
    let s = Server::start_with(&["--segment-refresh", "200ms"], &[]);
    s.create_db("shop", json!({}));
    for (i, total) in [(0, 10.0), (1, 20.0)] {
        let res = s.post(
            "/v1/databases/shop/events",
            json!({"customer_id": format!("c{i}"), "type": "receipt",
                   "data": {"receipt_id": format!("r{i}"), "total": total}}),
        );
        assert_eq!(res.body["accepted"], 1, "{:#}", res.body);
    }
    s.patch(
        "/v1/databases/shop/profiles/c0",
        json!({"fields": {"email": "a@example.com"}}),
    );
    // Of two buyers, c1 spent more: M 3 for c1, 1 for c0.
    let res = s.put(
        "/v1/databases/shop/segments/top",
        json!({"filter": "rfm.m >= 3"}),
    );
    assert_eq!(res.body["volatile"], true, "{:#}", res.body);
    assert_eq!(members(&s, "top"), ["c1"]);
    let res = s.put(
        "/v1/databases/shop/segments/mailable",
        json!({"filter": "channels.email.eligible = true OR channels.email.reason = \"not_subscribed\""}),
    );
    assert_eq!(members(&s, "mailable"), ["c0"], "{:#}", res.body);
    // A third buyer outspends both: c1's rank changes though c1 was not written.
    let res = s.post(
        "/v1/databases/shop/events",
        json!({"customer_id": "c2", "type": "receipt", "data": {"receipt_id": "r2", "total": 99.0}}),
    );
    assert_eq!(res.body["accepted"], 1);
    // c0 goes on the global stop list: no write to c0 either.
    let res = s.post(
        "/v1/suppression-lists/global/entries",
        json!({"emails": ["a@example.com"]}),
    );
    assert!(res.status < 300, "{:#}", res.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        // Of three, c1 (L = 1) scores 1 + floor(5/3) = 2; c2 scores 1 + floor(10/3) = 4.
        let (top, mailable) = (members(&s, "top"), members(&s, "mailable"));
        if top == ["c2"] && mailable.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not refreshed: top {top:?}, mailable {mailable:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_query_past_its_budget_is_refused_and_the_server_goes_on() {
    let s = Server::start_with(&["--query-budget", "1ns"], &[]);
    s.create_db("shop", json!({}));
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields": {"city": "Lisbon"}}),
    );
    for filter in [r#"city = "Lisbon""#, r#"stats.receipts_count = 0"#] {
        let res = query(&s, json!({"filter": filter, "count_only": true}));
        res.assert_problem(422, "query_timeout");
    }
    assert_eq!(s.get("/v1/databases/shop/profiles/c1").status, 200);
}

#[test]
fn field_columns_follow_writes_schema_changes_and_defaults() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    let res = s.post(
        "/v1/databases/shop/fields",
        json!({"name": "score", "type": "integer", "default": 5}),
    );
    assert_eq!(res.status, 201);
    for i in 0..6 {
        s.patch(
            &format!("/v1/databases/shop/profiles/c{i}"),
            json!({"fields": {"city": "Lisbon"}}),
        );
    }
    s.patch(
        "/v1/databases/shop/profiles/c0",
        json!({"fields": {"score": 1}}),
    );
    let count = |filter: &str| {
        let res = query(&s, json!({"filter": filter, "count_only": true}));
        assert_eq!(res.status, 200, "{filter}: {:#}", res.body);
        res.body["total"].as_u64().unwrap()
    };
    // The first query builds the columns; defaults count as the documents show them.
    assert_eq!(count(r#"score = 5 AND city = "Lisbon""#), 5);
    // Writes after reach the columns: a new value, a new text, an erasure.
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields": {"score": 9, "city": "Évora"}}),
    );
    assert_eq!(s.delete("/v1/databases/shop/profiles/c2").status, 204);
    s.patch(
        "/v1/databases/shop/profiles/c9",
        json!({"fields": {"city": "Évora"}}),
    );
    assert_eq!(count(r#"score = 5 AND city = "Lisbon""#), 3);
    assert_eq!(count(r#"city = "Évora""#), 2);
    assert_eq!(count(r#"score > 4"#), 5);
    // The field dropped and added again as text: the old column goes with it.
    assert_eq!(s.delete("/v1/databases/shop/fields/score").status, 204);
    let res = s.post(
        "/v1/databases/shop/fields",
        json!({"name": "score", "type": "string"}),
    );
    assert_eq!(res.status, 201, "{:#}", res.body);
    s.patch(
        "/v1/databases/shop/profiles/c3",
        json!({"fields": {"score": "high"}}),
    );
    assert_eq!(count(r#"score = "high""#), 1);
    assert_eq!(count(r#"score = null"#), 5);
}

#[test]
fn imports_keep_saved_segments_and_field_columns_current() {
    let s = Server::shop_with_score();
    for i in 0..4 {
        s.patch(
            &format!("/v1/databases/shop/profiles/c{i}"),
            json!({"fields": {"city": "Lisbon", "score": i}}),
        );
    }
    let res = s.put(
        "/v1/databases/shop/segments/lisbon",
        json!({"filter": r#"city = "Lisbon""#}),
    );
    assert_eq!(res.body["count"], 4, "{:#}", res.body);
    let total = |filter: &str| {
        let res = query(&s, json!({"filter": filter, "count_only": true}));
        assert_eq!(res.status, 200, "{filter}: {:#}", res.body);
        res.body["total"].as_u64().unwrap()
    };
    // The first query builds the score column.
    assert_eq!(total("score >= 2"), 2);
    // An import of changes (c0 and c1 leave Lisbon; c2 scores higher) and of new
    // customers (n0..n5, every other one in Lisbon): rows built off the actor, put over
    // what they read or claimed, with the segment and the column kept as for any write.
    let mut file = String::from("customer_id,city,score\nc0,Porto,0\nc1,Faro,1\nc2,Lisbon,7\n");
    for i in 0..6 {
        let city = if i % 2 == 0 { "Lisbon" } else { "Braga" };
        file.push_str(&format!("n{i},{city},{}\n", 10 + i));
    }
    let res = s.import("shop", "format=csv&wait=true", file);
    assert_eq!(res.body["rows_accepted"], 9, "{:#}", res.body);
    let expected = ["c2", "c3", "n0", "n2", "n4"];
    assert_eq!(members(&s, "lisbon"), expected);
    assert_eq!(count(&s, "lisbon"), 5);
    assert_eq!(total("score >= 2"), 8);
    assert_eq!(total(r#"score >= 10 AND city = "Braga""#), 3);
    // And the same from the log.
    let s = s.restart(false);
    assert_eq!(members(&s, "lisbon"), expected);
}

#[test]
fn a_database_holds_at_most_a_hundred_saved_segments() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    for i in 0..100 {
        let res = s.put(
            &format!("/v1/databases/shop/segments/s{i}"),
            json!({"filter": format!("city = \"c{i}\"")}),
        );
        assert_eq!(res.status, 201, "{:#}", res.body);
    }
    s.put(
        "/v1/databases/shop/segments/one-more",
        json!({"filter": "city EXISTS"}),
    )
    .assert_problem(409, "segments_too_many");
    // Replacing one is not adding one.
    let res = s.put(
        "/v1/databases/shop/segments/s0",
        json!({"filter": "city EXISTS"}),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(
        s.get("/v1/databases/shop/segments").body["segments"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
}

#[test]
fn filters_read_interests_and_one_subscription_over_http() {
    let s = Server::start();
    s.create_db(
        "shop",
        json!({"resources": [{"name": "news", "channels": ["email"]}]}),
    );
    let res = s.post(
        "/v1/databases/shop/events",
        json!([{"customer_id": "c1", "type": "category_view", "data": {"category": "tv"}},
               {"customer_id": "c2", "type": "category_view", "data": {"category": "radio"}}]),
    );
    assert_eq!(res.body["accepted"], 2, "{:#}", res.body);
    s.patch(
        "/v1/databases/shop/profiles/c2",
        json!({"subscriptions": [{"resource": "news", "channel": "email", "category": "weekly",
                                  "status": "unsubscribed"}]}),
    );
    let total = |filter: &str| {
        let res = query(&s, json!({"filter": filter, "count_only": true}));
        assert_eq!(res.status, 200, "{filter}: {:#}", res.body);
        res.body["total"].as_u64().unwrap()
    };
    assert_eq!(total(r#"interests CONTAINS "tv""#), 1);
    assert_eq!(
        total(r#"interests CONTAINS "tv" OR interests CONTAINS "radio""#),
        2
    );
    assert_eq!(
        total(r#"subscriptions.news.email.weekly = "unsubscribed""#),
        1
    );
    assert_eq!(total(r#"subscriptions.news.email = null"#), 2);
    query(&s, json!({"filter": r#"subscriptions.news.fax = "x""#}))
        .assert_problem(400, "filter_invalid");
}
