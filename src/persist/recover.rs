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
use super::wal::{self, SEGMENT_MAGIC, SEGMENT_MAGIC_V1, Tail};
use super::{PersistError, sync_dir};
use crate::schema::Schema;

/// Where replayed effects go: the database state being rebuilt.
pub trait Target {
    /// Applies one logged effect, the record `lsn`.
    fn apply(&self, lsn: u64, entry: Entry);

    /// The schema before the first record replayed (the snapshot's): what records from
    /// before fields had numbers are read against.
    fn schema(&self) -> Arc<Schema>;
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The LSN of the last record applied (the snapshot's if none).
    pub last_lsn: u64,
    /// Records applied.
    pub records: u64,
    /// Profile erasures among them: the next snapshot must be an erasing one.
    pub erasures: u64,
    /// The torn tail cut off, if there was one: `(segment, offset)`.
    pub truncated: Option<(String, u64)>,
    /// Records applied from segments of WAL format 1, from before fields had numbers.
    pub unnumbered: u64,
}

/// Loads the newest snapshot that reads back whole, falling back to older ones.
pub fn load_snapshot(db_dir: &Path, threads: usize) -> Result<Loaded, PersistError> {
    let all = snapshot::snapshots(db_dir)?;
    let mut failures = Vec::new();
    let mut bad: Vec<&Path> = Vec::new();
    for (_, path) in all.iter().rev() {
        match snapshot::read(path, threads) {
            Ok(loaded) => {
                if !failures.is_empty() {
                    tracing::warn!(snapshot = %path.display(), skipped = ?failures,
                        "newer snapshots are unreadable; recovering from an older one and the WAL");
                }
                // Set aside (kept for inspection, no longer counted as a snapshot), so
                // the next prune keeps this good one rather than the bad newer one.
                for bad in bad.iter().copied() {
                    let aside = snapshot::corrupt_path(bad);
                    std::fs::rename(bad, &aside).map_err(|e| PersistError::io(bad, e))?;
                    tracing::warn!(file = %aside.display(), "unreadable snapshot set aside");
                }
                if !bad.is_empty() {
                    sync_dir(db_dir).map_err(|e| PersistError::io(db_dir, e))?;
                }
                return Ok(loaded);
            }
            Err(e) => {
                failures.push(e.to_string());
                bad.push(path);
            }
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

/// A transaction being replayed: its segment, the byte its Begin starts at, its LSN,
/// and the records (with their LSNs) held back until its Commit.
type OpenTransaction = (usize, usize, u64, Vec<(u64, Entry)>);

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
    let mut erasures = 0;
    let mut truncated = None;
    let last = segments.len().saturating_sub(1);
    // An open transaction: its segment, the byte its Begin starts at, its LSN, and the
    // records held back until its Commit.
    let mut open: Option<OpenTransaction> = None;
    // The schema as of the record being read: WAL format 1 records name their fields,
    // and are read against it.
    let mut schema = target.schema();
    let mut unnumbered = 0;
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
        let numbered = !bytes.starts_with(SEGMENT_MAGIC_V1);
        let magic = if numbered {
            SEGMENT_MAGIC
        } else {
            SEGMENT_MAGIC_V1
        };
        let (body, base) = match bytes.strip_prefix(magic) {
            Some(body) => (body, magic.len()),
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
            // A frame that passed its checksum was written whole: if it does not decode,
            // that is corruption (or a format we do not know), never a torn append.
            let at = good;
            good += 8 + frame.len();
            let corrupt = |e: record::RecordError| PersistError::Corrupt {
                path: path.clone(),
                detail: format!("record at byte {at}: {e}"),
            };
            // Records the snapshot holds are not decoded: an old one read against the
            // snapshot's (later) schema might not fit it.
            if record::entry_lsn(frame).map_err(corrupt)? < next {
                continue;
            }
            let (lsn, entry) = match numbered {
                true => record::decode_entry(frame),
                false => record::decode_entry_unnumbered(frame, &schema),
            }
            .map_err(corrupt)?;
            if let Entry::Schema(s) | Entry::DropField { schema: s, .. } = &entry {
                schema = Arc::clone(s);
            }
            if lsn > next {
                return Err(PersistError::Gap {
                    dir: wal_dir.to_owned(),
                    from: next,
                    to: lsn - 1,
                });
            }
            erasures += u64::from(matches!(entry, Entry::Remove(_)));
            match entry {
                Entry::Begin => open = Some((i, at, lsn, Vec::new())),
                Entry::Commit => {
                    for (lsn, e) in open.take().map(|(.., held)| held).unwrap_or_default() {
                        target.apply(lsn, e);
                    }
                }
                e => match &mut open {
                    Some((.., held)) => held.push((lsn, e)),
                    None => target.apply(lsn, e),
                },
            }
            next += 1;
            records += 1;
            unnumbered += u64::from(!numbered);
        }
        let short_magic = base < SEGMENT_MAGIC.len();
        match tail {
            Tail::Torn { offset, reason } if i == last => {
                // A torn append leaves nothing whole after it. A whole frame past the
                // damage means records the log answered for are beyond it: refuse,
                // rather than cut them off.
                if let Some(at) = wal::whole_frame_after(body, offset) {
                    return Err(PersistError::Corrupt {
                        path: path.clone(),
                        detail: format!(
                            "{reason} at byte {}, yet a whole record follows at byte {}; \
                             to give up the records after the damage, truncate the file to {} bytes",
                            offset + base,
                            at + base,
                            offset + base
                        ),
                    });
                }
                cut(path, good, &reason, &mut truncated)?
            }
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
    // A transaction without its commit is where the log ends: the crash came while it
    // was being written, and nobody was answered for it. Its records go, as a torn
    // record does, and the next write takes its first LSN.
    if let Some((i, at, begin, held)) = open {
        let path = &segments[i].1;
        if i != last {
            return Err(PersistError::Corrupt {
                path: path.clone(),
                detail: format!(
                    "a transaction begun at byte {at} has no commit, yet later segments follow"
                ),
            });
        }
        tracing::warn!(
            records = held.len() + 1,
            "an atomic import cut off before its commit is dropped"
        );
        cut(
            path,
            at,
            "an atomic import without its commit",
            &mut truncated,
        )?;
        records -= held.len() as u64 + 1;
        next = begin;
    }
    // What was replayed may sit only in the page cache (a crash, not a power loss, ended
    // the last run). Make it durable before a newer segment exists, or a power loss now
    // could leave a hole in the middle of the log.
    if let Some((_, path)) = segments.last() {
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| PersistError::io(path, e))?;
    }
    Ok(Replayed {
        last_lsn: next - 1,
        records,
        erasures,
        truncated,
        unnumbered,
    })
}

/// Truncates a segment's torn tail at `at`, durably, and says so in the log.
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Arc;

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::activity::ActivityStore;
    use crate::config::FsyncPolicy;
    use crate::db::{Change, DbState, apply::effect};
    use crate::persist::record::encode_entry;
    use crate::persist::{Wal, snapshot};
    use crate::schema::Schema;
    use crate::schema::{
        DatabaseSettings, DatabaseSpec, FieldSpec, ProfileUpdate, RawValue, Source,
    };
    use crate::store::{Packed, ProfileStore};
    use crate::suppression::SuppressionLists;

    #[derive(Debug, Clone)]
    enum Op {
        Upsert {
            cid: u8,
            name: Option<u8>,
            email: Option<u8>,
            tag: Option<u8>,
            custom: Option<(u8, i64)>,
            replace: bool,
        },
        Delete(u8),
        Event {
            cid: u8,
            receipt: u8,
            hour: u8,
            tag: bool,
        },
        AddField(u8),
        DropField(u8),
        Region(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u8..8, prop::option::of(0u8..4), prop::option::of(0u8..4),
                prop::option::of(0u8..3), prop::option::of((0u8..2, any::<i64>())), any::<bool>())
                .prop_map(|(cid, name, email, tag, custom, replace)| Op::Upsert {
                    cid, name, email, tag, custom, replace
                }),
            1 => (0u8..8).prop_map(Op::Delete),
            4 => (0u8..8, 0u8..6, 0u8..48, any::<bool>())
                .prop_map(|(cid, receipt, hour, tag)| Op::Event { cid, receipt, hour, tag }),
            1 => (0u8..2).prop_map(Op::AddField),
            1 => (0u8..2).prop_map(Op::DropField),
            1 => any::<bool>().prop_map(Op::Region),
        ]
    }

    fn change(op: &Op) -> Change {
        match op {
            Op::Upsert {
                cid,
                name,
                email,
                tag,
                custom,
                replace,
            } => {
                let mut u = ProfileUpdate::new(format!("c{cid}"), Source::Api);
                u.replace = *replace;
                if let Some(n) = name {
                    u.fields.push((
                        "first_name".into(),
                        RawValue::Json(json!(format!("Name {n}"))),
                    ));
                }
                if let Some(e) = email {
                    // Few addresses for many profiles: identifier conflicts happen.
                    u.fields.push((
                        "email".into(),
                        RawValue::Json(json!(format!("p{e}@example.com"))),
                    ));
                }
                if let Some(t) = tag {
                    u.tags_add.push(format!("t{t}"));
                }
                if let Some((f, v)) = custom {
                    u.fields
                        .push((format!("x{f}").into(), RawValue::Json(json!(v))));
                }
                Change::Upsert(u)
            }
            Op::Delete(cid) => Change::Delete {
                customer_id: format!("c{cid}"),
            },
            Op::Event {
                cid,
                receipt,
                hour,
                tag,
            } => {
                let mut u = ProfileUpdate::new(format!("c{cid}"), Source::Event);
                let time = 1_700_000_000_000_000 + i64::from(*hour) * 3_600_000_000;
                let data = json!({"receipt_id": format!("r{receipt}"), "total": f64::from(*receipt) * 2.5,
                    "items": [{"sku": "a", "category": "c", "price": f64::from(*receipt) * 2.5}]});
                u.events.push(
                    crate::activity::event::build("receipt", time, Some(data))
                        .unwrap()
                        .0,
                );
                u.events.push(
                    crate::activity::event::build(
                        "category_view",
                        time + 1,
                        Some(json!({"category":"c"})),
                    )
                    .unwrap()
                    .0,
                );
                if *tag {
                    u.tags_add.push("buyer".into());
                }
                Change::Upsert(u)
            }
            Op::AddField(f) => Change::AddField(
                serde_json::from_value::<FieldSpec>(
                    json!({"name": format!("x{f}"), "type": "integer"}),
                )
                .unwrap(),
            ),
            Op::DropField(f) => Change::DropField(format!("x{f}")),
            Op::Region(pt) => Change::Settings(
                serde_json::from_value::<DatabaseSpec>(
                    json!({"default_region": if *pt { "PT" } else { "ES" }}),
                )
                .unwrap(),
            ),
        }
    }

    struct Sink(parking_lot::Mutex<Vec<Entry>>);

    impl Target for Sink {
        fn apply(&self, _lsn: u64, entry: Entry) {
            self.0.lock().push(entry);
        }

        fn schema(&self) -> Arc<Schema> {
            Arc::new(Schema::default())
        }
    }

    fn segment_of(records: &[u64]) -> Vec<u8> {
        let mut bytes = crate::persist::wal::SEGMENT_MAGIC.to_vec();
        for &lsn in records {
            crate::persist::wal::append_frame(&mut bytes, |b| {
                encode_entry(lsn, &Entry::Remove(format!("c{lsn}").into()), b);
            });
        }
        bytes
    }

    #[test]
    fn a_torn_tail_is_cut_but_damage_before_whole_records_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let seg = crate::persist::wal::segment_path(dir.path(), 1);
        let sink = || Sink(Default::default());

        let mut torn = segment_of(&[1, 2, 3]);
        torn.truncate(torn.len() - 3);
        fs::write(&seg, &torn).unwrap();
        let r = replay(dir.path(), 0, &sink()).unwrap();
        assert_eq!((r.last_lsn, r.records, r.erasures), (2, 2, 2));
        assert!(r.truncated.is_some());

        let mut damaged = segment_of(&[1, 2, 3]);
        let second = SEGMENT_MAGIC_LEN + (damaged.len() - SEGMENT_MAGIC_LEN) / 3 + 9;
        damaged[second] ^= 0xff;
        fs::write(&seg, &damaged).unwrap();
        let err = replay(dir.path(), 0, &sink()).unwrap_err().to_string();
        assert!(err.contains("whole record follows"), "{err}");
        // Refused means untouched.
        assert_eq!(fs::read(&seg).unwrap(), damaged);
    }

    #[test]
    fn a_transaction_applies_at_its_commit_and_without_one_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let seg = crate::persist::wal::segment_path(dir.path(), 1);
        let put = |cid: &str| {
            Entry::Put(Packed::encode(&crate::store::Profile::new(
                cid.into(),
                jiff::Timestamp::UNIX_EPOCH,
            )))
        };
        let log = |entries: &[Entry]| {
            let mut bytes = crate::persist::wal::SEGMENT_MAGIC.to_vec();
            for (i, e) in entries.iter().enumerate() {
                crate::persist::wal::append_frame(&mut bytes, |b| encode_entry(i as u64 + 1, e, b));
            }
            bytes
        };
        let whole = log(&[
            Entry::Remove("x".into()),
            Entry::Begin,
            put("a"),
            put("b"),
            Entry::Commit,
        ]);
        fs::write(&seg, &whole).unwrap();
        let sink = Sink(Default::default());
        let r = replay(dir.path(), 0, &sink).unwrap();
        assert_eq!((r.last_lsn, r.truncated.is_some()), (5, false));
        assert_eq!(sink.0.lock().len(), 3);

        let cut = log(&[Entry::Remove("x".into()), Entry::Begin, put("a"), put("b")]);
        fs::write(&seg, &cut).unwrap();
        let sink = Sink(Default::default());
        let r = replay(dir.path(), 0, &sink).unwrap();
        assert_eq!((r.last_lsn, r.records), (1, 1));
        assert_eq!(*sink.0.lock(), [Entry::Remove("x".into())]);
        assert!(r.truncated.is_some());
        // The uncommitted records are gone from the file: the next write takes LSN 2.
        assert_eq!(fs::read(&seg).unwrap(), log(&[Entry::Remove("x".into())]));
    }

    const SEGMENT_MAGIC_LEN: usize = crate::persist::wal::SEGMENT_MAGIC.len();

    fn sorted(store: &ProfileStore) -> Vec<Packed> {
        let mut all = store.all();
        all.sort_by(|a, b| a.view().customer_id.cmp(b.view().customer_id));
        all
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// A snapshot taken at any LSN, whose profiles were read at any later moment (as
        /// a live snapshot's are), plus the WAL after its LSN, rebuilds exactly the
        /// state that applying every update in memory gave.
        #[test]
        fn snapshot_at_any_point_plus_replay_equals_memory(
            ops in prop::collection::vec(op(), 0..40),
            at in any::<prop::sample::Index>(),
            read_later in any::<prop::sample::Index>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let wal_dir = dir.path().join("wal");
            fs::create_dir(&wal_dir).unwrap();
            let settings = DatabaseSettings::create(
                serde_json::from_value(json!({"name":"p","consent_confirmed":true})).unwrap(),
                jiff::Timestamp::UNIX_EPOCH,
            )
            .unwrap();
            snapshot::write(dir.path(), 0, &settings, &Schema::default(), &[], &ActivityStore::new(), false)
                .unwrap();
            let lists = Arc::new(SuppressionLists::open(None).unwrap());
            let state = DbState::new(
                settings,
                Schema::default(),
                ProfileStore::new(),
                ActivityStore::new(),
                Arc::clone(&lists),
            );
            let wal = Wal::open(&wal_dir, 1, FsyncPolicy::Never).unwrap();
            let k = at.index(ops.len() + 1);
            let k2 = k + read_later.index(ops.len() - k + 1);
            let mut lsn = 0;
            let mut view = None;
            for i in 0..=ops.len() {
                if i == k {
                    let extra = snapshot::HeadExtra {
                        segments: Vec::new(),
                        merges: state.store.merges.all(),
                    };
                    view = Some((lsn, state.settings.load_full(), state.schema.load_full(), Arc::new(extra)));
                }
                if i == k2 {
                    let (s_lsn, s_settings, s_schema, extra) = view.clone().unwrap();
                    snapshot::write_then(
                        dir.path(), s_lsn, &s_settings, &s_schema, &extra, &state.store.all(),
                        &state.activity, false, &mut || Ok(()),
                    )
                    .unwrap();
                }
                let Some(op) = ops.get(i) else { break };
                if let Ok((entry, _)) = effect(&state, change(op)) {
                    lsn += 1;
                    let n = lsn;
                    wal.append(n, |buf| encode_entry(n, &entry, buf));
                    state.apply_entry(n, entry);
                }
            }
            wal.close();

            let loaded = load_snapshot(dir.path(), 2).unwrap();
            let snapshot_lsn = loaded.lsn;
            let back = DbState::new(
                loaded.settings,
                loaded.schema,
                loaded.store,
                loaded.activity,
                lists,
            );
            let replayed = replay(&wal_dir, snapshot_lsn, &back).unwrap();
            prop_assert_eq!(replayed.last_lsn, lsn);
            prop_assert_eq!(replayed.truncated, None);
            prop_assert_eq!(&**back.settings.load(), &**state.settings.load());
            prop_assert_eq!(&**back.schema.load(), &**state.schema.load());
            prop_assert_eq!(sorted(&back.store), sorted(&state.store));
            let mut ids = state.activity.customer_ids();
            ids.sort();
            let mut back_ids = back.activity.customer_ids();
            back_ids.sort();
            prop_assert_eq!(&back_ids, &ids);
            prop_assert_eq!(back.activity.ranked(), state.activity.ranked());
            for id in &ids {
                let mine = state.activity.read(id, |a, rfm| (a.cloned(), rfm));
                let theirs = back.activity.read(id, |a, rfm| (a.cloned(), rfm));
                prop_assert_eq!(theirs, mine);
            }
            let histories = |st: &DbState| {
                let mut all = st.store.merges.all();
                all.sort_by(|a, b| a.0.cmp(&b.0));
                all
            };
            prop_assert_eq!(histories(&back), histories(&state));
            for p in state.store.all() {
                let p = p.view();
                for key in p.identifier_keys() {
                    let holder = back.store.holder(&key);
                    prop_assert_eq!(holder.as_deref(), Some(p.customer_id));
                }
            }
        }
    }
}
