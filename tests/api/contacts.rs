//! Contacts, subscriptions, suppression lists, channel eligibility and audiences over
//! HTTP.

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{Server, send};

/// A database with a default phone region and three resources.
fn shop(s: &Server) {
    s.create_db(
        "shop",
        json!({"default_region": "PT", "group": "retail",
               "resources": [{"name": "blog", "channels": ["email", "push"]},
                             {"name": "alerts", "channels": ["sms"]}]}),
    );
}

fn channels(s: &Server, id: &str) -> Value {
    let res = s.get(&format!("/v1/databases/shop/profiles/{id}?fields=channels"));
    assert_eq!(res.status, 200, "{:#}", res.body);
    res.body["channels"].clone()
}

fn reason(c: &Value, channel: &str) -> Value {
    c[channel]["reason"].clone()
}

#[test]
fn contacts_are_validated_on_write_and_channels_say_why() {
    let s = Server::start();
    shop(&s);
    // Odd emails and phones are kept and flagged, never refused.
    let cases = [
        ("ok", "Ana@Example.COM", "912 345 678"),
        ("quoted", "\"ana smith\"@example.com", "+351 21 234 5678"),
        ("literal", "ana@[192.168.0.1]", "+1 800 234 5678"),
        ("dot", "ana@example.com.", "+351 91 234 5678 999 999"),
        ("spaces", "ana @example.com", "91A 345 678"),
        ("unicode", "josé@bücher.example", "+44 7400 123456"),
    ];
    for (id, email, phone) in cases {
        let res = s.patch(
            &format!("/v1/databases/shop/profiles/{id}"),
            json!({"fields": {"email": email, "phone": phone}}),
        );
        assert_eq!(res.status, 200, "{id}: {:#}", res.body);
        assert_eq!(res.body["fields"]["email"], email, "stored as given");
    }
    let contacts = |id: &str| {
        s.get(&format!("/v1/databases/shop/profiles/{id}?fields=contacts"))
            .body["contacts"]
            .clone()
    };
    let ok = contacts("ok");
    assert_eq!(ok["email"]["valid"], true);
    assert_eq!(ok["email"]["normalized"], "ana@example.com");
    assert_eq!(
        ok["phone"],
        json!({"value":"912 345 678","valid":true,"e164":"+351912345678","region":"PT","type":"mobile"})
    );
    for id in ["quoted", "literal", "dot", "spaces"] {
        let c = contacts(id);
        assert_eq!(c["email"]["valid"], false, "{id}: {c:#}");
        assert!(
            c["email"]["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{id}: {c:#}"
        );
    }
    assert_eq!(contacts("unicode")["email"]["valid"], true);
    assert_eq!(
        contacts("unicode")["email"]["normalized"],
        "josé@xn--bcher-kva.example"
    );
    assert_eq!(contacts("quoted")["phone"]["type"], "fixed_line");
    assert_eq!(contacts("literal")["phone"]["type"], "toll_free");
    assert_eq!(contacts("dot")["phone"]["valid"], false);
    assert_eq!(contacts("spaces")["phone"]["valid"], false);
    assert_eq!(contacts("unicode")["phone"]["region"], "GB");

    // Found by any spelling of the same address or number.
    for path in [
        "/v1/databases/shop/profiles/by/email/ANA@example.com",
        "/v1/databases/shop/profiles/by/phone/+351912345678",
        "/v1/databases/shop/profiles/by/phone/00351%20912%20345%20678",
        "/v1/databases/shop/profiles/by/email/jos%C3%A9@B%C3%BCcher.example",
    ] {
        let res = s.get(path);
        assert_eq!(res.status, 200, "{path}: {:#}", res.body);
    }

    // Why each channel is closed, in the documented order.
    assert_eq!(
        channels(&s, "ok"),
        json!({
        "email": {"eligible": false, "reason": "not_subscribed"},
        "sms": {"eligible": false, "reason": "not_subscribed"},
        "push": {"eligible": false, "reason": "no_contact"}})
    );
    assert_eq!(reason(&channels(&s, "quoted"), "email"), "invalid_contact");
    assert_eq!(reason(&channels(&s, "quoted"), "sms"), "landline");
    assert_eq!(reason(&channels(&s, "literal"), "sms"), "not_mobile");
    assert_eq!(reason(&channels(&s, "dot"), "sms"), "invalid_contact");
    s.patch(
        "/v1/databases/shop/profiles/none",
        json!({"fields": {"city": "Faro"}}),
    );
    assert_eq!(reason(&channels(&s, "none"), "email"), "no_contact");

    // Subscribed on a channel: eligible; withdrawn: unsubscribed.
    let res = s.patch(
        "/v1/databases/shop/profiles/ok",
        json!({"identifiers": {"device": "tok-1"},
               "subscriptions": [
                   {"resource": "blog", "channel": "email", "status": "subscribed"},
                   {"resource": "alerts", "channel": "sms", "category": "orders", "status": "subscribed"},
                   {"resource": "blog", "channel": "push", "status": "unsubscribed"}]}),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(
        res.body["channels"],
        json!({
        "email": {"eligible": true}, "sms": {"eligible": true},
        "push": {"eligible": false, "reason": "unsubscribed"}})
    );
    let res =
        s.get("/v1/databases/shop/profiles/ok?fields=channels.sms.eligible,channels.push.reason");
    assert_eq!(
        res.body["channels"],
        json!({"sms": {"eligible": true}, "push": {"reason": "unsubscribed"}})
    );
    s.get("/v1/databases/shop/profiles/ok?fields=channels.fax")
        .assert_problem(400, "projection_invalid");
}

#[test]
fn suppression_lists_take_effect_on_the_next_read_and_survive_a_restart() {
    let s = Server::start();
    // A database may attach only lists that exist.
    s.post(
        "/v1/databases",
        json!({"name": "shop", "consent_confirmed": true, "suppression_lists": ["partners"]}),
    )
    .assert_problem(400, "setting_invalid");
    let res = s.put(
        "/v1/suppression-lists/partners",
        json!({"description": "partner opt-outs"}),
    );
    assert_eq!(res.status, 201, "{:#}", res.body);
    assert_eq!(
        s.put("/v1/suppression-lists/partners", json!({})).status,
        200
    );
    s.put("/v1/suppression-lists/Bad..Name", json!({}))
        .assert_problem(400, "suppression_list_name_invalid");
    shop(&s);
    let res = s.patch(
        "/v1/databases/shop",
        json!({"suppression_lists": ["partners"]}),
    );
    assert_eq!(res.body["suppression_lists"], json!(["global", "partners"]));
    s.patch("/v1/databases/shop", json!({"suppression_lists": ["nope"]}))
        .assert_problem(400, "setting_invalid");

    for (id, email, phone) in [
        ("a", "ana@mail.example.com", "912345678"),
        ("b", "bea@other.pt", "+351 93 123 4567"),
    ] {
        let res = s.patch(
            &format!("/v1/databases/shop/profiles/{id}"),
            json!({"fields": {"email": email, "phone": phone},
                   "subscriptions": [{"resource": "blog", "channel": "email", "status": "subscribed"},
                                     {"resource": "alerts", "channel": "sms", "status": "subscribed"}]}),
        );
        assert_eq!(res.status, 200, "{:#}", res.body);
    }
    assert_eq!(channels(&s, "a")["email"]["eligible"], true);

    s.post(
        "/v1/suppression-lists/global/entries",
        json!({"phones": ["912345678"], "region": "XX"}),
    )
    .assert_problem(400, "suppression_entry_invalid");
    // One bad entry: the whole request is refused, each bad entry named, nothing added.
    let res = s.post(
        "/v1/suppression-lists/partners/entries",
        json!({"emails": ["ok@x.pt", "not an email"], "domains": ["example.com", "ana@example.com", "exa mple.com"],
               "phones": ["12", "+351912345678"]}),
    );
    res.assert_problem(400, "suppression_entry_invalid");
    let bad: Vec<(String, u64)> = res.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["index"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        bad,
        [
            ("email".into(), 1),
            ("domain".into(), 1),
            ("domain".into(), 2),
            ("phone".into(), 0)
        ]
    );
    assert_eq!(
        s.get("/v1/suppression-lists/partners").body["entries"],
        json!({"emails":0,"domains":0,"phones":0})
    );

    // A whole domain covers its subdomains; the next read sees it.
    let res = s.post(
        "/v1/suppression-lists/partners/entries",
        json!({"domains": ["@Example.COM"]}),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["changed"]["domains"], 1);
    let page = s
        .get("/v1/suppression-lists/partners/entries?kind=domain")
        .body;
    assert_eq!(
        page,
        json!({"kind": "domain", "entries": ["example.com"], "next_after": null})
    );
    s.get("/v1/suppression-lists/partners/entries?kind=fax")
        .assert_problem(400, "invalid_query");
    assert_eq!(
        channels(&s, "a")["email"],
        json!({"eligible": false, "reason": "suppressed", "list": "partners"})
    );
    // A national number on the global stop list, given with its region.
    let res = s.post(
        "/v1/suppression-lists/global/entries",
        json!({"phones": ["93 123 4567"], "region": "PT"}),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(
        channels(&s, "b")["sms"],
        json!({"eligible": false, "reason": "suppressed", "list": "global"})
    );
    assert_eq!(channels(&s, "b")["email"]["eligible"], true);

    // Lists are read by readers, changed by editors and admins only.
    let reader = s.key("reader", &["retail"]);
    assert_eq!(
        s.call_as(&reader, Method::GET, "/v1/suppression-lists", None)
            .status,
        200
    );
    s.call_as(
        &reader,
        Method::POST,
        "/v1/suppression-lists/global/entries",
        Some(json!({"emails": ["x@y.pt"]})),
    )
    .assert_problem(403, "forbidden");
    s.call_as(
        &reader,
        Method::GET,
        "/v1/suppression-lists/global/entries?kind=phone",
        None,
    )
    .assert_problem(403, "forbidden");
    // An editor of any group may add (it only protects more people), not take out.
    let editor = s.key("editor", &["other"]);
    let add = json!({"emails": ["e@x.pt"]});
    let res = s.call_as(
        &editor,
        Method::POST,
        "/v1/suppression-lists/global/entries",
        Some(add.clone()),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    s.call_as(
        &editor,
        Method::DELETE,
        "/v1/suppression-lists/global/entries",
        Some(add),
    )
    .assert_problem(403, "forbidden");
    let seen = s
        .call_as(&editor, Method::GET, "/v1/suppression-lists/partners", None)
        .body;
    assert_eq!(
        seen["databases"],
        json!([]),
        "another group's databases are not named"
    );
    let publisher = s.key("plugin_publisher", &[]);
    s.call_as(&publisher, Method::GET, "/v1/suppression-lists", None)
        .assert_problem(403, "forbidden");

    s.delete("/v1/suppression-lists/partners")
        .assert_problem(409, "suppression_list_in_use");
    s.delete("/v1/suppression-lists/global")
        .assert_problem(409, "suppression_list_protected");
    s.get("/v1/suppression-lists/nope")
        .assert_problem(404, "suppression_list_not_found");
    s.post(
        "/v1/suppression-lists/nope/entries",
        json!({"emails": ["a@b.pt"]}),
    )
    .assert_problem(404, "suppression_list_not_found");
    let detail = s.get("/v1/suppression-lists/partners").body;
    assert_eq!(detail["databases"], json!(["shop"]));
    assert_eq!(detail["description"], "partner opt-outs");

    // Kept across a restart, and removals count from the next read.
    let s = s.restart(false);
    assert_eq!(channels(&s, "a")["email"]["reason"], "suppressed");
    assert_eq!(channels(&s, "b")["sms"]["reason"], "suppressed");
    let res = send(
        s.req(Method::DELETE, "/v1/suppression-lists/partners/entries")
            .json(&json!({"domains": ["example.com"]})),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(channels(&s, "a")["email"]["eligible"], true);
    s.patch("/v1/databases/shop", json!({"suppression_lists": []}));
    assert_eq!(s.delete("/v1/suppression-lists/partners").status, 204);
    let names: Vec<Value> = s.get("/v1/suppression-lists").body["lists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].clone())
        .collect();
    assert_eq!(names, [json!("global")]);
}

#[test]
fn subscriptions_come_from_patches_imports_and_events_and_keep_their_history() {
    let s = Server::start();
    shop(&s);
    let base = "/v1/databases/shop/profiles/c1";
    let res = s.patch(
        base,
        json!({"fields": {"email": "c1@example.com"},
               "subscriptions": [{"resource": "blog", "channel": "email", "category": "news", "status": "subscribed",
                                  "at": "2024-01-01T00:00:00Z"}]}),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    // Bad subscriptions are refused and change nothing.
    for (bad, why) in [
        (
            json!({"resource": "shop", "channel": "email", "status": "subscribed"}),
            "resource",
        ),
        (
            json!({"resource": "blog", "channel": "sms", "status": "subscribed"}),
            "channel the resource lacks",
        ),
        (
            json!({"resource": "blog", "channel": "email", "status": "subscribed", "at": "2999-01-01T00:00:00Z"}),
            "future",
        ),
    ] {
        s.patch(
            base,
            json!({"fields": {"city": "Faro"}, "subscriptions": [bad]}),
        )
        .assert_problem(400, "subscription_invalid");
        assert_eq!(s.get(base).body["fields"]["city"], Value::Null, "{why}");
    }
    // A subscribe dated ahead (a skewed clock) counts as now: the opt-out that follows
    // wins.
    let ahead = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(23)).to_string();
    let sub = |status: &str, at: Option<&str>| {
        let mut c = json!({"resource": "blog", "channel": "push", "status": status});
        if let Some(at) = at {
            c["at"] = json!(at);
        }
        json!({"subscriptions": [c]})
    };
    let c2 = "/v1/databases/shop/profiles/c2";
    assert_eq!(s.patch(c2, sub("subscribed", Some(&ahead))).status, 200);
    assert_eq!(s.patch(c2, sub("unsubscribed", None)).status, 200);
    let push: Vec<Value> = s.get(&format!("{c2}/subscriptions")).body["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["channel"] == "push")
        .cloned()
        .collect();
    assert_eq!(push[0]["status"], "unsubscribed", "{push:#?}");
    s.patch(
        base,
        json!({"subscriptions": [{"resource": "blog", "channel": "fax", "status": "subscribed"}]}),
    )
    .assert_problem(400, "invalid_body");

    // Events: an unsubscribe from March, then a late one from February; an event naming
    // an unknown resource is refused on its own.
    let res = s.post(
        "/v1/databases/shop/events",
        json!([
            {"customer_id": "c1", "type": "subscription", "time": "2024-03-01T00:00:00Z",
             "data": {"resource": "blog", "channel": "email", "category": "news", "status": "unsubscribed"}},
            {"customer_id": "c1", "type": "subscription", "time": "2024-02-01T00:00:00Z",
             "data": {"resource": "blog", "channel": "email", "category": "news", "status": "subscribed"}},
            {"customer_id": "c1", "type": "subscription", "time": "2024-02-01T00:00:00Z",
             "data": {"resource": "nope", "channel": "email", "status": "subscribed"}},
            {"customer_id": "c1", "type": "page_view", "data": {"url": "/"}},
        ]),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["accepted"], 3, "{:#}", res.body);
    assert_eq!(res.body["rejected"][0]["index"], 2);
    assert_eq!(res.body["rejected"][0]["code"], "subscription_invalid");
    assert_eq!(reason(&channels(&s, "c1"), "email"), "unsubscribed");

    // An import column subscribes again, now.
    let res = s.import(
        "shop",
        "format=csv&wait=true",
        "customer_id,subscription.blog.email.news,subscription.alerts.sms\nc1,subscribed,\n",
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["rows_accepted"], 1, "{:#}", res.body);
    assert_eq!(channels(&s, "c1")["email"]["eligible"], true);

    let check = |s: &Server| {
        let res = s.get(&format!("{base}/subscriptions"));
        assert_eq!(res.status, 200, "{:#}", res.body);
        let current = res.body["subscriptions"].as_array().unwrap().clone();
        assert_eq!(current.len(), 1, "{:#}", res.body);
        assert_eq!(
            (current[0]["status"].clone(), current[0]["source"].clone()),
            (json!("subscribed"), json!("import"))
        );
        // Newest first; February's late re-subscribe stays as the last confirmation of
        // January's choice.
        let history: Vec<(String, String)> = res.body["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["status"].as_str().unwrap().into(),
                    h["source"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            history,
            [
                ("subscribed".into(), "import".into()),
                ("unsubscribed".into(), "event".into()),
                ("subscribed".into(), "event".into()),
                ("subscribed".into(), "api".into()),
            ]
        );
    };
    check(&s);
    let timeline = s
        .get(&format!("{base}/activity?category=subscriptions"))
        .body;
    assert_eq!(
        timeline["events"].as_array().map(Vec::len),
        Some(2),
        "{timeline:#}"
    );
    let s = s.restart(false);
    check(&s);
    // A cell that is not a status is that row's error; a bad column name, the file's.
    let res = s.import(
        "shop",
        "format=csv&wait=true",
        "customer_id,subscription.blog.email\nc1,maybe\n",
    );
    assert_eq!(res.body["rows_rejected"], 1, "{:#}", res.body);
    assert_eq!(
        res.body["errors"][0]["code"], "subscription_invalid",
        "{:#}",
        res.body
    );
    s.import(
        "shop",
        "format=csv&wait=true",
        "customer_id,subscription.blog.fax\nc1,1\n",
    )
    .assert_problem(400, "import_header_invalid");
    // The right of access: everything held, in one document.
    let res = send(s.req(Method::GET, &format!("{base}/export")));
    assert_eq!(res.status, 200, "{:#}", res.body);
    let export = res.body;
    assert_eq!(export["database"], "shop");
    assert_eq!(export["profile"]["customer_id"], "c1");
    assert_eq!(export["profile"]["fields"]["email"], "c1@example.com");
    assert_eq!(
        export["subscription_history"].as_array().map(Vec::len),
        Some(4)
    );
    let types: Vec<&str> = export["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["page_view", "subscription", "subscription"],
        "newest first"
    );
    s.get("/v1/databases/shop/profiles/nobody/export")
        .assert_problem(404, "profile_not_found");
    s.get("/v1/databases/shop/profiles/nobody/subscriptions")
        .assert_problem(404, "profile_not_found");
}

#[test]
fn the_subscription_manager_lists_its_fields_and_resources() {
    let s = Server::start();
    s.create_db(
        "shop",
        json!({"subscription_manager": {"title": "Stay in touch", "language": "pt-PT"},
               "resources": [{"name": "blog", "channels": ["email"]}]}),
    );
    for (name, flag) in [("shoe_size", true), ("notes", false)] {
        let res = s.post(
            "/v1/databases/shop/fields",
            json!({"name": name, "type": "string", "subscription_manager": flag}),
        );
        assert_eq!(res.status, 201, "{:#}", res.body);
    }
    let res = s.get("/v1/databases/shop/subscription-manager");
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["title"], "Stay in touch");
    assert_eq!(res.body["language"], "pt-PT");
    assert_eq!(
        res.body["resources"],
        json!([{"name": "blog", "channels": ["email"]}])
    );
    let fields: Vec<&str> = res.body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["shoe_size"]);
}

#[test]
fn watchers_join_every_audience_of_their_group() {
    let s = Server::start();
    shop(&s);
    s.create_db("staff", json!({"group": "retail", "watchers": true}));
    s.create_db("elsewhere", json!({"group": "other", "watchers": true}));
    s.create_db("outlet", json!({"group": "retail"}));
    let sub = json!([{"resource": "blog", "channel": "email", "status": "subscribed"}]);
    for i in 0..5 {
        let res = s.patch(
            &format!("/v1/databases/shop/profiles/c{i}"),
            json!({"fields": {"email": format!("c{i}@example.com")}, "subscriptions": if i == 4 { json!([]) } else { sub.clone() }}),
        );
        assert_eq!(res.status, 200, "{:#}", res.body);
    }
    // Watchers need no subscription, only a reachable contact off the stop lists.
    for (db, id, email) in [
        ("staff", "w1", "boss@shop.example"),
        ("staff", "w2", "bad@"),
        ("elsewhere", "x", "x@other.example"),
        ("staff", "w3", "stop@shop.example"),
    ] {
        s.patch(
            &format!("/v1/databases/{db}/profiles/{id}"),
            json!({"fields": {"email": email}}),
        );
    }
    s.post(
        "/v1/suppression-lists/global/entries",
        json!({"emails": ["stop@shop.example"]}),
    );

    let seen: Vec<(String, String, bool)> = s
        .pages(
            "/v1/databases/shop/audience?channel=email&resource=blog&limit=2",
            "recipients",
        )
        .iter()
        .map(|r| {
            (
                r["database"].as_str().unwrap().to_owned(),
                r["address"].as_str().unwrap().to_owned(),
                r["watcher"].as_bool().unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String, bool)> = (0..4)
        .map(|i| ("shop".into(), format!("c{i}@example.com"), false))
        .chain([("staff".into(), "boss@shop.example".into(), true)])
        .collect();
    assert_eq!(seen, want);
    // The watchers database's own audience has no other watchers; a group without
    // watchers gets none.
    let own = s.get("/v1/databases/staff/audience?channel=email").body;
    assert_eq!(
        own["recipients"].as_array().unwrap().len(),
        0,
        "staff subscribed to nothing: {own:#}"
    );
    s.get("/v1/databases/shop/audience?channel=email&resource=alerts")
        .assert_problem(400, "channel_invalid");
    s.get("/v1/databases/shop/audience?channel=email&resource=nope")
        .assert_problem(400, "subscription_invalid");
    s.get("/v1/databases/shop/audience?channel=fax")
        .assert_problem(400, "invalid_query");
    s.get("/v1/databases/shop/audience?channel=email&cursor=zz")
        .assert_problem(400, "cursor_invalid");
}
