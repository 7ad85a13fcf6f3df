//! The database actor: the only writer of one database, and the keeper of its log and
//! snapshots.
//!
//! Runs on a writer arbiter thread. Each [`Apply`] message carries one [`Change`]; the
//! actor validates it against the schema and settings it owns, gives the effect the next
//! LSN, queues it on the WAL, applies it to the shared state and replies with the LSN
//! (the caller waits for durability, not the actor). Messages are handled one at a
//! time, so writes to a database are serialized without locks.
//!
//! Snapshots run on their own thread. Starting one costs the actor only a WAL segment
//! switch and two `Arc` loads (the consistent view: settings and schema at the LSN);
//! profiles are read while writes go on, which replay after the LSN makes exact (see
//! `persist::snapshot`). One runs at a time; requests that arrive meanwhile share the
//! next one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, Context, Handler, Message};
use tokio::sync::oneshot;
use ulid::Ulid;

use super::apply::{effect, upsert};
use super::overlay::{Overlay, Staged};
use super::prebuilt::{ImportRow, Publish};
use super::reads::Basis;
use super::{Applied, Change, DbState, Persistence, storage_failed};
use crate::error::{ErrorCode, Problem};
use crate::persist::record::encode_entry;
use crate::persist::wal::append_frame;
use crate::persist::{Entry, SnapshotInfo, Wal, snapshot};
use crate::schema::ProfileUpdate;
use crate::segments::saved;
use crate::store::{Column, ColumnKind, PREFETCH_AHEAD, Packed, next_id};

/// Someone waiting for a snapshot's outcome.
type Waiter = oneshot::Sender<Result<SnapshotInfo, Problem>>;

/// A stop in progress: whether a final snapshot is still to be taken, who to tell, and
/// how that snapshot went.
struct Closing {
    snapshot: bool,
    reply: oneshot::Sender<Result<Option<SnapshotInfo>, Problem>>,
    result: Option<Result<SnapshotInfo, Problem>>,
}

/// The actor owning one database's writes.
pub struct DatabaseActor {
    state: Arc<DbState>,
    dir: PathBuf,
    wal: Option<Wal>,
    lsn: u64,
    // The last LSN applied to the store, for the snapshot thread: what it reads may be
    // that new, so the log must be durable that far before the snapshot is.
    applied: Arc<AtomicU64>,
    persistence: Persistence,
    since_snapshot: u64,
    // Bytes logged since the last snapshot began, and the size of the last one (see
    // `snapshot_due`).
    logged_since_snapshot: u64,
    last_snapshot_bytes: u64,
    // An erasure happened: the next snapshot must leave no older copy of it on disk.
    erasure_pending: bool,
    // While a snapshot runs: its waiters, and whether it is the erasing kind.
    running: Option<(Vec<Waiter>, bool)>,
    // Want a snapshot that starts after the running one.
    queued: Vec<Waiter>,
    again: bool,
    closing: Option<Closing>,
    // Atomic imports between their first batch and their commit or abort.
    staging: HashMap<Ulid, Staged>,
}

impl DatabaseActor {
    /// An actor for a database's shared state, its directory and its open WAL, whose
    /// last record is `lsn`; `erasure_pending` when recovery replayed an erasure.
    pub fn new(
        state: Arc<DbState>,
        dir: PathBuf,
        wal: Wal,
        lsn: u64,
        persistence: Persistence,
        erasure_pending: bool,
    ) -> Self {
        DatabaseActor {
            state,
            dir,
            wal: Some(wal),
            lsn,
            applied: Arc::new(AtomicU64::new(lsn)),
            persistence,
            since_snapshot: 0,
            logged_since_snapshot: 0,
            // Until one is written: the count alone decides.
            last_snapshot_bytes: 0,
            erasure_pending,
            running: None,
            queued: Vec::new(),
            again: false,
            closing: None,
            staging: HashMap::new(),
        }
    }

    fn apply(
        &mut self,
        change: Change,
        ctx: &mut Context<Self>,
    ) -> Result<(Applied, u64), Problem> {
        if let Change::ImportAbort { import } = change {
            // Before the log's checks: a failed log must not keep an import's memory.
            self.staging.remove(&import);
            return Ok((Applied::Done, self.lsn));
        }
        let name = || self.state.settings.load().name.clone();
        let Some(wal) = &self.wal else {
            return Err(super::gone());
        };
        if let Some(e) = wal.durability().failed() {
            return Err(storage_failed(&name(), &e));
        }
        if let Change::Import { mut rows, to_come } = change {
            // The batch's records go to the WAL together, after the loop: one wake-up of
            // the writer instead of one a row. Nobody waits on them before the batch is
            // answered, and a snapshot syncs the log through the applied LSN, which waits
            // for them.
            let size: usize = rows
                .iter()
                .map(|r| {
                    320 + r
                        .update
                        .events
                        .iter()
                        .map(|e| 32 + e.data.len())
                        .sum::<usize>()
                })
                .sum();
            let mut frames = wal.frame_buffer(size);
            let mut rejected = Vec::new();
            let before = self.state.store.counts();
            for row in rows.iter().take(PREFETCH_AHEAD) {
                prefetch_claim(&self.state, row);
            }
            for i in 0..rows.len() {
                if let Some(next) = rows.get(i + PREFETCH_AHEAD) {
                    prefetch_claim(&self.state, next);
                }
                let row = &mut rows[i];
                let publish = row.built.take().and_then(|b| b.still_valid(&self.state));
                let published = match publish {
                    Some(Publish::New(profile)) => self.claim_framed(profile, &mut frames),
                    Some(Publish::Over(profile, old)) => {
                        self.put_over_framed(profile, &old, &mut frames);
                        true
                    }
                    None => false,
                };
                if published {
                    continue;
                }
                let blank = ProfileUpdate::new("", row.update.source);
                let update = std::mem::replace(&mut row.update, blank);
                match effect(&self.state, Change::Upsert(update)) {
                    Ok((entry, _)) => self.apply_framed(entry, &mut frames),
                    Err(p) => rejected.push((i, p)),
                }
            }
            self.make_room(before, rows.len(), to_come);
            let growth = if to_come > 0 { IMPORT_LOG_GROWTH } else { 1 };
            return Ok(self.end_import(rejected, true, frames, rows, growth, ctx));
        }
        match change {
            Change::ImportStage { import, updates } => return self.stage(import, updates),
            Change::ImportCommit { import, rows } => return self.commit(import, rows, ctx),
            _ => {}
        }
        let (entry, applied) = effect(&self.state, change)?;
        let erases = matches!(entry, Entry::Remove(_));
        let resettles = matches!(entry, Entry::Settings(_));
        self.log_and_apply(entry);
        if resettles {
            // The interest window or the attached lists may have changed what volatile
            // segments hold.
            self.refresh_segments(true, ctx);
        }
        if erases {
            // Erasure reaches the disk with the next snapshot, taken now.
            self.erasure_pending = true;
            self.request_snapshot(ctx);
        } else if self.snapshot_due() {
            self.request_snapshot(ctx);
        }
        Ok((applied, self.lsn))
    }

    /// Validates a batch of an atomic import over what its earlier batches made, and
    /// holds the result. Merges are not made inside an atomic import: an identifier
    /// held by another profile refuses its row (`identifier_conflict`).
    fn stage(
        &mut self,
        import: Ulid,
        updates: Vec<ProfileUpdate>,
    ) -> Result<(Applied, u64), Problem> {
        let state = &self.state;
        let staged = self
            .staging
            .entry(import)
            .or_insert_with(|| Staged::new(Basis::now(state), jiff::Timestamp::now()));
        let (Basis { schema, settings }, now) = (staged.basis.clone(), staged.now);
        let mut view = Overlay::new(&state.store, staged);
        let mut rejected = Vec::new();
        for (i, mut update) in updates.into_iter().enumerate() {
            let events = std::mem::take(&mut update.events);
            match upsert(&schema, &settings, &view, update, now, false) {
                Ok(made) => {
                    let profile = made.profile;
                    if !events.is_empty() {
                        view.add_events(profile.view().customer_id.into(), events);
                    }
                    view.put(profile);
                }
                Err(p) => rejected.push((i, p)),
            }
        }
        let cap = self.persistence.max_atomic_held;
        if staged.len() > cap {
            self.staging.remove(&import);
            return Err(Problem::new(
                ErrorCode::ImportTooLarge,
                format!(
                    "an atomic import holds what it changes until it commits, and may change \
                     at most {cap} profiles (and event lists); nothing was applied"
                ),
            ));
        }
        let answer = Applied::Imported {
            rejected,
            committed: false,
            spent: Vec::new(),
        };
        Ok((answer, self.lsn))
    }

    /// Publishes what an atomic import holds, if the store still answers every question
    /// its rows asked as it did then.
    fn commit(
        &mut self,
        import: Ulid,
        rows: u64,
        ctx: &mut Context<Self>,
    ) -> Result<(Applied, u64), Problem> {
        let conflict = |why: String| {
            Problem::new(
                ErrorCode::ImportConflict,
                format!("{why} while the atomic import ran; nothing was applied"),
            )
        };
        let Some(staged) = self.staging.remove(&import) else {
            if rows > 0 {
                return Err(conflict(
                    "the database let go of the rows it held for the import".into(),
                ));
            }
            // An import without rows.
            return Ok(self.end_import(Vec::new(), true, Vec::new(), Vec::new(), 1, ctx));
        };
        if let Some(why) = staged.changed_since(&self.state) {
            return Err(conflict(why));
        }
        let schema = Arc::clone(&staged.basis.schema);
        let (profiles, events) = staged.into_parts();
        // Stamped as published now, in publishing order: new profiles get their ids
        // here, after every profile created while the import ran.
        let now = jiff::Timestamp::now();
        let profiles: Vec<Packed> = profiles
            .into_iter()
            .map(|(held, new)| held.restamped(&schema, new.then(next_id), new.then_some(now), now))
            .collect();
        // Between Begin and Commit in the log, queued as one piece, so that a crash
        // before the whole import is written leaves none of it after replay (and the
        // records share a WAL segment, and a snapshot that waits for any of them waits
        // for the Commit too). Readers of the store may see the profiles appear one by
        // one while this message runs.
        let mut frames = Vec::new();
        self.apply_framed(Entry::Begin, &mut frames);
        let entries = profiles
            .into_iter()
            .map(Entry::Put)
            .chain(
                events
                    .into_iter()
                    .map(|(customer_id, events)| Entry::Events {
                        customer_id,
                        profile: None,
                        events,
                    }),
            );
        for entry in entries {
            self.apply_framed(entry, &mut frames);
        }
        self.apply_framed(Entry::Commit, &mut frames);
        Ok(self.end_import(Vec::new(), true, frames, Vec::new(), 1, ctx))
    }

    /// Gives an effect the next LSN, encodes its record into `frames` (queued on the WAL
    /// by [`Self::end_import`]) and applies it.
    fn apply_framed(&mut self, entry: Entry, frames: &mut Vec<u8>) {
        let lsn = self.lsn + 1;
        append_frame(frames, |buf| encode_entry(lsn, &entry, buf));
        self.apply_logged(lsn, entry);
    }

    /// Stores a new profile built off the actor if its customer id and identifier keys
    /// are still free (checked as they are inserted), and frames its record; `false`,
    /// with nothing changed, when they are not.
    fn claim_framed(&mut self, profile: Packed, frames: &mut Vec<u8>) -> bool {
        let lsn = self.lsn + 1;
        let applied = &self.applied;
        // As in `apply_logged`: whoever sees the profile in the store reads this LSN.
        let publishing = || applied.store(lsn, Ordering::SeqCst);
        let Some(slot) = self.state.store.claim(&profile, publishing) else {
            return false;
        };
        // The profile is in; the rest of a put's effect (saved segments) follows.
        self.advance(lsn, |st| st.upkeep(slot, &profile));
        append_frame(frames, |buf| encode_entry(lsn, &Entry::Put(profile), buf));
        true
    }

    /// Publishes a changed profile built off the actor over `old`, the version it was
    /// made from and still the one stored (so the store is not asked for it again), and
    /// frames its record.
    fn put_over_framed(&mut self, profile: Packed, old: &Packed, frames: &mut Vec<u8>) {
        let lsn = self.lsn + 1;
        let entry = Entry::Put(profile.clone());
        append_frame(frames, |buf| encode_entry(lsn, &entry, buf));
        self.advance(lsn, |st| st.put_over(profile, old));
    }

    /// Queues an import batch's records and answers for it; takes a snapshot if one is
    /// due with the log grown by `growth` times the last snapshot's size.
    fn end_import(
        &mut self,
        rejected: Vec<(usize, Problem)>,
        committed: bool,
        frames: Vec<u8>,
        spent: Vec<ImportRow>,
        growth: u64,
        ctx: &mut Context<Self>,
    ) -> (Applied, u64) {
        self.logged_since_snapshot += frames.len() as u64;
        if let Some(wal) = &self.wal {
            wal.append_frames(self.lsn, frames);
        }
        if self.snapshot_due_after(growth) {
            self.request_snapshot(ctx);
        }
        (
            Applied::Imported {
                rejected,
                committed,
                spent,
            },
            self.lsn,
        )
    }

    /// Makes room in the store for what an import's rows to come will add, at the rate
    /// its last batch of `rows` added profiles and identifier keys (counted `before`
    /// it): a file of new customers grows the maps once, a file of updates not at all.
    fn make_room(&self, before: (usize, usize), rows: usize, to_come: u64) {
        let store = &self.state.store;
        let after = store.counts();
        let (profiles, keys) = room(before, after, rows, to_come);
        store.reserve(profiles, keys);
    }

    /// Gives an effect the next LSN, queues it on the WAL and applies it.
    fn log_and_apply(&mut self, entry: Entry) {
        let lsn = self.lsn + 1;
        let wal = self
            .wal
            .as_ref()
            .expect("apply checked that the WAL is open");
        let framed = wal.append(lsn, |buf| encode_entry(lsn, &entry, buf));
        self.logged_since_snapshot += framed as u64;
        self.apply_logged(lsn, entry);
    }

    /// Applies an effect whose record `lsn` is (or is about to be) queued on the WAL.
    fn apply_logged(&mut self, lsn: u64, entry: Entry) {
        self.advance(lsn, |st| st.apply_entry(lsn, entry));
    }

    /// Makes `lsn` the applied LSN and applies its effect with `apply`.
    fn advance(&mut self, lsn: u64, apply: impl FnOnce(&DbState)) {
        self.lsn = lsn;
        // Before the apply: whoever sees the effect in the store then reads this LSN.
        self.applied.store(lsn, Ordering::SeqCst);
        apply(&self.state);
        self.since_snapshot += 1;
    }

    /// Re-evaluates the volatile saved segments on a thread of their own, unless that
    /// runs already; the result comes back as [`SegmentsRefreshed`].
    fn refresh_segments(&mut self, again: bool, ctx: &mut Context<Self>) {
        let Some(work) = self.state.segments.begin_refresh(again) else {
            return;
        };
        let state = Arc::clone(&self.state);
        let addr = ctx.address();
        let spawned = std::thread::Builder::new()
            .name("segments".into())
            .spawn(move || {
                let started = Instant::now();
                let settings = state.settings.load();
                let schema = state.schema.load();
                let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
                let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    saved::evaluate_refresh(
                        work,
                        &schema,
                        &state.store,
                        &state.context(&settings),
                        threads,
                    )
                }));
                metrics::histogram!("persona_segment_refresh_seconds")
                    .record(started.elapsed().as_secs_f64());
                // A panic (a bug) must not leave the refresh begun for ever: an empty
                // result ends it, and the next tick tries again.
                let done = done.unwrap_or_else(|_| {
                    tracing::error!("a segment refresh panicked; members stay as they were");
                    saved::Refreshed::default()
                });
                addr.do_send(SegmentsRefreshed(done));
            });
        if spawned.is_err() {
            tracing::error!("cannot start a segment refresh thread; trying again at the next tick");
            self.state.segments.abandon_refresh();
        }
    }

    /// Whether enough updates came since the last snapshot to take one now.
    fn snapshot_due(&self) -> bool {
        self.snapshot_due_after(1)
    }

    /// Whether a snapshot is due with the log grown by `growth` times the last one.
    fn snapshot_due_after(&self, growth: u64) -> bool {
        snapshot_due(
            self.since_snapshot,
            self.persistence.snapshot_after,
            self.logged_since_snapshot,
            self.last_snapshot_bytes.saturating_mul(growth),
        )
    }

    fn request_snapshot(&mut self, ctx: &mut Context<Self>) {
        if self.running.is_some() {
            self.again = true;
        } else {
            self.start_snapshot(Vec::new(), ctx);
        }
    }

    fn start_snapshot(&mut self, waiters: Vec<Waiter>, ctx: &mut Context<Self>) {
        let Some(wal) = &self.wal else {
            for w in waiters {
                let _ = w.send(Err(super::gone()));
            }
            return;
        };
        let pause = Instant::now();
        let lsn = self.lsn;
        let rotated = wal.rotate(lsn + 1);
        let durability = wal.durability();
        let applied = Arc::clone(&self.applied);
        let settings = self.state.settings.load_full();
        let schema = self.state.schema.load_full();
        // Read here, at the LSN; profiles and activities are read after (fuzzy).
        let extra = snapshot::HeadExtra {
            segments: self.state.segments.defs(),
            merges: self.state.store.merges.all(),
        };
        let state = Arc::clone(&self.state);
        let erasing = std::mem::take(&mut self.erasure_pending);
        let keep = if erasing { 1 } else { 2 };
        self.since_snapshot = 0;
        // Until it is written and its size known: the last one's and what was logged
        // since (too much when updates rewrote profiles, never too little), so that
        // writes during a long snapshot do not make the next one due at once.
        self.last_snapshot_bytes += std::mem::take(&mut self.logged_since_snapshot);
        self.again = false;
        self.running = Some((waiters, erasing));
        let addr = ctx.address();
        let dir = self.dir.clone();
        metrics::histogram!("persona_snapshot_pause_seconds").record(pause.elapsed().as_secs_f64());
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                let result = (|| {
                    rotated
                        .recv()
                        .map_err(|_| "the log writer stopped".to_string())?
                        .map_err(|e| format!("switching WAL segment: {e}"))?;
                    let profiles = state.store.all();
                    // The log must hold everything the file holds before the file
                    // counts: profiles were read above, activities are read while it
                    // is written, so the sync comes after both.
                    let mut durable = || {
                        durability
                            .sync_through(applied.load(Ordering::SeqCst))
                            .map(|_| ())
                            .map_err(|e| format!("the WAL could not be made durable: {e}"))
                    };
                    let info = snapshot::write_then(
                        &dir,
                        lsn,
                        &settings,
                        &schema,
                        &extra,
                        &profiles,
                        &state.activity,
                        erasing,
                        &mut durable,
                    )
                    .map_err(|e| e.to_string())?;
                    snapshot::prune(&dir, keep).map_err(|e| e.to_string())?;
                    Ok(info)
                })();
                addr.do_send(SnapshotDone(result, started.elapsed()));
            });
        if spawned.is_err() {
            self.finish_snapshot(Err("cannot start a snapshot thread".into()), ctx);
        }
    }

    fn finish_snapshot(&mut self, result: Result<SnapshotInfo, String>, ctx: &mut Context<Self>) {
        let name = self.state.settings.load().name.clone();
        let (waiters, erasing) = self.running.take().unwrap_or_default();
        let result = result.map_err(|e| {
            tracing::error!(database = %name, error = %e, "snapshot failed; the WAL still holds every write");
            if erasing {
                self.erasure_pending = true;
            }
            Problem::new(ErrorCode::SnapshotFailed, format!("snapshot of `{name}` failed: {e}"))
                .with("database", name.as_str())
        });
        for w in waiters {
            let _ = w.send(result.clone());
        }
        if let Some(closing) = &mut self.closing {
            closing.result = Some(result);
            self.continue_close(ctx);
            return;
        }
        // A failed snapshot is not retried at once (a full disk would make that a busy
        // loop): the interval timer tries again while an erasure is pending.
        if !self.queued.is_empty() || self.again {
            let waiters = std::mem::take(&mut self.queued);
            self.start_snapshot(waiters, ctx);
        }
    }

    fn continue_close(&mut self, ctx: &mut Context<Self>) {
        if self.running.is_some() {
            return;
        }
        let Some(closing) = &mut self.closing else {
            return;
        };
        if closing.snapshot {
            closing.snapshot = false;
            let waiters = std::mem::take(&mut self.queued);
            self.start_snapshot(waiters, ctx);
            return;
        }
        let closing = self.closing.take().expect("closing");
        for w in self.queued.drain(..) {
            let _ = w.send(Err(super::gone()));
        }
        if let Some(wal) = self.wal.take() {
            wal.close();
        }
        let _ = closing.reply.send(closing.result.transpose());
        ctx.stop();
    }
}

/// The least room made in one step for an import's rows to come, when the store holds
/// fewer: two million entries, about 100 MB of map (a million new customers with an
/// email and a phone each, in one step).
const ROOM_STEP: usize = 1 << 21;

/// Asks for the map slots the claim of `row`'s build will probe, if it built a new
/// profile.
fn prefetch_claim(st: &DbState, row: &ImportRow) {
    if let Some(profile) = row.built.as_ref().and_then(|b| b.new_profile()) {
        st.store.prefetch_claim(profile);
    }
}

/// The profiles and identifier keys `to_come` rows will add, at the rate `rows` rows
/// took the store's counts from `before` to `after`; at most the count again, or
/// [`ROOM_STEP`], in one step, so that a body that claims more than it sends (its
/// length is the client's word) cannot make the server take memory it will not use.
fn room(
    before: (usize, usize),
    after: (usize, usize),
    rows: usize,
    to_come: u64,
) -> (usize, usize) {
    if rows == 0 {
        return (0, 0);
    }
    let scale = |was: usize, is: usize| {
        let added = is.saturating_sub(was) as u128;
        let room = added * u128::from(to_come) / rows as u128;
        room.min(is.max(ROOM_STEP) as u128) as usize
    };
    (scale(before.0, after.0), scale(before.1, after.1))
}

/// Whether `since` updates, `logged` bytes of log, after a snapshot of `last` bytes
/// call for another: once there are the setting's count of updates (`after`) and the
/// log has grown by the last snapshot's size. A snapshot writes the whole
/// database, profiles and kept events, so at a fixed count a large load would write it
/// over and over (loading N profiles would cost N²/count profile writes); tying the step
/// to the database's size keeps snapshots' cost a fixed share of the writes, as Redis
/// does by rewriting its append-only file when it has grown by a set percentage (100 %,
/// its `auto-aof-rewrite-percentage` default, as here: at half, a 1M-row load wrote 2.1M
/// profiles in snapshots; at the whole, 1.5M). Replay after a crash stays bounded the
/// same way: at most a snapshot's worth of log, besides the interval's snapshots.
fn snapshot_due(since: u64, after: u64, logged: u64, last: u64) -> bool {
    since >= after && logged >= last
}

/// How many times the last snapshot's size the log may grow while an import has more
/// rows to come (`Change::Import { to_come }` above 0), before a snapshot is taken
/// anyway. A bulk load into a growing database would otherwise write it at every
/// doubling, each snapshot superseded a moment later: a 1M-row load into an empty
/// database encoded 1.5M profiles while it ran, a fifth of the import's CPU on this
/// machine; at four times, 0.6M. The batches sent once the body has been read (and
/// every other write) use the usual step, so a load ends with a snapshot when that step
/// calls for one, and the interval's next snapshot covers it otherwise; the log stays
/// within four times the last snapshot's size (or the setting's count).
const IMPORT_LOG_GROWTH: u64 = 4;

impl Actor for DatabaseActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.erasure_pending {
            self.request_snapshot(ctx);
        }
        let every = self.persistence.snapshot_interval;
        ctx.run_interval(every, |act, ctx| {
            if act.since_snapshot > 0 || act.erasure_pending {
                act.request_snapshot(ctx);
            }
        });
        ctx.run_interval(self.persistence.segment_refresh, |act, ctx| {
            act.refresh_segments(false, ctx);
        });
    }
}

/// From a segment refresh thread back to the actor: the new members.
struct SegmentsRefreshed(saved::Refreshed);

impl Message for SegmentsRefreshed {
    type Result = ();
}

impl Handler<SegmentsRefreshed> for DatabaseActor {
    type Result = ();

    fn handle(&mut self, msg: SegmentsRefreshed, ctx: &mut Context<Self>) {
        let st = &self.state;
        let (settings, schema) = (st.settings.load(), st.schema.load());
        let again = st
            .segments
            .finish_refresh(msg.0, &schema, &st.store, &st.context(&settings));
        if again {
            self.refresh_segments(false, ctx);
        }
    }
}

/// Apply one change; the reply is what it did and its LSN, or why it was refused.
#[derive(Debug)]
pub struct Apply(pub Change);

impl Message for Apply {
    type Result = Result<(Applied, u64), Problem>;
}

impl Handler<Apply> for DatabaseActor {
    type Result = Result<(Applied, u64), Problem>;

    fn handle(&mut self, msg: Apply, ctx: &mut Context<Self>) -> Self::Result {
        self.apply(msg.0, ctx)
    }
}

/// Build the columns of these fields where missing (a query asked for them); the reply
/// is every one asked for. In the actor, so that no write comes between a column's fill
/// and its upkeep.
#[derive(Debug)]
pub struct BuildColumns(pub Vec<(Arc<str>, ColumnKind)>);

impl Message for BuildColumns {
    type Result = Vec<Arc<Column>>;
}

impl Handler<BuildColumns> for DatabaseActor {
    type Result = actix::MessageResult<BuildColumns>;

    fn handle(&mut self, msg: BuildColumns, _: &mut Context<Self>) -> Self::Result {
        let store = &self.state.store;
        let schema = self.state.schema.load();
        let columns = msg
            .0
            .into_iter()
            // A field dropped since the query was typed gets no column (the query then
            // reads the profiles).
            .filter_map(|(field, kind)| {
                let def = schema.get(&field)?;
                (ColumnKind::of(def.ty) == Some(kind)).then_some((def.id, field, kind))
            })
            .map(|(id, field, kind)| match store.columns.get(&field) {
                Some(c) if c.kind == kind => c,
                _ => {
                    let started = Instant::now();
                    let c = store.build_column(id, Arc::clone(&field), kind);
                    tracing::info!(field = %field, ms = started.elapsed().as_millis() as u64,
                        "field column built");
                    c
                }
            })
            .collect();
        actix::MessageResult(columns)
    }
}

/// Take a snapshot that starts after this message; the receiver hears when it is done.
#[derive(Debug)]
pub struct TakeSnapshot;

impl Message for TakeSnapshot {
    type Result = oneshot::Receiver<Result<SnapshotInfo, Problem>>;
}

impl Handler<TakeSnapshot> for DatabaseActor {
    type Result = actix::MessageResult<TakeSnapshot>;

    fn handle(&mut self, _: TakeSnapshot, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.running.is_some() {
            self.queued.push(tx);
        } else {
            self.start_snapshot(vec![tx], ctx);
        }
        actix::MessageResult(rx)
    }
}

/// Stop: optionally after a final snapshot; the WAL is flushed and fsynced, then the
/// actor stops. The receiver hears the final snapshot (if one was asked for).
#[derive(Debug)]
pub struct Close {
    /// Write a final snapshot first (graceful shutdown) or not (the database is deleted).
    pub snapshot: bool,
}

impl Message for Close {
    type Result = oneshot::Receiver<Result<Option<SnapshotInfo>, Problem>>;
}

impl Handler<Close> for DatabaseActor {
    type Result = actix::MessageResult<Close>;

    fn handle(&mut self, msg: Close, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, rx) = oneshot::channel();
        self.closing = Some(Closing {
            snapshot: msg.snapshot,
            reply,
            result: None,
        });
        self.continue_close(ctx);
        actix::MessageResult(rx)
    }
}

/// From the snapshot thread back to the actor: what was written, and how long it took.
struct SnapshotDone(Result<SnapshotInfo, String>, Duration);

impl Message for SnapshotDone {
    type Result = ();
}

impl Handler<SnapshotDone> for DatabaseActor {
    type Result = ();

    fn handle(&mut self, msg: SnapshotDone, ctx: &mut Context<Self>) {
        metrics::histogram!("persona_snapshot_seconds").record(msg.1.as_secs_f64());
        if let Ok(info) = &msg.0 {
            self.last_snapshot_bytes = info.bytes;
            tracing::debug!(dir = %self.dir.display(), lsn = info.lsn, profiles = info.profiles,
                bytes = info.bytes, ms = msg.1.as_millis() as u64, "snapshot written");
        }
        self.finish_snapshot(msg.0, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::{IMPORT_LOG_GROWTH, room, snapshot_due};

    #[test]
    fn room_is_made_at_the_rate_of_the_last_batch() {
        // 1,024 rows that made 512 profiles with two keys each, 100,000 rows to come.
        assert_eq!(
            room((10, 20), (522, 1044), 1024, 100_000),
            (50_000, 100_000)
        );
        // Updates only: no room.
        assert_eq!(room((10, 20), (10, 20), 1024, 100_000), (0, 0));
        // Nothing to come, or a batch of nothing (all refused before the actor).
        assert_eq!(room((10, 20), (522, 1044), 1024, 0), (0, 0));
        assert_eq!(room((10, 20), (10, 20), 0, 100_000), (0, 0));
        // A merge or an erasure in the batch shrank a count.
        assert_eq!(room((10, 20), (9, 30), 10, 10), (0, 10));
        // A body claiming a trillion more rows: a step of two million, or the store's
        // size again once it is larger.
        let step = super::ROOM_STEP;
        assert_eq!(room((0, 0), (1024, 1024), 1024, 1 << 40), (step, step));
        let big = 4 * step;
        assert_eq!(
            room((big, big), (big + 10, big + 10), 10, 1 << 40),
            (big + 10, big + 10)
        );
    }

    #[test]
    fn snapshots_come_after_the_count_and_the_last_snapshots_size_of_log() {
        // A small database: the setting's count.
        assert!(!snapshot_due(99_999, 100_000, 30_000_000, 1_000_000));
        assert!(snapshot_due(100_000, 100_000, 30_000_000, 1_000_000));
        // A large one: its size in log.
        assert!(!snapshot_due(500_000, 100_000, 299_999_999, 300_000_000));
        assert!(snapshot_due(1_000_000, 100_000, 300_000_000, 300_000_000));
        // None written yet: the count alone.
        assert!(snapshot_due(100_000, 100_000, 1, 0));
        // By interval only (`--snapshot-after 0` is u64::MAX here).
        assert!(!snapshot_due(u64::MAX - 1, u64::MAX, u64::MAX, 0));
    }

    #[test]
    fn loading_a_large_file_writes_snapshots_of_a_bounded_share_of_it() {
        // 10M new profiles of 300 bytes (in the log and in a snapshot) into an empty
        // database, a snapshot whenever one is due: the profiles written by snapshots
        // stay within a few times the profiles loaded.
        const SIZE: u64 = 300;
        let (mut since, mut profiles, mut last, mut written) = (0u64, 0u64, 0u64, 0u64);
        for _ in 0..10_000_000u64 {
            since += 1;
            if snapshot_due(since, 100_000, since * SIZE, last) {
                profiles += since;
                written += profiles;
                last = profiles * SIZE;
                since = 0;
            }
        }
        assert!(written <= 3 * 10_000_000, "{written}");
    }

    #[test]
    fn an_import_with_rows_to_come_snapshots_less_often_but_with_the_log_bounded() {
        // The same load as one import whose batches have more rows to come: a snapshot
        // when the log has grown by four times the last (`end_import`'s `growth`).
        const SIZE: u64 = 300;
        let n = 10_000_000u64;
        let (mut since, mut profiles, mut last, mut written) = (0u64, 0u64, 0u64, 0u64);
        for _ in 0..n {
            since += 1;
            // The log never outgrows four snapshots' size or the setting's count.
            let bound = (IMPORT_LOG_GROWTH * last).max(100_000 * SIZE);
            assert!(
                since * SIZE <= bound,
                "{since} updates after a snapshot of {last}"
            );
            if snapshot_due(since, 100_000, since * SIZE, last * IMPORT_LOG_GROWTH) {
                profiles += since;
                written += profiles;
                last = profiles * SIZE;
                since = 0;
            }
        }
        // Under 1.5 times the profiles loaded (at once the size: under 3 times).
        assert!(written < n * 3 / 2, "{written}");
    }
}
