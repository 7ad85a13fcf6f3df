//! Server settings: built-in defaults < `persona.toml` < `PERSONA_*` environment < flags.
//!
//! [`Cli`] is the command line (clap); [`Settings::load`] layers the sources with
//! figment and refuses unknown keys in the file, so a typo is an error at start rather
//! than a setting silently ignored. Read once at start; immutable afterwards.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Persona: an in-memory customer profile server.
#[derive(Debug, Parser)]
#[command(name = "persona", version, about)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serve options, also accepted without the `serve` subcommand.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Import a file into a database of a running server, with progress.
    Import(crate::cli::ImportArgs),
    /// Check a plugin, or run a payload through one, without a server.
    #[command(subcommand)]
    Plugin(crate::cli::PluginCommand),
}

/// When the WAL is flushed to disk (Redis AOF's three policies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Every acknowledged write is on disk.
    Always,
    /// At most one second of writes lost on power loss.
    #[value(name = "every_second", alias = "every-second")]
    EverySecond,
    /// The operating system decides.
    Never,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object a line.
    Json,
}

/// Flags of `persona serve`; each overrides the file and the environment.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct ServeArgs {
    /// Settings file (default: `persona.toml` if it exists).
    #[arg(long, global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on, such as 127.0.0.1:7070 (port 0 picks a free port).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Data directory (snapshots, WAL, keys).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// WAL fsync policy.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fsync: Option<FsyncPolicy>,
    /// Snapshot interval, such as 60s or 5m.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_interval: Option<String>,
    /// Also snapshot after this many updates, once the log has grown by the last
    /// snapshot's size (0: only by interval).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_after: Option<u64>,
    /// Re-evaluate saved segments that read the clock, RFM ranks or suppression lists
    /// this often, such as 60s.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_refresh: Option<String>,
    /// The longest an ad-hoc query may scan, such as 10s.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_budget: Option<String>,
    /// Log format.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Log filter, such as `info` or `persona=debug`.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// HTTP worker threads (0: one per core).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Serve `/v1/databases/{db}/ceiling`, the load harness's constant-body route.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bench_routes: Option<bool>,
    /// Imports that may run at once, server-wide (each has a parser thread).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_imports: Option<usize>,
    /// Profiles (and event lists) one atomic import may hold until it commits.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_atomic_profiles: Option<usize>,
}

/// Every setting, resolved.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    pub listen: String,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Bootstrap admin key; generated into `<data_dir>/admin.key` when absent.
    pub admin_key: Option<String>,
    /// WAL fsync policy.
    pub fsync: FsyncPolicy,
    /// Snapshot interval (`60s`, `5m`, ...).
    pub snapshot_interval: String,
    /// Snapshot after this many updates too, once the log has grown by the last
    /// snapshot's size (0: only by interval).
    pub snapshot_after: u64,
    /// Re-evaluate volatile saved segments this often (`60s`, ...).
    pub segment_refresh: String,
    /// The longest an ad-hoc query may scan (`10s`, ...).
    pub query_budget: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest accepted request body in bytes (imports stream and are not bound by it).
    pub max_body_bytes: usize,
    /// Serve the constant-body ceiling route for the load harness.
    pub bench_routes: bool,
    /// Imports that may run at once, server-wide.
    pub max_imports: usize,
    /// Profiles (and event lists) one atomic import may hold until it commits.
    pub max_atomic_profiles: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:7070".into(),
            data_dir: "snapshots".into(),
            admin_key: None,
            fsync: FsyncPolicy::EverySecond,
            snapshot_interval: "60s".into(),
            snapshot_after: 100_000,
            segment_refresh: "60s".into(),
            query_budget: "10s".into(),
            log_format: LogFormat::Human,
            log_level: "info".into(),
            workers: 0,
            max_body_bytes: 1 << 20,
            bench_routes: false,
            max_imports: 4,
            max_atomic_profiles: 1_000_000,
        }
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or has a bad value or unknown key.
    #[error("settings: {0}")]
    Figment(#[from] Box<figment::Error>),
    /// The named settings file does not exist.
    #[error("settings file {0} does not exist")]
    MissingFile(PathBuf),
    /// A value does not parse.
    #[error("setting `{0}`: {1}")]
    Invalid(&'static str, String),
}

// `admin_key` is read apart, as the raw string: figment would parse an all-digit key as
// a number and print it in the error.
const ENV_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "fsync",
    "snapshot_interval",
    "snapshot_after",
    "segment_refresh",
    "query_budget",
    "log_format",
    "log_level",
    "workers",
    "max_body_bytes",
    "bench_routes",
    "max_imports",
    "max_atomic_profiles",
];

impl Settings {
    /// Layers defaults, the settings file, the environment and the flags.
    pub fn load(args: &ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.clone())),
            Some(path) => Some(path.clone()),
            None => Some(PathBuf::from("persona.toml")).filter(|p| p.exists()),
        };
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            fig = fig.merge(Toml::file_exact(file));
        }
        let mut settings: Settings = fig
            .merge(Env::prefixed("PERSONA_").only(ENV_KEYS))
            .merge(Serialized::globals(args))
            .extract()
            .map_err(Box::new)?;
        if let Some(key) = std::env::var_os("PERSONA_ADMIN_KEY") {
            let key = key.into_string().map_err(|_| {
                ConfigError::Invalid("admin_key", "PERSONA_ADMIN_KEY is not UTF-8".into())
            })?;
            settings.admin_key = Some(key);
        }
        settings.listen_addr()?;
        settings.snapshot_every()?;
        settings.segment_refresh_every()?;
        settings.query_budget()?;
        Ok(settings)
    }

    /// The listen address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen
            .parse()
            .map_err(|e| ConfigError::Invalid("listen", format!("`{}`: {e}", self.listen)))
    }

    /// The snapshot interval, parsed.
    pub fn snapshot_every(&self) -> Result<Duration, ConfigError> {
        positive("snapshot_interval", &self.snapshot_interval)
    }

    /// The ad-hoc query time budget, parsed.
    pub fn query_budget(&self) -> Result<Duration, ConfigError> {
        positive("query_budget", &self.query_budget)
    }

    /// The volatile segments' refresh interval, parsed.
    pub fn segment_refresh_every(&self) -> Result<Duration, ConfigError> {
        positive("segment_refresh", &self.segment_refresh)
    }
}

/// A positive duration such as `60s` or `5m`.
fn positive(setting: &'static str, text: &str) -> Result<Duration, ConfigError> {
    let d: jiff::SignedDuration = text
        .parse()
        .map_err(|e| ConfigError::Invalid(setting, format!("`{text}`: {e}")))?;
    Duration::try_from(d)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| ConfigError::Invalid(setting, "must be positive".into()))
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its large error type
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "persona.toml",
                "listen = \"127.0.0.1:1\"\nfsync = \"always\"\nworkers = 3",
            )?;
            jail.set_env("PERSONA_LISTEN", "127.0.0.1:2");
            let args = ServeArgs {
                fsync: Some(FsyncPolicy::Never),
                ..Default::default()
            };
            let s = Settings::load(&args).map_err(|e| e.to_string())?;
            assert_eq!(s.listen, "127.0.0.1:2");
            assert_eq!(s.fsync, FsyncPolicy::Never);
            assert_eq!(s.workers, 3);
            assert_eq!(s.snapshot_every().unwrap(), Duration::from_secs(60));
            Ok(())
        });
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("persona.toml", "lisen = \"127.0.0.1:1\"")?;
            let err = Settings::load(&ServeArgs::default()).unwrap_err();
            assert!(err.to_string().contains("lisen"), "{err}");
            Ok(())
        });
    }
}
