//! Import plugins: WebAssembly components that turn partner payloads into updates.
//!
//! Owns the plugin contract's host side ([`host`]: the sandbox, wasmtime), the registry
//! of uploaded plugins and their files under `<data_dir>/plugins/` (this file), and the
//! translation of what a plugin returns into [`ProfileUpdate`](crate::schema::ProfileUpdate)s ([`convert`]). A plugin
//! never writes: its updates go to the database actor like any other write. Uses
//! `schema` (the update type, the field schema a plugin is shown) and `ingest` (rows and
//! chunks of import files); knows nothing of HTTP.
//!
//! Files: `<name>.wasm` (what was uploaded), `<name>.cwasm` (machine code for this
//! engine, so a restart does not recompile; rebuilt from the `.wasm` if the engine
//! changed) and `<name>.json` (its [`PluginInfo`]), each written under a temporary name
//! and renamed into place, the `.json` last (`persist::replace_file`).

pub mod convert;
pub mod host;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ErrorCode, Problem};
pub use host::{Compiled, Limits, Payload, Sandbox};

/// Largest plugin accepted, in bytes.
pub const MAX_PLUGIN_BYTES: usize = 32 << 20;

/// Why a plugin could not be stored or a call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PluginError {
    /// Not a component of the contract.
    #[error("{0}")]
    Invalid(String),
    /// No such plugin.
    #[error("no plugin is named `{0}`")]
    NotFound(String),
    /// A name that is not `[a-z0-9_-]{1,64}`.
    #[error("`{0}` is not a plugin name: 1 to 64 of a-z, 0-9, `_` and `-`")]
    BadName(String),
    /// The call ran out of time.
    #[error("{0}")]
    Timeout(String),
    /// The call wanted more memory than allowed.
    #[error("{0}")]
    MemoryExceeded(String),
    /// The call trapped (a panic, `unreachable`, an out-of-bounds access...).
    #[error("the plugin trapped: {0}")]
    Trap(String),
    /// The call returned more than a payload may.
    #[error("{0}")]
    OutputTooLarge(String),
    /// The plugin refused the payload as a whole.
    #[error("the plugin refused the payload: {0}")]
    Refused(String),
    /// The plugin's files could not be read or written, or the engine failed.
    #[error("{0}")]
    Host(String),
}

impl PluginError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            PluginError::Invalid(_) => ErrorCode::PluginInvalid,
            PluginError::NotFound(_) => ErrorCode::PluginNotFound,
            PluginError::BadName(_) => ErrorCode::PluginNameInvalid,
            PluginError::Timeout(_) => ErrorCode::PluginTimeout,
            PluginError::MemoryExceeded(_) => ErrorCode::PluginMemoryExceeded,
            PluginError::Trap(_) => ErrorCode::PluginTrap,
            PluginError::OutputTooLarge(_) => ErrorCode::PluginOutputTooLarge,
            PluginError::Refused(_) => ErrorCode::PluginPayloadRefused,
            PluginError::Host(_) => ErrorCode::Internal,
        }
    }
}

impl From<PluginError> for Problem {
    fn from(e: PluginError) -> Problem {
        Problem::new(e.code(), e.to_string())
    }
}

/// Settings a publisher gives a plugin at upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginSettings {
    /// Time budget per payload, in milliseconds (1 to 10000; default 100).
    pub timeout_ms: u32,
    /// Memory cap, in MiB (1 to 1024; default 64).
    pub memory_mib: u32,
}

impl Default for PluginSettings {
    fn default() -> Self {
        PluginSettings {
            timeout_ms: 100,
            memory_mib: 64,
        }
    }
}

impl PluginSettings {
    /// Checks the ranges.
    pub fn check(&self) -> Result<(), Problem> {
        if !(1..=10_000).contains(&self.timeout_ms) {
            return Err(Problem::new(
                ErrorCode::InvalidQuery,
                format!("timeout_ms is 1 to 10000, not {}", self.timeout_ms),
            ));
        }
        if !(1..=host::MAX_MEMORY_MIB).contains(&self.memory_mib) {
            return Err(Problem::new(
                ErrorCode::InvalidQuery,
                format!(
                    "memory_mib is 1 to {}, not {}",
                    host::MAX_MEMORY_MIB,
                    self.memory_mib
                ),
            ));
        }
        Ok(())
    }

    /// The limits of one call.
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: Duration::from_millis(self.timeout_ms.into()),
            memory: (self.memory_mib as usize) << 20,
            ..Limits::default()
        }
    }
}

/// What is known of an uploaded plugin (kept as `<name>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PluginInfo {
    /// The plugin's name.
    pub name: String,
    /// Its version: the first 16 hex digits of its SHA-256.
    pub version: String,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// Size of the component, in bytes.
    pub size: u64,
    /// When this version was uploaded.
    #[schema(value_type = String, format = DateTime)]
    pub uploaded_at: Timestamp,
    /// Its limits.
    pub settings: PluginSettings,
    /// The component's exports.
    pub exports: Vec<String>,
}

/// Calls of one plugin version since the server started.
#[derive(Debug, Default)]
pub struct Stats {
    calls: AtomicU64,
    errors: AtomicU64,
    nanos: AtomicU64,
}

/// [`Stats`] as shown.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct StatsView {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed (timeout, trap, memory, refusal, output too large).
    pub errors: u64,
    /// Mean time of a call, in microseconds.
    pub mean_us: u64,
}

impl Stats {
    /// The figures.
    pub fn view(&self) -> StatsView {
        let calls = self.calls.load(Ordering::Relaxed);
        StatsView {
            calls,
            errors: self.errors.load(Ordering::Relaxed),
            mean_us: self.nanos.load(Ordering::Relaxed) / calls.max(1) / 1000,
        }
    }
}

/// One loaded plugin version. Calls hold an `Arc` of it, so a replaced plugin finishes
/// the calls it started.
#[derive(Debug)]
pub struct Plugin {
    /// What is known of it.
    pub info: PluginInfo,
    name: Arc<str>,
    compiled: Compiled,
    /// Its calls.
    pub stats: Stats,
}

/// The uploaded plugins and the sandbox they run in.
#[derive(Debug)]
pub struct Plugins {
    sandbox: Sandbox,
    dir: Option<PathBuf>,
    loaded: RwLock<HashMap<String, Arc<Plugin>>>,
    // Held while a plugin's files change: two uploads under one name must not
    // interleave their three files.
    writing: parking_lot::Mutex<()>,
    // The threads webhook calls run on.
    workers: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

/// Checks a plugin name: the same rule as database names.
pub fn check_name(name: &str) -> Result<(), PluginError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(PluginError::BadName(name.escape_debug().to_string()))
    }
}

impl Plugins {
    /// Opens `dir` (created if absent; `None` keeps plugins in memory only) and loads
    /// every plugin in it. A plugin that fails to load is logged and left out.
    pub fn open(dir: Option<&Path>) -> Result<Plugins, PluginError> {
        let plugins = Plugins {
            sandbox: Sandbox::new()?,
            dir: dir.map(Path::to_path_buf),
            loaded: RwLock::new(HashMap::new()),
            writing: parking_lot::Mutex::new(()),
            workers: start_workers()?,
        };
        let Some(dir) = dir else { return Ok(plugins) };
        fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
        for entry in fs::read_dir(dir).map_err(|e| io_error(dir, &e))? {
            let path = entry.map_err(|e| io_error(dir, &e))?.path();
            if path.extension().is_some_and(|x| x == "json") {
                match plugins.load_file(&path) {
                    Ok(p) => {
                        tracing::info!(plugin = %p.info.name, version = %p.info.version, "plugin loaded");
                        plugins
                            .loaded
                            .write()
                            .insert(p.info.name.clone(), Arc::new(p));
                    }
                    Err(e) => {
                        tracing::error!(file = %path.display(), error = %e, "plugin not loaded")
                    }
                }
            }
        }
        Ok(plugins)
    }

    /// Loads one plugin from its files; recompiles (and rewrites `.cwasm`) when the
    /// machine code was made by another engine.
    fn load_file(&self, meta: &Path) -> Result<Plugin, PluginError> {
        let info: PluginInfo =
            serde_json::from_slice(&fs::read(meta).map_err(|e| io_error(meta, &e))?)
                .map_err(|e| PluginError::Host(format!("{}: {e}", meta.display())))?;
        let cwasm = meta.with_extension("cwasm");
        let compiled = match fs::read(&cwasm)
            .map_err(|e| io_error(&cwasm, &e))
            .and_then(|b| self.sandbox.load(&b))
        {
            Ok(c) => c,
            Err(e) => {
                tracing::info!(plugin = %info.name, reason = %e, "recompiling plugin");
                let wasm_path = meta.with_extension("wasm");
                let wasm = fs::read(&wasm_path).map_err(|e| io_error(&wasm_path, &e))?;
                let code = self.sandbox.precompile(&wasm)?;
                write_atomic(&cwasm, &code)?;
                self.sandbox.load(&code)?
            }
        };
        Ok(Plugin {
            name: info.name.as_str().into(),
            info,
            compiled,
            stats: Stats::default(),
        })
    }

    /// Compiles, checks and stores a plugin under `name`, replacing any before it. Slow
    /// (a compile is 60-110 ms): call it off the HTTP workers. Returns the stored
    /// plugin and whether it is new under this name.
    pub fn put(
        &self,
        name: &str,
        wasm: &[u8],
        settings: PluginSettings,
    ) -> Result<(Arc<Plugin>, bool), PluginError> {
        check_name(name)?;
        if wasm.len() > MAX_PLUGIN_BYTES {
            return Err(PluginError::Invalid(format!(
                "the component is {} bytes; the most a plugin may be is {MAX_PLUGIN_BYTES}",
                wasm.len()
            )));
        }
        let code = self.sandbox.precompile(wasm)?;
        let compiled = self.sandbox.load(&code)?;
        let sha256 = hex::encode(Sha256::digest(wasm));
        let info = PluginInfo {
            name: name.to_owned(),
            version: sha256[..16].to_owned(),
            sha256,
            size: wasm.len() as u64,
            uploaded_at: Timestamp::now(),
            settings,
            exports: compiled.exports.clone(),
        };
        let _writing = self.writing.lock();
        if let Some(dir) = &self.dir {
            let base = dir.join(name);
            write_atomic(&base.with_extension("wasm"), wasm)?;
            write_atomic(&base.with_extension("cwasm"), &code)?;
            let meta = serde_json::to_vec_pretty(&info).expect("plugin info serializes");
            write_atomic(&base.with_extension("json"), &meta)?;
        }
        let plugin = Arc::new(Plugin {
            name: name.into(),
            info,
            compiled,
            stats: Stats::default(),
        });
        let old = self
            .loaded
            .write()
            .insert(name.to_owned(), Arc::clone(&plugin));
        Ok((plugin, old.is_none()))
    }

    /// The plugin named `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Plugin>, PluginError> {
        self.loaded
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| PluginError::NotFound(name.escape_debug().to_string()))
    }

    /// Every plugin, by name.
    pub fn list(&self) -> Vec<Arc<Plugin>> {
        let mut all: Vec<_> = self.loaded.read().values().cloned().collect();
        all.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        all
    }

    /// Removes a plugin and its files. Calls already running finish.
    pub fn delete(&self, name: &str) -> Result<(), PluginError> {
        let _writing = self.writing.lock();
        if self.loaded.write().remove(name).is_none() {
            return Err(PluginError::NotFound(name.escape_debug().to_string()));
        }
        if let Some(dir) = &self.dir {
            // The description first: without it, leftovers are not loaded again.
            for ext in ["json", "cwasm", "wasm"] {
                let path = dir.join(name).with_extension(ext);
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_error(&path, &e)),
                }
            }
        }
        Ok(())
    }

    /// Runs one payload through `plugin` on a plugin thread and waits for it without
    /// blocking the caller's thread (webhooks).
    pub async fn run(
        self: &Arc<Self>,
        plugin: Arc<Plugin>,
        payload: Payload,
    ) -> Result<host::Output, PluginError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let plugins = Arc::clone(self);
        let job = Box::new(move || {
            let _ = tx.send(plugins.call(&plugin, &payload));
        });
        let gone = || PluginError::Host("the plugin threads have stopped".into());
        self.workers.send(job).map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// Runs one payload through `plugin` on the calling thread, which should be a
    /// thread of low priority (see [`lower_priority`]) and never an HTTP worker: a
    /// call may take its whole time budget.
    pub fn call(&self, plugin: &Plugin, payload: &Payload) -> Result<host::Output, PluginError> {
        let started = Instant::now();
        let out = self.sandbox.call(
            &plugin.compiled,
            &plugin.name,
            payload,
            plugin.info.settings.limits(),
        );
        let took = started.elapsed().as_nanos() as u64;
        plugin.stats.calls.fetch_add(1, Ordering::Relaxed);
        plugin.stats.nanos.fetch_add(took, Ordering::Relaxed);
        if let Err(e) = &out {
            plugin.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::info!(plugin = %plugin.info.name, code = e.code().as_str(), error = %e, "plugin call failed");
        }
        out
    }

    /// Compiles and checks a component without storing it (`persona plugin check`).
    pub fn check(&self, wasm: &[u8]) -> Result<Compiled, PluginError> {
        let code = self.sandbox.precompile(wasm)?;
        self.sandbox.load(&code)
    }

    /// Runs a payload through a component that is not stored (`persona plugin run`).
    pub fn run_once(
        &self,
        compiled: &Compiled,
        payload: &Payload,
        limits: Limits,
    ) -> Result<host::Output, PluginError> {
        self.sandbox
            .call(compiled, &Arc::from("cli"), payload, limits)
    }
}

/// An import through a plugin: each chunk of the file is one call, and its output
/// becomes rows. A chunk the plugin fails on is reported against all its rows, and the
/// import goes on with the next.
pub struct PluginImport {
    plugins: Arc<Plugins>,
    plugin: Arc<Plugin>,
    database: String,
    fields: Vec<host::Field>,
    content_type: &'static str,
}

impl PluginImport {
    /// An import into `database` (whose schema is `schema`) through `plugin`.
    pub fn new(
        plugins: Arc<Plugins>,
        plugin: Arc<Plugin>,
        database: &str,
        schema: &crate::schema::Schema,
        format: crate::ingest::Format,
    ) -> Self {
        use crate::ingest::Format;
        PluginImport {
            plugins,
            plugin,
            database: database.to_owned(),
            fields: convert::fields_of(schema),
            content_type: match format {
                Format::Csv | Format::CsvLong => "text/csv",
                Format::Json => "application/json",
                Format::Ndjson => "application/x-ndjson",
            },
        }
    }
}

impl crate::ingest::chunks::Transform for PluginImport {
    fn chunk(
        &mut self,
        chunk: crate::ingest::chunks::Chunk,
        sink: &mut dyn crate::ingest::Sink,
    ) -> Result<(), Problem> {
        use crate::ingest::{Row, RowError};
        if chunk.index == 0 {
            // The import's parser thread is its own and ends with the job.
            lower_priority();
        }
        let (first, records) = (chunk.first_row, chunk.records);
        let payload = Payload {
            body: chunk.body,
            content_type: self.content_type.into(),
            headers: Vec::new(),
            source: host::Source::Import,
            database: self.database.clone(),
            fields: self.fields.clone(),
            chunk: Some(host::Chunk {
                index: chunk.index,
                first_row: first,
                header: chunk.header,
            }),
        };
        let output = match self.plugins.call(&self.plugin, &payload) {
            Ok(o) => o,
            Err(e) => {
                let last = first + records - 1;
                let p = Problem::from(e);
                let detail = format!("rows {first} to {last} not imported: {}", p.detail);
                sink.error_rows(RowError::new(first, p.code, detail), records);
                return Ok(());
            }
        };
        let (updates, rejected) = convert::convert(output, crate::schema::Source::Import);
        let row_of = |record: Option<u32>, index: Option<usize>| {
            first + record.map_or(index.unwrap_or(0) as u64, u64::from)
        };
        for r in rejected {
            let error = RowError {
                row: row_of(r.record, r.update),
                column: r.field,
                code: r.code,
                detail: r.detail,
            };
            // A note on an update that is applied all the same stands for no row.
            let rows = u64::from(r.code != ErrorCode::EventsUnsupported);
            sink.error_rows(error, rows);
        }
        for c in updates {
            let row = Row {
                row: row_of(c.record, Some(c.index)),
                rows: 1,
                update: c.update,
            };
            if !sink.row(row) {
                // The job failed downstream (its first failure is what it reports).
                return Err(Problem::new(ErrorCode::Internal, "the import stopped"));
            }
        }
        Ok(())
    }
}

/// Threads for webhook calls: as many as the machine has cores, each at low priority.
fn start_workers() -> Result<std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>, PluginError> {
    let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
    let rx = Arc::new(parking_lot::Mutex::new(rx));
    let n = std::thread::available_parallelism().map_or(2, |n| n.get());
    for i in 0..n {
        let rx = Arc::clone(&rx);
        std::thread::Builder::new()
            .name(format!("plugin-{i}"))
            .spawn(move || {
                lower_priority();
                loop {
                    // The lock is held only while waiting, not while a job runs.
                    let job = rx.lock().recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            })
            .map_err(|e| PluginError::Host(format!("cannot start plugin threads: {e}")))?;
    }
    Ok(tx)
}

/// Lowers the calling thread's CPU priority (nice +10): a plugin that spends its whole
/// budget then takes only what lookups and writes leave over. Linux applies nice per
/// thread; elsewhere this does nothing. A thread cannot raise it again, so only threads
/// that run plugins and nothing else call it.
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take no pointers; a failure leaves the
        // priority as it was, which is only less protective.
        unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
        }
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> PluginError {
    PluginError::Host(format!("{}: {e}", path.display()))
}

/// Writes one of a plugin's files whole or not at all.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    crate::persist::replace_file(path, bytes, 0o600).map_err(|e| io_error(path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_database_rule() {
        assert!(check_name("shopify-orders_2").is_ok());
        for bad in ["", "Shopify", "../x", "a/b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(PluginSettings::default().check().is_ok());
        let slow = PluginSettings {
            timeout_ms: 0,
            ..PluginSettings::default()
        };
        assert!(slow.check().is_err());
        let big = PluginSettings {
            memory_mib: 4096,
            ..PluginSettings::default()
        };
        assert!(big.check().is_err());
    }
}
