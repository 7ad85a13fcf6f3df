//! Import jobs: a parser thread, builder threads, batches to the database actor, and the
//! job's record.
//!
//! [`Upload::start`] runs a job in four stages joined by bounded channels, so memory
//! stays bounded whatever the file's size and a slow stage slows the ones before it
//! (down to the client's TCP connection):
//!
//! ```text
//!                                  ┌▶ builder ─┐
//! body chunks ──▶ parser thread ───┼▶ builder ─┼──▶ Database::apply (the actor),
//!                 (rows, batches)  └▶ …       ─┘    batches in file order
//! ```
//!
//! The parser has a thread of its own, off the HTTP workers, so a big file never stalls
//! lookups. Builders (a thread a core) derive each row's contacts and build its profile
//! ahead of the actor (`db::prebuilt`), a batch each at a time: that is most of a row's
//! cost, and the one part that runs in parallel. Rows reach the actor as one
//! [`Change::Import`] per batch, in the file's order whichever builder finishes first;
//! the actor applies each row as it would a PATCH and names the rows it refused. Jobs
//! are kept, newest first, after they finish ([`Jobs`]).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use jiff::Timestamp;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use ulid::Ulid;

use super::chunks::Transform;
use super::{Format, Options, Row, RowError, Sink};
use crate::db::prebuilt::{ImportRow, prebuild as prebuild_row};
use crate::db::reads::Basis;
use crate::db::{Applied, Change, Database, DbState};
use crate::error::{ErrorCode, Problem};
use crate::store::PREFETCH_AHEAD;

/// The errors a job keeps, those of the lowest rows (the rest are counted, not kept).
pub const MAX_ERRORS: usize = 1000;
/// Rows a batch sends to the actor at once.
const BATCH: usize = 1024;
/// Builder threads a job may have (one a core, up to this).
const MAX_BUILDERS: usize = 8;
/// The file in a database's directory that keeps its finished jobs' records.
pub const RECORDS: &str = "imports.ndjson";
/// Finished jobs kept per database.
const KEEP_FINISHED: usize = 100;

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Reading or applying.
    Running,
    /// Every row read was applied or reported.
    Done,
    /// Stopped early: see `error`.
    Failed,
}

#[derive(Debug)]
struct State {
    status: Status,
    rows_total: u64,
    rows_accepted: u64,
    rows_rejected: u64,
    rows_held: u64,
    errors: Vec<RowError>,
    failure: Option<Problem>,
    finished_at: Option<Timestamp>,
}

/// One import.
#[derive(Debug)]
pub struct Job {
    /// The job id.
    pub id: Ulid,
    /// The database it imports into.
    pub database: String,
    /// The file's format.
    pub format: Format,
    started_at: Timestamp,
    // The body's length when the client said it (for `progress`).
    expected_bytes: Option<u64>,
    bytes_read: AtomicU64,
    // Set once the whole body has been handed over: the parser's input ending without
    // it means the upload broke off.
    body_complete: AtomicBool,
    state: Mutex<State>,
    // Flips to true once the job has finished.
    finished: watch::Sender<bool>,
    // Where the finished job's record is appended (the database's directory).
    archive: Option<PathBuf>,
    // A job finished before the server started: its record as read back.
    restored: Option<JobView>,
}

/// What `GET .../imports/{job}` answers; also a finished job's record on disk.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct JobView {
    /// The job id.
    pub job: String,
    /// The database.
    pub database: String,
    /// The file's format.
    pub format: Format,
    /// `running`, `done` or `failed`.
    pub status: Status,
    /// Rows read (good and bad).
    pub rows_total: u64,
    /// Rows applied.
    pub rows_accepted: u64,
    /// Rows refused.
    pub rows_rejected: u64,
    /// Rows an atomic import has validated and holds, to be applied together when the
    /// file ends (0 once the job has ended).
    #[serde(default)]
    pub rows_held: u64,
    /// Body bytes read so far.
    pub bytes_read: u64,
    /// Fraction of the body read, when its length is known; 1 once finished.
    pub progress: Option<f64>,
    /// When the job started.
    #[schema(value_type = String)]
    pub started_at: Timestamp,
    /// When it finished.
    #[schema(value_type = Option<String>)]
    pub finished_at: Option<Timestamp>,
    /// The first refused rows.
    #[schema(value_type = Vec<Object>)]
    pub errors: Vec<RowError>,
    /// Why the job failed, as a problem document.
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
}

impl Job {
    /// What the job looks like now.
    pub fn view(&self) -> JobView {
        if let Some(v) = &self.restored {
            return v.clone();
        }
        let st = self.state.lock();
        let bytes_read = self.bytes_read.load(Ordering::Relaxed);
        let progress = if st.status == Status::Running {
            self.expected_bytes
                .filter(|n| *n > 0)
                .map(|n| (bytes_read as f64 / n as f64).min(1.0))
        } else {
            Some(1.0)
        };
        JobView {
            job: self.id.to_string(),
            database: self.database.clone(),
            format: self.format,
            status: st.status,
            rows_total: st.rows_total,
            rows_accepted: st.rows_accepted,
            rows_rejected: st.rows_rejected,
            rows_held: st.rows_held,
            bytes_read,
            progress,
            started_at: self.started_at,
            finished_at: st.finished_at,
            errors: st.errors.clone(),
            error: st.failure.as_ref().map(Problem::to_json),
        }
    }

    /// About how many rows the body holds past those the parser has read, at the
    /// bytes a row so far (0 when the body's length is unknown).
    fn rows_to_come(&self) -> u64 {
        let Some(total) = self.expected_bytes else {
            return 0;
        };
        let read = self.bytes_read.load(Ordering::Relaxed);
        rows_to_come(total, read, self.state.lock().rows_total)
    }

    /// Why the file was refused before any row was read (an empty file, a bad header,
    /// a header and nothing else), if it was: such a job answers with the problem itself.
    pub fn refused(&self) -> Option<Problem> {
        let st = self.state.lock();
        st.failure.clone().filter(|_| st.rows_total == 0)
    }

    /// Waits until the job has finished.
    pub async fn finished(&self) {
        let mut rx = self.finished.subscribe();
        // Never fails: the sender lives as long as the job.
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Counts a refused row and keeps its error, in row order: a row the parser refuses
    /// is known before the rows ahead of it come back from the database.
    fn reject(&self, st: &mut State, e: RowError, rows: u64) {
        st.rows_rejected += rows;
        let at = st.errors.partition_point(|x| x.row <= e.row);
        if at < MAX_ERRORS {
            if st.errors.len() == MAX_ERRORS {
                st.errors.pop();
            }
            st.errors.insert(at, e);
        }
    }

    fn fail(&self, p: Problem) {
        let mut st = self.state.lock();
        if st.failure.is_none() {
            st.failure = Some(p);
        }
    }

    fn finish(&self) {
        {
            let mut st = self.state.lock();
            st.status = if st.failure.is_some() {
                Status::Failed
            } else {
                Status::Done
            };
            st.finished_at = Some(Timestamp::now());
            st.rows_held = 0;
        }
        if let Some(path) = &self.archive {
            // Best effort: the record is for people looking back; losing it loses no data.
            if let Err(e) = append_record(path, &self.view()) {
                tracing::warn!(file = %path.display(), error = %e, "cannot keep the import job's record");
            }
        }
        self.finished.send_replace(true);
    }
}

impl Job {
    /// A job that finished before this server started, from its record.
    fn restored(id: Ulid, database: &str, view: JobView) -> Job {
        let finished = watch::Sender::new(true);
        Job {
            id,
            database: database.to_owned(),
            format: view.format,
            started_at: view.started_at,
            expected_bytes: None,
            bytes_read: AtomicU64::new(view.bytes_read),
            body_complete: AtomicBool::new(true),
            state: Mutex::new(State {
                status: view.status,
                rows_total: view.rows_total,
                rows_accepted: view.rows_accepted,
                rows_rejected: view.rows_rejected,
                rows_held: 0,
                errors: Vec::new(),
                failure: None,
                finished_at: view.finished_at,
            }),
            finished,
            archive: None,
            restored: Some(view),
        }
    }
}

/// Appends one job record (a JSON line).
fn append_record(path: &Path, view: &JobView) -> std::io::Result<()> {
    use std::io::Write;
    let mut line = serde_json::to_vec(view).map_err(std::io::Error::other)?;
    line.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(&line)
}

/// Every database's import jobs.
pub struct Jobs {
    jobs: Mutex<BTreeMap<(String, Ulid), Arc<Job>>>,
    // Job ids ascend even within a millisecond: the list is newest first by id.
    ids: Mutex<ulid::Generator>,
    // Jobs that may run at once, server-wide: each holds a parser thread and builders.
    max_running: usize,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("jobs", &self.jobs)
            .field("max_running", &self.max_running)
            .finish_non_exhaustive()
    }
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs::new(4)
    }
}

impl Jobs {
    /// No jobs yet; at most `max_running` running at once.
    pub fn new(max_running: usize) -> Self {
        Jobs {
            jobs: Mutex::default(),
            ids: Mutex::new(ulid::Generator::new()),
            max_running: max_running.max(1),
        }
    }

    fn create(
        &self,
        database: &str,
        format: Format,
        expected_bytes: Option<u64>,
        archive: Option<PathBuf>,
    ) -> Result<Arc<Job>, Problem> {
        // Counted and taken under one lock, so two requests cannot both take the last
        // place.
        let mut jobs = self.jobs.lock();
        let running = jobs
            .values()
            .filter(|j| j.state.lock().status == Status::Running)
            .count();
        if running >= self.max_running {
            return Err(Problem::new(
                ErrorCode::ImportsBusy,
                format!(
                    "{running} imports are running, as many as this server allows \
                     (--max-imports); retry when one has finished"
                ),
            )
            .with("limit", self.max_running));
        }
        // The generator fails only when 2^80 ids were given in one millisecond.
        let id = self.ids.lock().generate().unwrap_or_else(|_| Ulid::new());
        let job = Arc::new(Job {
            id,
            database: database.to_owned(),
            format,
            started_at: Timestamp::now(),
            expected_bytes,
            bytes_read: AtomicU64::new(0),
            body_complete: AtomicBool::new(false),
            state: Mutex::new(State {
                status: Status::Running,
                rows_total: 0,
                rows_accepted: 0,
                rows_rejected: 0,
                rows_held: 0,
                errors: Vec::new(),
                failure: None,
                finished_at: None,
            }),
            finished: watch::Sender::new(false),
            archive,
            restored: None,
        });
        Ok(Self::insert_into(&mut jobs, job))
    }

    fn insert(&self, job: Arc<Job>) -> Arc<Job> {
        Self::insert_into(&mut self.jobs.lock(), job)
    }

    fn insert_into(jobs: &mut BTreeMap<(String, Ulid), Arc<Job>>, job: Arc<Job>) -> Arc<Job> {
        let database = job.database.clone();
        let database = database.as_str();
        // Keep the newest finished jobs; running ones always stay.
        let finished: Vec<(String, Ulid)> = jobs
            .iter()
            .filter(|((db, _), j)| db == database && j.state.lock().status != Status::Running)
            .map(|(k, _)| k.clone())
            .collect();
        for key in finished.iter().rev().skip(KEEP_FINISHED - 1) {
            jobs.remove(key);
        }
        jobs.insert((database.to_owned(), job.id), Arc::clone(&job));
        job
    }

    /// A job of a database.
    pub fn get(&self, database: &str, id: &str) -> Option<Arc<Job>> {
        let id = Ulid::from_string(id).ok()?;
        self.jobs.lock().get(&(database.to_owned(), id)).cloned()
    }

    /// A database's jobs, newest first.
    pub fn list(&self, database: &str) -> Vec<Arc<Job>> {
        let jobs = self.jobs.lock();
        let mut list: Vec<Arc<Job>> = jobs
            .range((database.to_owned(), Ulid::nil())..)
            .take_while(|((db, _), _)| db == database)
            .map(|(_, j)| Arc::clone(j))
            .collect();
        list.reverse();
        list
    }

    /// Reads back a database's job records: the newest `KEEP_FINISHED` (100) jobs, each as
    /// its last record says. A job whose last record says `running` was cut off by a
    /// stop or a crash, and is shown as failed with `import_interrupted`. The file is
    /// rewritten to one line a kept job; a record that does not read is skipped with a
    /// warning.
    pub fn restore(&self, database: &str, path: &Path) {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read import job records");
                return;
            }
        };
        let mut last: BTreeMap<Ulid, JobView> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let read = serde_json::from_str::<JobView>(line)
                .map_err(|e| e.to_string())
                .and_then(|v| Ok((Ulid::from_string(&v.job).map_err(|e| e.to_string())?, v)));
            match read {
                Ok((id, view)) => {
                    last.insert(id, view);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "an unreadable import job record");
                }
            }
        }
        let skip = last.len().saturating_sub(KEEP_FINISHED);
        let mut kept = Vec::new();
        for (id, mut view) in last.into_iter().skip(skip) {
            if view.status == Status::Running {
                view.status = Status::Failed;
                view.progress = Some(1.0);
                view.error = Some(
                    Problem::new(
                        ErrorCode::ImportInterrupted,
                        "the server stopped before the import finished; rows applied until \
                         then were kept",
                    )
                    .to_json(),
                );
            }
            kept.push(serde_json::to_string(&view).expect("a job view serializes"));
            self.insert(Arc::new(Job::restored(id, database, view)));
        }
        let mut rewritten = kept.join("\n");
        rewritten.push('\n');
        if rewritten != text
            && let Err(e) = std::fs::write(path, rewritten)
        {
            tracing::warn!(file = %path.display(), error = %e, "cannot rewrite import job records");
        }
    }

    /// Forgets a database's jobs (it was deleted).
    pub fn forget(&self, database: &str) {
        self.jobs.lock().retain(|(db, _), _| db != database);
    }
}

/// The sending end of a running job: the HTTP side pushes the body's chunks in.
pub struct Upload {
    job: Arc<Job>,
    chunks: Option<mpsc::Sender<Bytes>>,
    // True once the parser has read a row or stopped: whether the file was refused
    // outright is known from then on.
    settled: watch::Receiver<bool>,
}

impl Upload {
    /// Starts a job importing into `db`: a parser thread, builders, and a task on the
    /// current (actix) thread that sends its batches to the actor.
    /// The finished job's record is appended to `archive` (the database directory's
    /// [`RECORDS`] file).
    pub fn start(
        jobs: &Jobs,
        db: Arc<Database>,
        opts: Options,
        expected_bytes: Option<u64>,
        archive: Option<PathBuf>,
        transform: Option<Box<dyn Transform + Send>>,
    ) -> Result<Upload, Problem> {
        let job = jobs.create(&db.name(), opts.format, expected_bytes, archive)?;
        if let Some(path) = &job.archive
            && let Err(e) = append_record(path, &job.view())
        {
            // Recorded as running, so that a crash leaves it shown as cut off.
            tracing::warn!(file = %path.display(), error = %e, "cannot keep the import job's record");
        }
        let (chunk_tx, chunk_rx) = mpsc::channel::<Bytes>(8);
        // Batches for the actor, in file order, each ready once a builder has done it:
        // room for one a builder, and one more, so that every builder has work while
        // the actor applies the oldest.
        let builders =
            std::thread::available_parallelism().map_or(2, |n| n.get().min(MAX_BUILDERS));
        let (batch_tx, batch_rx) = mpsc::channel::<oneshot::Receiver<Batch>>(builders + 1);
        // Applied batches come back to the parser, which made their rows: it frees what
        // they still hold (mostly its own allocations, whose free is the allocator's
        // cheap one) and fills the same vector again.
        let (spent_tx, spent_rx) = std::sync::mpsc::channel::<Vec<ImportRow>>();
        let (settled_tx, settled_rx) = watch::channel(false);
        let schema = db.state.schema.load_full();
        let region = db.state.settings.load().default_region.clone();
        // Rows of an ordinary import are built by the builders (`db::prebuilt`);
        // an atomic import's are built by the actor over what the import holds.
        let prebuild = (!opts.atomic).then(|| Arc::clone(&db.state));
        let work = start_builders(job.id, builders, region, prebuild).inspect_err(|p| {
            job.fail(p.clone());
            job.finish();
        })?;
        let parser_job = Arc::clone(&job);
        std::thread::Builder::new()
            .name(format!("import-{}", job.id))
            .spawn(move || {
                let input = ChunkReader {
                    rx: chunk_rx,
                    chunk: Bytes::new(),
                    job: Arc::clone(&parser_job),
                };
                let mut sink = Batcher {
                    work,
                    job: Arc::clone(&parser_job),
                    batch: Batch::default(),
                    tx: batch_tx,
                    spent: spent_rx,
                    settled: settled_tx,
                };
                // A panic in a parser fails this job, not silently as a finished one.
                let parsed =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match transform {
                        Some(mut t) => super::chunks::parse(input, &opts, t.as_mut(), &mut sink),
                        None => super::parse(input, &opts, &schema, &mut sink),
                    }));
                match parsed {
                    Ok(Ok(())) => {}
                    Ok(Err(p)) => parser_job.fail(p),
                    Err(_) => parser_job.fail(Problem::new(
                        ErrorCode::Internal,
                        "the import's parser failed; rows read before it were applied",
                    )),
                }
                sink.flush();
                sink.settled.send_replace(true);
                // Dropping the batch sender ends the applying task, which finishes
                // the job once the last batch is applied.
            })
            .map_err(|e| {
                let p = Problem::new(
                    ErrorCode::Unavailable,
                    format!("cannot start the import's parser: {e}"),
                );
                job.fail(p.clone());
                job.finish();
                p
            })?;
        actix_web::rt::spawn(apply_batches(
            Arc::clone(&job),
            db,
            batch_rx,
            spent_tx,
            opts.atomic,
        ));
        Ok(Upload {
            job,
            chunks: Some(chunk_tx),
            settled: settled_rx,
        })
    }

    /// The job.
    pub fn job(&self) -> &Arc<Job> {
        &self.job
    }

    /// Passes on a chunk of the body; `false` when the parser has stopped (the file was
    /// refused, or the job failed) and wants no more.
    pub async fn send(&mut self, chunk: Bytes) -> bool {
        match &self.chunks {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        }
    }

    /// The body broke off: the job fails with that problem.
    pub fn abort(&mut self, p: Problem) {
        self.job.fail(p);
        self.chunks = None;
    }

    /// The body is complete. Returns once the parser has read a row or stopped (so a
    /// refused file is known), not when the job is done.
    pub async fn finish(mut self) -> Arc<Job> {
        if let Some(chunks) = self.chunks.take() {
            // Before the channel closes, so the parser reads its end as the file's.
            self.job.body_complete.store(true, Ordering::SeqCst);
            drop(chunks);
        }
        // Never fails: the parser thread sends `true` before it drops the sender.
        let _ = self.settled.wait_for(|settled| *settled).await;
        Arc::clone(&self.job)
    }
}

impl Drop for Upload {
    /// An upload dropped before `finish` (the connection was reset, the request
    /// cancelled) broke off: the job fails, and the parser reads the end of its input as
    /// an error, not as the end of the file.
    fn drop(&mut self) {
        if self.chunks.take().is_some() {
            self.job.fail(Problem::new(
                ErrorCode::ImportUploadFailed,
                "the upload broke off before its end",
            ));
        }
    }
}

/// The body as `io::Read`, fed by the HTTP side through a bounded channel.
struct ChunkReader {
    rx: mpsc::Receiver<Bytes>,
    chunk: Bytes,
    job: Arc<Job>,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.blocking_recv() {
                Some(c) => self.chunk = c,
                // A body that broke off is not an end of file: the bytes so far may end
                // inside a row, which must not be read as a whole one.
                None if !self.job.body_complete.load(Ordering::SeqCst) => {
                    return Err(std::io::Error::other("the upload broke off"));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        self.job.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Rows on their way to the actor.
#[derive(Default)]
struct Batch {
    // Per row: where it is in the file, and how many of the file's rows it stands for
    // (a long file's customer folds several).
    numbers: Vec<(u64, u64)>,
    rows: Vec<ImportRow>,
}

/// A batch for a builder, and where the built batch goes.
type Work = (Batch, oneshot::Sender<Batch>);

/// Starts `count` threads that derive contacts and build profiles for a job's batches;
/// they end when the returned queue's sender is dropped.
fn start_builders(
    job: Ulid,
    count: usize,
    region: Option<String>,
    prebuild: Option<Arc<DbState>>,
) -> Result<std::sync::mpsc::SyncSender<Work>, Problem> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Work>(count);
    // One queue for all: whichever builder is free takes the next batch.
    let rx = Arc::new(Mutex::new(rx));
    for k in 0..count {
        let (rx, region, prebuild) = (Arc::clone(&rx), region.clone(), prebuild.clone());
        std::thread::Builder::new()
            .name(format!("import-{job}-b{k}"))
            .spawn(move || {
                // The lock is held while waiting, not while building.
                while let Ok((mut batch, done)) = { rx.lock().recv() } {
                    if done.is_closed() {
                        // The job has stopped: nobody will apply it.
                        continue;
                    }
                    // One reading of the schema, settings and clock for the batch.
                    let now = jiff::Timestamp::now();
                    let build = prebuild.as_ref().map(|st| (st, Arc::new(Basis::now(st))));
                    for i in 0..batch.rows.len() {
                        // The place the build of a row further on will look its customer
                        // id up at, so that its miss overlaps this row's work.
                        if let (Some((st, _)), Some(next)) =
                            (&build, batch.rows.get(i + PREFETCH_AHEAD))
                            && !next.update.customer_id.is_empty()
                        {
                            st.store.prefetch_place(&next.update.customer_id);
                        }
                        let row = &mut batch.rows[i];
                        // Contacts are derived here, off the actor's thread, and the
                        // profile is built here too when it can be.
                        row.update.prepare(region.as_deref());
                        row.built = build
                            .as_ref()
                            .and_then(|(st, basis)| prebuild_row(st, basis, now, &row.update));
                    }
                    // Gone only when the job has stopped.
                    let _ = done.send(batch);
                }
            })
            .map_err(|e| {
                Problem::new(
                    ErrorCode::Unavailable,
                    format!("cannot start the import's builders: {e}"),
                )
            })?;
    }
    Ok(tx)
}

/// Collects rows into batches for the actor; records refused rows on the job.
struct Batcher {
    // The builders' queue.
    work: std::sync::mpsc::SyncSender<Work>,
    job: Arc<Job>,
    batch: Batch,
    tx: mpsc::Sender<oneshot::Receiver<Batch>>,
    spent: std::sync::mpsc::Receiver<Vec<ImportRow>>,
    settled: watch::Sender<bool>,
}

impl Batcher {
    fn flush(&mut self) -> bool {
        if self.batch.rows.is_empty() {
            return true;
        }
        let rows = match self.spent.try_recv() {
            Ok(mut rows) => {
                rows.clear();
                rows
            }
            Err(_) => Vec::with_capacity(BATCH),
        };
        let next = Batch {
            numbers: Vec::with_capacity(BATCH),
            rows,
        };
        let batch = std::mem::replace(&mut self.batch, next);
        let (done, built) = oneshot::channel();
        // Its place in line first, then the work: the actor takes batches in this order.
        self.tx.blocking_send(built).is_ok() && self.work.send((batch, done)).is_ok()
    }
}

impl Sink for Batcher {
    fn row(&mut self, row: Row) -> bool {
        self.job.state.lock().rows_total += row.rows;
        self.settled
            .send_if_modified(|s| !std::mem::replace(s, true));
        self.batch.numbers.push((row.row, row.rows));
        self.batch.rows.push(ImportRow::from(row.update));
        self.batch.rows.len() < BATCH || self.flush()
    }

    fn error(&mut self, error: RowError) {
        self.error_rows(error, 1);
    }

    fn error_rows(&mut self, error: RowError, rows: u64) {
        let mut st = self.job.state.lock();
        st.rows_total += rows;
        self.job.reject(&mut st, error, rows);
        drop(st);
        self.settled
            .send_if_modified(|s| !std::mem::replace(s, true));
    }
}

/// Applies batches as they come (or, for an atomic import, has the actor validate and
/// hold each batch and publish them all at the end), then finishes the job. (Sending
/// the actor the next batch before the last is answered was measured and gained
/// nothing: the builders are ahead of it, and one batch is a megabyte of rows.)
async fn apply_batches(
    job: Arc<Job>,
    db: Arc<Database>,
    mut rx: mpsc::Receiver<oneshot::Receiver<Batch>>,
    spent: std::sync::mpsc::Sender<Vec<ImportRow>>,
    atomic: bool,
) {
    let import = job.id;
    // Rows the actor holds for an atomic import.
    let mut held: u64 = 0;
    while let Some(built) = rx.recv().await {
        let Ok(batch) = built.await else {
            let detail = if atomic {
                "the import's builder failed; nothing was applied"
            } else {
                "the import's builder failed; rows before it were applied"
            };
            job.fail(Problem::new(ErrorCode::Internal, detail));
            break;
        };
        if !atomic {
            // The rows to come in the batch's kind of row (a long file's rows fold into
            // one a customer), so that the actor scales what this batch added.
            let file_rows: u64 = batch.numbers.iter().map(|(_, n)| n).sum();
            let to_come = scale(job.rows_to_come(), batch.rows.len() as u64, file_rows);
            let change = |rows| Change::Import { rows, to_come };
            match apply(&job, &db, change, batch).await {
                Some(rows) => {
                    // Gone only when the parser has stopped.
                    let _ = spent.send(rows);
                }
                None => break,
            }
            continue;
        }
        // A refused row (or a failure) means nothing will be applied: stop reading (the
        // parser stops at its next batch) rather than validate the rest.
        let stop = {
            let st = job.state.lock();
            st.rows_rejected > 0 || st.failure.is_some()
        };
        if stop {
            break;
        }
        held += batch.numbers.iter().map(|(_, n)| n).sum::<u64>();
        let stage = |rows: Vec<ImportRow>| Change::ImportStage {
            import,
            updates: rows.into_iter().map(|r| r.update).collect(),
        };
        if apply(&job, &db, stage, batch).await.is_none() {
            break;
        }
        let mut st = job.state.lock();
        if st.rows_rejected == 0 {
            st.rows_held = held;
        }
    }
    drop(rx);
    if atomic {
        let (failed, refused) = {
            let st = job.state.lock();
            (st.failure.is_some(), st.rows_rejected)
        };
        let committed = !failed
            && refused == 0
            && match db.apply(Change::ImportCommit { import, rows: held }).await {
                Ok(_) => true,
                Err(p) => {
                    job.fail(p);
                    false
                }
            };
        if committed {
            job.state.lock().rows_accepted = held;
        } else {
            // Whatever the actor still holds goes (a commit refused before it began,
            // on a failed log, leaves it there too); nothing of the import was applied.
            let _ = db.apply(Change::ImportAbort { import }).await;
        }
        if refused > 0 && !failed {
            job.fail(Problem::new(
                ErrorCode::ImportNotApplied,
                format!("{refused} rows were refused, so nothing was applied (atomic=true)"),
            ));
        }
    }
    job.finish();
}

/// Rows in `total` bytes past `read` bytes that held `rows` rows.
fn rows_to_come(total: u64, read: u64, rows: u64) -> u64 {
    scale(total.saturating_sub(read), rows, read)
}

/// `n × num / den`, without overflow (0 when `den` is).
fn scale(n: u64, num: u64, den: u64) -> u64 {
    if den == 0 {
        return 0;
    }
    (u128::from(n) * u128::from(num) / u128::from(den)).min(u128::from(u64::MAX)) as u64
}

/// Sends rows to the actor as one change and records what it says; the rows it hands
/// back, spent, or `None` when the database cannot take writes (storage failed,
/// shutting down) and the job failed.
async fn apply(
    job: &Job,
    db: &Database,
    change: impl FnOnce(Vec<ImportRow>) -> Change,
    batch: Batch,
) -> Option<Vec<ImportRow>> {
    let Batch { numbers, rows } = batch;
    match db.apply(change(rows)).await {
        Ok(Applied::Imported {
            rejected,
            committed,
            spent,
        }) => {
            let mut st = job.state.lock();
            let refused: u64 = rejected.iter().map(|(i, _)| numbers[*i].1).sum();
            if committed {
                st.rows_accepted += numbers.iter().map(|(_, n)| n).sum::<u64>() - refused;
            }
            for (i, p) in rejected {
                let (row, rows) = numbers[i];
                job.reject(&mut st, RowError::from_problem(row, &p), rows);
            }
            Some(spent)
        }
        Ok(_) => unreachable!("an import answers Imported"),
        Err(p) => {
            // The parser stops at its next batch.
            job.fail(p);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Format, Jobs, rows_to_come, scale};

    #[test]
    fn jobs_made_within_one_millisecond_are_listed_newest_first() {
        let jobs = Jobs::new(1000);
        let made: Vec<_> = (0..200)
            .map(|_| jobs.create("shop", Format::Csv, None, None).unwrap().id)
            .collect();
        let listed: Vec<_> = jobs.list("shop").iter().map(|j| j.id).collect();
        assert_eq!(listed, made.into_iter().rev().collect::<Vec<_>>());
    }

    #[test]
    fn rows_to_come_follow_the_bytes_a_row_so_far() {
        // 1,000 rows in the first 100,000 bytes of 1,000,000.
        assert_eq!(rows_to_come(1_000_000, 100_000, 1_000), 9_000);
        // Read to the end, past it (a length the client understated), or nothing yet.
        assert_eq!(rows_to_come(1_000_000, 1_000_000, 10_000), 0);
        assert_eq!(rows_to_come(1_000, 2_000, 10), 0);
        assert_eq!(rows_to_come(1_000_000, 0, 0), 0);
        // No overflow on a huge claimed length.
        assert_eq!(scale(u64::MAX, u64::MAX, 1), u64::MAX);
    }
}
