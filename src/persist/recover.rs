//! Start-up recovery of one database: the newest readable snapshot, then the WAL after it.
//!
//! A snapshot that fails its checks is skipped with a warning for the one before it (the
//! WAL is kept back to the older of the two kept snapshots, so nothing is lost). A torn
//! last record, what a crash in the middle of an append leaves, is cut off with a
//! warning. Anything else (no readable snapshot, a hole in the log, a bad record before
//! the last segment's end) stops this database from loading with an error naming the
//! file: a database never silently starts empty or with writes missing.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

use super::record::{self, Entry};
use super::snapshot::{self, Loaded};
use super::wal::{self, SEGMENT_MAGIC, Tail};
use super::{PersistError, sync_dir};
use crate::schema::Schema;

/// Where replayed effects go: the database state being rebuilt.
pub trait Target {
    /// The schema in force (to intern the field names of a profile record).
    fn schema(&self) -> Arc<Schema>;
    /// Applies one logged effect.
    fn apply(&self, entry: Entry);
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The LSN of the last record applied (the snapshot's if none).
    pub last_lsn: u64,
    /// Records applied.
    pub records: u64,
    /// The torn tail cut off, if there was one: `(segment, offset)`.
    pub truncated: Option<(String, u64)>,
}

/// Loads the newest snapshot that reads back whole, falling back to older ones.
pub fn load_snapshot(db_dir: &Path, threads: usize) -> Result<Loaded, PersistError> {
    let all = snapshot::snapshots(db_dir)?;
    let mut failures = Vec::new();
    for (_, path) in all.iter().rev() {
        match snapshot::read(path, threads) {
            Ok(loaded) => {
                if !failures.is_empty() {
                    tracing::warn!(snapshot = %path.display(), skipped = ?failures,
                        "newer snapshots are unreadable; recovering from an older one and the WAL");
                }
                return Ok(loaded);
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    Err(PersistError::NoSnapshot {
        dir: db_dir.to_owned(),
        detail: if failures.is_empty() {
            "there are no snapshot files".into()
        } else {
            failures.join("; ")
        },
    })
}

/// Replays the WAL records after `after_lsn` into `target`, in order, and cuts off a torn
/// tail in the last segment.
pub fn replay(
    wal_dir: &Path,
    after_lsn: u64,
    target: &impl Target,
) -> Result<Replayed, PersistError> {
    let segments = wal::segments(wal_dir).map_err(|e| PersistError::io(wal_dir, e))?;
    let mut next = after_lsn + 1;
    let mut records = 0;
    let mut truncated = None;
    let last = segments.len().saturating_sub(1);
    for (i, (first, path)) in segments.iter().enumerate() {
        // Segments wholly before the snapshot are still on disk for the older snapshot;
        // skip them without reading.
        if segments.get(i + 1).is_some_and(|(f, _)| *f <= next) {
            continue;
        }
        if *first > next {
            return Err(PersistError::Gap {
                dir: wal_dir.to_owned(),
                from: next,
                to: first - 1,
            });
        }
        let bytes = std::fs::read(path).map_err(|e| PersistError::io(path, e))?;
        let (body, base) = match bytes.strip_prefix(SEGMENT_MAGIC) {
            Some(body) => (body, SEGMENT_MAGIC.len()),
            None if i == last && SEGMENT_MAGIC.starts_with(&bytes) => (&[][..], bytes.len()),
            None => {
                return Err(PersistError::Corrupt {
                    path: path.clone(),
                    detail: "not a Persona WAL segment (bad magic number)".into(),
                });
            }
        };
        let (frames, tail) = wal::read_frames(body);
        let mut good = base;
        for frame in frames {
            let (lsn, entry) = match record::decode_entry(frame, &target.schema()) {
                Ok(r) => r,
                Err(e) if i == last => {
                    cut(path, good, &e.to_string(), &mut truncated)?;
                    return Ok(Replayed {
                        last_lsn: next - 1,
                        records,
                        truncated,
                    });
                }
                Err(e) => {
                    return Err(PersistError::Corrupt {
                        path: path.clone(),
                        detail: format!("record at byte {good}: {e}"),
                    });
                }
            };
            good += 8 + frame.len();
            if lsn < next {
                continue;
            }
            if lsn > next {
                return Err(PersistError::Gap {
                    dir: wal_dir.to_owned(),
                    from: next,
                    to: lsn - 1,
                });
            }
            target.apply(entry);
            next += 1;
            records += 1;
        }
        let short_magic = base < SEGMENT_MAGIC.len();
        match tail {
            Tail::Torn { reason, .. } if i == last => cut(path, good, &reason, &mut truncated)?,
            Tail::Clean if short_magic => {
                cut(path, 0, "a segment header cut short", &mut truncated)?
            }
            Tail::Clean => {}
            Tail::Torn { offset, reason } => {
                return Err(PersistError::Corrupt {
                    path: path.clone(),
                    detail: format!(
                        "{reason} at byte {} of a segment that is not the last",
                        offset + base
                    ),
                });
            }
        }
    }
    Ok(Replayed {
        last_lsn: next - 1,
        records,
        truncated,
    })
}

fn cut(
    path: &Path,
    at: usize,
    reason: &str,
    truncated: &mut Option<(String, u64)>,
) -> Result<(), PersistError> {
    tracing::warn!(segment = %path.display(), offset = at, reason,
        "the last WAL record is torn (a crash during an append); cutting it off");
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| PersistError::io(path, e))?;
    file.set_len(at as u64)
        .and_then(|()| file.sync_all())
        .map_err(|e| PersistError::io(path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir).map_err(|e| PersistError::io(dir, e))?;
    }
    *truncated = Some((path.display().to_string(), at as u64));
    Ok(())
}
