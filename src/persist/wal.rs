//! The write-ahead log of one database: framing, segments, the writer thread and replay.
//!
//! A segment file (`wal/<first lsn>.wal`) is a magic number followed by frames:
//! `[payload length u32 LE][CRC32 of payload u32 LE][payload]`, each payload one
//! bincode record (`record::encode_entry`). The database actor appends encoded records
//! to an in-memory queue ([`Wal::append`]) and never waits on the disk; a writer thread
//! drains the queue with one `write` per batch and, under `always`, one `fsync` per
//! batch: concurrent writers share an fsync (group commit). Under `every_second` a
//! second thread fsyncs once a second, so a slow disk flush never holds up writes, as in
//! Redis's AOF. Callers learn that their record is durable through [`Durability`].

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::{PersistError, record::MAX_RECORD, sync_dir};
use crate::config::FsyncPolicy;

/// The first bytes of every segment: the name and the format version (2: profiles and
/// schemas hold field numbers, not names).
pub const SEGMENT_MAGIC: &[u8; 8] = b"PRSNWAL\x02";
/// Format 1, with field names: still read.
pub const SEGMENT_MAGIC_V1: &[u8; 8] = b"PRSNWAL\x01";
const FRAME_HEADER: usize = 8;
/// A segment is closed and a new one begun past this size.
const SEGMENT_BYTES: u64 = 64 << 20;

/// Appends one frame to `out`, the payload written in place by `encode`.
pub fn append_frame(out: &mut Vec<u8>, encode: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    encode(out);
    let payload = &out[start + FRAME_HEADER..];
    let len = u32::try_from(payload.len()).expect("record under 4 GiB");
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// How a run of frames ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// The bytes ended exactly after the last good frame.
    Clean,
    /// At `offset` the bytes stop being frames (cut short, garbage or a bad checksum).
    Torn {
        /// Where the good frames end.
        offset: usize,
        /// What was found there.
        reason: String,
    },
}

/// Splits bytes into frame payloads, stopping at the first frame that is incomplete or
/// fails its checksum.
pub fn read_frames(bytes: &[u8]) -> (Vec<&[u8]>, Tail) {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < FRAME_HEADER {
            return (frames, torn(at, "a frame header cut short"));
        }
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if len > MAX_RECORD {
            return (frames, torn(at, "a frame length beyond any record"));
        }
        let Some(payload) = rest.get(FRAME_HEADER..FRAME_HEADER + len) else {
            return (frames, torn(at, "a frame cut short"));
        };
        if crc32fast::hash(payload) != crc {
            return (frames, torn(at, "a frame whose checksum does not match"));
        }
        frames.push(payload);
        at += FRAME_HEADER + len;
    }
    (frames, Tail::Clean)
}

/// Where the first whole frame (its checksum matching) starts after `offset`, if any.
/// Only run on a damaged tail, so a scan of every position is affordable.
pub fn whole_frame_after(bytes: &[u8], offset: usize) -> Option<usize> {
    (offset + 1..bytes.len().saturating_sub(FRAME_HEADER)).find(|&at| {
        let head = &bytes[at..at + FRAME_HEADER];
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        len > 0
            && bytes
                .get(at + FRAME_HEADER..at + FRAME_HEADER + len)
                .is_some_and(|payload| crc32fast::hash(payload) == crc)
    })
}

/// A torn tail at `offset`.
fn torn(offset: usize, reason: &str) -> Tail {
    Tail::Torn {
        offset,
        reason: reason.into(),
    }
}

/// The path of the segment whose first record is `first_lsn`.
pub fn segment_path(wal_dir: &Path, first_lsn: u64) -> PathBuf {
    wal_dir.join(format!("{first_lsn:020}.wal"))
}

/// The segments of a WAL directory, `(first lsn, path)`, oldest first.
pub fn segments(wal_dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(wal_dir)? {
        let path = entry?.path();
        let lsn = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(lsn) = lsn {
            out.push((lsn, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Removes the segments every record of which is at or before `lsn`.
pub fn remove_segments_through(wal_dir: &Path, lsn: u64) -> io::Result<usize> {
    let segs = segments(wal_dir)?;
    let mut removed = 0;
    // A segment ends where the next begins; the last one is never removed (it is open).
    for pair in segs.windows(2) {
        if pair[1].0 <= lsn + 1 {
            fs::remove_file(&pair[0].1)?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(wal_dir)?;
    }
    Ok(removed)
}

/// How far the log has reached the disk.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Every record up to here has been handed to the OS (`write`).
    pub written: u64,
    /// Every record up to here has been fsynced.
    pub synced: u64,
    /// The write or fsync that failed; the log takes nothing more.
    pub failed: Option<Arc<str>>,
}

/// Waits for records to become durable under the policy; cheap to clone.
#[derive(Clone)]
pub struct Durability {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durability")
            .field("progress", &*self.shared.progress.borrow())
            .finish()
    }
}

impl Durability {
    /// Resolves once `lsn` is durable as the policy defines it: fsynced under `always`,
    /// written to the OS under `every_second` and `never` (as Redis acknowledges).
    pub async fn wait(&self, lsn: u64) -> Result<(), Arc<str>> {
        let always = self.shared.policy == FsyncPolicy::Always;
        let mut rx = self.shared.progress.subscribe();
        let p = rx
            .wait_for(|p| p.failed.is_some() || (if always { p.synced } else { p.written }) >= lsn)
            .await
            .map_err(|_| Arc::<str>::from("the log writer stopped"))?;
        match &p.failed {
            Some(e) if (if always { p.synced } else { p.written }) < lsn => Err(e.clone()),
            _ => Ok(()),
        }
    }

    /// Blocks until every record up to `lsn` is written and fsynced, whatever the policy:
    /// a snapshot may hold a profile only if the log cannot lose the write that made it.
    pub fn sync_through(&self, lsn: u64) -> Result<(), Arc<str>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| Arc::<str>::from(e.to_string()))?;
        let mut rx = self.shared.progress.subscribe();
        let (written, synced, failed) = rt.block_on(async {
            let p = rx
                .wait_for(|p| p.failed.is_some() || p.written >= lsn)
                .await
                .map_err(|_| Arc::<str>::from("the log writer stopped"))?;
            Ok::<_, Arc<str>>((p.written, p.synced, p.failed.clone()))
        })?;
        match failed {
            Some(e) if written < lsn => return Err(e),
            _ if synced >= lsn => return Ok(()),
            _ => {}
        }
        // Older segments were fsynced when the log moved past them; the current one
        // holds the rest.
        let current = self.shared.current.lock().clone();
        if let Some((file, last)) = current {
            file.sync_data()
                .map_err(|e| Arc::<str>::from(e.to_string()))?;
            self.shared
                .progress
                .send_modify(|p| p.synced = p.synced.max(last));
        }
        Ok(())
    }

    /// The failure that turned the log read-only, if any.
    pub fn failed(&self) -> Option<Arc<str>> {
        self.shared.progress.borrow().failed.clone()
    }
}

/// What the actor queues for the writer thread, in log order.
enum Op {
    Bytes {
        bytes: Vec<u8>,
        last_lsn: u64,
    },
    Rotate {
        first_lsn: u64,
        done: std::sync::mpsc::Sender<io::Result<()>>,
    },
}

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    closed: bool,
    // Buffers the writer has written, cleared, for the next records queued: an import
    // batch's frames are a megabyte or so, and a fresh one each time is fresh memory the
    // kernel must zero on first touch (once the allocator has given the last one back).
    spare: Vec<Vec<u8>>,
}

/// Written buffers kept for reuse, and the largest kept.
const SPARE_BUFFERS: usize = 4;
const SPARE_MAX_BYTES: usize = 8 << 20;

/// What the actor's handle, the writer and fsync threads and waiters share.
struct Shared {
    queue: Mutex<Queue>,
    // The writer's wake-up; the fsync thread has its own, so a notify meant for the
    // writer can never be taken by the other thread.
    wake: Condvar,
    tick: Condvar,
    progress: Arc<watch::Sender<Progress>>,
    policy: FsyncPolicy,
    wal_dir: PathBuf,
    current: Mutex<Option<(Arc<File>, u64)>>,
}

/// The writing end of a database's WAL; owned by its actor.
pub struct Wal {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Wal {
    /// Opens the log for appending records from `next_lsn` on (everything before it is
    /// in a snapshot or in older segments).
    pub fn open(wal_dir: &Path, next_lsn: u64, policy: FsyncPolicy) -> Result<Wal, PersistError> {
        fs::create_dir_all(wal_dir).map_err(|e| PersistError::io(wal_dir, e))?;
        let file = new_segment(wal_dir, next_lsn)?;
        let progress = Arc::new(watch::Sender::new(Progress {
            written: next_lsn - 1,
            synced: next_lsn - 1,
            failed: None,
        }));
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            tick: Condvar::new(),
            progress,
            policy,
            wal_dir: wal_dir.to_owned(),
            current: Mutex::new(Some((Arc::new(file), next_lsn - 1))),
        });
        // Built before the threads: if one fails to start, dropping `wal` stops the other.
        let mut wal = Wal {
            shared,
            threads: Vec::new(),
        };
        let mut start = |name: &str, run: fn(&Shared)| {
            let shared = Arc::clone(&wal.shared);
            let thread = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || run(&shared))
                .map_err(|e| PersistError::io(wal_dir, e))?;
            wal.threads.push(thread);
            Ok::<_, PersistError>(())
        };
        start("wal-writer", write_loop)?;
        if policy == FsyncPolicy::EverySecond {
            start("wal-fsync", fsync_loop)?;
        }
        Ok(wal)
    }

    /// Queues record `lsn`, encoded in place by `encode`; returns its frame's length.
    /// Never touches the disk.
    pub fn append(&self, lsn: u64, encode: impl FnOnce(&mut Vec<u8>)) -> usize {
        let mut q = self.shared.queue.lock();
        let framed = match q.ops.last_mut() {
            Some(Op::Bytes { bytes, last_lsn }) => {
                let before = bytes.len();
                append_frame(bytes, encode);
                *last_lsn = lsn;
                bytes.len() - before
            }
            _ => {
                let mut bytes = q.spare.pop().unwrap_or_else(|| Vec::with_capacity(4096));
                append_frame(&mut bytes, encode);
                let framed = bytes.len();
                q.ops.push(Op::Bytes {
                    bytes,
                    last_lsn: lsn,
                });
                framed
            }
        };
        drop(q);
        self.shared.wake.notify_one();
        framed
    }

    /// Queues frames already encoded with [`append_frame`], the last of which is record
    /// `last_lsn`: a batch of records for one lock and one wake-up of the writer, where
    /// [`Wal::append`] a record at a time wakes it for each.
    ///
    /// Takes the buffer: when the writer has nothing queued (the usual case) it is
    /// queued as it is, so a batch of a megabyte is not copied on the actor's thread.
    pub fn append_frames(&self, last_lsn: u64, frames: Vec<u8>) {
        if frames.is_empty() {
            return;
        }
        let mut q = self.shared.queue.lock();
        match q.ops.last_mut() {
            Some(Op::Bytes { bytes, last_lsn: l }) => {
                bytes.extend_from_slice(&frames);
                *l = last_lsn;
            }
            _ => q.ops.push(Op::Bytes {
                bytes: frames,
                last_lsn,
            }),
        }
        drop(q);
        self.shared.wake.notify_one();
    }

    /// An empty buffer for [`Wal::append_frames`] of at least `capacity` bytes: one the
    /// writer has finished with if there is one, so that batch after batch reuses the
    /// same memory.
    pub fn frame_buffer(&self, capacity: usize) -> Vec<u8> {
        let mut buf = self.shared.queue.lock().spare.pop().unwrap_or_default();
        buf.reserve(capacity);
        buf
    }

    /// Closes the current segment after what is queued and begins a new one at
    /// `first_lsn`; the receiver hears when that is done.
    pub fn rotate(&self, first_lsn: u64) -> std::sync::mpsc::Receiver<io::Result<()>> {
        let (done, rx) = std::sync::mpsc::channel();
        self.shared
            .queue
            .lock()
            .ops
            .push(Op::Rotate { first_lsn, done });
        self.shared.wake.notify_one();
        rx
    }

    /// The handle callers wait on.
    pub fn durability(&self) -> Durability {
        Durability {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Writes and fsyncs everything queued, then stops the threads.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.queue.lock().closed = true;
        self.shared.wake.notify_all();
        self.shared.tick.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Creates a segment durably: its magic number fsynced, then the directory.
fn new_segment(wal_dir: &Path, first_lsn: u64) -> Result<File, PersistError> {
    let path = segment_path(wal_dir, first_lsn);
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| PersistError::io(&path, e))?;
    file.write_all(SEGMENT_MAGIC)
        .and_then(|()| file.sync_data())
        .and_then(|()| sync_dir(wal_dir))
        .map_err(|e| PersistError::io(&path, e))?;
    Ok(file)
}

/// Fails the log if the writer thread ends by a panic, so no caller waits forever.
struct FailOnPanic<'a>(&'a Shared);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .progress
                .send_modify(|p| p.failed = Some("the log writer stopped".into()));
        }
    }
}

/// The writer thread: drains the queue, one `write` (and under `always` one fsync) per
/// batch, until closed.
fn write_loop(shared: &Shared) {
    let _guard = FailOnPanic(shared);
    let mut size = SEGMENT_MAGIC.len() as u64;
    loop {
        let (ops, closed) = {
            let mut q = shared.queue.lock();
            while q.ops.is_empty() && !q.closed {
                shared.wake.wait(&mut q);
            }
            (std::mem::take(&mut q.ops), q.closed)
        };
        // A separate statement: a `borrow()` guard in the condition would live through
        // `write_ops`, which publishes progress on the same channel.
        let failed = shared.progress.borrow().failed.is_some();
        if !failed && let Err(e) = write_ops(shared, ops, &mut size) {
            tracing::error!(wal = %shared.wal_dir.display(), error = %e,
                "WAL write failed; the database is read-only until restart");
            shared
                .progress
                .send_modify(|p| p.failed = Some(e.to_string().into()));
        }
        if closed && shared.queue.lock().ops.is_empty() {
            let current = shared.current.lock().clone();
            if let Some((file, lsn)) = current {
                match file.sync_data() {
                    Ok(()) => shared
                        .progress
                        .send_modify(|p| p.synced = p.synced.max(lsn)),
                    Err(e) => {
                        tracing::error!(wal = %shared.wal_dir.display(), error = %e,
                            "the WAL's last fsync failed; the last second of writes may be lost on power loss");
                        shared
                            .progress
                            .send_modify(|p| p.failed = Some(e.to_string().into()));
                    }
                }
            }
            return;
        }
    }
}

/// Writes one batch of queued operations and publishes how far the log got.
fn write_ops(shared: &Shared, ops: Vec<Op>, size: &mut u64) -> Result<(), PersistError> {
    let mut written = None;
    for op in ops {
        match op {
            Op::Bytes {
                mut bytes,
                last_lsn,
            } => {
                let (file, _) = shared.current.lock().clone().expect("a segment is open");
                (&*file)
                    .write_all(&bytes)
                    .map_err(|e| PersistError::io(&shared.wal_dir, e))?;
                *size += bytes.len() as u64;
                metrics::counter!("persona_wal_writes_total").increment(1);
                if bytes.capacity() <= SPARE_MAX_BYTES {
                    let mut q = shared.queue.lock();
                    if q.spare.len() < SPARE_BUFFERS {
                        bytes.clear();
                        q.spare.push(bytes);
                    }
                }
                written = Some(last_lsn);
                if let Some(cur) = shared.current.lock().as_mut() {
                    cur.1 = last_lsn;
                }
                if *size > SEGMENT_BYTES {
                    // Rotation by size keeps segments small enough to read whole.
                    rotate(shared, last_lsn + 1)?;
                    *size = SEGMENT_MAGIC.len() as u64;
                }
            }
            Op::Rotate { first_lsn, done } => {
                let r = rotate(shared, first_lsn);
                *size = SEGMENT_MAGIC.len() as u64;
                let _ = done.send(match &r {
                    Ok(()) => Ok(()),
                    Err(e) => Err(io::Error::other(e.to_string())),
                });
                r?;
            }
        }
    }
    let Some(lsn) = written else { return Ok(()) };
    let before = shared.progress.borrow().written;
    metrics::counter!("persona_wal_records_total").increment(lsn.saturating_sub(before));
    if shared.policy == FsyncPolicy::Always {
        let (file, _) = shared.current.lock().clone().expect("a segment is open");
        file.sync_data()
            .map_err(|e| PersistError::io(&shared.wal_dir, e))?;
        metrics::counter!("persona_wal_fsyncs_total").increment(1);
        shared.progress.send_modify(|p| {
            p.written = lsn;
            p.synced = lsn;
        });
    } else {
        shared.progress.send_modify(|p| p.written = lsn);
    }
    Ok(())
}

/// Closes the current segment (fsynced) and opens the one beginning at `first_lsn`.
fn rotate(shared: &Shared, first_lsn: u64) -> Result<(), PersistError> {
    let old = shared.current.lock().take();
    if let Some((file, lsn)) = old {
        // The old segment is complete on disk before a newer one exists, so a power
        // loss can never leave a hole in the middle of the log.
        file.sync_data()
            .map_err(|e| PersistError::io(&shared.wal_dir, e))?;
        shared
            .progress
            .send_modify(|p| p.synced = p.synced.max(lsn));
    }
    let file = new_segment(&shared.wal_dir, first_lsn)?;
    *shared.current.lock() = Some((Arc::new(file), first_lsn - 1));
    Ok(())
}

/// The `every_second` thread: fsyncs the current segment once a second if it grew.
fn fsync_loop(shared: &Shared) {
    let mut last = Instant::now();
    loop {
        {
            let mut q = shared.queue.lock();
            if q.closed {
                return;
            }
            let wait = Duration::from_secs(1).saturating_sub(last.elapsed());
            shared.tick.wait_for(&mut q, wait);
            if q.closed {
                return;
            }
        }
        if last.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last = Instant::now();
        let Some((file, lsn)) = shared.current.lock().clone() else {
            continue;
        };
        if lsn <= shared.progress.borrow().synced {
            continue;
        }
        match file.sync_data() {
            Ok(()) => {
                metrics::counter!("persona_wal_fsyncs_total").increment(1);
                shared
                    .progress
                    .send_modify(|p| p.synced = p.synced.max(lsn));
            }
            Err(e) => {
                tracing::error!(wal = %shared.wal_dir.display(), error = %e,
                    "WAL fsync failed; the database is read-only until restart");
                shared
                    .progress
                    .send_modify(|p| p.failed = Some(e.to_string().into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn frames_round_trip_and_any_cut_is_a_clean_prefix(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut buf = Vec::new();
            for p in &payloads {
                append_frame(&mut buf, |out| out.extend_from_slice(p));
            }
            let (frames, tail) = read_frames(&buf);
            prop_assert_eq!(tail, Tail::Clean);
            prop_assert_eq!(frames.len(), payloads.len());
            let at = cut.index(buf.len() + 1);
            let (prefix, _) = read_frames(&buf[..at]);
            prop_assert!(prefix.len() <= payloads.len());
            for (got, want) in prefix.iter().zip(&payloads) {
                prop_assert_eq!(*got, &want[..]);
            }
        }

        #[test]
        fn flipped_bytes_never_yield_a_wrong_frame(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..64), 1..6),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut buf = Vec::new();
            for p in &payloads {
                append_frame(&mut buf, |out| out.extend_from_slice(p));
            }
            let i = at.index(buf.len());
            buf[i] ^= 1 << bit;
            let (frames, _) = read_frames(&buf);
            for (got, want) in frames.iter().zip(&payloads) {
                if *got != &want[..] {
                    prop_assert!(false, "a corrupted frame passed its checksum");
                }
            }
        }
    }

    #[test]
    fn a_failed_write_fails_its_waiters_and_every_later_one() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(dir.path(), 1, FsyncPolicy::Always).unwrap();
        let durability = wal.durability();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        wal.append(1, |b| b.extend_from_slice(b"one"));
        rt.block_on(durability.wait(1)).unwrap();
        // The next segment is a disk that is always full.
        std::os::unix::fs::symlink("/dev/full", segment_path(dir.path(), 2)).unwrap();
        let rotated = wal.rotate(2);
        wal.append(2, |b| b.extend_from_slice(b"two"));
        assert!(rotated.recv().unwrap().is_err());
        let err = rt.block_on(durability.wait(2)).unwrap_err();
        assert!(err.contains("No space left"), "{err}");
        assert!(durability.failed().is_some());
        wal.append(3, |b| b.extend_from_slice(b"three"));
        assert!(rt.block_on(durability.wait(3)).is_err());
        // What was durable stays so.
        rt.block_on(durability.wait(1)).unwrap();
    }

    #[test]
    fn segments_sort_by_lsn_and_only_fully_covered_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        for lsn in [1u64, 50, 120] {
            fs::write(segment_path(dir.path(), lsn), SEGMENT_MAGIC).unwrap();
        }
        fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let lsns: Vec<u64> = segments(dir.path()).unwrap().iter().map(|s| s.0).collect();
        assert_eq!(lsns, [1, 50, 120]);
        assert_eq!(remove_segments_through(dir.path(), 60).unwrap(), 1);
        assert_eq!(remove_segments_through(dir.path(), 119).unwrap(), 1);
        assert_eq!(remove_segments_through(dir.path(), 10_000).unwrap(), 0);
        let lsns: Vec<u64> = segments(dir.path()).unwrap().iter().map(|s| s.0).collect();
        assert_eq!(lsns, [120]);
    }
}
