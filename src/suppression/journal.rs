//! A suppression list on disk: `<name>.jsonl`, one JSON change a line, appended and
//! fsynced before the change takes effect.
//!
//! The first line creates the list; the rest add, remove or describe. JSON lines rather
//! than the WAL's bincode frames because these files are small, rarely written, and an
//! operator may want to read one. A last line cut short by a crash (no newline, or not
//! JSON) is dropped with a warning: its change was never acknowledged. Anything wrong
//! before the last line is corruption and stops the start.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::Normalized;
use crate::persist::{replace_file, sync_dir};

/// One change to a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum Op {
    /// The list was made.
    Create {
        description: String,
        created_at: Timestamp,
    },
    /// Its description changed.
    Describe { description: String },
    /// Entries were added (in lookup form).
    Add(Normalized),
    /// Entries were removed.
    Remove(Normalized),
}

/// Why a journal could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file system refused.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file holds something that is not a journal.
    #[error("corrupt: {0}")]
    Corrupt(String),
}

/// An open journal, appended to.
#[derive(Debug)]
pub(super) struct Journal {
    file: File,
    // The length of the file's whole, durable lines: a failed append is cut back to it.
    len: u64,
    // Set when a failed append could not be cut back: nothing more is written until a
    // restart reads (and trims) the file.
    broken: bool,
}

impl Journal {
    /// Writes a new journal holding `first`.
    pub(super) fn create(path: &Path, first: &Op) -> Result<Journal, JournalError> {
        Journal::rewrite(path, std::slice::from_ref(first))
    }

    /// Replaces the journal at `path` with `ops`, atomically.
    pub(super) fn rewrite(path: &Path, ops: &[Op]) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut bytes = Vec::new();
        for op in ops {
            line(&mut bytes, op);
        }
        let created = !path.exists();
        replace_file(path, &bytes, 0o600)?;
        if created && let Some(data) = path.parent().and_then(Path::parent) {
            // The `suppression/` directory itself may be new: its entry in the data
            // directory must be durable too.
            sync_dir(data)?;
        }
        Ok(Journal {
            file: OpenOptions::new().append(true).open(path)?,
            len: bytes.len() as u64,
            broken: false,
        })
    }

    /// Reads a journal's changes and opens it for appending.
    pub(super) fn open(path: &Path) -> Result<(Vec<Op>, Journal), JournalError> {
        let bytes = fs::read(path)?;
        let mut ops = Vec::new();
        let mut good = 0;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let (text, after, whole) = match rest.iter().position(|b| *b == b'\n') {
                Some(i) => (&rest[..i], &rest[i + 1..], true),
                None => (rest, &rest[rest.len()..], false),
            };
            match serde_json::from_slice::<Op>(text) {
                Ok(op) if whole => {
                    ops.push(op);
                    good = bytes.len() - after.len();
                }
                // The last line, cut short by a crash: never acknowledged.
                _ if after.is_empty() => {
                    tracing::warn!(path = %path.display(), bytes = rest.len(),
                        "dropping a suppression list change cut short by a crash");
                    break;
                }
                Ok(_) => unreachable!("a line without a newline is the last"),
                Err(e) => {
                    return Err(JournalError::Corrupt(format!(
                        "line {}: {e}",
                        ops.len() + 1
                    )));
                }
            }
            rest = after;
        }
        let file = OpenOptions::new().append(true).open(path)?;
        if good < bytes.len() {
            file.set_len(good as u64)?;
            file.sync_all()?;
        }
        Ok((
            ops,
            Journal {
                file,
                len: good as u64,
                broken: false,
            },
        ))
    }

    /// Appends a change and makes it durable; on failure the file is as it was, so the
    /// caller's "nothing changed" holds after a restart too.
    pub(super) fn append(&mut self, op: &Op) -> Result<(), JournalError> {
        if self.broken {
            return Err(JournalError::Corrupt(
                "an earlier write failed and could not be undone; restart the server".into(),
            ));
        }
        let mut bytes = Vec::new();
        line(&mut bytes, op);
        let written = self
            .file
            .write_all(&bytes)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // A partial line left behind would become a corrupt middle line after the
            // next good append, and a written but unsynced one could come back.
            if self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data())
                .is_err()
            {
                self.broken = true;
            }
            return Err(e.into());
        }
        self.len += bytes.len() as u64;
        Ok(())
    }
}

fn line(out: &mut Vec<u8>, op: &Op) {
    serde_json::to_writer(&mut *out, op).expect("changes serialize");
    out.push(b'\n');
}

/// The journals in `dir`: list name and path.
pub(super) fn files(dir: &Path) -> Result<Vec<(String, PathBuf)>, JournalError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // A `.tmp` left by an interrupted rewrite is not a journal: the rename never
        // happened, so the old file is whole.
        if let Some(list) = name.strip_suffix(".jsonl")
            && crate::schema::is_name(list)
        {
            out.push((list.to_owned(), path));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes a journal durably.
pub(super) fn remove(path: &Path) -> Result<(), JournalError> {
    fs::remove_file(path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_last_line_is_dropped_and_a_bad_middle_line_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.jsonl");
        let create = Op::Create {
            description: String::new(),
            created_at: Timestamp::UNIX_EPOCH,
        };
        let mut j = Journal::create(&path, &create).unwrap();
        j.append(&Op::Describe {
            description: "x".into(),
        })
        .unwrap();
        drop(j);
        let whole = fs::read(&path).unwrap();
        let mut torn = whole.clone();
        torn.extend_from_slice(b"{\"op\":\"add\",\"emails\":[\"a@");
        fs::write(&path, &torn).unwrap();
        let (ops, _) = Journal::open(&path).unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(fs::read(&path).unwrap(), whole, "the torn tail is cut off");
        // A write that fails leaves the file as it was and, if it cannot be undone,
        // stops further writes.
        let (_, mut j) = Journal::open(&path).unwrap();
        j.file = File::open(&path).unwrap();
        let add = Op::Describe {
            description: "y".into(),
        };
        assert!(j.append(&add).is_err());
        assert!(j.broken);
        assert!(j.append(&add).is_err());
        assert_eq!(fs::read(&path).unwrap(), whole);
        let mut bad = b"{\"op\":\"nonsense\"}\n".to_vec();
        bad.extend_from_slice(&whole);
        fs::write(&path, &bad).unwrap();
        assert!(matches!(
            Journal::open(&path),
            Err(JournalError::Corrupt(_))
        ));
    }
}
