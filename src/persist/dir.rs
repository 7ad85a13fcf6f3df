//! The data directory: its lock, and where each database's files live.
//!
//! A database directory appears and disappears atomically: it is built under a hidden
//! name and renamed into place once its first snapshot is durable, and a deleted one is
//! renamed aside before its files are removed. So `db/` only ever holds whole databases,
//! whatever moment a crash picks.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::{PersistError, snapshot, sync_dir};
use crate::schema::{DatabaseSettings, Schema};

/// An open, locked data directory.
#[derive(Debug)]
pub struct DataDir {
    root: PathBuf,
    // Held for the life of the server: the OS releases the lock when the process ends,
    // however it ends, so a crash never leaves a stale lock behind.
    _lock: File,
}

impl DataDir {
    /// Creates (if needed) and locks a data directory, and clears what an interrupted
    /// create or delete left behind.
    pub fn open(root: &Path) -> Result<DataDir, PersistError> {
        let dbs = root.join("db");
        fs::create_dir_all(&dbs).map_err(|e| PersistError::io(&dbs, e))?;
        let lock_path = root.join("LOCK");
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| PersistError::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                return Err(PersistError::Locked {
                    path: lock_path,
                    holder: holder.trim().to_owned(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(PersistError::io(&lock_path, e)),
        }
        // Also proves the directory is writable before anything else is tried.
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| writeln!(lock, "pid {}", std::process::id()))
            .and_then(|()| lock.sync_data())
            .map_err(|e| PersistError::io(&lock_path, e))?;
        for entry in fs::read_dir(&dbs).map_err(|e| PersistError::io(&dbs, e))? {
            let path = entry.map_err(|e| PersistError::io(&dbs, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // Only what our own create and delete leave; anything else is not ours.
            if path.is_dir() && (name.starts_with(".new-") || name.starts_with(".deleted-")) {
                tracing::warn!(path = %path.display(), "removing a database directory left half-made or half-deleted");
                fs::remove_dir_all(&path).map_err(|e| PersistError::io(&path, e))?;
            }
        }
        Ok(DataDir {
            root: root.to_owned(),
            _lock: lock,
        })
    }

    /// The directory of the database `name`.
    pub fn database(&self, name: &str) -> PathBuf {
        self.root.join("db").join(name)
    }

    /// The names and directories of every database on disk, sorted by name.
    pub fn databases(&self) -> Result<Vec<(String, PathBuf)>, PersistError> {
        let dbs = self.root.join("db");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dbs).map_err(|e| PersistError::io(&dbs, e))? {
            let entry = entry.map_err(|e| PersistError::io(&dbs, e))?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if let Some(name) = path.file_name().and_then(|n| n.to_str())
                && !name.starts_with('.')
            {
                out.push((name.to_owned(), path));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Makes the directory of a new database, holding its first snapshot (LSN 0) and an
    /// empty WAL directory. Fails with `Ok(None)` when the name is taken on disk.
    pub fn create_database(
        &self,
        settings: &DatabaseSettings,
        schema: &Schema,
    ) -> Result<Option<PathBuf>, PersistError> {
        let dbs = self.root.join("db");
        let final_dir = self.database(&settings.name);
        if final_dir.exists() {
            return Ok(None);
        }
        let tmp = dbs.join(format!(".new-{}-{}", settings.name, ulid::Ulid::new()));
        let io = |p: &Path, e| PersistError::io(p, e);
        fs::create_dir(&tmp).map_err(|e| io(&tmp, e))?;
        let result = (|| {
            fs::create_dir(tmp.join("wal")).map_err(|e| io(&tmp, e))?;
            snapshot::write(
                &tmp,
                0,
                settings,
                schema,
                &[],
                &crate::activity::ActivityStore::new(),
                false,
            )?;
            sync_dir(&tmp).map_err(|e| io(&tmp, e))?;
            // rename(2) onto an existing non-empty directory fails: a namesake created
            // at the same moment wins and this one is refused.
            match fs::rename(&tmp, &final_dir) {
                Ok(()) => {}
                Err(_) if final_dir.exists() => return Ok(None),
                Err(e) => return Err(io(&final_dir, e)),
            }
            sync_dir(&dbs).map_err(|e| io(&dbs, e))?;
            Ok(Some(final_dir.clone()))
        })();
        if !matches!(result, Ok(Some(_))) {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }
}

/// Removes a database's directory: renamed aside first, so the name is free at once and
/// a crash midway leaves nothing that looks like a database.
pub fn remove_database(dir: &Path) -> Result<(), PersistError> {
    let dbs = dir.parent().unwrap_or(Path::new("."));
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("db");
    let aside = dbs.join(format!(".deleted-{name}-{}", ulid::Ulid::new()));
    fs::rename(dir, &aside).map_err(|e| PersistError::io(dir, e))?;
    sync_dir(dbs).map_err(|e| PersistError::io(dbs, e))?;
    fs::remove_dir_all(&aside).map_err(|e| PersistError::io(&aside, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_a_locked_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path()).unwrap();
        let err = DataDir::open(dir.path()).unwrap_err();
        assert!(matches!(err, PersistError::Locked { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id()))
        );
        drop(first);
        DataDir::open(dir.path()).unwrap();
    }

    #[test]
    fn half_made_databases_are_cleared_and_names_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("db/.new-x-1/wal")).unwrap();
        fs::create_dir_all(dir.path().join("db/shop/wal")).unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        assert!(!dir.path().join("db/.new-x-1").exists());
        let names: Vec<String> = data.databases().unwrap().into_iter().map(|d| d.0).collect();
        assert_eq!(names, ["shop"]);
    }
}
