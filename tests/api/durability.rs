//! Durability: acknowledged writes survive crashes and stops, damaged files are handled
//! as documented, erasure reaches the disk, and the data directory has one owner.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common::{Res, Server, try_send};

/// Every write is fsynced before its answer, so a SIGKILL may lose only unanswered ones.
const ALWAYS: [&str; 2] = ["--fsync", "always"];

// ---------------------------------------------------------------------------------------
// Writers under load

/// What one writer thread sent: answered writes in order, and the one it was sending
/// when the server went away (which may or may not have reached the log).
#[derive(Default)]
struct Written {
    acked: Vec<(String, String)>,
    unacked: Option<(String, String)>,
    refused: Vec<String>,
}

/// Writer threads PATCHing `shop` until told to stop or the server goes away.
struct Writers {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Written>>,
}

impl Writers {
    fn start(s: &Server, threads: usize, round: usize) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|t| {
                let (base, key, stop) = (s.base.clone(), s.admin.clone(), Arc::clone(&stop));
                std::thread::spawn(move || write_until_stopped(&base, &key, t, round, &stop))
            })
            .collect();
        Writers { stop, threads }
    }

    fn finish(self) -> Vec<Written> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|t| t.join().expect("writer thread"))
            .collect()
    }
}

fn write_until_stopped(
    base: &str,
    key: &str,
    thread: usize,
    round: usize,
    stop: &AtomicBool,
) -> Written {
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut out = Written::default();
    for seq in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // Half the writes create a profile, half overwrite one of the thread's own hot
        // profiles, so recovery is checked for lost inserts and for stale values alike.
        let id = if seq % 2 == 0 {
            format!("r{round}-t{thread}-s{seq}")
        } else {
            format!("t{thread}-hot{}", seq / 2 % 16)
        };
        let value = format!("r{round}-t{thread}-s{seq}");
        let req = client
            .patch(format!("{base}/v1/databases/shop/profiles/{id}"))
            .bearer_auth(key)
            .json(&json!({"fields":{"city":value,"first_name":value}}));
        match try_send(req) {
            Ok(res) if res.status == 200 => out.acked.push((id, value)),
            Ok(res) => {
                out.refused
                    .push(format!("{id}: {} {}", res.status, res.body));
                out.unacked = Some((id, value));
                break;
            }
            Err(_) => {
                out.unacked = Some((id, value));
                break;
            }
        }
    }
    out
}

/// What each profile may hold after recovery (`None`: absent), given what it held
/// before and what the writers sent since.
fn allowed(
    before: &BTreeMap<String, String>,
    written: &[Written],
) -> BTreeMap<String, Vec<Option<String>>> {
    let mut allowed: BTreeMap<String, Vec<Option<String>>> = before
        .iter()
        .map(|(id, v)| (id.clone(), vec![Some(v.clone())]))
        .collect();
    // Hot profiles belong to one thread each, so per-thread order is the only order.
    for w in written {
        for (id, v) in &w.acked {
            allowed.insert(id.clone(), vec![Some(v.clone())]);
        }
        if let Some((id, v)) = &w.unacked {
            allowed
                .entry(id.clone())
                .or_insert_with(|| vec![None])
                .push(Some(v.clone()));
        }
    }
    allowed
}

/// Checks the database against `allowed` and returns what it holds.
#[track_caller]
fn check_recovered(
    s: &Server,
    allowed: &BTreeMap<String, Vec<Option<String>>>,
    context: &str,
) -> BTreeMap<String, String> {
    let actual = written_values(s, "shop");
    let mut wrong = Vec::new();
    for (id, ok) in allowed {
        let got = actual.get(id).cloned();
        if !ok.contains(&got) {
            wrong.push(format!("{id}: found {got:?}, allowed {ok:?}"));
        }
    }
    for (id, v) in &actual {
        if !allowed.contains_key(id) {
            wrong.push(format!("{id}: found {v:?}, which nobody wrote"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{context}: {} profiles wrong after recovery, e.g. {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    actual
}

/// `city` of every profile the writers made; both fields carry the same value, so a
/// profile whose fields disagree is a half-applied write and shows as such.
fn written_values(s: &Server, db: &str) -> BTreeMap<String, String> {
    all_profiles(s, db)
        .into_iter()
        .map(|(id, p)| {
            let (city, first) = (&p["fields"]["city"], &p["fields"]["first_name"]);
            let v = if city == first {
                city.as_str().unwrap_or("<none>").to_owned()
            } else {
                format!("<torn: city {city}, first_name {first}>")
            };
            (id, v)
        })
        .collect()
}

/// Every profile of a database, by customer id, read page by page.
fn all_profiles(s: &Server, db: &str) -> BTreeMap<String, Value> {
    let path = format!("/v1/databases/{db}/profiles?limit=1000");
    s.pages(&path, "profiles")
        .into_iter()
        .map(|p| (p["customer_id"].as_str().unwrap().to_owned(), p))
        .collect()
}

/// A few bits of the clock, to vary the kill points from run to run.
fn jitter() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    u64::from(nanos.wrapping_mul(2_654_435_761))
}

// SIGKILL at several points of a write load, snapshots included (every 200 updates
// once the log has grown by the last snapshot's size), on one directory: recovery
// after each kill must show every answered write.
#[test]
fn crash_loses_no_acknowledged_write() {
    const ARGS: [&str; 4] = ["--fsync", "always", "--snapshot-after", "200"];
    let mut s = Server::start_with(&ARGS, &[]);
    s.create_db("shop", json!({}));
    let mut held = BTreeMap::new();
    let seed = jitter();
    for (round, base_ms) in [150u64, 300, 500, 800].into_iter().enumerate() {
        let delay = Duration::from_millis(base_ms + (seed >> (round * 8)) % 100);
        let writers = Writers::start(&s, 8, round);
        std::thread::sleep(delay);
        let dir = s.kill();
        let written = writers.finish();
        let context = format!("round {round}, killed after {delay:?} (seed {seed})");
        let acked: usize = written.iter().map(|w| w.acked.len()).sum();
        assert!(
            acked > 0,
            "{context}: no write was answered before the kill"
        );
        let refused: Vec<&String> = written.iter().flat_map(|w| &w.refused).collect();
        assert!(refused.is_empty(), "{context}: refused {refused:?}");
        let allowed = allowed(&held, &written);
        s = Server::start_in(dir, &ARGS, &[], true);
        held = check_recovered(&s, &allowed, &context);
    }
}

#[test]
fn sigterm_under_load_keeps_every_acknowledged_write() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    let writers = Writers::start(&s, 4, 0);
    // Signal only once the load is well under way, so it lands mid-load.
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.count("/v1/databases/shop/profiles?limit=1000", "profiles") < 200 {
        assert!(Instant::now() < deadline, "the writers never got going");
        std::thread::sleep(Duration::from_millis(10));
    }
    let dir = s.stop();
    let written = writers.finish();
    let first_log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(first_log.contains("final snapshot written"), "{first_log}");
    let refused: Vec<&String> = written.iter().flat_map(|w| &w.refused).collect();
    assert!(refused.is_empty(), "refused during shutdown: {refused:?}");

    let s = Server::start_in(dir, &[], &[], true);
    check_recovered(&s, &allowed(&BTreeMap::new(), &written), "after SIGTERM");
    // The final snapshot is taken after the last write, so there is nothing to replay.
    assert!(!s.log().contains("replayed the WAL"), "{}", s.log());
}

// ---------------------------------------------------------------------------------------
// Damaged files

/// A crashed server's directory whose `shop` has profiles in two snapshots and in the
/// WAL after the newer one, and an `other` database beside it.
struct Layered {
    dir: TempDir,
    /// `shop`'s profiles, customer id to city.
    expected: BTreeMap<String, String>,
}

impl Layered {
    fn shop(&self) -> PathBuf {
        self.dir.path().join("db/shop")
    }

    fn snapshots(&self) -> Vec<PathBuf> {
        sorted_files(&self.shop(), "snap-", ".bin")
    }

    fn segments(&self) -> Vec<PathBuf> {
        sorted_files(&self.shop().join("wal"), "", ".wal")
    }
}

/// The newest snapshot is taken at LSN 11; the WAL after it ends with `c-last`.
fn layered() -> Layered {
    let s = Server::start_with(&ALWAYS, &[]);
    s.create_db("shop", json!({}));
    s.create_db("other", json!({}));
    set_city(&s, "other", "o1", "Braga");
    let mut expected = BTreeMap::new();
    let mut write = |id: &str, city: &str| {
        set_city(&s, "shop", id, city);
        expected.insert(id.to_owned(), city.to_owned());
    };
    for i in 0..5 {
        write(&format!("c{i}"), &format!("first-{i}"));
    }
    snapshot(&s, "shop");
    for i in 5..10 {
        write(&format!("c{i}"), &format!("second-{i}"));
    }
    write("c0", "second-0");
    snapshot(&s, "shop");
    for i in 10..15 {
        write(&format!("c{i}"), &format!("third-{i}"));
    }
    write("c1", "third-1");
    write("c-last", "last");
    // No final snapshot: the newest records live only in the WAL.
    let layered = Layered {
        dir: s.kill(),
        expected,
    };
    let snaps = layered.snapshots();
    assert_eq!(
        names(&snaps),
        [
            "snap-00000000000000000005.bin",
            "snap-00000000000000000011.bin"
        ]
    );
    let segs = layered.segments();
    assert_eq!(
        names(&segs),
        ["00000000000000000006.wal", "00000000000000000012.wal"]
    );
    layered
}

fn set_city(s: &Server, db: &str, id: &str, city: &str) {
    let res = s.patch(
        &format!("/v1/databases/{db}/profiles/{id}"),
        json!({"fields":{"city":city}}),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
}

fn snapshot(s: &Server, db: &str) -> Res {
    let res = s.post(&format!("/v1/databases/{db}/snapshot"), json!({}));
    assert_eq!(res.status, 200, "{:#}", res.body);
    res
}

fn cities(s: &Server, db: &str) -> BTreeMap<String, String> {
    all_profiles(s, db)
        .into_iter()
        .map(|(id, p)| (id, p["fields"]["city"].as_str().unwrap_or("").to_owned()))
        .collect()
}

/// The files of `dir` named `<prefix>...<suffix>`, in name order.
fn sorted_files(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(suffix)
        })
        .collect();
    out.sort();
    out
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_to_the_older_one_and_the_wal() {
    let l = layered();
    let newest = l.snapshots().pop().unwrap();
    flip_middle_byte(&newest);
    let s = Server::start_in(l.dir, &ALWAYS, &[], true);
    assert_eq!(cities(&s, "shop"), l.expected);
    let log = s.log();
    assert!(
        log.contains("recovering from an older one") && log.contains("snap-00000000000000000011"),
        "{log}"
    );
}

/// Damages the last WAL segment, restarts, and checks `shop` holds `expected`, logged
/// a torn tail, takes a write and keeps it over a crash.
fn recovers_from_a_damaged_tail(damage: impl FnOnce(&Path), lost: Option<&str>) {
    let mut l = layered();
    damage(l.segments().last().unwrap());
    if let Some(id) = lost {
        l.expected.remove(id);
    }
    let s = Server::start_in(l.dir, &ALWAYS, &[], true);
    assert_eq!(cities(&s, "shop"), l.expected);
    let log = s.log();
    assert!(
        log.lines()
            .any(|line| line.contains("WARN") && line.contains("torn")),
        "{log}"
    );
    set_city(&s, "shop", "c-after", "after");
    l.expected.insert("c-after".into(), "after".into());
    // Killed, not stopped: the next start replays the cut segment and the one after it.
    let s = Server::start_in(s.kill(), &ALWAYS, &[], true);
    assert_eq!(cities(&s, "shop"), l.expected);
    assert!(!s.log().contains("torn"), "{}", s.log());
}

#[test]
fn a_torn_last_wal_record_is_cut_off() {
    recovers_from_a_damaged_tail(
        |seg| {
            let len = std::fs::metadata(seg).unwrap().len();
            let file = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
            file.set_len(len - 3).unwrap();
        },
        Some("c-last"),
    );
}

#[test]
fn garbage_after_the_last_wal_record_is_cut_off() {
    recovers_from_a_damaged_tail(
        |seg| {
            let mut bytes = std::fs::read(seg).unwrap();
            bytes.extend_from_slice(b"\x20\x00\x00\x00\xde\xad\xbe\xefnot a record at all");
            std::fs::write(seg, bytes).unwrap();
        },
        None,
    );
}

/// Asserts `/readyz` and requests to `shop` say it is unavailable for a reason that
/// contains each of `names`, while `other` works.
#[track_caller]
fn shop_is_unavailable(s: &Server, names: &[&str]) {
    let ready = s.anon(Method::GET, "/readyz").send().unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().unwrap();
    assert_eq!(ready["code"], "database_unavailable", "{ready:#}");
    let reason = ready["failed"]["shop"].as_str().unwrap_or_default();
    let get = s.get("/v1/databases/shop/profiles/c0");
    get.assert_problem(503, "database_unavailable");
    let detail = get.body["detail"].as_str().unwrap();
    for name in names {
        assert!(reason.contains(name), "readyz: {ready:#}");
        assert!(detail.contains(name), "{detail}");
    }
    s.get("/v1/databases/shop/profiles")
        .assert_problem(503, "database_unavailable");
    // Never replaced by an empty namesake.
    s.post(
        "/v1/databases",
        json!({"name":"shop","consent_confirmed":true}),
    )
    .assert_problem(409, "database_exists");
    assert_eq!(s.get("/v1/databases/other/profiles/o1").status, 200);
    set_city(s, "other", "o2", "Faro");
}

#[test]
fn a_missing_wal_segment_in_the_middle_makes_the_database_unavailable() {
    let mut l = layered();
    // Each start opens a new segment without a snapshot, so two crashed runs leave
    // segments after the newest snapshot that recovery needs in full.
    let mut dir = l.dir;
    for run in ["one", "two"] {
        let s = Server::start_in(dir, &ALWAYS, &[], true);
        set_city(&s, "shop", &format!("c-{run}"), run);
        l.expected.insert(format!("c-{run}"), run.to_owned());
        dir = s.kill();
    }
    l.dir = dir;
    let segs = l.segments();
    assert_eq!(segs.len(), 4, "{segs:?}");
    let middle = segs[2].clone();
    let saved = std::fs::read(&middle).unwrap();
    std::fs::remove_file(&middle).unwrap();

    let wal_dir = l.shop().join("wal").display().to_string();
    let s = Server::start_in(l.dir, &ALWAYS, &[], true);
    shop_is_unavailable(&s, &[&wal_dir]);
    // Putting the segment back is all it takes: nothing was thrown away.
    let dir = s.stop();
    std::fs::write(&middle, saved).unwrap();
    let s = Server::start_in(dir, &ALWAYS, &[], true);
    assert_eq!(cities(&s, "shop"), l.expected);
}

#[test]
fn no_readable_snapshot_makes_the_database_unavailable() {
    let l = layered();
    let snaps = l.snapshots();
    let saved = std::fs::read(&snaps[1]).unwrap();
    for snap in &snaps {
        flip_middle_byte(snap);
    }
    let before = disk_image(&l.shop());
    let shop = l.shop();
    let s = Server::start_in(l.dir, &ALWAYS, &[], true);
    let names = names(&snaps);
    shop_is_unavailable(&s, &[&names[0], &names[1]]);
    assert_eq!(disk_image(&shop), before, "the server changed shop's files");
    let dir = s.stop();
    std::fs::write(&snaps[1], saved).unwrap();
    let s = Server::start_in(dir, &ALWAYS, &[], true);
    assert_eq!(cities(&s, "shop"), l.expected);
}

/// Every file under `dir` with its bytes.
fn disk_image(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Erasure, the lock, the snapshot endpoint

/// Files under `dir` that hold `needle` anywhere in their bytes. A file deleted while
/// being read counts as not holding it.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| {
            std::fs::read(p).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

#[test]
fn erasure_reaches_the_disk() {
    const EMAIL: &str = "erase-me-7f3a@example.com";
    const NAME: &str = "Erasename7f3a";
    // A profile it absorbed: its customer id and identifier live on in the merge record.
    const TWIN: &str = "c-twin-7f3a";
    const CRM: &str = "ERASECRM7f3a";
    let s = Server::start_with(&ALWAYS, &[]);
    s.create_db("shop", json!({}));
    let keep = |i: usize| format!("keep-me-{i}-7f3a@example.com");
    let patch = |id: &str, fields: Value| {
        let res = s.patch(
            &format!("/v1/databases/shop/profiles/{id}"),
            json!({ "fields": fields }),
        );
        assert_eq!(res.status, 200, "{:#}", res.body);
    };
    patch("c-erase", json!({"email":EMAIL,"first_name":NAME}));
    let res = s.patch(
        &format!("/v1/databases/shop/profiles/{TWIN}"),
        json!({"identifiers": {"crm": CRM}, "fields": {"city": "Faro"}}),
    );
    assert_eq!(res.status, 200, "{:#}", res.body);
    let res = s.put(
        "/v1/databases/shop/segments/named",
        json!({"filter": "first_name EXISTS"}),
    );
    assert_eq!(res.status, 201, "{:#}", res.body);
    for i in 0..3 {
        patch(&format!("k{i}"), json!({"email":keep(i)}));
    }
    snapshot(&s, "shop");
    for i in 3..6 {
        patch(&format!("k{i}"), json!({"email":keep(i)}));
    }
    // A later version too, so copies sit in a snapshot and in the WAL after it.
    patch("c-erase", json!({"city":"Lisbon"}));
    // The twin names the email: merged into c-erase (the older), logged.
    patch(TWIN, json!({"email": EMAIL}));
    snapshot(&s, "shop");
    assert_eq!(s.get("/v1/databases/shop/segments/named").body["count"], 1);
    let data = s.data_dir().to_owned();
    for marker in [EMAIL, NAME, TWIN, CRM] {
        let holding = files_holding(&data.join("db"), marker.as_bytes());
        assert!(holding.len() >= 2, "{marker} not on disk yet: {holding:?}");
    }

    let res = s.delete("/v1/databases/shop/profiles/c-erase");
    assert_eq!(res.status, 204, "{:#}", res.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let holding: Vec<PathBuf> = [EMAIL, NAME, TWIN, CRM]
            .iter()
            .flat_map(|m| files_holding(&data, m.as_bytes()))
            .collect();
        if holding.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "erased data still on disk in {holding:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for i in 0..6 {
        assert!(
            !files_holding(&data.join("db"), keep(i).as_bytes()).is_empty(),
            "k{i} is gone from the disk too"
        );
    }

    assert_eq!(s.get("/v1/databases/shop/segments/named").body["count"], 0);
    let s = Server::start_in(s.kill(), &ALWAYS, &[], true);
    for gone in ["c-erase", TWIN, "by/crm/ERASECRM7f3a"] {
        s.get(&format!("/v1/databases/shop/profiles/{gone}"))
            .assert_problem(404, "profile_not_found");
    }
    assert_eq!(s.get("/v1/databases/shop/segments/named").body["count"], 0);
    for i in 0..6 {
        let res = s.get(&format!("/v1/databases/shop/profiles/k{i}"));
        assert_eq!(res.body["fields"]["email"], keep(i), "{:#}", res.body);
    }
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let s = Server::start();
    let holder = std::fs::read_to_string(s.data_dir().join("LOCK")).unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let err_path = out_dir.path().join("second.log");
    let mut second = Command::new(env!("CARGO_BIN_EXE_persona"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(s.data_dir())
        .current_dir(out_dir.path())
        .env("PERSONA_ADMIN_KEY", "pk_test_second_server_key")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second server is still running on a locked directory");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("locked by another Persona server"), "{err}");
    assert!(err.contains(holder.trim()), "the holder is named: {err}");
    // The refused start left the first server and its lock alone.
    assert_eq!(
        std::fs::read_to_string(s.data_dir().join("LOCK")).unwrap(),
        holder
    );
    s.create_db("shop", json!({}));
}

#[test]
fn a_data_directory_that_cannot_be_used_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory should be: as unusable as a read-only or full disk,
    // and it fails the same way for root.
    let not_a_dir = dir.path().join("data");
    std::fs::write(&not_a_dir, "not a directory").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_persona"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&not_a_dir)
        .current_dir(dir.path())
        .env("PERSONA_ADMIN_KEY", "pk_test_unusable_data_dir")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&*not_a_dir.to_string_lossy()),
        "the path is named: {err}"
    );
}

#[test]
fn a_log_that_cannot_be_written_turns_the_database_read_only() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    s.create_db("other", json!({}));
    assert_eq!(
        s.patch(
            "/v1/databases/shop/profiles/c1",
            json!({"fields": {"city": "Porto"}})
        )
        .status,
        200
    );
    // The segment the next snapshot switches to is a disk that is always full.
    let next = s.data_dir().join("db/shop/wal/00000000000000000002.wal");
    std::os::unix::fs::symlink("/dev/full", &next).unwrap();
    s.post("/v1/databases/shop/snapshot", json!({}))
        .assert_problem(500, "snapshot_failed");
    let refused = s.patch(
        "/v1/databases/shop/profiles/c2",
        json!({"fields": {"city": "Braga"}}),
    );
    refused.assert_problem(503, "storage_failed");
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("read-only")
    );
    // Nothing else is lost: reads go on, and other databases still take writes.
    assert_eq!(s.get("/v1/databases/shop/profiles/c1").status, 200);
    assert_eq!(
        s.patch(
            "/v1/databases/other/profiles/c1",
            json!({"fields": {"city": "Faro"}})
        )
        .status,
        200
    );
    assert!(s.log().contains("read-only"), "{}", s.log());
    // /dev/full reads as endless zeros: never let a restart replay it.
    std::fs::remove_file(&next).unwrap();
}

#[test]
fn databases_answer_starting_until_they_are_loaded() {
    use persona::persist::snapshot;
    use persona::schema::{DatabaseSettings, Schema, Value as FieldValue};
    use persona::store::{Packed, Profile};

    // A database big enough that a debug build takes a while to load it, written
    // straight to disk with the library rather than through a slow first server.
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("db/shop");
    std::fs::create_dir_all(db_dir.join("wal")).unwrap();
    let schema = Schema::default();
    let city = schema.id_of("city").unwrap();
    let now = jiff::Timestamp::now();
    let profiles: Vec<Packed> = (0..150_000)
        .map(|i| {
            let mut p = Profile::new(format!("c{i}").into(), now);
            p.fields.push((city, FieldValue::Str("Porto".into())));
            Packed::encode(&p)
        })
        .collect();
    let settings = DatabaseSettings::create(
        serde_json::from_value(json!({"name": "shop", "consent_confirmed": true})).unwrap(),
        now,
    )
    .unwrap();
    snapshot::write(
        &db_dir,
        0,
        &settings,
        &schema,
        &profiles,
        &persona::activity::ActivityStore::new(),
        false,
    )
    .unwrap();

    let s = Server::start_loading(dir);
    let first = s.get("/v1/databases/shop/profiles/c1");
    first.assert_problem(503, "starting");
    let ready = s.anon(Method::GET, "/readyz").send().unwrap();
    assert_eq!(ready.status(), 503);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let res = s.get("/v1/databases/shop/profiles/c149999");
        if res.status == 200 {
            assert_eq!(res.body["fields"]["city"], "Porto");
            break;
        }
        res.assert_problem(503, "starting");
        assert!(Instant::now() < deadline, "the database never loaded");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.anon(Method::GET, "/readyz").send().unwrap().status(), 200);
}

#[test]
fn snapshot_endpoint_reports_what_it_wrote() {
    let s = Server::start();
    s.create_db("shop", json!({}));
    for i in 0..7 {
        set_city(&s, "shop", &format!("c{i}"), "Porto");
    }
    set_city(&s, "shop", "c0", "Faro");
    let info = snapshot(&s, "shop").body;
    assert_eq!(info["lsn"], 8, "{info:#}");
    assert_eq!(info["profiles"], 7, "{info:#}");
    let path = Path::new(info["path"].as_str().unwrap());
    assert_eq!(
        path,
        s.data_dir().join("db/shop/snap-00000000000000000008.bin")
    );
    assert_eq!(
        info["bytes"],
        std::fs::metadata(path).unwrap().len(),
        "{info:#}"
    );

    s.post("/v1/databases/nope/snapshot", json!({}))
        .assert_problem(404, "database_not_found");
    let reader = s.key("reader", &["default"]);
    assert_eq!(
        s.call_as(&reader, Method::GET, "/v1/databases/shop/profiles/c0", None)
            .status,
        200
    );
    s.call_as(&reader, Method::POST, "/v1/databases/shop/snapshot", None)
        .assert_problem(403, "forbidden");
}

// Snapshots follow the database's size: once a snapshot of a few thousand profiles is
// written, many more writes than `--snapshot-after` that log far less than it take
// none; an import that rewrites every profile logs as much (a log record holds what a
// snapshot does, and a frame), and takes one.
#[test]
fn snapshots_come_once_the_log_has_grown_by_the_last_one() {
    let s = Server::start_with(&["--snapshot-after", "50"], &[]);
    s.create_db("shop", json!({}));
    let import = |city: &str| {
        let file: String = std::iter::once("customer_id,first_name,city\n".to_owned())
            .chain((0..3000).map(|i| format!("s{i},Name {i},{city} {i}\n")))
            .collect();
        let res = s.import("shop", "format=csv&wait=true", file);
        assert_eq!(res.body["rows_accepted"], 3000, "{:#}", res.body);
    };
    import("Lisbon");
    let taken = snapshot(&s, "shop");
    assert_eq!(taken.body["profiles"], 3000, "{:#}", taken.body);
    let newest = || {
        let all = sorted_files(&s.data_dir().join("db/shop"), "snap-", ".bin");
        all.last().cloned().unwrap()
    };
    let after_taken = newest();

    // 200 writes: four times the count, a few percent of the snapshot's size in log.
    for i in 0..200 {
        set_city(&s, "shop", &format!("s{i}"), "Porto");
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(newest(), after_taken, "a snapshot came with little logged");

    import("Faro");
    let deadline = Instant::now() + Duration::from_secs(30);
    while newest() == after_taken {
        assert!(
            Instant::now() < deadline,
            "no snapshot after a whole rewrite"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------
// Data written by an older version

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// What a profile document holds that a restart must keep (the rest is derived at read
/// time, some of it from the clock).
fn kept(doc: &Value) -> Value {
    let pick = |k: &str| doc[k].clone();
    let mut stats = pick("stats");
    if let Some(stats) = stats.as_object_mut() {
        stats.retain(|k, _| !k.starts_with("days_since"));
    }
    json!({
        "id": pick("id"), "customer_id": pick("customer_id"), "fields": pick("fields"),
        "identifiers": pick("identifiers"), "tags": pick("tags"), "contacts": pick("contacts"),
        "subscriptions": pick("subscriptions"), "created_at": pick("created_at"),
        "updated_at": pick("updated_at"), "stats": stats, "rfm": pick("rfm"),
    })
}

/// `tests/fixtures/format-v3` was written by the version before fields had numbers
/// (snapshot format 3, WAL format 1; `gen.sh` there says how): a snapshot, then a WAL
/// that re-adds a dropped field's name with another type, adds a field, drops one and
/// writes profiles in between. Today's server reads it as it was, writes it in today's
/// formats, and reads those back the same.
#[test]
fn data_from_before_field_numbers_loads_as_it_was() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v3");
    let expected: Vec<Value> = std::fs::read_to_string(fixture.join("expected.ndjson"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture.join("data"), dir.path());
    let s = Server::start_in(dir, &[], &[], true);
    check_docs(&s, &expected, "read from the old formats");
    // The start wrote them in today's formats before taking a write, and the old files
    // went.
    only_todays_formats(s.data_dir());
    let fields: Vec<String> = s.get("/v1/databases/shop").body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fields[9..], ["visits", "labels", "gone", "plan"]);
    // A field added now gets a number of its own: no old value shows up in it.
    let add = s.post(
        "/v1/databases/shop/fields",
        json!({"name": "score", "type": "integer"}),
    );
    assert_eq!(add.status, 201, "{:?}", add.body);
    let c1 = s.get("/v1/databases/shop/profiles/c1");
    assert_eq!(c1.body["fields"].get("score"), None);
    let patch = s.patch(
        "/v1/databases/shop/profiles/c1",
        json!({"fields": {"score": 3}}),
    );
    assert_eq!(patch.status, 200, "{:?}", patch.body);

    // The next start reads only today's formats.
    let s = s.restart(true);
    only_todays_formats(s.data_dir());
    let c1 = s.get("/v1/databases/shop/profiles/c1");
    assert_eq!(c1.body["fields"]["score"], 3);
    assert_eq!(c1.body["fields"]["gone"], 7);
    let mut expected = expected;
    expected[0]["fields"]["score"] = json!(3);
    expected[0]["updated_at"] = c1.body["updated_at"].clone();
    check_docs(&s, &expected, "read back from today's formats");
}

/// Every snapshot and WAL segment of `shop` is in today's format.
fn only_todays_formats(data: &Path) {
    let db = data.join("db/shop");
    let magics = |dir: &Path, prefix: &str, suffix: &str| -> Vec<Vec<u8>> {
        sorted_files(dir, prefix, suffix)
            .iter()
            .map(|f| std::fs::read(f).unwrap()[..8].to_vec())
            .collect()
    };
    let snaps = magics(&db, "snap-", ".bin");
    assert!(
        !snaps.is_empty() && snaps.iter().all(|m| m == b"PRSNSNP\x04"),
        "{snaps:?}"
    );
    let segments = magics(&db.join("wal"), "", ".wal");
    assert!(segments.iter().all(|m| m == b"PRSNWAL\x02"), "{segments:?}");
}

/// Each profile reads as `expected`, and identifiers find their holders.
fn check_docs(s: &Server, expected: &[Value], when: &str) {
    for doc in expected {
        let id = doc["customer_id"].as_str().unwrap();
        let got = s.get(&format!("/v1/databases/shop/profiles/{id}"));
        assert_eq!(got.status, 200, "{when}: {id}");
        assert_eq!(kept(&got.body), kept(doc), "{when}: {id}");
    }
    let by = s.get("/v1/databases/shop/profiles/by/email/Ana.Silva@example.com");
    assert_eq!(by.body["customer_id"], "c1", "{when}");
    let by = s.get("/v1/databases/shop/profiles/by/crm/A-1");
    assert_eq!(by.body["customer_id"], "c1", "{when}");
}
