//! Test helpers: start the real `persona` binary on an ephemeral port, speak HTTP to it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::blocking::{Body, Client, RequestBuilder};
use serde_json::Value;

/// A running server with its own data directory; killed on drop.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The bootstrap admin key.
    pub admin: String,
    dir: Option<tempfile::TempDir>,
    log: PathBuf,
    client: Client,
}

/// A response: status and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Res {
    /// HTTP status.
    pub status: u16,
    /// Parsed body.
    pub body: Value,
    /// Content type.
    pub content_type: String,
}

impl Res {
    /// The problem `code`, for error responses.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    /// Asserts the status and problem code of an error response.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "unexpected answer: {:#}",
            self.body
        );
        assert_eq!(self.content_type, "application/problem+json");
        assert!(self.body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

impl Server {
    /// Starts a server with the default settings and a random admin key.
    pub fn start() -> Server {
        Self::start_with(&[], &[])
    }

    /// Starts a server with extra flags and environment.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, args, env, true)
    }

    /// Starts a server on a data directory; without `admin_env` the key comes from the
    /// directory's `admin.key` (generated at first start).
    pub fn start_in(
        dir: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
        admin_env: bool,
    ) -> Server {
        Self::launch(dir, args, env, admin_env, true)
    }

    /// Starts a server on a data directory and returns as soon as it listens, while its
    /// databases may still be loading.
    pub fn start_loading(dir: tempfile::TempDir) -> Server {
        Self::launch(dir, &[], &[], true, false)
    }

    fn launch(
        dir: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, &str)],
        admin_env: bool,
        wait: bool,
    ) -> Server {
        let log = dir.path().join("server.log");
        let admin = format!("pk_test_{:016}", std::process::id());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_persona"));
        cmd.args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(args)
            .current_dir(dir.path())
            .env_remove("PERSONA_ADMIN_KEY")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if admin_env {
            cmd.env("PERSONA_ADMIN_KEY", &admin);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("the persona binary starts");
        let base = wait_for_listen(&log);
        if wait {
            wait_loaded(&base);
        }
        let admin = if admin_env {
            admin
        } else {
            std::fs::read_to_string(dir.path().join("admin.key"))
                .unwrap()
                .trim()
                .to_owned()
        };
        Server {
            child: Some(child),
            base,
            admin,
            dir: Some(dir),
            log,
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.as_ref().expect("the data directory").path()
    }

    /// Stops the server with SIGTERM and starts a new one on the same data directory.
    pub fn restart(self, admin_env: bool) -> Server {
        self.restart_with(&[], admin_env)
    }

    /// Stops the server with SIGTERM and starts a new one on the same data directory
    /// with these flags.
    pub fn restart_with(mut self, args: &[&str], admin_env: bool) -> Server {
        let dir = self.dir.take().expect("the data directory");
        let status = self.terminate_child();
        assert!(status.success(), "the server exited with {status}");
        Server::start_in(dir, args, &[], admin_env)
    }

    /// Kills the server with SIGKILL (no shutdown at all) and hands back its data
    /// directory, to start another server on.
    pub fn kill(mut self) -> tempfile::TempDir {
        let mut child = self.child.take().expect("a running server");
        child.kill().unwrap();
        child.wait().unwrap();
        self.dir.take().expect("the data directory")
    }

    /// Stops the server with SIGTERM and hands back its data directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        let status = self.terminate_child();
        assert!(status.success(), "the server exited with {status}");
        self.dir.take().expect("the data directory")
    }

    /// The server's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let pid = self.child.as_ref().expect("a running server").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM in /proc/PID/status")
            * 1024
    }

    /// A request with the admin key.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
    }

    /// Posts `body` as an import into database `db` with the admin key (`query`: the
    /// import's options, e.g. `format=csv&wait=true`).
    pub fn import(&self, db: &str, query: &str, body: impl Into<Body>) -> Res {
        send(
            self.req(Method::POST, &format!("/v1/databases/{db}/imports?{query}"))
                .body(body),
        )
    }

    /// A request without any key.
    pub fn anon(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Sends a request with the admin key and an optional JSON body.
    pub fn call(&self, method: Method, path: &str, body: Option<Value>) -> Res {
        self.call_as(&self.admin, method, path, body)
    }

    /// Sends a request with `key` and an optional JSON body.
    pub fn call_as(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> Res {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        send(req)
    }

    /// `GET` with the admin key.
    pub fn get(&self, path: &str) -> Res {
        self.call(Method::GET, path, None)
    }

    /// `POST` JSON with the admin key.
    pub fn post(&self, path: &str, body: Value) -> Res {
        self.call(Method::POST, path, Some(body))
    }

    /// `PATCH` JSON with the admin key.
    pub fn patch(&self, path: &str, body: Value) -> Res {
        self.call(Method::PATCH, path, Some(body))
    }

    /// `PUT` JSON with the admin key.
    pub fn put(&self, path: &str, body: Value) -> Res {
        self.call(Method::PUT, path, Some(body))
    }

    /// `DELETE` with the admin key.
    pub fn delete(&self, path: &str) -> Res {
        self.call(Method::DELETE, path, None)
    }

    /// The length of the array `member` in the answer to `GET path`.
    pub fn count(&self, path: &str, member: &str) -> usize {
        let res = self.get(path);
        res.body[member]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path} has no array `{member}`: {:#}", res.body))
            .len()
    }

    /// Every item of the array `member` in a cursor-paged list, page by page: `path`
    /// (with its query, which must have one) gets `&cursor=` added.
    pub fn pages(&self, path: &str, member: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let res = self.get(&format!("{path}&cursor={cursor}"));
            assert_eq!(res.status, 200, "GET {path}: {:#}", res.body);
            let items = res.body[member]
                .as_array()
                .unwrap_or_else(|| panic!("GET {path} has no array `{member}`: {:#}", res.body));
            out.extend(items.iter().cloned());
            match res.body["next_cursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => return out,
            }
        }
    }

    /// A server with a database `shop` that has an integer field `score`.
    pub fn shop_with_score() -> Server {
        let s = Server::start();
        s.create_db("shop", serde_json::json!({}));
        let res = s.post(
            "/v1/databases/shop/fields",
            serde_json::json!({"name": "score", "type": "integer"}),
        );
        assert_eq!(res.status, 201, "{:#}", res.body);
        s
    }

    /// Creates a database with `extra` settings merged into the minimal body.
    pub fn create_db(&self, name: &str, extra: Value) -> Res {
        let mut body = serde_json::json!({"name": name, "consent_confirmed": true});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let res = self.post("/v1/databases", body);
        assert_eq!(res.status, 201, "{:#}", res.body);
        res
    }

    /// Creates a key and returns its secret.
    pub fn key(&self, role: &str, groups: &[&str]) -> String {
        let res = self.post(
            "/v1/keys",
            serde_json::json!({"name": format!("{role}-key"), "role": role, "groups": groups}),
        );
        assert_eq!(res.status, 201, "{:#}", res.body);
        res.body["key"].as_str().unwrap().to_owned()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        self.terminate_child()
    }

    fn terminate_child(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `/readyz` stops saying `starting`: every database is loaded, or found
/// unloadable (which tests then look at).
fn wait_loaded(base: &str) {
    let client = Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let res = send(client.get(format!("{base}/readyz")));
        if res.status == 200 || res.code() != "starting" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "databases never finished loading"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a request and reads the answer.
pub fn send(req: RequestBuilder) -> Res {
    try_send(req).expect("the server answers")
}

/// Sends a request and reads the answer, or says why none came (a server being killed
/// or stopped drops its connections).
pub fn try_send(req: RequestBuilder) -> reqwest::Result<Res> {
    let res = req.send()?;
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Res {
        status,
        body,
        content_type,
    })
}

fn wait_for_listen(log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(log) {
            let _ = f.read_to_string(&mut text);
        }
        if let Some(pos) = text.find("listening on http://") {
            let rest = &text[pos + "listening on ".len()..];
            // The line may be plain text or a JSON log record.
            return rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '.'))
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "the server did not start:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[path = "../../support/plugins.rs"]
mod plugins;
pub use plugins::plugin;

/// A real payload from `tests/fixtures/webhooks/` (sources in its SOURCES.md).
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/webhooks")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
