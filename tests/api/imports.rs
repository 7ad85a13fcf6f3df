//! Imports over HTTP: CSV (wide and long), JSON and NDJSON files as jobs.

use std::io::Read;
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::blocking::Body;
use serde_json::{Value, json};

use crate::common::{Res, Server, send};

/// A server with database `shop` and an integer field `score`.
fn shop() -> Server {
    Server::shop_with_score()
}

/// An import into `shop` (see [`Server::import`]).
fn import(s: &Server, query: &str, body: impl Into<Body>) -> Res {
    s.import("shop", query, body)
}

/// An import of a large streamed body. The client's usual minute is too short for one
/// on a busy two-core machine with the other tests running beside it; the bounds these
/// tests hold are on memory, not on time.
fn import_large(s: &Server, query: &str, body: Body) -> Res {
    send(
        s.req(Method::POST, &format!("/v1/databases/shop/imports?{query}"))
            .timeout(Duration::from_secs(1200))
            .body(body),
    )
}

fn profile(s: &Server, id: &str) -> Value {
    let res = s.get(&format!("/v1/databases/shop/profiles/{id}"));
    assert_eq!(res.status, 200, "{id}: {:#}", res.body);
    res.body
}

/// An atomic import's job that failed with `code` and applied nothing.
fn assert_applied_none(res: &Res, code: &str) {
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["status"], "failed", "{:#}", res.body);
    assert_eq!(res.body["error"]["code"], code, "{:#}", res.body);
    assert_eq!(res.body["rows_accepted"], 0);
    assert_eq!(res.body["rows_held"], 0);
}

#[test]
fn a_csv_import_applies_good_rows_and_reports_bad_ones() {
    let s = shop();
    s.patch(
        "/v1/databases/shop/profiles/c2",
        json!({"fields": {"first_name": "Bea", "city": "Faro"}}),
    );
    let file = "\u{feff}customer_id,first_name,city,score\r\n\
                c1,\"Ana, \"\"Nita\"\"\",Lisbon,7\r\n\
                c2,,Porto,\r\n\
                c3,Carla,Braga,lots\r\n\
                c4,Diana\r\n\
                c5,Eva,Coimbra,-2\r\n";
    let res = import(&s, "format=csv&wait=true", file);
    assert_eq!(res.status, 200, "{:#}", res.body);
    let job = &res.body;
    assert_eq!(job["status"], "done");
    assert_eq!(job["format"], "csv");
    assert_eq!(
        (
            &job["rows_total"],
            &job["rows_accepted"],
            &job["rows_rejected"]
        ),
        (&json!(5), &json!(3), &json!(2)),
        "{job:#}"
    );
    assert_eq!(job["progress"], 1.0);
    assert_eq!(job["bytes_read"], file.len());
    let errors = job["errors"].as_array().unwrap();
    assert_eq!(errors[0]["row"], 3);
    assert_eq!(errors[0]["column"], "score");
    assert_eq!(errors[0]["code"], "field_type_mismatch");
    assert_eq!(errors[1]["row"], 4);
    assert_eq!(errors[1]["code"], "import_row_width");

    let c1 = profile(&s, "c1");
    assert_eq!(c1["fields"]["first_name"], "Ana, \"Nita\"");
    assert_eq!(c1["fields"]["score"], 7);
    // An empty cell leaves the field as it was; given cells merge into the profile.
    let c2 = profile(&s, "c2");
    assert_eq!(c2["fields"]["first_name"], "Bea");
    assert_eq!(c2["fields"]["city"], "Porto");
    assert_eq!(
        s.get("/v1/databases/shop/profiles/c3").code(),
        "profile_not_found"
    );
}

#[test]
fn a_job_can_be_followed_and_is_listed_newest_first() {
    let s = shop();
    let first = import(&s, "format=csv", "customer_id,city\nc1,Lisbon\n");
    assert_eq!(first.status, 202, "{:#}", first.body);
    let id = first.body["job"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let job = loop {
        let job = s.get(&format!("/v1/databases/shop/imports/{id}"));
        assert_eq!(job.status, 200, "{:#}", job.body);
        if job.body["status"] != "running" {
            break job.body;
        }
        assert!(Instant::now() < deadline, "the job never finished");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(job["status"], "done");
    assert_eq!(job["rows_accepted"], 1);
    assert!(job["finished_at"].is_string());
    let second = import(&s, "format=ndjson&wait=true", "{\"customer_id\":\"c2\"}\n");
    assert_eq!(second.status, 200);
    let list = s.get("/v1/databases/shop/imports");
    let ids: Vec<&str> = list.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.body["job"].as_str().unwrap(), id.as_str()]);
    s.get("/v1/databases/shop/imports/01ARZ3NDEKTSV4RRFFQ69G5FAV")
        .assert_problem(404, "job_not_found");
    s.get("/v1/databases/shop/imports/nope")
        .assert_problem(404, "job_not_found");
}

#[test]
fn a_bad_file_or_query_is_refused_before_any_row() {
    let s = shop();
    let res = import(&s, "format=csv", "customer_id,shoe_size\nc1,42\n");
    res.assert_problem(400, "import_column_unknown");
    assert_eq!(res.body["column"], "shoe_size");
    assert!(res.body["job"].is_string());
    let job = s.get(&format!(
        "/v1/databases/shop/imports/{}",
        res.body["job"].as_str().unwrap()
    ));
    assert_eq!(job.body["status"], "failed");
    assert_eq!(job.body["error"]["code"], "import_column_unknown");

    import(&s, "format=csv", "").assert_problem(400, "import_empty");
    import(&s, "format=csv", "customer_id,city\n").assert_problem(400, "import_no_rows");
    import(&s, "format=csv", "city\nLisbon\n").assert_problem(400, "import_header_invalid");
    import(&s, "format=xml", "x").assert_problem(400, "invalid_query");
    import(&s, "format=csv&delimiter=x", "x").assert_problem(400, "invalid_query");
    import(&s, "format=csv&atomic=maybe", "x").assert_problem(400, "invalid_query");
    import(&s, "format=csv&limit=5", "x").assert_problem(400, "invalid_query");
    assert_eq!(s.count("/v1/databases/shop/profiles", "profiles"), 0);

    // Ignored unknown columns, and another delimiter.
    let res = import(
        &s,
        "format=csv&wait=true&unknown_columns=ignore&delimiter=;",
        "customer_id;shoe_size;city\nc1;42;Lisbon\n",
    );
    assert_eq!(res.body["rows_accepted"], 1, "{:#}", res.body);
    assert_eq!(profile(&s, "c1")["fields"]["city"], "Lisbon");

    // Readers may follow jobs but not start them.
    let reader = s.key("reader", &["default"]);
    let res = send(
        s.anon(Method::POST, "/v1/databases/shop/imports?format=csv")
            .bearer_auth(&reader)
            .body("customer_id\nc9\n"),
    );
    res.assert_problem(403, "forbidden");
    let res = s.call_as(&reader, Method::GET, "/v1/databases/shop/imports", None);
    assert_eq!(res.status, 200);
}

#[test]
fn long_csv_json_and_ndjson_files() {
    let s = shop();
    let long =
        "customerId,fieldName,fieldValue\nc1,city,Lisbon\nc1,score,3\nc2,city,Porto\nc2,nope,x\n";
    let res = import(&s, "format=csv-long&wait=true", long);
    assert_eq!(
        (
            &res.body["rows_total"],
            &res.body["rows_accepted"],
            &res.body["rows_rejected"]
        ),
        (&json!(4), &json!(3), &json!(1)),
        "{:#}",
        res.body
    );
    assert_eq!(res.body["errors"][0]["row"], 4);
    assert_eq!(profile(&s, "c1")["fields"]["score"], 3);

    let array = json!([
        {"customer_id": "j1", "city": "Braga", "score": 5},
        {"customer_id": "j2", "fields": {"city": "Faro"}, "tags": {"add": ["vip"]}},
        {"customer_id": "j3", "score": "many"},
    ]);
    let res = import(&s, "format=json&wait=true", array.to_string());
    assert_eq!(res.body["rows_accepted"], 2, "{:#}", res.body);
    assert_eq!(res.body["errors"][0]["row"], 3);
    assert_eq!(res.body["errors"][0]["code"], "field_type_mismatch");
    assert_eq!(profile(&s, "j2")["tags"], json!(["vip"]));

    // JSON cut in half: the elements before the cut are imported, the job fails.
    let res = import(
        &s,
        "format=json&wait=true",
        r#"[{"customer_id":"k1"},{"customer_id":"k2","ci"#,
    );
    assert_eq!(res.body["status"], "failed", "{:#}", res.body);
    assert_eq!(res.body["error"]["code"], "import_json_syntax");
    assert_eq!(res.body["rows_accepted"], 1);
    profile(&s, "k1");

    let lines =
        "{\"customer_id\":\"n1\",\"city\":\"Porto\"}\nnot json\n\n{\"customer_id\":\"n2\"}\n";
    let res = import(&s, "format=ndjson&wait=true", lines);
    assert_eq!(res.body["rows_accepted"], 2, "{:#}", res.body);
    assert_eq!(res.body["errors"][0]["row"], 2);
    assert_eq!(res.body["errors"][0]["code"], "import_json_syntax");
}

/// A body made as it is read, so it never exists whole on either side: `header`, then
/// `rows` rows, each written by `row` (its index, the buffer to append to).
struct Made<F> {
    rows: u64,
    next: u64,
    row: F,
    buf: Vec<u8>,
    at: usize,
}

fn made<F: FnMut(u64, &mut Vec<u8>)>(header: &[u8], rows: u64, row: F) -> Made<F> {
    Made {
        rows,
        next: 0,
        row,
        buf: header.to_vec(),
        at: 0,
    }
}

impl<F: FnMut(u64, &mut Vec<u8>)> Read for Made<F> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.buf.len() {
            self.buf.clear();
            self.at = 0;
            while self.buf.len() < 64 * 1024 && self.next < self.rows {
                (self.row)(self.next, &mut self.buf);
                self.next += 1;
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
fn a_streamed_body_of_unknown_length_imports_and_survives_a_crash() {
    let s = shop();
    let rows = 30_000;
    let body = Body::new(made(b"customer_id,city,score\n", rows, |i, buf| {
        buf.extend_from_slice(format!("g{i},City {},{}\n", i % 50, i % 1000).as_bytes());
    }));
    let res = import(&s, "format=csv&wait=true", body);
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["rows_accepted"], rows, "{:#}", res.body);
    assert_eq!(res.body["rows_rejected"], 0);
    // Killed, not stopped: the rows come back from the WAL.
    let s = Server::start_in(s.kill(), &[], &[], false);
    assert_eq!(
        profile(&s, &format!("g{}", rows - 1))["fields"]["score"],
        (rows - 1) % 1000
    );
}

/// Runs `persona import` against the server; returns the exit code and stderr.
fn cli(s: &Server, args: &[&str], key: &str) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_persona"))
        .arg("import")
        .args(args)
        .env("PERSONA_URL", &s.base)
        .env("PERSONA_KEY", key)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_command_line_importer_streams_a_file_and_reports() {
    let s = shop();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(&good, "customer_id;city\nc1;Lisbon\nc2;Porto\n").unwrap();
    let good = good.to_str().unwrap();
    let (code, err) = cli(
        &s,
        &["--db", "shop", "--format", "csv", "--delimiter", ";", good],
        &s.admin,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 rows read, 2 imported, 0 refused"), "{err}");
    assert_eq!(profile(&s, "c2")["fields"]["city"], "Porto");

    let bad = dir.path().join("bad.ndjson");
    std::fs::write(
        &bad,
        "{\"customer_id\":\"n1\",\"score\":\"x\"}\n{\"customer_id\":\"n2\"}\n",
    )
    .unwrap();
    let (code, err) = cli(
        &s,
        &["--db", "shop", "--format", "ndjson", bad.to_str().unwrap()],
        &s.admin,
    );
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("row 1, column score"), "{err}");
    assert!(err.contains("field_type_mismatch"), "{err}");

    let unknown = dir.path().join("unknown.csv");
    std::fs::write(&unknown, "customer_id,shoe_size\nc1,42\n").unwrap();
    let (code, err) = cli(
        &s,
        &["--db", "shop", "--format", "csv", unknown.to_str().unwrap()],
        &s.admin,
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("import_column_unknown"), "{err}");

    let (code, err) = cli(&s, &["--db", "shop", "--format", "csv", good], "pk_wrong");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unauthorized"), "{err}");
    let (code, err) = cli(
        &s,
        &["--db", "shop", "--format", "csv", "/no/such/file"],
        &s.admin,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot open"), "{err}");
}

#[test]
fn rows_without_a_customer_id_find_or_create_by_email_or_phone() {
    let s = Server::start();
    s.create_db("shop", json!({"default_region": "PT"}));
    let file = "email,phone,city\nAna@Example.com,,Lisbon\n,912 345 678,Porto\n,,Faro\n";
    let res = import(&s, "format=csv&wait=true", file);
    assert_eq!(res.body["rows_accepted"], 2, "{:#}", res.body);
    assert_eq!(res.body["errors"][0]["row"], 3);
    assert_eq!(res.body["errors"][0]["code"], "customer_id_invalid");
    let by_email = s.get("/v1/databases/shop/profiles/by/email/ana@example.com");
    assert_eq!(by_email.status, 200, "{:#}", by_email.body);
    let id = by_email.body["customer_id"].as_str().unwrap().to_owned();
    assert_eq!(by_email.body["fields"]["city"], "Lisbon");

    // The same people again, written differently: found, not created twice.
    let again = "[{\"email\":\"ANA@example.com\",\"city\":\"Braga\"},{\"phone\":\"+351912345678\",\"city\":\"Coimbra\"}]";
    let res = import(&s, "format=json&wait=true", again);
    assert_eq!(res.body["rows_accepted"], 2, "{:#}", res.body);
    assert_eq!(s.count("/v1/databases/shop/profiles", "profiles"), 2);
    assert_eq!(
        s.get(&format!("/v1/databases/shop/profiles/{id}")).body["fields"]["city"],
        "Braga"
    );
    let by_phone = s.get("/v1/databases/shop/profiles/by/phone/912345678");
    assert_eq!(by_phone.body["fields"]["city"], "Coimbra");
}

#[test]
fn a_two_gigabyte_file_streams_through_in_bounded_memory() {
    let s = shop();
    let before = s.peak_rss();
    // Rows of a customer id, a city and a 64 KiB column the database has no field for:
    // 2 GiB in all.
    let header = b"customer_id,city,notes\n";
    let pad = 64 * 1024;
    let row_len = 18 + pad as u64; // `w00000001,City 1,` + the column + `\n`
    let rows = (2u64 << 30) / row_len;
    let body = Body::new(made(header, rows, move |i, buf| {
        buf.extend_from_slice(format!("w{i:08},City {},", i % 7).as_bytes());
        buf.extend(std::iter::repeat_n(b'x', pad));
        buf.push(b'\n');
    }));
    let res = import_large(&s, "format=csv&wait=true&unknown_columns=ignore", body);
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["status"], "done", "{:#}", res.body);
    assert_eq!(res.body["bytes_read"], header.len() as u64 + rows * row_len);
    assert_eq!(res.body["rows_accepted"], rows);
    assert_eq!(res.body["rows_rejected"], 0);
    // The server held a few chunks and batches at a time, never the file: its peak
    // grew by far less than the 2 GiB it read (the profiles themselves are small).
    let grown = s.peak_rss().saturating_sub(before);
    eprintln!("peak RSS grew by {} MiB over a 2 GiB import", grown >> 20);
    assert!(grown < 256 << 20, "peak RSS grew by {} MiB", grown >> 20);
}

#[test]
fn an_atomic_import_applies_every_row_or_none() {
    let s = shop();
    s.patch(
        "/v1/databases/shop/profiles/held",
        json!({"fields": {"email": "taken@example.com"}}),
    );
    // Row 2 finds the profile row 1 creates; row 3 takes an email another profile holds.
    let file = "customer_id,email,city,score\n\
                a1,ana@example.com,Lisbon,1\n\
                ,ana@example.com,Porto,2\n\
                a3,taken@example.com,Faro,3\n";
    let res = import(&s, "format=csv&wait=true&atomic=true", file);
    assert_applied_none(&res, "import_not_applied");
    assert_eq!(res.body["errors"][0]["row"], 3);
    assert_eq!(res.body["errors"][0]["code"], "identifier_conflict");
    s.get("/v1/databases/shop/profiles/a1")
        .assert_problem(404, "profile_not_found");

    // A bad cell found by the parser refuses the whole file too.
    let res = import(
        &s,
        "format=csv&wait=true&atomic=true",
        "customer_id,city\nb1,Lisbon\nb2\n",
    );
    assert_eq!(
        res.body["error"]["code"], "import_not_applied",
        "{:#}",
        res.body
    );
    s.get("/v1/databases/shop/profiles/b1")
        .assert_problem(404, "profile_not_found");

    // Without the conflict, every row applies, later rows over earlier ones.
    let good = file.replace("taken@", "other@");
    let res = import(&s, "format=csv&wait=true&atomic=true", good);
    assert_eq!(res.body["status"], "done", "{:#}", res.body);
    assert_eq!(res.body["rows_accepted"], 3);
    let a1 = profile(&s, "a1");
    assert_eq!(a1["fields"]["city"], "Porto");
    assert_eq!(a1["fields"]["score"], 2);
    assert_eq!(profile(&s, "a3")["fields"]["email"], "other@example.com");
}

#[test]
fn an_atomic_import_holds_what_it_changes_not_its_rows() {
    let s = shop();
    let before = s.peak_rss();
    // More rows than an atomic import could once hold (1,000,000), over 1,000 customers:
    // the actor holds one profile a customer, not the rows.
    let rows = 1_100_000u64;
    let body = Body::new(made(b"customer_id,city,score\n", rows, |i, buf| {
        buf.extend_from_slice(format!("h{},City {i},{}\n", i % 1000, i % 100).as_bytes());
    }));
    let res = import_large(&s, "format=csv&wait=true&atomic=true", body);
    assert_eq!(res.status, 200, "{:#}", res.body);
    assert_eq!(res.body["status"], "done", "{:#}", res.body);
    assert_eq!(res.body["rows_accepted"], rows);
    assert_eq!(
        res.body["rows_held"], 0,
        "nothing is held once the job has ended"
    );
    assert_eq!(s.get("/v1/databases/shop").body["profiles"], 1000);
    // Later rows over earlier ones: h999's last row is the file's last.
    let last = profile(&s, "h999");
    assert_eq!(last["fields"]["city"], format!("City {}", rows - 1));
    assert_eq!(last["fields"]["score"], (rows - 1) % 100);
    let grown = s.peak_rss().saturating_sub(before);
    eprintln!(
        "peak RSS grew by {} MiB over an atomic import of {rows} rows",
        grown >> 20
    );
    assert!(grown < 256 << 20, "peak RSS grew by {} MiB", grown >> 20);
}

#[test]
fn an_atomic_import_past_its_cap_fails_whole() {
    let s = Server::start_with(&["--max-atomic-profiles", "5"], &[]);
    s.create_db("shop", json!({}));
    // Five customers fit, however many rows they take.
    let five = (0..20)
        .map(|i| format!("m{},City {i}\n", i % 5))
        .collect::<String>();
    let res = import(
        &s,
        "format=csv&wait=true&atomic=true",
        format!("customer_id,city\n{five}"),
    );
    assert_eq!(res.body["status"], "done", "{:#}", res.body);
    assert_eq!(res.body["rows_accepted"], 20);
    // A sixth is one too many: the job fails and none of its rows is applied.
    let six = "customer_id,city\nm0,Faro\nn1,Faro\nn2,Faro\nn3,Faro\nn4,Faro\nn5,Faro\n";
    let res = import(&s, "format=csv&wait=true&atomic=true", six);
    assert_applied_none(&res, "import_too_large");
    assert_eq!(profile(&s, "m0")["fields"]["city"], "City 15");
    s.get("/v1/databases/shop/profiles/n1")
        .assert_problem(404, "profile_not_found");
}

/// A body of `first`, then, once the test says so, `rest`.
struct Gated {
    first: Vec<u8>,
    rest: Vec<u8>,
    at: usize,
    gate: Option<std::sync::mpsc::Receiver<()>>,
}

impl Read for Gated {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.first.len() {
            if let Some(gate) = self.gate.take() {
                // A dropped sender opens the gate too: the test has failed already.
                let _ = gate.recv();
            }
            self.first = std::mem::take(&mut self.rest);
            self.at = 0;
        }
        let n = out.len().min(self.first.len() - self.at);
        out[..n].copy_from_slice(&self.first[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Runs an atomic import of `k0..k2999` and `k3000` whose body stops after the first
/// 3,000 rows until the actor holds two batches of them, does `between`, then sends the
/// last row; answers the finished job.
fn atomic_import_around(s: &Server, between: impl FnOnce()) -> Res {
    let mut first = b"customer_id,city\n".to_vec();
    for i in 0..3000 {
        first.extend_from_slice(format!("k{i},Braga\n").as_bytes());
    }
    let (open, gate) = std::sync::mpsc::channel();
    let body = Gated {
        first,
        rest: b"k3000,Braga\n".to_vec(),
        at: 0,
        gate: Some(gate),
    };
    let req = s
        .req(
            Method::POST,
            "/v1/databases/shop/imports?format=csv&wait=true&atomic=true",
        )
        .body(Body::new(body));
    let sent = std::thread::spawn(move || send(req));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = s.get("/v1/databases/shop/imports").body["jobs"].clone();
        let running = jobs.as_array().and_then(|j| {
            j.iter()
                .find(|j| j["status"] == "running" && j["rows_held"].as_u64() >= Some(2048))
        });
        if running.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the import never held 2,048 rows: {jobs:#}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    between();
    open.send(()).unwrap();
    sent.join().unwrap()
}

#[test]
fn an_atomic_import_fails_when_a_customer_it_read_is_written_meanwhile() {
    let s = shop();
    s.patch(
        "/v1/databases/shop/profiles/k1",
        json!({"fields": {"city": "Lisbon"}}),
    );
    // A write to a customer the import does not touch changes nothing.
    let res = atomic_import_around(&s, || {
        s.patch(
            "/v1/databases/shop/profiles/other",
            json!({"fields": {"city": "Faro"}}),
        );
    });
    assert_eq!(res.body["status"], "done", "{:#}", res.body);
    assert_eq!(res.body["rows_accepted"], 3001);
    assert_eq!(profile(&s, "k1")["fields"]["city"], "Braga");
    assert_eq!(profile(&s, "k3000")["fields"]["city"], "Braga");
    // Published when it committed, after `other` was created: ids ascend in the order
    // profiles are stored (which paging a query by id relies on), and so do times.
    let (k0, other) = (profile(&s, "k0"), profile(&s, "other"));
    assert!(k0["id"].as_str() > other["id"].as_str(), "{k0:#} {other:#}");
    assert!(k0["created_at"].as_str() >= other["created_at"].as_str());
    assert_eq!(k0["created_at"], k0["updated_at"]);

    // A write to one it read and changed would be lost under the import's version of
    // the profile: the commit refuses, and nothing of the import is applied (k3000,
    // deleted meanwhile and in the rows after the gate, is not made again).
    let res = atomic_import_around(&s, || {
        s.patch(
            "/v1/databases/shop/profiles/k1",
            json!({"fields": {"city": "Porto"}}),
        );
        s.delete("/v1/databases/shop/profiles/k3000");
    });
    assert_applied_none(&res, "import_conflict");
    assert_eq!(profile(&s, "k1")["fields"]["city"], "Porto");
    s.get("/v1/databases/shop/profiles/k3000")
        .assert_problem(404, "profile_not_found");
}

#[test]
fn a_second_import_changes_profiles_in_place() {
    let s = shop();
    let first =
        "customer_id,email,city,score\nr1,r1@example.com,Lisbon,1\nr2,r2@example.com,Porto,2\n";
    assert_eq!(
        import(&s, "format=csv&wait=true", first).body["rows_accepted"],
        2
    );
    let before = [profile(&s, "r1"), profile(&s, "r2")];
    // Rows for profiles that exist are built on a builder thread and published by
    // the actor if nothing they read has changed. r2's row takes the email r1's row
    // gives up in the same batch: built before r1's row was applied, it no longer
    // holds when the actor reaches it, and the actor builds it again.
    let second =
        "customer_id,email,city,score\nr1,new@example.com,Faro,10\nr2,r1@example.com,Braga,20\n";
    let res = import(&s, "format=csv&wait=true", second);
    assert_eq!(res.body["rows_accepted"], 2, "{:#}", res.body);
    let r1 = profile(&s, "r1");
    assert_eq!(r1["fields"]["city"], "Faro");
    assert_eq!(r1["fields"]["score"], 10);
    assert_eq!(r1["id"], before[0]["id"]);
    assert_eq!(r1["created_at"], before[0]["created_at"]);
    assert!(r1["updated_at"].as_str() > before[0]["updated_at"].as_str());
    let found = s.get("/v1/databases/shop/profiles/by/email/r1@example.com");
    assert_eq!(found.body["customer_id"], "r2", "{:#}", found.body);
    assert_eq!(found.body["fields"]["city"], "Braga");
    assert_eq!(found.body["id"], before[1]["id"]);
}

#[test]
fn rows_built_side_by_side_are_stored_in_the_files_order() {
    let s = shop();
    // Several batches of 1,024 rows, built by as many builders as there are cores and
    // finished in any order; new profiles get their ids as the actor stores them. Every
    // tenth row is a customer seen before, and every hundredth a new customer with the
    // email of the row before it (its build saw that email free; the actor builds it
    // again, and merges it into the older profile, which survives).
    let rows = 5000;
    let mut file = String::from("customer_id,email,score\n");
    for i in 0..rows {
        let (cid, email) = match i {
            _ if i % 100 == 99 => (format!("o{i:05}"), format!("o{:05}@example.com", i - 1)),
            _ if i % 10 == 9 => (
                format!("o{:05}", i - 9),
                format!("o{:05}@example.com", i - 9),
            ),
            _ => (format!("o{i:05}"), format!("o{i:05}@example.com")),
        };
        file.push_str(&format!("{cid},{email},{i}\n"));
    }
    let res = import(&s, "format=csv&wait=true", file);
    assert_eq!(res.body["status"], "done", "{:#}", res.body);
    assert_eq!(res.body["rows_accepted"], rows, "{:#}", res.body);

    // Listed oldest first (by internal id): the new customers in the file's order.
    let listed: Vec<(String, Value)> = s
        .pages(
            "/v1/databases/shop/profiles?limit=1000&fields=score",
            "profiles",
        )
        .iter()
        .map(|p| {
            (
                p["customer_id"].as_str().unwrap().to_owned(),
                p["id"].clone(),
            )
        })
        .collect();
    let expected: Vec<String> = (0..rows)
        .filter(|i| i % 10 != 9)
        .map(|i| format!("o{i:05}"))
        .collect();
    let names: Vec<&String> = listed.iter().map(|(c, _)| c).collect();
    assert_eq!(names.len(), expected.len());
    assert!(
        names.iter().zip(&expected).all(|(a, b)| *a == b),
        "not in file order"
    );
    assert!(listed.windows(2).all(|w| w[0].1.as_str() < w[1].1.as_str()));
    // Later rows won: a repeated customer has its last row's score, and the merged
    // profile the score of the row that named the email last.
    assert_eq!(profile(&s, "o00010")["fields"]["score"], 19);
    let taken = s.get("/v1/databases/shop/profiles/by/email/o00098@example.com");
    assert_eq!(taken.status, 200, "{:#}", taken.body);
    assert_eq!(taken.body["fields"]["score"], 99, "{:#}", taken.body);
}

#[test]
fn a_customer_new_in_the_file_twice_keeps_both_rows_identifiers() {
    let s = shop();
    // Blocks of 500 new customers with an email, then the same 500 again adding a
    // phone: the second row of a customer is built before the first is stored (its
    // build finds no profile, and its claim finds the place taken: the actor builds it
    // again over the first), or after.
    let mut file = String::from("customer_id,email,phone,score\n");
    for block in 0..4 {
        for i in block * 500..(block + 1) * 500 {
            file.push_str(&format!("t{i:04},t{i:04}@example.com,,{i}\n"));
        }
        for i in block * 500..(block + 1) * 500 {
            file.push_str(&format!("t{i:04},,+3519123{i:05},{}\n", i + 1));
        }
    }
    let res = import(&s, "format=csv&wait=true", file);
    assert_eq!(res.body["status"], "done", "{:#}", res.body);
    assert_eq!(res.body["rows_accepted"], 4000, "{:#}", res.body);
    let check = |s: &Server| {
        assert_eq!(s.get("/v1/databases/shop").body["profiles"], 2000);
        for i in (0..2000).step_by(37) {
            let by_email = s.get(&format!(
                "/v1/databases/shop/profiles/by/email/t{i:04}@example.com"
            ));
            assert_eq!(by_email.status, 200, "{i}: {:#}", by_email.body);
            assert_eq!(by_email.body["customer_id"], format!("t{i:04}"));
            assert_eq!(by_email.body["fields"]["score"], i + 1);
            let by_phone = s.get(&format!(
                "/v1/databases/shop/profiles/by/phone/+3519123{i:05}"
            ));
            assert_eq!(by_phone.status, 200, "{i}: {:#}", by_phone.body);
            assert_eq!(by_phone.body["customer_id"], format!("t{i:04}"));
        }
    };
    check(&s);
    // The log holds what was stored, in order: replayed, the same.
    let s = s.restart(false);
    check(&s);
}

#[test]
fn finished_jobs_are_kept_across_a_restart() {
    let s = shop();
    let done = import(
        &s,
        "format=csv&wait=true",
        "customer_id,score\nc1,1\nc2,x\n",
    );
    let refused = import(&s, "format=csv", "customer_id,shoe_size\nc1,42\n");
    refused.assert_problem(400, "import_column_unknown");
    let before = s.get("/v1/databases/shop/imports").body["jobs"].clone();
    assert_eq!(before.as_array().unwrap().len(), 2);
    let s = s.restart(false);
    let after = s.get("/v1/databases/shop/imports").body["jobs"].clone();
    assert_eq!(after, before);
    let id = done.body["job"].as_str().unwrap();
    let job = s.get(&format!("/v1/databases/shop/imports/{id}"));
    assert_eq!(job.body["rows_rejected"], 1);
    assert_eq!(job.body["errors"][0]["code"], "field_type_mismatch");
    // A deleted database takes its jobs' records with it.
    assert_eq!(s.delete("/v1/databases/shop").status, 204);
    s.create_db("shop", json!({}));
    assert_eq!(s.count("/v1/databases/shop/imports", "jobs"), 0);
}

/// A body that sends a header and a row, then waits (a slow client).
struct Slow {
    sent: bool,
}

impl Read for Slow {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.sent {
            std::thread::sleep(Duration::from_secs(3));
            return Ok(0);
        }
        self.sent = true;
        let head = b"customer_id,city\nc1,Lisbon\n";
        out[..head.len()].copy_from_slice(head);
        Ok(head.len())
    }
}

#[test]
fn a_job_cut_off_by_a_crash_is_shown_as_interrupted() {
    let s = shop();
    let url = format!("{}/v1/databases/shop/imports?format=csv", s.base);
    let admin = s.admin.clone();
    let upload = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(url)
            .bearer_auth(admin)
            .body(Body::new(Slow { sent: false }))
            .send()
            .is_ok()
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.count("/v1/databases/shop/imports", "jobs") == 0 {
        assert!(Instant::now() < deadline, "the job never showed up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = Server::start_in(s.kill(), &[], &[], false);
    let _ = upload.join();
    let jobs = s.get("/v1/databases/shop/imports").body["jobs"].clone();
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs:#}");
    assert_eq!(jobs[0]["status"], "failed");
    assert_eq!(jobs[0]["error"]["code"], "import_interrupted");
}

#[test]
fn a_body_that_breaks_off_fails_the_job_without_the_cut_row() {
    for sized in [false, true] {
        body_breaks_off(sized);
    }
}

/// A raw client sends bytes that end inside a row, then closes the connection: with a
/// chunked body, or with a `Content-Length` it never reaches (actix then drops the
/// handler instead of reporting an error to it).
fn body_breaks_off(sized: bool) {
    use std::io::Write;
    let s = shop();
    let addr = s.base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    let part = "customer_id,city\nc1,Lisbon\nc2,Por";
    let framing = if sized {
        "Content-Length: 100000\r\n\r\n".to_owned()
    } else {
        format!("Transfer-Encoding: chunked\r\n\r\n{:x}\r\n", part.len())
    };
    write!(
        conn,
        "POST /v1/databases/shop/imports?format=csv HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {}\r\n{framing}{part}",
        s.admin,
    )
    .unwrap();
    conn.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(conn);
    let deadline = Instant::now() + Duration::from_secs(20);
    let job = loop {
        let jobs = s.get("/v1/databases/shop/imports").body["jobs"].clone();
        if jobs[0]["status"].as_str().is_some_and(|st| st != "running") {
            break jobs[0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the job never finished: {jobs:#}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(job["status"], "failed", "{job:#}");
    assert_eq!(job["error"]["code"], "import_upload_failed");
    assert!(job["bytes_read"].as_u64().unwrap() > 0, "{job:#}");
    // The cut row is not applied as if it were whole; the whole one before it is.
    s.get("/v1/databases/shop/profiles/c2")
        .assert_problem(404, "profile_not_found");
    assert_eq!(profile(&s, "c1")["fields"]["city"], "Lisbon");
}

#[test]
fn imports_beyond_the_limit_are_refused_until_one_finishes() {
    let s = Server::start_with(&["--max-imports", "1"], &[]);
    s.create_db("shop", json!({}));
    let url = format!("{}/v1/databases/shop/imports?format=csv", s.base);
    let admin = s.admin.clone();
    let slow = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(url)
            .bearer_auth(admin)
            .body(Body::new(Slow { sent: false }))
            .send()
            .map(|r| r.status().as_u16())
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.count("/v1/databases/shop/imports", "jobs") == 0 {
        assert!(Instant::now() < deadline, "the job never showed up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let res = import(&s, "format=csv&wait=true", "customer_id,city\nc9,Faro\n");
    res.assert_problem(429, "imports_busy");
    assert_eq!(res.body["limit"], 1);
    assert_eq!(slow.join().unwrap().unwrap(), 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = import(&s, "format=csv&wait=true", "customer_id,city\nc9,Faro\n");
        if res.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "{:#}", res.body);
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_rows_get_their_own_codes_over_http() {
    let s = shop();
    let mut csv = b"customer_id,city\nc1,Lisbon\nc2,\xff\xfe\nc3,".to_vec();
    csv.extend(std::iter::repeat_n(b'x', (1 << 20) + 1));
    csv.extend(b"\nc4,Faro\n");
    let res = import(&s, "format=csv&wait=true", csv);
    let codes: Vec<(u64, &str)> = res.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [(2, "import_encoding_invalid"), (3, "import_line_too_long")],
        "{:#}",
        res.body
    );
    assert_eq!(res.body["rows_accepted"], 2);

    let lines = "7\n{\"city\":\"Porto\"}\n{\"customer_id\":\"n1\",\"fields\":{\"city\":1},\"bogus\":true}\n";
    let res = import(&s, "format=ndjson&wait=true", lines);
    let errors = res.body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{:#}", res.body);
    let codes: Vec<&str> = errors.iter().map(|e| e["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        [
            "import_row_invalid",
            "customer_id_invalid",
            "import_row_invalid"
        ],
        "{:#}",
        res.body
    );
}
