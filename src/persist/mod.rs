//! Durability: the data directory, each database's WAL and snapshots, and recovery.
//!
//! Owns every byte Persona writes for a database: the directory layout and its lock
//! ([`DataDir`]), the log ([`wal`]), snapshots ([`snapshot`]), the persisted record
//! shapes ([`record`]) and start-up recovery ([`recover`]). Uses `schema` and `store`
//! types; knows nothing of actors or HTTP. The database actor in `db` decides *when* to
//! log and snapshot; this module decides *how*.
//!
//! ```text
//! <data dir>/LOCK                      held while a server runs
//! <data dir>/db/<name>/snap-<lsn>.bin  the newest two snapshots
//! <data dir>/db/<name>/wal/<lsn>.wal   log segments, named by their first record
//! ```
//!
//! One file in a database's directory is not this module's: `imports.ndjson`, the
//! records of finished import jobs, which `ingest` appends and reads back.

pub mod dir;
pub mod record;
pub mod recover;
pub mod snapshot;
pub mod wal;

use std::path::{Path, PathBuf};

pub use dir::DataDir;
pub use record::Entry;
pub use snapshot::SnapshotInfo;
pub use wal::{Durability, Wal};

/// Why a durability operation failed. Every variant names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Reading or writing a file failed (permissions, a full disk, ...).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("{} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// No snapshot of a database can be read.
    #[error("no readable snapshot in {}: {detail}", dir.display())]
    NoSnapshot {
        /// The database directory.
        dir: PathBuf,
        /// What was tried and why it failed.
        detail: String,
    },
    /// Log records are missing between a snapshot and the rest of the log.
    #[error("WAL records {from} to {to} are missing from {}", dir.display())]
    Gap {
        /// The WAL directory.
        dir: PathBuf,
        /// First missing LSN.
        from: u64,
        /// Last missing LSN.
        to: u64,
    },
    /// Another server holds the data directory.
    #[error("{} is locked by another Persona server ({holder}); stop it or choose another --data-dir", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
    },
}

impl PersistError {
    /// An I/O error at `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        PersistError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Replaces a small file whole or not at all: written beside it under a temporary name
/// (with permissions `mode` on Unix), synced, renamed over it, and the directory synced.
/// A crash leaves the old file or the new one, never a part.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// fsyncs a directory, making the creation, rename or removal of its entries durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
