use serde_json::json;

use crate::common::Server;

const DEFAULTS: [&str; 9] = [
    "first_name",
    "last_name",
    "email",
    "phone",
    "birth_date",
    "gender",
    "country",
    "city",
    "registered_at",
];

#[test]
fn default_fields_come_first_and_are_fixed() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    s.post(
        "/v1/databases/shop/fields",
        json!({"name":"score","type":"integer"}),
    );
    let fields = s.get("/v1/databases/shop/fields").body["fields"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<_> = fields
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(&names[..9], DEFAULTS);
    assert_eq!(names[9], "score");
    assert!(fields[..9].iter().all(|f| f["builtin"] == true));
    assert_eq!(
        fields[5]["values"],
        json!(["female", "male", "other", "unknown"])
    );

    s.delete("/v1/databases/shop/fields/email")
        .assert_problem(409, "field_is_default");
    s.post(
        "/v1/databases/shop/fields",
        json!({"name":"email","type":"integer"}),
    )
    .assert_problem(409, "field_is_default");
    s.post(
        "/v1/databases/shop/fields",
        json!({"name":"score","type":"string"}),
    )
    .assert_problem(409, "field_exists");
    assert_eq!(s.count("/v1/databases/shop/fields", "fields"), 10);
}

#[test]
fn every_type_is_checked_on_write() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    let types = [
        ("n_int", json!({"type":"integer"}), json!(7), json!("7")),
        ("n_float", json!({"type":"float"}), json!(2.5), json!("2.5")),
        ("n_str", json!({"type":"string"}), json!("x"), json!(1)),
        (
            "n_date",
            json!({"type":"date"}),
            json!("2024-02-29"),
            json!("2024-02-30"),
        ),
        (
            "n_dt",
            json!({"type":"datetime"}),
            json!("2024-03-01T10:00:00Z"),
            json!("yesterday"),
        ),
        (
            "n_bool",
            json!({"type":"boolean"}),
            json!(true),
            json!("true"),
        ),
        (
            "n_list",
            json!({"type":"list","values":["gold","silver"]}),
            json!("gold"),
            json!(3),
        ),
        (
            "n_ip",
            json!({"type":"ip"}),
            json!("2001:db8::1"),
            json!("300.1.2.3"),
        ),
        (
            "n_tags",
            json!({"type":"tags"}),
            json!(["a", "b"]),
            json!("a"),
        ),
        (
            "n_obj",
            json!({"type":"object"}),
            json!({"k":[1]}),
            json!([1]),
        ),
        (
            "n_arr",
            json!({"type":"array"}),
            json!([1, "x"]),
            json!({"k":1}),
        ),
    ];
    for (name, spec, _, _) in &types {
        let mut spec = spec.clone();
        spec["name"] = json!(name);
        let res = s.post("/v1/databases/shop/fields", spec);
        assert_eq!(res.status, 201, "{name}: {:#}", res.body);
    }
    for (name, _, good, bad) in &types {
        let ok = s.patch(
            "/v1/databases/shop/profiles/c1",
            json!({"fields":{*name: good}}),
        );
        assert_eq!(ok.status, 200, "{name}={good}: {:#}", ok.body);
        assert_eq!(&ok.body["fields"][*name], good, "{name}");
        let res = s.patch(
            "/v1/databases/shop/profiles/c1",
            json!({"fields":{*name: bad}}),
        );
        res.assert_problem(400, "field_type_mismatch");
        assert_eq!(res.body["field"], json!(name));
        assert_eq!(
            &s.get("/v1/databases/shop/profiles/c1").body["fields"][*name],
            good,
            "a refused write changed {name}"
        );
    }
}

#[test]
fn defaults_required_and_declared_values() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    let r = s.post(
        "/v1/databases/shop/fields",
        json!({"name":"loyalty_score","type":"integer","default":0,"subscription_manager":true}),
    );
    assert_eq!(r.status, 201, "{:#}", r.body);
    assert_eq!(r.body["default"], 0);
    assert_eq!(r.body["subscription_manager"], true);
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"city":"Porto"}}),
    );
    assert_eq!(
        s.get("/v1/databases/shop/profiles/c1").body["fields"]["loyalty_score"],
        0
    );

    s.post(
        "/v1/databases/shop/fields",
        json!({"name":"tier","type":"list","values":["gold"],"required":true}),
    );
    s.patch(
        "/v1/databases/shop/profiles/c2",
        json!({"fields":{"city":"Porto"}}),
    )
    .assert_problem(400, "field_required");
    s.get("/v1/databases/shop/profiles/c2")
        .assert_problem(404, "profile_not_found");
    s.patch(
        "/v1/databases/shop/profiles/c2",
        json!({"fields":{"tier":"bronze"}}),
    )
    .assert_problem(400, "field_value_not_allowed");
    assert_eq!(
        s.patch(
            "/v1/databases/shop/profiles/c2",
            json!({"fields":{"tier":"gold"}})
        )
        .status,
        200
    );
    s.patch("/v1/databases/shop/profiles/c2", json!({"unset":["tier"]}))
        .assert_problem(400, "field_required");
}

#[test]
fn bad_field_definitions_are_refused() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    for (spec, code) in [
        (
            json!({"name":"Loyalty","type":"integer"}),
            "field_name_invalid",
        ),
        (
            json!({"name":"has-dash","type":"integer"}),
            "field_name_invalid",
        ),
        (
            json!({"name":"stats","type":"integer"}),
            "field_name_invalid",
        ),
        (json!({"name":"x","type":"money"}), "invalid_body"),
        (
            json!({"name":"x","type":"list"}),
            "field_definition_invalid",
        ),
        (
            json!({"name":"x","type":"integer","values":["a"]}),
            "field_definition_invalid",
        ),
        (
            json!({"name":"x","type":"integer","default":"zero"}),
            "field_type_mismatch",
        ),
    ] {
        let res = s.post("/v1/databases/shop/fields", spec.clone());
        assert_eq!(
            (res.status, res.code()),
            (400, code),
            "{spec}: {:#}",
            res.body
        );
    }
    assert_eq!(s.count("/v1/databases/shop/fields", "fields"), 9);
}

#[test]
fn dropping_a_field_drops_its_values() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    s.post(
        "/v1/databases/shop/fields",
        json!({"name":"score","type":"integer"}),
    );
    s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields":{"score":5}}),
    );
    assert_eq!(s.delete("/v1/databases/shop/fields/score").status, 204);
    s.delete("/v1/databases/shop/fields/score")
        .assert_problem(404, "field_not_found");
    s.post(
        "/v1/databases/shop/fields",
        json!({"name":"score","type":"string"}),
    );
    let p = s.get("/v1/databases/shop/profiles/c1").body;
    assert!(p["fields"].get("score").is_none(), "{p:#}");
    // The field added again under the name is another field: its values are its own,
    // after a replay of the log and after a snapshot alike.
    s.patch(
        "/v1/databases/shop/profiles/c2",
        json!({"fields":{"score":"high"}}),
    );
    let check = |s: &Server, when: &str| {
        let c1 = s.get("/v1/databases/shop/profiles/c1").body;
        assert!(c1["fields"].get("score").is_none(), "{when}: {c1:#}");
        let c2 = s.get("/v1/databases/shop/profiles/c2").body;
        assert_eq!(c2["fields"]["score"], "high", "{when}");
    };
    let s = Server::start_in(s.kill(), &[], &[], true);
    check(&s, "after replaying the log");
    let s = s.restart(true);
    check(&s, "after a snapshot");
}
