//! Identity merge over HTTP: an update naming two profiles' identifiers makes them one.

use serde_json::{Value, json};

use crate::common::Server;

fn shop() -> Server {
    let s = Server::start();
    s.create_db(
        "shop",
        json!({"default_region": "PT", "resources": [{"name": "news", "channels": ["email"]}]}),
    );
    s
}

fn get(s: &Server, path: &str) -> Value {
    let res = s.get(&format!("/v1/databases/shop{path}"));
    assert_eq!(res.status, 200, "{path}: {:#}", res.body);
    res.body
}

fn receipt(s: &Server, customer: &str, id: &str, total: f64) {
    let res = s.post(
        "/v1/databases/shop/events",
        json!({"customer_id": customer, "type": "receipt", "data": {"receipt_id": id, "total": total}}),
    );
    assert_eq!(res.body["accepted"], 1, "{:#}", res.body);
}

#[test]
fn an_update_naming_two_profiles_merges_them_into_the_older() {
    let s = shop();
    let res = s.patch(
        "/v1/databases/shop/profiles/old",
        json!({"fields": {"email": "ana@example.com", "city": "Porto", "first_name": "Ana"},
               "identifiers": {"crm": "A-1"}, "tags": {"add": ["vip"]},
               "subscriptions": [{"resource": "news", "channel": "email", "status": "subscribed"}]}),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    receipt(&s, "old", "r1", 10.0);
    s.patch(
        "/v1/databases/shop/profiles/new",
        json!({"fields": {"phone": "912345678", "city": "Lisbon"}, "tags": {"add": ["b2c"]}}),
    );
    receipt(&s, "new", "r2", 20.0);
    let res = s.put(
        "/v1/databases/shop/segments/lisbon",
        json!({"filter": r#"city = "Lisbon""#}),
    );
    assert_eq!(res.body["count"], 1, "{:#}", res.body);

    // `new` names `old`'s email: one customer.
    let res = s.patch(
        "/v1/databases/shop/profiles/new",
        json!({"fields": {"email": "ANA@example.com", "last_name": "Silva"}}),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    let p = &res.body;
    assert_eq!(p["customer_id"], "old", "the older survives: {p:#}");
    // Field by field, the latest write: `new`'s city, `old`'s first name, the update's last.
    assert_eq!(p["fields"]["city"], "Lisbon");
    assert_eq!(p["fields"]["first_name"], "Ana");
    assert_eq!(p["fields"]["last_name"], "Silva");
    assert_eq!(p["fields"]["phone"], "912345678");
    assert_eq!(p["identifiers"]["crm"], "A-1");
    assert_eq!(p["identifiers"]["phone"], "+351912345678");
    assert_eq!(p["tags"], json!(["b2c", "vip"]));
    assert_eq!(p["subscriptions"][0]["status"], "subscribed");
    // Activity combined; derived values recomputed from both.
    assert_eq!(p["stats"]["receipts_count"], 2, "{p:#}");
    assert_eq!(p["stats"]["receipts_total"], 30.0);
    assert_eq!(p["merges"][0]["customer_id"], "new", "{p:#}");
    assert!(
        p["merges"][0]["identifiers"]
            .as_array()
            .unwrap()
            .contains(&json!("phone:+351912345678"))
    );
    assert_eq!(p["segments"], json!(["lisbon"]));
    assert_eq!(get(&s, "/segments/lisbon")["count"], 1);

    // Every old way in finds the survivor.
    assert_eq!(get(&s, "/profiles/new")["customer_id"], "old");
    assert_eq!(
        get(&s, "/profiles/by/phone/912345678")["customer_id"],
        "old"
    );
    assert_eq!(
        get(&s, "/profiles/by/email/ana@example.com")["customer_id"],
        "old"
    );
    let timeline = get(&s, "/profiles/new/activity");
    assert_eq!(
        timeline["events"].as_array().unwrap().len(),
        2,
        "{timeline:#}"
    );
    assert_eq!(
        get(&s, "/profiles/new/export")["profile"]["merges"][0]["customer_id"],
        "new"
    );
    // Writes to an absorbed id land on the survivor.
    let res = s.patch(
        "/v1/databases/shop/profiles/new",
        json!({"fields": {"country": "PT"}}),
    );
    assert_eq!(res.body["customer_id"], "old", "{:#}", res.body);
    receipt(&s, "new", "r3", 5.0);
    assert_eq!(get(&s, "/profiles/old")["stats"]["receipts_count"], 3);
    assert_eq!(s.count("/v1/databases/shop/profiles", "profiles"), 1);

    // A later profile with a crm of its own joins: its (newer) crm wins the namespace,
    // the older one still leads to the survivor.
    s.patch(
        "/v1/databases/shop/profiles/third",
        json!({"identifiers": {"crm": "A-3"}}),
    );
    let res = s.patch(
        "/v1/databases/shop/profiles/third",
        json!({"fields": {"email": "ana@example.com"}}),
    );
    assert_eq!(res.body["customer_id"], "old", "{:#}", res.body);
    assert_eq!(res.body["identifiers"]["crm"], "A-3");
    assert_eq!(get(&s, "/profiles/by/crm/A-1")["customer_id"], "old");
    let merges: Vec<&str> = res.body["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(merges, ["new", "third"]);

    // The log, then a snapshot, bring it all back, the identifier index with it (built
    // at load and kept by the replay; then built from the snapshot alone).
    let by_keys = |s: &Server| {
        for key in ["/profiles/by/email/ana@example.com", "/profiles/by/crm/A-3"] {
            assert_eq!(get(s, key)["customer_id"], "old", "{key}");
        }
    };
    let s = s.restart(false);
    assert_eq!(get(&s, "/profiles/new")["customer_id"], "old");
    assert_eq!(get(&s, "/profiles/by/crm/A-1")["customer_id"], "old");
    assert_eq!(get(&s, "/profiles/old")["stats"]["receipts_count"], 3);
    by_keys(&s);
    assert_eq!(s.post("/v1/databases/shop/snapshot", json!({})).status, 200);
    let s = s.restart(false);
    assert_eq!(get(&s, "/profiles/third")["customer_id"], "old");
    by_keys(&s);
    assert_eq!(
        get(&s, "/profiles/old")["merges"].as_array().unwrap().len(),
        2
    );

    // Erasure takes every way in with it.
    assert_eq!(s.delete("/v1/databases/shop/profiles/new").status, 204);
    for path in [
        "/profiles/old",
        "/profiles/new",
        "/profiles/by/crm/A-1",
        "/profiles/by/crm/A-3",
    ] {
        s.get(&format!("/v1/databases/shop{path}"))
            .assert_problem(404, "profile_not_found");
    }
    assert_eq!(get(&s, "/segments/lisbon")["count"], 0);
}

#[test]
fn imports_merge_row_by_row_and_atomic_imports_refuse_to() {
    let s = shop();
    s.patch(
        "/v1/databases/shop/profiles/a",
        json!({"fields": {"email": "a@example.com"}}),
    );
    s.patch(
        "/v1/databases/shop/profiles/b",
        json!({"fields": {"email": "b@example.com"}}),
    );
    // A names b's email and b names a's: one customer, whichever way round.
    let file = "customer_id,email,city\na,b@example.com,Lisbon\nb,a@example.com,Porto\n";
    let atomic = s.import("shop", "format=csv&wait=true&atomic=true", file);
    assert_eq!(atomic.body["status"], "failed", "{:#}", atomic.body);
    assert_eq!(atomic.body["errors"][0]["code"], "identifier_conflict");
    assert_eq!(s.count("/v1/databases/shop/profiles", "profiles"), 2);

    import_csv(&s, file);
    assert_eq!(s.count("/v1/databases/shop/profiles", "profiles"), 1);
    let p = get(&s, "/profiles/b");
    assert_eq!(p["customer_id"], "a");
    assert_eq!(p["fields"]["city"], "Porto");
    assert_eq!(p["fields"]["email"], "a@example.com");
    assert_eq!(
        get(&s, "/profiles/by/email/b@example.com")["customer_id"],
        "a"
    );
}

#[test]
fn a_new_customer_id_naming_a_known_identifier_joins_that_profile() {
    let s = shop();
    s.patch(
        "/v1/databases/shop/profiles/web-1",
        json!({"identifiers": {"device": "d1"}}),
    );
    // A customer id nobody has, with web-1's device: no new profile; the id leads there.
    let res = s.patch(
        "/v1/databases/shop/profiles/crm-9",
        json!({"identifiers": {"device": "d1"}, "fields": {"city": "Faro"}}),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["customer_id"], "web-1");
    assert_eq!(res.body["merges"][0]["customer_id"], "crm-9");
    assert_eq!(get(&s, "/profiles/crm-9")["fields"]["city"], "Faro");
    assert_eq!(s.count("/v1/databases/shop/profiles", "profiles"), 1);

    // The same through an import, whose rows for new customer ids are built off the
    // actor without asking who holds their keys: the claim finds web-1's email taken,
    // and the actor joins the row to web-1 as the PATCH did.
    s.patch(
        "/v1/databases/shop/profiles/web-1",
        json!({"fields": {"email": "web1@example.com"}}),
    );
    let file =
        "customer_id,email,city\nnew-1,n1@example.com,Porto\ncrm-10,web1@example.com,Braga\n";
    import_csv(&s, file);
    let joined = get(&s, "/profiles/crm-10");
    assert_eq!(joined["customer_id"], "web-1", "{joined:#}");
    assert_eq!(joined["fields"]["city"], "Braga");
    assert_eq!(get(&s, "/profiles/new-1")["fields"]["city"], "Porto");
    assert_eq!(s.count("/v1/databases/shop/profiles", "profiles"), 2);
}

#[test]
fn one_update_naming_three_profiles_merges_them_all_and_a_put_does_not_merge() {
    let s = shop();
    s.patch(
        "/v1/databases/shop/profiles/b",
        json!({"fields": {"email": "b@example.com"}}),
    );
    s.patch(
        "/v1/databases/shop/profiles/c",
        json!({"fields": {"phone": "912345678"}}),
    );
    // A customer id nobody has, with b's email and c's phone: two rounds of merging.
    let res = s.patch(
        "/v1/databases/shop/profiles/x",
        json!({"fields": {"email": "b@example.com", "phone": "912345678", "city": "Faro"}}),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["customer_id"], "b");
    let mut merged: Vec<&str> = res.body["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["customer_id"].as_str().unwrap())
        .collect();
    merged.sort();
    assert_eq!(merged, ["c", "x"], "{:#}", res.body);
    for id in ["b", "c", "x"] {
        assert_eq!(get(&s, &format!("/profiles/{id}"))["customer_id"], "b");
    }
    assert_eq!(s.count("/v1/databases/shop/profiles", "profiles"), 1);

    // A replace keeps only what it says, a merge keeps everything: a PUT naming another
    // profile's identifier is refused instead.
    s.patch(
        "/v1/databases/shop/profiles/d",
        json!({"fields": {"city": "Porto"}}),
    );
    let res = s.put(
        "/v1/databases/shop/profiles/d",
        json!({"fields": {"email": "b@example.com"}}),
    );
    res.assert_problem(409, "identifier_conflict");
    assert_eq!(res.body["holder"], "b");
    assert_eq!(get(&s, "/profiles/d")["fields"]["city"], "Porto");
}

#[test]
fn an_update_naming_more_profiles_than_one_merge_may_join_is_refused_whole() {
    let s = shop();
    // Seventeen profiles, each with an identifier of its own namespace.
    let mut names = serde_json::Map::new();
    for i in 0..17 {
        let res = s.patch(
            &format!("/v1/databases/shop/profiles/p{i}"),
            json!({"identifiers": {format!("ns{i}"): "v"}}),
        );
        assert_eq!(res.status, 200, "{:#}", res.body);
        names.insert(format!("ns{i}"), json!("v"));
    }
    let res = s.patch(
        "/v1/databases/shop/profiles/p0",
        json!({ "identifiers": names }),
    );
    res.assert_problem(409, "merge_too_large");
    assert_eq!(s.count("/v1/databases/shop/profiles", "profiles"), 17);
    assert_eq!(get(&s, "/profiles/p0")["merges"], json!([]));
}

/// Imports a CSV file into `shop` and checks that every row was applied.
fn import_csv(s: &Server, file: &'static str) {
    let res = s.import("shop", "format=csv&wait=true", file);
    assert_eq!(res.body["status"], "done", "{:#}", res.body);
    assert_eq!(res.body["rows_rejected"], 0, "{:#}", res.body);
}
