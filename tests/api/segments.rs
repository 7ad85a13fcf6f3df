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
