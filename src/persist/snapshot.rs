//! Snapshot files: the whole of a database at a log sequence number.
//!
//! `snap-<lsn>.bin` is a magic number and frames (the WAL's framing, each with its
//! CRC32): a header (database, LSN, profile and chunk counts, time), the settings and
//! schema, chunks of profiles, then (from format 2) an activity header (activity and
//! chunk counts) and chunks of activities. A file is written to a temporary name, fsynced,
//! renamed and the directory fsynced, so a crash leaves either the old set of snapshots
//! or the new one. Chunks let a load decode on every core.
//!
//! A snapshot is *fuzzy*: it holds the settings and schema at its LSN and every profile
//! as it was at some moment at or after that LSN, because profiles are read while writes
//! go on. Replaying the WAL after the LSN makes it exact, since every logged effect is a
//! whole new value (see `record::Entry`) and applying one again changes nothing.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use bincode::{BorrowDecode, Encode};

use super::record::{self, HeadFormat, config};
use super::wal::append_frame;
use super::{PersistError, sync_dir};
use crate::activity::ActivityStore;
use crate::schema::{DatabaseSettings, Schema};
use crate::segments::SegmentDef;
use crate::store::{Packed, ProfileStore};
pub use record::HeadExtra;

/// The first bytes of every snapshot: the name and the format version (4: profiles and
/// the schema hold field numbers, not names).
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"PRSNSNP\x04";
/// Format 3, with field names: still read.
const SNAPSHOT_MAGIC_V3: &[u8; 8] = b"PRSNSNP\x03";
/// Format 2, without saved segments: still read.
const SNAPSHOT_MAGIC_V2: &[u8; 8] = b"PRSNSNP\x02";
/// Format 1, without activities or saved segments: still read.
const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"PRSNSNP\x01";
/// Activities per chunk.
const ACTIVITY_CHUNK: usize = 1024;
/// Profiles per chunk: large enough to amortize framing, small enough to share out.
const CHUNK: usize = 4096;

#[derive(Encode, BorrowDecode)]
struct Header<'a> {
    database: &'a str,
    lsn: u64,
    profiles: u64,
    chunks: u64,
    created_at: i128,
    // Taken for an erasure: only this snapshot may stay. Recorded so that a crash
    // between the rename and the prune is finished at the next start.
    erasing: bool,
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
    /// The profiles, indexed.
    pub store: ProfileStore,
    /// Their activities, with the RFM index built.
    pub activity: ActivityStore,
    /// Saved segment definitions at that LSN (members are rebuilt, not stored).
    pub segments: Vec<SegmentDef>,
    /// It was taken for an erasure (older snapshots and segments must go).
    pub erasing: bool,
    /// It is in a format from before fields had numbers (3 or older).
    pub unnumbered: bool,
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
    profiles: &[Packed],
    activity: &ActivityStore,
    erasing: bool,
) -> Result<SnapshotInfo, PersistError> {
    write_then(
        db_dir,
        lsn,
        settings,
        schema,
        &HeadExtra::default(),
        profiles,
        activity,
        erasing,
        &mut || Ok(()),
    )
}

/// [`write()`], calling `before_rename` once everything is read and written, before the
/// file takes its name: a live snapshot makes the log durable there through the last
/// LSN applied, since the activities it read (last) may be that new.
#[allow(clippy::too_many_arguments)]
pub fn write_then(
    db_dir: &Path,
    lsn: u64,
    settings: &DatabaseSettings,
    schema: &Schema,
    extra: &HeadExtra,
    profiles: &[Packed],
    activity: &ActivityStore,
    erasing: bool,
    before_rename: &mut dyn FnMut() -> Result<(), String>,
) -> Result<SnapshotInfo, PersistError> {
    let tmp = db_dir.join(format!(".snap-{lsn:020}.tmp"));
    let written = write_at(
        db_dir,
        &tmp,
        lsn,
        settings,
        schema,
        extra,
        profiles,
        activity,
        erasing,
        before_rename,
    );
    if written.is_err() {
        // Best effort: the next prune removes leftovers and reports what it cannot.
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[allow(clippy::too_many_arguments)]
fn write_at(
    db_dir: &Path,
    tmp: &Path,
    lsn: u64,
    settings: &DatabaseSettings,
    schema: &Schema,
    extra: &HeadExtra,
    profiles: &[Packed],
    activity: &ActivityStore,
    erasing: bool,
    before_rename: &mut dyn FnMut() -> Result<(), String>,
) -> Result<SnapshotInfo, PersistError> {
    let path = snapshot_path(db_dir, lsn);
    let io = |e| PersistError::io(tmp, e);
    let file = File::create(tmp).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut buf = Vec::with_capacity(4096);
    buf.extend_from_slice(SNAPSHOT_MAGIC);
    let header = Header {
        database: &settings.name,
        lsn,
        profiles: profiles.len() as u64,
        chunks: profiles.len().div_ceil(CHUNK) as u64,
        created_at: jiff::Timestamp::now().as_nanosecond(),
        erasing,
    };
    append_frame(&mut buf, |b| {
        bincode::encode_into_std_write(&header, b, config()).expect("encode into memory");
    });
    append_frame(&mut buf, |b| {
        record::encode_head(settings, schema, extra, b)
    });
    out.write_all(&buf).map_err(io)?;
    write_chunks(profiles, &mut out).map_err(io)?;
    write_activities(activity, &mut out).map_err(io)?;
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    drop(file);
    before_rename().map_err(|detail| io(std::io::Error::other(detail)))?;
    fs::rename(tmp, &path).map_err(io)?;
    sync_dir(db_dir).map_err(|e| PersistError::io(db_dir, e))?;
    Ok(SnapshotInfo {
        lsn,
        path,
        bytes,
        profiles: profiles.len() as u64,
    })
}

/// Encodes the profile chunks on every core and writes them in order: encoding, not the
/// disk, is what bounds a snapshot's time. Written buffers go back to the encoders: a
/// fresh megabyte a chunk is memory the kernel zeroes first, a few percent of the CPU of
/// a load that snapshots as it goes.
fn write_chunks(profiles: &[Packed], out: &mut impl Write) -> std::io::Result<()> {
    let chunks: Vec<&[Packed]> = profiles.chunks(CHUNK).collect();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    let (spare_tx, spare_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let spare = parking_lot::Mutex::new(spare_rx);
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(threads * 2);
        for _ in 0..threads.min(chunks.len()) {
            let (tx, chunks, next, spare) = (tx.clone(), &chunks, &next, &spare);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = chunks.get(i) else { return };
                    let reused = spare.lock().try_recv();
                    let mut buf = reused.unwrap_or_else(|_| Vec::with_capacity(CHUNK * 512));
                    buf.clear();
                    append_frame(&mut buf, |b| {
                        record::encode_profiles(chunk.iter(), b);
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
                // Gone only once every encoder has stopped.
                let _ = spare_tx.send(buf);
                turn += 1;
            }
        }
        Ok(())
    })
}

/// Writes the activity header and chunks. Each activity is read under its shard's lock
/// for the time it takes to encode it, never the whole map at once.
fn write_activities(activity: &ActivityStore, out: &mut impl Write) -> std::io::Result<()> {
    let ids = activity.customer_ids();
    let mut frames = Vec::new();
    append_frame(&mut frames, |b| {
        let header = ActivityHeader {
            chunks: ids.len().div_ceil(ACTIVITY_CHUNK) as u64,
        };
        bincode::encode_into_std_write(header, b, config()).expect("encode into memory");
    });
    let mut body = Vec::with_capacity(1 << 16);
    for chunk in ids.chunks(ACTIVITY_CHUNK) {
        body.clear();
        // An activity erased since the ids were listed is left out: the chunk's count
        // is of those written.
        let mut n = 0u64;
        for id in chunk {
            activity.with(id, |act| {
                if let Some(act) = act {
                    record::encode_activity(id, act, &mut body);
                    n += 1;
                }
            });
        }
        append_frame(&mut frames, |b| {
            record::encode_count(n, b);
            b.extend_from_slice(&body);
        });
        if frames.len() > 1 << 20 {
            out.write_all(&frames)?;
            frames.clear();
        }
    }
    out.write_all(&frames)
}

#[derive(Encode, bincode::Decode)]
struct ActivityHeader {
    chunks: u64,
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
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // A leftover of an interrupted write (snapshots of one database never overlap),
        // and, once only the newest snapshot is kept (after an erasure), snapshots set
        // aside as unreadable: they may hold the erased profile.
        let leftover = name.starts_with(".snap-") && name.ends_with(".tmp");
        let set_aside = keep <= 1 && name.starts_with("snap-") && name.ends_with(".corrupt");
        if leftover || set_aside {
            fs::remove_file(&path).map_err(|e| PersistError::io(&path, e))?;
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

/// Reads and checks a snapshot into a new store. The file is streamed: this thread
/// reads frames while `threads` workers check, decode and index them, so reading the
/// disk, decoding and building the maps overlap.
pub fn read(path: &Path, threads: usize) -> Result<Loaded, PersistError> {
    let corrupt = |detail: String| PersistError::Corrupt {
        path: path.to_owned(),
        detail,
    };
    let io = |e| PersistError::io(path, e);
    let file = File::open(path).map_err(io)?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0; 8];
    if r.read_exact(&mut magic).is_err() {
        return Err(corrupt("not a Persona snapshot (bad magic number)".into()));
    }
    let format = match &magic {
        SNAPSHOT_MAGIC => HeadFormat::V4,
        SNAPSHOT_MAGIC_V3 => HeadFormat::V3,
        SNAPSHOT_MAGIC_V2 | SNAPSHOT_MAGIC_V1 => HeadFormat::V2,
        _ => return Err(corrupt("not a Persona snapshot (bad magic number)".into())),
    };
    let with_activity = &magic != SNAPSHOT_MAGIC_V1;
    let mut frame = |what: &str| -> Result<Frame, PersistError> {
        let f = next_frame(&mut r)
            .map_err(|e| corrupt(format!("{what}: {e}")))?
            .ok_or_else(|| corrupt(format!("{what} missing")))?;
        if f.payload().is_none() {
            return Err(corrupt(format!("{what}: the checksum does not match")));
        }
        Ok(f)
    };
    let header_frame = frame("the header")?;
    let (header, _): (Header<'_>, usize) =
        bincode::borrow_decode_from_slice(&header_frame.0[8..], config())
            .map_err(|e| corrupt(format!("header: {e}")))?;
    let (lsn, profiles, chunks, erasing) =
        (header.lsn, header.profiles, header.chunks, header.erasing);
    let head = frame("settings and schema")?;
    let (settings, schema, extra) =
        record::decode_head(&head.0[8..], format).map_err(|e| corrupt(e.to_string()))?;
    // Profiles from before fields had numbers are read against the snapshot's schema.
    let numbered = format == HeadFormat::V4;
    let unnumbered = (!numbered).then_some(&schema);
    // A header is checksummed, not trusted: no profile takes under 16 bytes on disk.
    let size = r.get_ref().metadata().map_err(io)?.len();
    let store = ProfileStore::with_capacity(profiles.min(size / 16) as usize);

    let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, Frame)>(threads.max(1) * 2);
    let rx = parking_lot::Mutex::new(rx);
    let activity = ActivityStore::new();
    let (store_ref, rx_ref, activity_ref) = (&store, &rx, &activity);
    let (read_result, decoded) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(move || {
                    let mut order = Vec::new();
                    let mut failed = None;
                    // A worker that met a bad chunk keeps draining the channel, so the
                    // reader never blocks on a full channel nobody empties.
                    loop {
                        // Its own statement: a `while let` would hold the lock (and so
                        // every other worker) through the decode.
                        let next = rx_ref.lock().recv();
                        let Ok((n, f)) = next else { break };
                        if failed.is_some() {
                            continue;
                        }
                        let Some(payload) = f.payload() else {
                            failed = Some(format!("chunk {n}: the checksum does not match"));
                            continue;
                        };
                        let decoded = record::decode_profiles(payload, unnumbered, |p, view| {
                            order.push(store_ref.insert_restored(p, view));
                        });
                        if let Err(e) = decoded {
                            failed = Some(format!("chunk {n}: {e}"));
                        }
                    }
                    match failed {
                        Some(e) => Err(e),
                        None => Ok(order),
                    }
                })
            })
            .collect();
        let read_result = (|| {
            for n in 0..chunks {
                let f = next_frame(&mut r)
                    .map_err(|e| corrupt(format!("chunk {n}: {e}")))?
                    .ok_or_else(|| corrupt(format!("{n} of {chunks} profile chunks present")))?;
                if tx.send((n, f)).is_err() {
                    break;
                }
            }
            drop(tx);
            if with_activity {
                read_activities(&mut r, activity_ref).map_err(corrupt)?;
            }
            match next_frame(&mut r) {
                Ok(None) => Ok(()),
                _ => Err(corrupt("bytes after the last chunk".into())),
            }
        })();
        let decoded: Vec<Result<Vec<_>, String>> = workers
            .into_iter()
            .map(|w| w.join().expect("snapshot decode thread"))
            .collect();
        (read_result, decoded)
    });
    let mut order = Vec::with_capacity(store.len());
    for d in decoded {
        order.extend(d.map_err(corrupt)?);
    }
    read_result?;
    if order.len() as u64 != profiles {
        return Err(corrupt(format!(
            "{} profiles where the header says {profiles}",
            order.len()
        )));
    }
    store.set_order(order);
    for (survivor, history) in extra.merges {
        store.merges.record(&survivor, history, &[]);
    }
    activity.rebuild_rfm();
    Ok(Loaded {
        lsn,
        settings,
        schema,
        store,
        activity,
        segments: extra.segments,
        erasing,
        unnumbered: !numbered,
    })
}

/// Reads the activity header and chunks into `activity`, on the reading thread while
/// the workers finish the profile chunks.
fn read_activities(r: &mut impl Read, activity: &ActivityStore) -> Result<(), String> {
    let mut frame = |what: &str| -> Result<Frame, String> {
        let f = next_frame(r)
            .map_err(|e| format!("{what}: {e}"))?
            .ok_or_else(|| format!("{what} missing"))?;
        if f.payload().is_none() {
            return Err(format!("{what}: the checksum does not match"));
        }
        Ok(f)
    };
    let head = frame("the activity header")?;
    let (header, _): (ActivityHeader, usize) = bincode::decode_from_slice(&head.0[8..], config())
        .map_err(|e| format!("activity header: {e}"))?;
    for n in 0..header.chunks {
        let f = frame(&format!("activity chunk {n}"))?;
        record::decode_activities(&f.0[8..], |id, act| activity.insert_restored(id, act))
            .map_err(|e| format!("activity chunk {n}: {e}"))?;
    }
    Ok(())
}

/// A frame as read: its 8 header bytes and payload in one buffer.
struct Frame(Vec<u8>);

impl Frame {
    /// The payload, if it matches its checksum.
    fn payload(&self) -> Option<&[u8]> {
        let crc = u32::from_le_bytes(self.0[4..8].try_into().expect("4 bytes"));
        let payload = &self.0[8..];
        (crc32fast::hash(payload) == crc).then_some(payload)
    }
}

/// The next frame, `None` at a clean end; a frame cut short is an `UnexpectedEof`.
fn next_frame(r: &mut impl Read) -> std::io::Result<Option<Frame>> {
    let mut head = [0u8; 8];
    let mut got = 0;
    while got < head.len() {
        match r.read(&mut head[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    if len > record::MAX_RECORD {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a frame length beyond any record",
        ));
    }
    let mut buf = vec![0; 8 + len];
    buf[..8].copy_from_slice(&head);
    r.read_exact(&mut buf[8..])?;
    Ok(Some(Frame(buf)))
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

    /// `n` copies of the sample profile, customer ids `c0..`.
    fn numbered(schema: &Schema, n: usize) -> Vec<Packed> {
        (0..n)
            .map(|i| {
                let mut p = sample_profile(schema);
                p.customer_id = format!("c{i}").into();
                Packed::encode(&p)
            })
            .collect()
    }

    #[test]
    fn written_snapshots_read_back_and_flipped_bytes_are_caught() {
        let dir = tempfile::tempdir().unwrap();
        let schema = sample_schema();
        let profiles = numbered(&schema, 5000);
        let info = write(
            dir.path(),
            42,
            &settings(),
            &schema,
            &profiles,
            &ActivityStore::new(),
            false,
        )
        .unwrap();
        assert_eq!(info.profiles, 5000);
        let loaded = read(&info.path, 2).unwrap();
        assert_eq!(loaded.lsn, 42);
        assert_eq!(loaded.store.len(), 5000);
        assert_eq!(loaded.store.get("c4999").as_ref(), Some(&profiles[4999]));
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

    #[test]
    fn saved_segment_definitions_and_slots_come_back_with_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let schema = sample_schema();
        let profiles = numbered(&schema, 10);
        let defs = vec![SegmentDef {
            name: "vips".into(),
            filter: r#"tags CONTAINS "vip""#.into(),
            saved_at: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
        }];
        let extra = HeadExtra {
            segments: defs.clone(),
            merges: Vec::new(),
        };
        let info = write_then(
            dir.path(),
            3,
            &settings(),
            &schema,
            &extra,
            &profiles,
            &ActivityStore::new(),
            false,
            &mut || Ok(()),
        )
        .unwrap();
        let loaded = read(&info.path, 2).unwrap();
        assert_eq!(loaded.segments, defs);
        // Slots are numbered in creation (id) order, each once.
        let mut slots: Vec<(ulid::Ulid, crate::store::Slot)> = profiles
            .iter()
            .map(|p| {
                let v = p.view();
                (v.id(), loaded.store.get_slotted(v.customer_id).unwrap().0)
            })
            .collect();
        slots.sort();
        let numbers: Vec<u32> = slots.iter().map(|(_, s)| *s).collect();
        assert_eq!(numbers, (0..10).collect::<Vec<u32>>());
        assert_eq!(loaded.store.slot_bound(), 10);
    }

    #[test]
    fn a_bad_first_chunk_with_one_worker_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let schema = sample_schema();
        // Six chunks: more than the channel holds while the only worker has given up.
        let profiles = numbered(&schema, CHUNK * 6);
        let info = write(
            dir.path(),
            1,
            &settings(),
            &schema,
            &profiles,
            &ActivityStore::new(),
            false,
        )
        .unwrap();
        let mut bytes = fs::read(&info.path).unwrap();
        // Well inside the first chunk, past the header and the schema.
        bytes[4000] ^= 1;
        fs::write(&info.path, &bytes).unwrap();
        let err = read(&info.path, 1).unwrap_err().to_string();
        assert!(err.contains("chunk 0"), "{err}");
    }
}
