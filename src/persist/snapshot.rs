//! Snapshot files: the whole of a database at a log sequence number.
//!
//! `snap-<lsn>.bin` is a magic number and frames (the WAL's framing, each with its
//! CRC32): a header (database, LSN, profile and chunk counts, time), the settings and
//! schema, then chunks of profiles. A file is written to a temporary name, fsynced,
//! renamed and the directory fsynced, so a crash leaves either the old set of snapshots
//! or the new one. Chunks let a load decode on every core.
//!
//! A snapshot is *fuzzy*: it holds the settings and schema at its LSN and every profile
//! as it was at some moment at or after that LSN, because profiles are read while writes
//! go on. Replaying the WAL after the LSN makes it exact, since every logged effect is a
//! whole new value (see `record::Entry`) and applying one again changes nothing.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bincode::{BorrowDecode, Encode};

use super::record::{self, config};
use super::wal::{Tail, append_frame, read_frames};
use super::{PersistError, sync_dir};
use crate::schema::{DatabaseSettings, Schema};
use crate::store::Profile;

/// The first bytes of every snapshot: the name and the format version.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"PRSNSNP\x01";
/// Profiles per chunk: large enough to amortize framing, small enough to share out.
const CHUNK: usize = 4096;

#[derive(Encode, BorrowDecode)]
struct Header<'a> {
    database: &'a str,
    lsn: u64,
    profiles: u64,
    chunks: u64,
    created_at: i128,
}

/// What a written snapshot is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotInfo {
    /// Every log record up to this one is in it.
    pub lsn: u64,
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Profiles in it.
    pub profiles: u64,
}

/// A snapshot read back.
#[derive(Debug)]
pub struct Loaded {
    /// The LSN it was taken at.
    pub lsn: u64,
    /// Settings at that LSN.
    pub settings: DatabaseSettings,
    /// Schema at that LSN.
    pub schema: Schema,
    /// The profiles, in chunks (one per decode unit).
    pub chunks: Vec<Vec<Profile>>,
    /// The file.
    pub path: PathBuf,
}

/// The path of the snapshot at `lsn` in a database directory.
pub fn snapshot_path(db_dir: &Path, lsn: u64) -> PathBuf {
    db_dir.join(format!("snap-{lsn:020}.bin"))
}

/// Where an unreadable snapshot is set aside: its name with `.corrupt` appended.
pub fn corrupt_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".corrupt");
    PathBuf::from(name)
}

/// The snapshots of a database directory, `(lsn, path)`, oldest first.
pub fn snapshots(db_dir: &Path) -> Result<Vec<(u64, PathBuf)>, PersistError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(db_dir).map_err(|e| PersistError::io(db_dir, e))? {
        let path = entry.map_err(|e| PersistError::io(db_dir, e))?.path();
        let lsn = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("snap-")?.strip_suffix(".bin"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(lsn) = lsn {
            out.push((lsn, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a snapshot of `profiles` (read at or after `lsn`) with the settings and schema
/// at `lsn`, durably, and returns what it wrote.
pub fn write(
    db_dir: &Path,
    lsn: u64,
    settings: &DatabaseSettings,
    schema: &Schema,
    profiles: &[Arc<Profile>],
) -> Result<SnapshotInfo, PersistError> {
    let path = snapshot_path(db_dir, lsn);
    let tmp = db_dir.join(format!(".snap-{lsn:020}.tmp"));
    let io = |e| PersistError::io(&tmp, e);
    let file = File::create(&tmp).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(4096);
    buf.extend_from_slice(SNAPSHOT_MAGIC);
    let header = Header {
        database: &settings.name,
        lsn,
        profiles: profiles.len() as u64,
        chunks: profiles.len().div_ceil(CHUNK) as u64,
        created_at: jiff::Timestamp::now().as_nanosecond(),
    };
    append_frame(&mut buf, |b| {
        bincode::encode_into_std_write(&header, b, config()).expect("encode into memory");
    });
    append_frame(&mut buf, |b| record::encode_head(settings, schema, b));
    out.write_all(&buf).map_err(io)?;
    write_chunks(profiles, &mut out).map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    drop(file);
    fs::rename(&tmp, &path).map_err(io)?;
    sync_dir(db_dir).map_err(|e| PersistError::io(db_dir, e))?;
    Ok(SnapshotInfo {
        lsn,
        path,
        bytes,
        profiles: profiles.len() as u64,
    })
}

/// Encodes the profile chunks on every core and writes them in order: encoding, not the
/// disk, is what bounds a snapshot's time.
fn write_chunks(profiles: &[Arc<Profile>], out: &mut impl Write) -> std::io::Result<()> {
    let chunks: Vec<&[Arc<Profile>]> = profiles.chunks(CHUNK).collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(threads * 2);
        for _ in 0..threads.min(chunks.len()) {
            let (tx, chunks, next) = (tx.clone(), &chunks, &next);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = chunks.get(i) else { return };
                    let mut buf = Vec::with_capacity(CHUNK * 512);
                    append_frame(&mut buf, |b| {
                        record::encode_profiles(chunk.iter().map(|p| &**p), b);
                    });
                    if tx.send((i, buf)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        // Chunks arrive out of order; hold the early ones until their turn.
        let mut early = std::collections::BTreeMap::new();
        let mut turn = 0;
        for (i, buf) in rx {
            early.insert(i, buf);
            while let Some(buf) = early.remove(&turn) {
                out.write_all(&buf)?;
                turn += 1;
            }
        }
        Ok(())
    })
}

/// Keeps the newest `keep` snapshots and removes older ones, leftovers of interrupted
/// writes, and the WAL segments the oldest kept snapshot no longer needs.
pub fn prune(db_dir: &Path, keep: usize) -> Result<(), PersistError> {
    let all = snapshots(db_dir)?;
    let cut = all.len().saturating_sub(keep.max(1));
    for (_, path) in &all[..cut] {
        fs::remove_file(path).map_err(|e| PersistError::io(path, e))?;
    }
    for entry in fs::read_dir(db_dir).map_err(|e| PersistError::io(db_dir, e))? {
        let path = entry.map_err(|e| PersistError::io(db_dir, e))?.path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(".snap-") && n.ends_with(".tmp"))
        {
            // A write that is not ours to finish: snapshots of one database never overlap.
            let _ = fs::remove_file(&path);
        }
    }
    sync_dir(db_dir).map_err(|e| PersistError::io(db_dir, e))?;
    if let Some((oldest, _)) = all.get(cut) {
        let wal_dir = db_dir.join("wal");
        super::wal::remove_segments_through(&wal_dir, *oldest)
            .map_err(|e| PersistError::io(&wal_dir, e))?;
    }
    Ok(())
}

/// Reads and checks a snapshot, decoding its chunks on `threads` threads.
pub fn read(path: &Path, threads: usize) -> Result<Loaded, PersistError> {
    let bytes = fs::read(path).map_err(|e| PersistError::io(path, e))?;
    let corrupt = |detail: String| PersistError::Corrupt {
        path: path.to_owned(),
        detail,
    };
    let body = bytes
        .strip_prefix(SNAPSHOT_MAGIC)
        .ok_or_else(|| corrupt("not a Persona snapshot (bad magic number)".into()))?;
    let (frames, tail) = read_frames(body);
    if let Tail::Torn { offset, reason } = tail {
        return Err(corrupt(format!(
            "{reason} at byte {}",
            offset + SNAPSHOT_MAGIC.len()
        )));
    }
    let [header, head, chunks @ ..] = &frames[..] else {
        return Err(corrupt("no header".into()));
    };
    let (header, _): (Header<'_>, usize) = bincode::borrow_decode_from_slice(header, config())
        .map_err(|e| corrupt(format!("header: {e}")))?;
    if chunks.len() as u64 != header.chunks {
        return Err(corrupt(format!(
            "{} of {} profile chunks present",
            chunks.len(),
            header.chunks
        )));
    }
    let (settings, schema) = record::decode_head(head).map_err(|e| corrupt(e.to_string()))?;
    let decoded = decode_chunks(chunks, &schema, threads).map_err(|e| corrupt(e.to_string()))?;
    let count: usize = decoded.iter().map(Vec::len).sum();
    if count as u64 != header.profiles {
        return Err(corrupt(format!(
            "{count} profiles where the header says {}",
            header.profiles
        )));
    }
    Ok(Loaded {
        lsn: header.lsn,
        settings,
        schema,
        chunks: decoded,
        path: path.to_owned(),
    })
}

fn decode_chunks(
    chunks: &[&[u8]],
    schema: &Schema,
    threads: usize,
) -> Result<Vec<Vec<Profile>>, record::RecordError> {
    let next = AtomicUsize::new(0);
    type Numbered = Vec<(usize, Vec<Profile>)>;
    let results: Vec<Result<Numbered, record::RecordError>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.clamp(1, chunks.len().max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(chunk) = chunks.get(i) else {
                            return Ok(mine);
                        };
                        mine.push((i, record::decode_profiles(chunk, schema)?));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("decode thread"))
            .collect()
    });
    let mut all = Vec::with_capacity(chunks.len());
    for r in results {
        all.extend(r?);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, c)| c).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::record::tests::{sample_profile, sample_schema};

    fn settings() -> DatabaseSettings {
        DatabaseSettings::create(
            serde_json::from_value(serde_json::json!({"name":"t","consent_confirmed":true}))
                .unwrap(),
            jiff::Timestamp::UNIX_EPOCH,
        )
        .unwrap()
    }

    #[test]
    fn written_snapshots_read_back_and_flipped_bytes_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let schema = sample_schema();
        let profiles: Vec<Arc<Profile>> = (0..5000)
            .map(|i| {
                let mut p = sample_profile(&schema);
                p.customer_id = format!("c{i}").into();
                Arc::new(p)
            })
            .collect();
        let info = write(dir.path(), 42, &settings(), &schema, &profiles).unwrap();
        assert_eq!(info.profiles, 5000);
        let loaded = read(&info.path, 2).unwrap();
        assert_eq!(loaded.lsn, 42);
        let back: Vec<&Profile> = loaded.chunks.iter().flatten().collect();
        assert_eq!(back.len(), 5000);
        assert_eq!(back[4999], &*profiles[4999]);
        assert_eq!(snapshots(dir.path()).unwrap(), [(42, info.path.clone())]);

        let mut bytes = fs::read(&info.path).unwrap();
        for at in [3, 20, bytes.len() / 2, bytes.len() - 1] {
            bytes[at] ^= 0x40;
            fs::write(&info.path, &bytes).unwrap();
            let err = read(&info.path, 2).unwrap_err().to_string();
            assert!(err.contains("snap-"), "{err}");
            bytes[at] ^= 0x40;
        }
        fs::write(&info.path, &bytes[..bytes.len() - 10]).unwrap();
        assert!(read(&info.path, 1).is_err());
    }
}
