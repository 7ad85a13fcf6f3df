use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Server, send};

fn shop() -> Server {
    let s = Server::start();
    s.create_db(
        "shop",
        json!({"default_region":"PT","resources":[{"name":"blog","channels":["email","push"]}]}),
    );
    s.post(
        "/v1/databases/shop/fields",
        json!({"name":"loyalty_score","type":"integer","default":0}),
    );
    s
}

#[test]
fn patch_merges_and_get_shows_the_document() {
    let s = shop();
    let r = s.patch(
        "/v1/databases/shop/profiles/c42",
        json!({"fields":{"email":"Ana@Example.com","city":"Lisbon","loyalty_score":7,"phone":"912 345 678"},
               "tags":{"add":["vip","trial"]},
               "identifiers":{"crm":"A-1001","device":"9f1c"},
               "subscriptions":[{"resource":"blog","channel":"email","category":"news","status":"subscribed"}]}),
    );
    assert_eq!(r.status, 200, "{:#}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = s.patch(
        "/v1/databases/shop/profiles/c42",
        json!({"fields":{"first_name":"Ana"},"tags":{"remove":["trial"]},"identifiers":{"device":null}}),
    );
    let p = &r.body;
    assert_eq!(p["id"], id.as_str(), "the internal id never changes");
    assert_eq!(p["customer_id"], "c42");
    assert_eq!(
        p["fields"]["city"], "Lisbon",
        "PATCH keeps fields it does not name"
    );
    assert_eq!(p["fields"]["first_name"], "Ana");
    assert_eq!(p["tags"], json!(["vip"]));
    assert_eq!(
        p["identifiers"],
        json!({"email":"ana@example.com","phone":"+351912345678","crm":"A-1001"})
    );
    assert_eq!(p["contacts"]["phone"]["type"], "mobile");
    assert_eq!(p["contacts"]["email"]["valid"], true);
    assert_eq!(p["subscriptions"][0]["status"], "subscribed");
    assert_eq!(p["stats"]["receipts_count"], 0);
    assert_eq!(p["rfm"], Value::Null);
    assert_eq!(s.get("/v1/databases/shop/profiles/c42").body, *p);
}

#[test]
fn put_replaces_but_keeps_identity() {
    let s = shop();
    let first = s.put(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"city":"Porto","first_name":"Rui"},"tags":{"add":["a"]}}),
    );
    assert_eq!(first.status, 200, "{:#}", first.body);
    let second = s.put(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"city":"Faro"}}),
    );
    assert_eq!(second.body["id"], first.body["id"]);
    assert_eq!(second.body["created_at"], first.body["created_at"]);
    assert_eq!(
        second.body["fields"],
        json!({"city":"Faro","loyalty_score":0})
    );
    assert_eq!(second.body["tags"], json!([]));
}

#[test]
fn projections_pick_fields_and_paths() {
    let s = shop();
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"email":"a@b.example","city":"Porto"}}),
    );
    let r = s.get("/v1/databases/shop/profiles/c1?fields=email,loyalty_score,stats.receipts_count,rfm,contacts.email.valid");
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(
        r.body["fields"],
        json!({"email":"a@b.example","loyalty_score":0})
    );
    assert_eq!(r.body["stats"], json!({"receipts_count":0}));
    assert_eq!(r.body["rfm"], Value::Null);
    assert_eq!(r.body["contacts"], json!({"email":{"valid":true}}));
    assert!(r.body.get("tags").is_none());
    s.get("/v1/databases/shop/profiles/c1?fields=nope")
        .assert_problem(400, "field_unknown");
    s.get("/v1/databases/shop/profiles/c1?fields=stats.nope")
        .assert_problem(400, "projection_invalid");
    s.get("/v1/databases/shop/profiles/c1?colour=red")
        .assert_problem(400, "invalid_query");
}

#[test]
fn lookups_by_identifier_normalize() {
    let s = shop();
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"email":"José@Bücher.example","phone":"+351 912 345 678"},"identifiers":{"crm":"A-1"}}),
    );
    for path in [
        "/v1/databases/shop/profiles/by/email/JOS%C3%89@b%C3%BCcher.EXAMPLE",
        "/v1/databases/shop/profiles/by/email/jos%C3%A9@xn--bcher-kva.example",
        "/v1/databases/shop/profiles/by/phone/912345678",
        "/v1/databases/shop/profiles/by/phone/%2B351-912-345-678",
        "/v1/databases/shop/profiles/by/crm/A-1",
    ] {
        let r = s.get(path);
        assert_eq!(
            (r.status, r.body["customer_id"].clone()),
            (200, json!("c1")),
            "{path}: {:#}",
            r.body
        );
    }
    s.get("/v1/databases/shop/profiles/by/crm/A-2")
        .assert_problem(404, "profile_not_found");
    s.get("/v1/databases/shop/profiles/by/phone/abc")
        .assert_problem(400, "identifier_invalid");
    s.get("/v1/databases/shop/profiles/by/Bad-NS/x")
        .assert_problem(400, "identifier_invalid");
}

#[test]
fn an_identifier_released_by_one_profile_can_move_to_another() {
    let s = shop();
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"email":"ana@example.com"},"identifiers":{"crm":"A-1"}}),
    );
    s.patch(
        "/v1/databases/shop/profiles/c2",
        json!({"fields":{"city":"Faro"}}),
    );
    // Released, the identifier moves without a merge (naming a held one merges: see
    // tests/api/identity.rs).
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"identifiers":{"crm":null}}),
    );
    let r = s.patch(
        "/v1/databases/shop/profiles/c2",
        json!({"identifiers":{"crm":"A-1"}}),
    );
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["customer_id"], "c2");
    assert_eq!(r.body["merges"], json!([]));
    assert_eq!(
        s.get("/v1/databases/shop/profiles/by/crm/A-1").body["customer_id"],
        "c2"
    );
}

#[test]
fn ids_are_immutable_and_bad_bodies_change_nothing() {
    let s = shop();
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"city":"Porto"}}),
    );
    let before = s.get("/v1/databases/shop/profiles/c1").body;
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"customer_id":"c9"}),
    )
    .assert_problem(400, "customer_id_immutable");
    s.patch("/v1/databases/shop/profiles/c1", json!({"id":"01ABC"}))
        .assert_problem(400, "invalid_body");
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"city":"Faro","nope":1}}),
    )
    .assert_problem(400, "field_unknown");
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"city":"Faro"},"colour":1}),
    )
    .assert_problem(400, "invalid_body");
    s.patch("/v1/databases/shop/profiles/c1", json!({"fields":{"city":"Faro"},"subscriptions":[{"resource":"nope","channel":"email","status":"subscribed"}]}))
        .assert_problem(400, "subscription_invalid");
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"identifiers":{"email":"x@y.example"}}),
    )
    .assert_problem(400, "identifier_invalid");
    let malformed = send(
        s.req(Method::PATCH, "/v1/databases/shop/profiles/c1")
            .header("content-type", "application/json")
            .body("{\"fields\":{\"city\":"),
    );
    malformed.assert_problem(400, "invalid_json");
    let csv = send(
        s.req(Method::PATCH, "/v1/databases/shop/profiles/c1")
            .header("content-type", "text/csv")
            .body("city\nFaro"),
    );
    csv.assert_problem(415, "unsupported_media_type");
    assert_eq!(s.get("/v1/databases/shop/profiles/c1").body, before);
}

#[test]
fn a_100_mb_body_is_refused() {
    let s = shop();
    let big = vec![b' '; 100 * 1024 * 1024];
    let r = send(
        s.req(Method::PATCH, "/v1/databases/shop/profiles/c1")
            .header("content-type", "application/json")
            .body(big),
    );
    r.assert_problem(413, "payload_too_large");
    s.get("/v1/databases/shop/profiles/c1")
        .assert_problem(404, "profile_not_found");
}

#[test]
fn batch_lookup_list_and_delete() {
    let s = shop();
    for i in 0..25 {
        let r = s.patch(
            &format!("/v1/databases/shop/profiles/c{i}"),
            json!({"fields":{"city":"Porto"},"identifiers":{"crm":format!("X{i}")}}),
        );
        assert_eq!(r.status, 200);
    }
    let r = s.post(
        "/v1/databases/shop/profiles/lookup",
        json!({"customer_ids":["c1","c2","zz"],"fields":["city"]}),
    );
    assert_eq!(r.status, 200, "{:#}", r.body);
    assert_eq!(r.body["missing"], json!(["zz"]));
    assert_eq!(r.body["profiles"][1]["fields"], json!({"city":"Porto"}));
    let too_many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    s.post(
        "/v1/databases/shop/profiles/lookup",
        json!({"customer_ids": too_many}),
    )
    .assert_problem(400, "invalid_body");

    let seen: Vec<String> = s
        .pages(
            "/v1/databases/shop/profiles?limit=10&fields=city",
            "profiles",
        )
        .iter()
        .map(|p| p["customer_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen.len(), 25);
    assert_eq!(seen[0], "c0", "oldest first");
    s.get("/v1/databases/shop/profiles?cursor=garbage")
        .assert_problem(400, "cursor_invalid");
    s.get("/v1/databases/shop/profiles?limit=0")
        .assert_problem(400, "invalid_query");

    assert_eq!(s.delete("/v1/databases/shop/profiles/c3").status, 204);
    s.get("/v1/databases/shop/profiles/c3")
        .assert_problem(404, "profile_not_found");
    s.get("/v1/databases/shop/profiles/by/crm/X3")
        .assert_problem(404, "profile_not_found");
    s.delete("/v1/databases/shop/profiles/c3")
        .assert_problem(404, "profile_not_found");
    // The erased profile's identifier is free again.
    assert_eq!(
        s.patch(
            "/v1/databases/shop/profiles/c99",
            json!({"identifiers":{"crm":"X3"}})
        )
        .status,
        200
    );
}

#[test]
fn invalid_contacts_are_kept_flagged_and_cleared_with_their_field() {
    let s = shop();
    let r = s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"email":"Not An Email","phone":"12"}}),
    );
    assert_eq!(r.status, 200, "{:#}", r.body);
    let c = &r.body["contacts"];
    assert_eq!(c["email"]["value"], "Not An Email");
    assert_eq!(c["email"]["valid"], false);
    assert!(
        c["email"]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{c:#}"
    );
    assert_eq!(c["phone"]["value"], "12");
    assert_eq!(c["phone"]["valid"], false);
    assert_eq!(
        s.get("/v1/databases/shop/profiles/by/email/not%20an%20email")
            .body["customer_id"],
        "c1"
    );

    let r = s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"phone":"912345678"}}),
    );
    assert_eq!(r.body["contacts"]["phone"]["e164"], "+351912345678");
    assert_eq!(
        r.body["contacts"]["email"]["valid"], false,
        "the email is untouched"
    );
    let r = s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"phone":null},"unset":["email"]}),
    );
    assert_eq!(r.body["contacts"], json!({"email":null,"phone":null}));
    assert!(
        r.body["identifiers"].as_object().unwrap().is_empty(),
        "{:#}",
        r.body
    );
    s.get("/v1/databases/shop/profiles/by/phone/912345678")
        .assert_problem(404, "profile_not_found");
    // A replaced profile derives its contacts again from the new fields.
    let r = s.put(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"phone":"912345678"}}),
    );
    assert_eq!(r.body["contacts"]["phone"]["type"], "mobile");
}

#[test]
fn trailing_bytes_and_undecodable_ids_are_refused() {
    let s = shop();
    let r = send(
        s.req(Method::PATCH, "/v1/databases/shop/profiles/c1")
            .header("content-type", "application/json")
            .body(r#"{"fields":{"city":"A"}} {"fields":{"city":"B"}}"#),
    );
    r.assert_problem(400, "invalid_json");
    s.patch(
        "/v1/databases/shop/profiles/%FF",
        json!({"fields":{"city":"A"}}),
    )
    .assert_problem(400, "customer_id_invalid");
    let page = s.get("/v1/databases/shop/profiles?limit=10");
    assert_eq!(page.body["profiles"], json!([]), "nothing was written");
}

#[test]
fn put_keeps_consent_records_and_projections_show_missing_contacts_as_null() {
    let s = shop();
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"city":"Porto"},"subscriptions":[{"resource":"blog","channel":"email","status":"unsubscribed"}]}),
    );
    let r = s.put(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"city":"Faro"}}),
    );
    assert_eq!(
        r.body["subscriptions"][0]["status"], "unsubscribed",
        "{:#}",
        r.body
    );
    let r = s.get("/v1/databases/shop/profiles/c1?fields=contacts.email.valid,identifiers.crm");
    assert_eq!(r.body["contacts"], json!({"email": null}), "{:#}", r.body);
    assert_eq!(r.body["identifiers"], json!({}));
    s.get("/v1/databases/shop/profiles/c1?fields=tags.x")
        .assert_problem(400, "projection_invalid");
}
