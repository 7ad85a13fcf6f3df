//! Profile databases: the registry, each database's shared state and its actor.
//!
//! A [`Database`] pairs the state readers use directly ([`DbState`]: settings, schema
//! and the profile store, all behind `Arc`s) with the address of the [`DatabaseActor`]
//! that alone writes it. Every write is a [`Change`] sent through [`Database::apply`]:
//! the actor validates it, logs the effect to the WAL, applies it and answers; the
//! caller then waits until the log is durable under the fsync policy. Reads never touch
//! the mailbox. [`Databases`] is the registry: databases by name, their data directory,
//! start-up loading and the writer arbiters the actors run on. Actix stays inside this
//! module; the bytes on disk are `persist`'s.

pub mod actor;
pub mod apply;
pub mod merge;
pub mod overlay;
pub mod prebuilt;
pub mod reads;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use actix::{Actor, Addr, Arbiter, ArbiterHandle};
use arc_swap::ArcSwap;
use compact_str::CompactString;
use dashmap::DashMap;
use jiff::Timestamp;

pub use actor::DatabaseActor;
use actor::{Apply, BuildColumns, Close, TakeSnapshot};
pub use apply::{WriteError, build_profile, lookup_key};

use crate::activity::ActivityStore;
use crate::channels::Reach;
use crate::config::FsyncPolicy;
use crate::document::{Context, Related};
use crate::error::{ErrorCode, Problem};
use crate::persist::recover::{self, Target};
use crate::persist::{DataDir, Durability, Entry, PersistError, SnapshotInfo, Wal};
use crate::schema::{DatabaseSettings, DatabaseSpec, FieldSpec, ProfileUpdate, Schema};
use crate::segments::{SavedSegments, SegmentDef};
use crate::store::{Column, ColumnKind, Packed, ProfileStore, Slot};
use crate::suppression::SuppressionLists;

/// Every kind of write to a database: the one update type of the write path.
#[derive(Debug, Clone)]
pub enum Change {
    /// Create, merge into or replace a profile.
    Upsert(ProfileUpdate),
    /// Erase a profile.
    Delete {
        /// The profile's customer id.
        customer_id: String,
    },
    /// Add a custom field.
    AddField(FieldSpec),
    /// Drop a custom field and its values.
    DropField(String),
    /// Change settings.
    Settings(DatabaseSpec),
    /// Save a segment (new, or replacing its namesake).
    SaveSegment(SegmentDef),
    /// Delete a saved segment.
    DeleteSegment(String),
    /// Rows of an import: each applied as an upsert, in order (published as built in
    /// advance when that build still holds); a refused row refuses only itself.
    Import {
        /// The rows.
        rows: Vec<prebuilt::ImportRow>,
        /// About how many more rows of this kind the same import will send (0: unknown
        /// or none): the store makes room for the profiles they will add in one step.
        to_come: u64,
    },
    /// A batch of an atomic import's rows: validated over what its earlier batches made
    /// and held by the actor under the import's id, not applied (answered with
    /// `committed: false` and the refused rows).
    ImportStage {
        /// The import job's id.
        import: ulid::Ulid,
        /// The batch's rows.
        updates: Vec<ProfileUpdate>,
    },
    /// Publishes everything an atomic import holds, together, if nothing its rows read
    /// has changed since (else `import_conflict`, and nothing is applied).
    ImportCommit {
        /// The import job's id.
        import: ulid::Ulid,
        /// The rows its batches sent (none held with some sent: the actor lost them).
        rows: u64,
    },
    /// Drops what an atomic import holds.
    ImportAbort {
        /// The import job's id.
        import: ulid::Ulid,
    },
}

/// What an applied change produced.
#[derive(Debug, Clone)]
pub enum Applied {
    /// The profile as published.
    Profile(Packed),
    /// The change took effect; nothing to return.
    Done,
    /// An import batch was applied but for these rows (by index in the batch).
    Imported {
        /// The refused rows and why.
        rejected: Vec<(usize, Problem)>,
        /// Whether the good rows were applied (an atomic import with refused rows
        /// applies none).
        committed: bool,
        /// A `Change::Import`'s rows handed back, spent, so that the thread that made
        /// them frees them and reuses the batch's memory (empty for other changes).
        spent: Vec<prebuilt::ImportRow>,
    },
}

/// What readers of a database share with its actor.
#[derive(Debug)]
pub struct DbState {
    /// Current settings (swapped whole by the actor).
    pub settings: ArcSwap<DatabaseSettings>,
    /// Current schema (swapped whole by the actor).
    pub schema: ArcSwap<Schema>,
    /// The profiles.
    pub store: ProfileStore,
    /// Their activity and the RFM ranking.
    pub activity: ActivityStore,
    /// The server's suppression lists, which channel eligibility reads.
    pub suppression: Arc<SuppressionLists>,
    /// Saved segments and their members.
    pub segments: SavedSegments,
}

impl DbState {
    /// A database's state from its parts, with no saved segments yet.
    pub fn new(
        settings: DatabaseSettings,
        schema: Schema,
        store: ProfileStore,
        activity: ActivityStore,
        suppression: Arc<SuppressionLists>,
    ) -> Self {
        DbState {
            settings: ArcSwap::from_pointee(settings),
            schema: ArcSwap::from_pointee(schema),
            store,
            activity,
            suppression,
            segments: SavedSegments::new(),
        }
    }

    /// What reading a document of this database needs, now, under `settings` (loaded
    /// by the caller, who keeps it for the read).
    pub fn context<'a>(&'a self, settings: &'a DatabaseSettings) -> Context<'a> {
        Context {
            activity: &self.activity,
            now: Timestamp::now(),
            window_days: settings.interest_window_days,
            reach: Reach {
                lists: &self.suppression,
                attached: &settings.suppression_lists,
            },
            related: Some(Related {
                segments: &self.segments,
                store: &self.store,
            }),
        }
    }

    /// Drops the columns of fields a schema no longer has with that kind.
    fn drop_stale_columns(&self, schema: &Schema) {
        for f in self.schema.load().fields() {
            let fits = schema
                .get(&f.name)
                .is_some_and(|d| d.ty == f.ty && d.default == f.default);
            if !fits {
                self.store.columns.drop_field(&f.name);
            }
        }
    }

    /// Judges a written profile against the saved segments.
    fn upkeep(&self, slot: Slot, profile: &Packed) {
        if self.segments.is_empty() {
            return;
        }
        let settings = self.settings.load();
        self.segments
            .upkeep(slot, profile, &self.schema.load(), &self.context(&settings));
    }

    /// Publishes a changed profile over `old`, the version it was made from, which the
    /// caller knows is still the one stored: an [`Entry::Put`]'s effect without asking
    /// the store for it again. Actor only.
    fn put_over(&self, p: Packed, old: &Packed) {
        let slot = self.store.put(p.clone(), Some(old));
        self.upkeep(slot, &p);
    }

    /// Applies one logged effect: the code that changes a database's state, used alike
    /// by the actor for a new write and by recovery for a logged one. (Import rows built
    /// off the actor are published to the same effect by [`DbState::put_over`] and
    /// [`ProfileStore::claim`], with what the actor already knows.)
    pub fn apply_entry(&self, lsn: u64, entry: Entry) {
        match entry {
            Entry::Put(p) => {
                let old = self.store.get(p.view().customer_id);
                let slot = self.store.put(p.clone(), old.as_ref());
                self.upkeep(slot, &p);
            }
            Entry::Remove(id) => {
                if let Some((slot, _)) = self.store.remove(&id) {
                    self.segments.erased(slot);
                }
                // Whether or not the profile was there: a snapshot may hold the history
                // of a profile erased before its profiles were read.
                self.store.merges.forget(&id);
                self.activity.remove(&id);
            }
            Entry::Events {
                customer_id,
                profile,
                events,
            } => {
                if let Some(p) = profile {
                    let old = self.store.get(p.view().customer_id);
                    self.store.put(p, old.as_ref());
                }
                let max = self.settings.load().max_events as usize;
                self.activity.apply_owned(lsn, &customer_id, events, max);
                // Derived values changed: judged again with the activity in place.
                if !self.segments.is_empty()
                    && let Some((slot, p)) = self.store.get_slotted(&customer_id)
                {
                    self.upkeep(slot, &p);
                }
            }
            Entry::Merge {
                survivor,
                activity,
                absorbed,
                history,
                events,
            } => {
                // The survivor and its history first, the absorbed profiles last: a reader
                // between finds the old ids and identifiers leading somewhere throughout
                // (the removals leave keys the survivor holds now).
                let customer_id = CompactString::from(survivor.view().customer_id);
                let old = self.store.get(&customer_id);
                let slot = self.store.put(survivor.clone(), old.as_ref());
                // The whole merged activity, so that replaying the record again (over a
                // snapshot that already holds later events) lands in the same place.
                self.activity.replace(&customer_id, activity.map(|a| *a));
                if !events.is_empty() {
                    let max = self.settings.load().max_events as usize;
                    self.activity.apply_owned(lsn, &customer_id, events, max);
                }
                self.store.merges.record(&customer_id, history, &absorbed);
                for gone in &absorbed {
                    if let Some((slot, _)) = self.store.remove(gone) {
                        self.segments.erased(slot);
                    }
                    self.activity.remove(gone);
                }
                metrics::counter!("persona_merges_total").increment(absorbed.len() as u64);
                self.upkeep(slot, &survivor);
            }
            Entry::Segments(defs) => {
                let settings = self.settings.load();
                let schema = self.schema.load();
                let defs = Arc::unwrap_or_clone(defs);
                self.segments
                    .install(defs, &schema, &self.store, &self.context(&settings));
            }
            Entry::Schema(schema) => {
                self.drop_stale_columns(&schema);
                self.schema.store(schema);
            }
            Entry::DropField { name, schema } => {
                // Values of a dropped field go too. Its number is never given again, so
                // nothing could read them, but they would hold memory and snapshot bytes.
                // Unpacking against the schema without the field leaves them out.
                if let Some(id) = self.schema.load().id_of(&name) {
                    for p in self.store.all() {
                        if p.view().field(id).is_some() {
                            let q = Packed::encode(&p.unpack(&schema));
                            self.store.put(q, Some(&p));
                        }
                    }
                }
                self.drop_stale_columns(&schema);
                self.schema.store(schema);
            }
            Entry::Settings(settings) => self.settings.store(settings),
            // Markers for replay: what they enclose is applied entry by entry.
            Entry::Begin | Entry::Commit => {}
        }
    }
}

/// Writes a database read from the formats before fields had numbers in today's, as of
/// `lsn` (everything replayed), and removes the older snapshots and the log they needed,
/// before any write is taken. Were an older snapshot of theirs read again later, after
/// a fall back from a damaged newer one, its fields could be numbered otherwise than in
/// the records logged since (a dropped field shifts them); with the files gone, no start
/// goes back to them.
fn rewrite_numbered(state: &DbState, dir: &std::path::Path, lsn: u64) -> Result<(), PersistError> {
    let extra = crate::persist::snapshot::HeadExtra {
        segments: state.segments.defs(),
        merges: state.store.merges.all(),
    };
    let info = crate::persist::snapshot::write_then(
        dir,
        lsn,
        &state.settings.load(),
        &state.schema.load(),
        &extra,
        &state.store.all(),
        &state.activity,
        true,
        &mut || Ok(()),
    )?;
    crate::persist::snapshot::prune(dir, 1)?;
    tracing::info!(dir = %dir.display(), lsn, bytes = info.bytes,
        "data from before field numbers written in today's format; the old files are gone");
    Ok(())
}

impl Target for DbState {
    fn apply(&self, lsn: u64, entry: Entry) {
        self.apply_entry(lsn, entry);
    }

    fn schema(&self) -> Arc<Schema> {
        self.schema.load_full()
    }
}

/// How databases keep themselves: the server-wide settings for their logs, snapshots,
/// saved segments and atomic imports.
#[derive(Debug, Clone)]
pub struct Persistence {
    /// Re-evaluate volatile saved segments this often.
    pub segment_refresh: Duration,
    /// When the WAL reaches the disk.
    pub fsync: FsyncPolicy,
    /// Snapshot at least this often (when anything changed).
    pub snapshot_interval: Duration,
    /// Snapshot after this many logged updates, once the log has grown by the last
    /// snapshot's size.
    pub snapshot_after: u64,
    /// The most profiles (and event lists) an atomic import may hold until it
    /// commits: about 400 bytes each while held, and the commit's log records are one
    /// buffer.
    pub max_atomic_held: usize,
}

/// One profile database: shared state to read, an actor to write.
#[derive(Debug)]
pub struct Database {
    /// Read directly by lookups.
    pub state: Arc<DbState>,
    addr: Addr<DatabaseActor>,
    durability: Durability,
}

impl Database {
    /// Sends a change to the actor, then waits until its log record is durable.
    pub async fn apply(&self, change: Change) -> Result<Applied, Problem> {
        // Attaching lists: held from the existence check until the settings are applied,
        // so a list cannot be deleted in between (its deletion takes this exclusively).
        let _attach = match &change {
            Change::Settings(spec) if spec.suppression_lists.is_some() => {
                let guard = self.state.suppression.attachments().read().await;
                self.state
                    .suppression
                    .check_exist(spec.suppression_lists.as_deref().unwrap_or_default())?;
                Some(guard)
            }
            _ => None,
        };
        let (applied, lsn) = self.addr.send(Apply(change)).await.map_err(|_| gone())??;
        self.durability
            .wait(lsn)
            .await
            .map_err(|e| storage_failed(&self.name(), &e))?;
        Ok(applied)
    }

    /// The columns of these fields (of these kinds), built by the writer where missing.
    pub async fn columns(
        &self,
        fields: Vec<(Arc<str>, ColumnKind)>,
    ) -> Result<Vec<Arc<Column>>, Problem> {
        let store = &self.state.store;
        let have: Option<Vec<Arc<Column>>> = fields
            .iter()
            .map(|(f, kind)| store.columns.get(f).filter(|c| c.kind == *kind))
            .collect();
        if let Some(have) = have {
            return Ok(have);
        }
        self.addr
            .send(BuildColumns(fields))
            .await
            .map_err(|_| gone())
    }

    /// Takes a snapshot now (after any running one) and says what was written.
    pub async fn snapshot(&self) -> Result<SnapshotInfo, Problem> {
        let rx = self.addr.send(TakeSnapshot).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// The database's name.
    pub fn name(&self) -> String {
        self.state.settings.load().name.clone()
    }
}

fn gone() -> Problem {
    Problem::new(
        ErrorCode::Unavailable,
        "the database is shutting down or was deleted; retry",
    )
}

/// The problem for a database whose log cannot be written.
pub fn storage_failed(name: &str, cause: &str) -> Problem {
    Problem::new(
        ErrorCode::StorageFailed,
        format!("database `{name}` cannot write its log ({cause}); it is read-only until the server restarts"),
    )
    .with("database", name)
}

/// All databases of the server, by name.
pub struct Databases {
    by_name: DashMap<String, Arc<Database>, foldhash::quality::RandomState>,
    // Databases on disk that could not be loaded, with the reason (naming the file).
    failed: DashMap<String, String, foldhash::quality::RandomState>,
    loaded: AtomicBool,
    data: DataDir,
    persistence: Persistence,
    writers: Vec<ArbiterHandle>,
    next_writer: AtomicUsize,
    suppression: Arc<SuppressionLists>,
}

impl Databases {
    /// A registry over a locked data directory, with `writers` arbiter threads for the
    /// actors; nothing is loaded until [`Databases::load`]. Call inside an actix system.
    pub fn new(
        data: DataDir,
        persistence: Persistence,
        writers: usize,
        suppression: Arc<SuppressionLists>,
    ) -> Self {
        let writers = (0..writers.max(1))
            .map(|_| {
                let arbiter = Arbiter::new();
                let handle = arbiter.handle();
                // The arbiter thread lives as long as the process; its handle is enough.
                std::mem::forget(arbiter);
                handle
            })
            .collect();
        Databases {
            by_name: DashMap::default(),
            failed: DashMap::default(),
            loaded: AtomicBool::new(false),
            data,
            persistence,
            writers,
            next_writer: AtomicUsize::new(0),
            suppression,
        }
    }

    /// The directory a database keeps its files in.
    pub fn dir_of(&self, name: &str) -> PathBuf {
        self.data.database(name)
    }

    /// The databases on disk, by name and directory (loaded or not).
    pub fn on_disk(&self) -> Result<Vec<(String, PathBuf)>, PersistError> {
        self.data.databases()
    }

    /// Loads every database on disk (blocking: run it off the async workers), then marks
    /// the registry ready. A database that cannot be recovered is left unloaded, its
    /// reason kept for `/readyz` and for requests to it.
    pub fn load(&self) -> Result<(), PersistError> {
        for (name, dir) in self.data.databases()? {
            let started = std::time::Instant::now();
            match self.open(&dir) {
                Ok(db) => {
                    tracing::info!(database = %name, profiles = db.state.store.len(),
                        ms = started.elapsed().as_millis() as u64, "database loaded");
                    self.by_name.insert(name, db);
                }
                Err(e) => {
                    tracing::error!(database = %name, error = %e,
                        "database NOT loaded: move the named file aside or restore it, then restart");
                    self.failed.insert(name, e.to_string());
                }
            }
        }
        self.loaded.store(true, Ordering::Release);
        Ok(())
    }

    fn open(&self, dir: &std::path::Path) -> Result<Arc<Database>, PersistError> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let loaded = recover::load_snapshot(dir, threads)?;
        if loaded.erasing {
            // A crash came between an erasing snapshot's rename and its prune.
            crate::persist::snapshot::prune(dir, 1)?;
        }
        let snapshot_lsn = loaded.lsn;
        let loaded_unnumbered = loaded.unnumbered;
        let state = Arc::new(DbState::new(
            loaded.settings,
            loaded.schema,
            loaded.store,
            loaded.activity,
            Arc::clone(&self.suppression),
        ));
        {
            let settings = state.settings.load();
            let cx = state.context(&settings);
            let schema = state.schema.load();
            state
                .segments
                .install(loaded.segments, &schema, &state.store, &cx);
        }
        let wal_dir = dir.join("wal");
        let replayed = recover::replay(&wal_dir, snapshot_lsn, &*state)?;
        // Replayed creations may have landed after younger profiles the snapshot held:
        // slots go back to id order before anything is indexed by them.
        if replayed.records > 0 {
            state.store.renumber();
        }
        // Members are not stored: evaluated once the state is whole.
        {
            let settings = state.settings.load();
            let schema = state.schema.load();
            state
                .segments
                .go_live(&schema, &state.store, &state.context(&settings), threads);
        }
        if replayed.records > 0 {
            tracing::info!(dir = %dir.display(), snapshot_lsn, records = replayed.records,
                "replayed the WAL after the snapshot");
        }
        let wal = Wal::open(&wal_dir, replayed.last_lsn + 1, self.persistence.fsync)?;
        // After the log's new segment exists, so that the prune sees the old ones whole.
        if loaded_unnumbered || replayed.unnumbered > 0 {
            rewrite_numbered(&state, dir, replayed.last_lsn)?;
        }
        // Erasures replayed from the log have not reached a snapshot yet.
        let erasing = replayed.erasures > 0;
        Ok(self.start(state, dir.to_owned(), wal, replayed.last_lsn, erasing))
    }

    fn start(
        &self,
        state: Arc<DbState>,
        dir: PathBuf,
        wal: Wal,
        lsn: u64,
        erasure_pending: bool,
    ) -> Arc<Database> {
        let writer =
            &self.writers[self.next_writer.fetch_add(1, Ordering::Relaxed) % self.writers.len()];
        let durability = wal.durability();
        let actor_state = Arc::clone(&state);
        let persistence = self.persistence.clone();
        let addr = DatabaseActor::start_in_arbiter(writer, move |_| {
            DatabaseActor::new(actor_state, dir, wal, lsn, persistence, erasure_pending)
        });
        Arc::new(Database {
            state,
            addr,
            durability,
        })
    }

    /// Whether every database on disk has been loaded (or found unloadable).
    pub fn ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Databases that could not be loaded, with the reason.
    pub fn failed(&self) -> Vec<(String, String)> {
        let mut all: Vec<_> = self
            .failed
            .iter()
            .map(|r| (r.key().clone(), r.value().clone()))
            .collect();
        all.sort();
        all
    }

    /// The database of this name.
    #[inline]
    pub fn get(&self, name: &str) -> Option<Arc<Database>> {
        self.by_name.get(name).map(|r| Arc::clone(r.value()))
    }

    /// The database of this name, or why it cannot be had.
    #[inline]
    pub fn find(&self, name: &str) -> Result<Arc<Database>, Problem> {
        if let Some(db) = self.get(name) {
            return Ok(db);
        }
        if !self.ready() {
            return Err(starting());
        }
        match self.failed.get(name) {
            Some(reason) => Err(Problem::new(
                ErrorCode::DatabaseUnavailable,
                format!("database `{name}` could not be loaded: {}", reason.value()),
            )
            .with("database", name)),
            None => Err(not_found(name)),
        }
    }

    /// Every database, sorted by name.
    pub fn list(&self) -> Vec<Arc<Database>> {
        let mut all: Vec<_> = self.by_name.iter().map(|r| Arc::clone(r.value())).collect();
        all.sort_by_key(|d| d.name());
        all
    }

    /// Creates a database from a validated creation body: its directory and first
    /// snapshot are on disk before it answers. Blocking (fsyncs): call off the workers.
    pub fn create(&self, spec: DatabaseSpec) -> Result<Arc<Database>, Problem> {
        if !self.ready() {
            return Err(starting());
        }
        // Blocking is fine: creation runs on the blocking pool. Held until the database
        // is registered, so the list it attaches cannot go meanwhile.
        let _attach = self.suppression.attachments().blocking_read();
        if let Some(lists) = &spec.suppression_lists {
            self.suppression.check_exist(lists)?;
        }
        let settings = DatabaseSettings::create(spec, Timestamp::now())?;
        let name = settings.name.clone();
        let exists = || {
            Problem::new(
                ErrorCode::DatabaseExists,
                format!("database `{name}` exists already"),
            )
            .with("database", name.as_str())
        };
        if self.by_name.contains_key(&name) || self.failed.contains_key(&name) {
            return Err(exists());
        }
        let schema = Schema::default();
        let storage = |e: PersistError| storage_failed(&name, &e.to_string());
        let dir = self
            .data
            .create_database(&settings, &schema)
            .map_err(storage)?
            .ok_or_else(exists)?;
        let wal = match Wal::open(&dir.join("wal"), 1, self.persistence.fsync) {
            Ok(wal) => wal,
            Err(e) => {
                // Not registered, so not left on disk either: the name stays free.
                let _ = crate::persist::dir::remove_database(&dir);
                return Err(storage(e));
            }
        };
        let state = Arc::new(DbState::new(
            settings,
            schema,
            ProfileStore::new(),
            ActivityStore::new(),
            Arc::clone(&self.suppression),
        ));
        {
            let settings = state.settings.load();
            let schema = state.schema.load();
            let cx = state.context(&settings);
            state.segments.go_live(&schema, &state.store, &cx, 1);
        }
        let db = self.start(state, dir, wal, 0, false);
        self.by_name.insert(name, Arc::clone(&db));
        Ok(db)
    }

    /// Removes this database (not a namesake created since it was looked up): its actor
    /// stops, then its files go.
    pub async fn delete(&self, db: &Arc<Database>) -> Result<(), Problem> {
        let name = db.name();
        let (_, db) = self
            .by_name
            .remove_if(&name, |_, current| Arc::ptr_eq(current, db))
            .ok_or_else(|| not_found(&name))?;
        // Waits for a running snapshot, so nothing writes into the directory after this.
        if let Ok(rx) = db.addr.send(Close { snapshot: false }).await {
            let _ = rx.await;
        }
        let dir = self.data.database(&name);
        tokio::task::spawn_blocking(move || crate::persist::dir::remove_database(&dir))
            .await
            .map_err(|_| gone())?
            .map_err(|e| storage_failed(&name, &e.to_string()))
    }

    /// The names of the databases that attach suppression list `list`.
    pub fn attaching(&self, list: &str) -> Vec<String> {
        self.list()
            .into_iter()
            .filter(|db| {
                db.state
                    .settings
                    .load()
                    .suppression_lists
                    .iter()
                    .any(|l| l == list)
            })
            .map(|db| db.name())
            .collect()
    }

    /// The watchers databases of `group` other than `except`: their profiles join every
    /// audience of the group's databases.
    pub fn watchers_of(&self, group: &str, except: &str) -> Vec<Arc<Database>> {
        self.list()
            .into_iter()
            .filter(|db| {
                let s = db.state.settings.load();
                s.watchers && s.group == group && s.name != except
            })
            .collect()
    }

    /// Graceful stop: every database writes a final snapshot and flushes its log.
    pub async fn shutdown(&self) {
        let all = self.list();
        for db in all {
            let name = db.name();
            match db.addr.send(Close { snapshot: true }).await {
                Ok(rx) => match rx.await {
                    Ok(Ok(Some(info))) => tracing::info!(database = %name, lsn = info.lsn,
                        profiles = info.profiles, "final snapshot written"),
                    Ok(Ok(None)) => {}
                    Ok(Err(e)) => tracing::error!(database = %name, error = %e.detail,
                        "final snapshot failed; the WAL still holds every write"),
                    Err(_) => {}
                },
                Err(_) => tracing::warn!(database = %name, "database actor already stopped"),
            }
        }
    }
}

fn starting() -> Problem {
    Problem::new(
        ErrorCode::Starting,
        "the server is still loading its databases; retry in a moment",
    )
}

/// The problem for a database that does not exist.
pub fn not_found(name: &str) -> Problem {
    Problem::new(ErrorCode::DatabaseNotFound, format!("no database `{name}`"))
        .with("database", name)
}

/// Settings of a database named `t` with the default region `PT`, for tests.
#[cfg(test)]
pub(crate) fn test_settings() -> DatabaseSettings {
    DatabaseSettings::create(
        serde_json::from_value::<crate::schema::DatabaseSpec>(
            serde_json::json!({"name":"t","consent_confirmed":true,"default_region":"PT"}),
        )
        .unwrap(),
        Timestamp::UNIX_EPOCH,
    )
    .unwrap()
}

/// An empty database's state with the default fields and [`test_settings`], for tests.
#[cfg(test)]
pub(crate) fn test_state() -> DbState {
    DbState::new(
        test_settings(),
        Schema::default(),
        ProfileStore::new(),
        ActivityStore::new(),
        Arc::new(SuppressionLists::open(None).unwrap()),
    )
}
