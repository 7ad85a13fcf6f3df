use serde_json::json;

use crate::common::Server;

#[test]
fn create_read_patch_list_delete() {
    let s = Server::start();
    let created = s.create_db(
        "shop",
        json!({"description":"B2C customers","group":"marketing","tags":["b2c"],
               "subscription_manager":{"title":"Your subscriptions","language":"en"},
               "suppression_lists":["global"],
               "resources":[{"name":"blog","channels":["email","push"]}],
               "watchers":false,
               "sender":{"from_name":"Shop","from_email":"news@shop.example","reply_to":null},
               "interest_window_days":30,"default_region":"PT"}),
    );
    let b = &created.body;
    assert_eq!(b["name"], "shop");
    assert_eq!(b["group"], "marketing");
    assert_eq!(b["resources"][0]["channels"], json!(["email", "push"]));
    assert_eq!(b["default_region"], "PT");
    assert!(b["created_at"].as_str().is_some());
    assert_eq!(b["fields"].as_array().unwrap().len(), 9);
    s.create_db("b2b", json!({"tags":["b2b"]}));

    let got = s.get("/v1/databases/shop");
    assert_eq!(got.status, 200);
    assert_eq!(got.body["sender"]["from_email"], "news@shop.example");

    let listed = s.get("/v1/databases?tag=b2c");
    let names: Vec<_> = listed.body["databases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("shop")]);
    assert_eq!(s.count("/v1/databases", "databases"), 2);

    let patched = s.patch(
        "/v1/databases/shop",
        json!({"description":"all customers","watchers":true}),
    );
    assert_eq!(patched.status, 200, "{:#}", patched.body);
    assert_eq!(patched.body["description"], "all customers");
    assert_eq!(patched.body["watchers"], true);
    assert_eq!(
        patched.body["tags"],
        json!(["b2c"]),
        "members left out keep their value"
    );

    assert_eq!(s.delete("/v1/databases/shop").status, 204);
    s.get("/v1/databases/shop")
        .assert_problem(404, "database_not_found");
    s.delete("/v1/databases/shop")
        .assert_problem(404, "database_not_found");
}

#[test]
fn bad_database_bodies_are_refused_and_change_nothing() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    s.post(
        "/v1/databases",
        json!({"name":"shop","consent_confirmed":true}),
    )
    .assert_problem(409, "database_exists");
    s.post("/v1/databases", json!({"name":"new"}))
        .assert_problem(400, "consent_required");
    s.post(
        "/v1/databases",
        json!({"name":"Bad Name!","consent_confirmed":true}),
    )
    .assert_problem(400, "database_name_invalid");
    s.post(
        "/v1/databases",
        json!({"name":"x","consent_confirmed":true,"colour":"red"}),
    )
    .assert_problem(400, "invalid_body");
    s.post(
        "/v1/databases",
        json!({"name":"x","consent_confirmed":true,"interest_window_days":"30"}),
    )
    .assert_problem(400, "invalid_body");
    for (bad, code, setting) in [
        (
            json!({"default_region":"XX"}),
            "setting_invalid",
            "default_region",
        ),
        (
            json!({"interest_window_days":0}),
            "setting_invalid",
            "interest_window_days",
        ),
        (
            json!({"sender":{"from_email":"nope"}}),
            "setting_invalid",
            "sender.from_email",
        ),
        (
            json!({"resources":[{"name":"blog","channels":[]}]}),
            "setting_invalid",
            "resources",
        ),
        (
            json!({"subscription_manager":{"title":"t","language":"English"}}),
            "setting_invalid",
            "subscription_manager.language",
        ),
        (json!({"group":"Bad Group"}), "setting_invalid", "group"),
        (json!({"name":"renamed"}), "setting_invalid", "name"),
        (
            json!({"resources":[{"name":"blog","channels":["fax"]}]}),
            "invalid_body",
            "",
        ),
        (json!({"consent_confirmed":false}), "consent_required", ""),
    ] {
        let res = s.patch("/v1/databases/shop", bad.clone());
        assert_eq!(
            (res.status, res.code()),
            (400, code),
            "{bad}: {:#}",
            res.body
        );
        if !setting.is_empty() {
            assert_eq!(res.body["setting"], setting, "{bad}");
        }
    }
    assert_eq!(s.count("/v1/databases", "databases"), 1);
    let shop = s.get("/v1/databases/shop").body;
    assert_eq!(shop["interest_window_days"], 30);
    assert_eq!(shop["default_region"], serde_json::Value::Null);
}
