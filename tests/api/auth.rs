use reqwest::Method;
use serde_json::json;

use crate::common::{Server, send};

#[test]
fn every_v1_route_needs_a_known_key() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    for (method, path) in [
        (Method::GET, "/v1/databases"),
        (Method::POST, "/v1/databases"),
        (Method::GET, "/v1/databases/shop"),
        (Method::PATCH, "/v1/databases/shop"),
        (Method::DELETE, "/v1/databases/shop"),
        (Method::GET, "/v1/databases/shop/fields"),
        (Method::POST, "/v1/databases/shop/fields"),
        (Method::DELETE, "/v1/databases/shop/fields/x"),
        (Method::GET, "/v1/databases/shop/profiles"),
        (Method::POST, "/v1/databases/shop/profiles/lookup"),
        (Method::GET, "/v1/databases/shop/profiles/by/email/a@b.c"),
        (Method::GET, "/v1/databases/shop/profiles/c1"),
        (Method::PUT, "/v1/databases/shop/profiles/c1"),
        (Method::PATCH, "/v1/databases/shop/profiles/c1"),
        (Method::DELETE, "/v1/databases/shop/profiles/c1"),
        (Method::GET, "/v1/keys"),
        (Method::POST, "/v1/keys"),
        (Method::DELETE, "/v1/keys/x"),
    ] {
        let none = send(s.anon(method.clone(), path).json(&json!({})));
        none.assert_problem(401, "unauthorized");
        let wrong = send(
            s.anon(method.clone(), path)
                .bearer_auth("pk_wrong")
                .json(&json!({})),
        );
        wrong.assert_problem(401, "unauthorized");
        let basic = send(s.anon(method.clone(), path).basic_auth("admin", Some("x")));
        basic.assert_problem(401, "unauthorized");
    }
    assert_eq!(
        s.get("/v1/databases/shop").status,
        200,
        "nothing was deleted"
    );
}

#[test]
fn roles_and_groups_limit_what_a_key_does() {
    let s = Server::start();
    s.create_db("a_db", json!({"group":"a"}));
    s.create_db("b_db", json!({"group":"b"}));
    let reader = s.key("reader", &["a"]);
    let editor = s.key("editor", &["a"]);
    let publisher = s.key("plugin_publisher", &[]);

    // An editor of group a writes a_db and nothing of group b.
    let w = s.call_as(
        &editor,
        Method::PATCH,
        "/v1/databases/a_db/profiles/c1",
        Some(json!({"fields":{"city":"Porto"}})),
    );
    assert_eq!(w.status, 200, "{:#}", w.body);
    s.call_as(
        &editor,
        Method::PATCH,
        "/v1/databases/b_db/profiles/c1",
        Some(json!({"fields":{"city":"Porto"}})),
    )
    .assert_problem(403, "forbidden");
    s.call_as(&editor, Method::GET, "/v1/databases/b_db/profiles/c1", None)
        .assert_problem(403, "forbidden");
    let r = s.call_as(
        &editor,
        Method::POST,
        "/v1/databases/a_db/fields",
        Some(json!({"name":"x","type":"integer"})),
    );
    assert_eq!(r.status, 201);
    s.call_as(
        &editor,
        Method::POST,
        "/v1/databases",
        Some(json!({"name":"c_db","group":"b","consent_confirmed":true})),
    )
    .assert_problem(403, "forbidden");
    s.call_as(
        &editor,
        Method::PATCH,
        "/v1/databases/a_db",
        Some(json!({"group":"b"})),
    )
    .assert_problem(403, "forbidden");

    // A reader reads its group only, and never writes.
    assert_eq!(
        s.call_as(&reader, Method::GET, "/v1/databases/a_db/profiles/c1", None)
            .status,
        200
    );
    s.call_as(&reader, Method::GET, "/v1/databases/b_db", None)
        .assert_problem(403, "forbidden");
    s.call_as(
        &reader,
        Method::PATCH,
        "/v1/databases/a_db/profiles/c1",
        Some(json!({"fields":{"city":"Faro"}})),
    )
    .assert_problem(403, "forbidden");
    s.call_as(
        &reader,
        Method::DELETE,
        "/v1/databases/a_db/profiles/c1",
        None,
    )
    .assert_problem(403, "forbidden");
    s.call_as(&reader, Method::DELETE, "/v1/databases/a_db", None)
        .assert_problem(403, "forbidden");
    let listed = s.call_as(&reader, Method::GET, "/v1/databases", None);
    assert_eq!(
        listed.body["databases"].as_array().unwrap().len(),
        1,
        "only its group's databases"
    );
    s.call_as(&reader, Method::GET, "/v1/keys", None)
        .assert_problem(403, "forbidden");

    // A plugin publisher reaches no database.
    s.call_as(
        &publisher,
        Method::GET,
        "/v1/databases/a_db/profiles/c1",
        None,
    )
    .assert_problem(403, "forbidden");

    assert_eq!(
        s.get("/v1/databases/a_db/profiles/c1").body["fields"]["city"],
        "Porto",
        "refused writes changed nothing"
    );
    assert_eq!(s.get("/v1/databases/b_db/profiles/c1").status, 404);
}

#[test]
fn keys_are_created_listed_deleted_and_stored_hashed() {
    let s = Server::start();
    let created = s.post(
        "/v1/keys",
        json!({"name":"web","role":"reader","groups":["marketing"]}),
    );
    assert_eq!(created.status, 201, "{:#}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let secret = created.body["key"].as_str().unwrap().to_owned();
    assert_eq!(
        s.call_as(&secret, Method::GET, "/v1/databases", None)
            .status,
        200
    );

    let listed = s.get("/v1/keys");
    let text = listed.body.to_string();
    assert!(text.contains(&id) && !text.contains(&secret), "{text}");
    let stored = std::fs::read_to_string(s.data_dir().join("keys.json")).unwrap();
    assert!(!stored.contains(&secret), "the secret is never stored");

    s.post("/v1/keys", json!({"name":"x","role":"superuser"}))
        .assert_problem(400, "invalid_body");
    s.post(
        "/v1/keys",
        json!({"name":"x","role":"reader","groups":["Bad Group"]}),
    )
    .assert_problem(400, "invalid_body");
    assert_eq!(s.delete(&format!("/v1/keys/{id}")).status, 204);
    s.call_as(&secret, Method::GET, "/v1/databases", None)
        .assert_problem(401, "unauthorized");
    s.delete(&format!("/v1/keys/{id}"))
        .assert_problem(404, "key_not_found");
    s.delete("/v1/keys/admin").assert_problem(403, "forbidden");
}

#[test]
fn first_start_writes_a_private_admin_key_and_keys_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    let s = Server::start_in(dir, &[], &[], false);
    assert!(
        s.log().contains("admin.key"),
        "the start-up log says where the key is:\n{}",
        s.log()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path.join("admin.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(s.get("/v1/keys").status, 200);
    let reader = s.key("reader", &["g"]);
    let admin = s.admin.clone();
    let again = s.restart(false);
    assert_eq!(again.admin, admin, "the admin key file is reused");
    assert_eq!(
        again
            .call_as(&reader, Method::GET, "/v1/databases", None)
            .status,
        200
    );
}
