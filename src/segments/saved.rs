//! Saved segments: named filters whose members are kept, so that a count and a first
//! page cost a bitmap read instead of a scan.
//!
//! Each segment holds its members as a compressed bitmap (`roaring`) of profile slots
//! (`store::Slot`, a dense number per profile). The database's writer keeps them
//! current: every profile it writes or erases is judged against every saved segment
//! ([`SavedSegments::upkeep`]), which for filters on fields, tags and identifiers reads
//! the profile's bytes and for the rest reads one document rendered with what all the
//! segments name.
//!
//! Some filters read what changes without a write to the profile: the clock
//! (`stats.days_since_…`, bonuses, interests, carts), other profiles (`rfm` ranks) or
//! the suppression lists (`channels`). Those segments are *volatile*: besides the
//! upkeep on write, they are re-evaluated over the whole database in the background
//! ([`SavedSegments::begin_refresh`]) on a timer and after settings change; profiles
//! written while that runs are judged again when its result is put in place, so a
//! refresh never undoes a write. Recovery rebuilds every bitmap once the log is
//! replayed. Uses `store`, `document` and the filter modules; no I/O.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use jiff::Timestamp;
use parking_lot::{Mutex, RwLock};
use roaring::RoaringBitmap;
use serde::Serialize;
use serde_json::Value as Json;

use super::filter::{Expr, FilterError};
use super::{Compiled, compile_with, parse};
use crate::document::{self, Context, Projection};
use crate::error::{ErrorCode, Problem};
use crate::schema::Schema;
use crate::store::{Packed, ProfileStore, ProfileView, Slot};

/// The most saved segments a database may hold: each costs every write a judgement.
pub const MAX_SEGMENTS: usize = 100;

/// A saved segment as persisted: its name, its filter text and when it was saved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentDef {
    /// `[a-z0-9_-]{1,64}`, unique in the database.
    pub name: String,
    /// The filter, as given.
    pub filter: String,
    /// When this definition was saved.
    pub saved_at: Timestamp,
}

/// Why a set of segment definitions cannot be saved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SegmentError {
    /// The name is not `[a-z0-9_-]{1,64}`.
    #[error("segment names are 1 to 64 of a-z, 0-9, `_` and `-`; {0:?} is not one")]
    NameInvalid(String),
    /// No saved segment of this name.
    #[error("no saved segment `{0}`")]
    NotFound(String),
    /// The filter does not parse or does not type against the schema.
    #[error("{0}")]
    Filter(FilterError),
    /// Other saved segments refer to this one.
    #[error("segment `{name}` is referred to by {by:?}: change or delete those first")]
    InUse {
        /// The segment.
        name: String,
        /// Who refers to it.
        by: Vec<String>,
    },
    /// Saved segments name this field.
    #[error("field `{field}` is read by saved segments {by:?}: change or delete those first")]
    FieldInUse {
        /// The field.
        field: String,
        /// The segments.
        by: Vec<String>,
    },
    /// The database holds as many as it may.
    #[error("a database holds at most {MAX_SEGMENTS} saved segments")]
    TooMany,
}

/// One saved segment: its definition, its compiled filter and its members.
#[derive(Debug)]
pub struct Saved {
    /// What was saved.
    pub def: SegmentDef,
    compiled: Compiled,
    // Written by the database's writer only; readers hold the lock for a count or a page.
    members: RwLock<RoaringBitmap>,
}

impl Saved {
    /// How many profiles belong.
    pub fn count(&self) -> u64 {
        self.members.read().len()
    }

    /// Up to `limit` member slots after `after`, in slot (creation) order, and whether
    /// more follow.
    pub fn page(&self, after: Option<Slot>, limit: usize) -> (Vec<Slot>, bool) {
        let members = self.members.read();
        let from = after.map_or(0, |a| a.saturating_add(1));
        let mut slots: Vec<Slot> = if after == Some(Slot::MAX) {
            Vec::new()
        } else {
            members.range(from..).take(limit + 1).collect()
        };
        let more = slots.len() > limit;
        slots.truncate(limit);
        (slots, more)
    }

    /// Whether the profile in `slot` belongs.
    pub fn contains(&self, slot: Slot) -> bool {
        self.members.read().contains(slot)
    }

    /// The compiled filter.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }
}

/// The saved segments of a database, with what judging one profile against all of them
/// needs.
#[derive(Debug, Default)]
struct Set {
    all: Vec<Arc<Saved>>,
    // What the documents of the segments that cannot read the bytes must show (`None`
    // when every segment reads the bytes).
    union: Option<Projection>,
}

/// A database's saved segments and their members.
#[derive(Debug, Default)]
pub struct SavedSegments {
    set: ArcSwap<Set>,
    // Membership is kept only once recovery has rebuilt it.
    live: AtomicBool,
    // While a refresh runs: the slots written meanwhile, to judge again at its end.
    touched: Mutex<Option<RoaringBitmap>>,
    // A refresh was asked for while one ran (after a settings change): run another.
    again: AtomicBool,
}

/// A refresh's work: the volatile segments to evaluate anew.
#[derive(Debug)]
pub struct Refresh {
    segments: Vec<Arc<Saved>>,
}

/// A refresh's result, for [`SavedSegments::finish_refresh`].
#[derive(Debug, Default)]
pub struct Refreshed {
    results: Vec<(Arc<Saved>, RoaringBitmap)>,
}

impl From<SegmentError> for Problem {
    fn from(e: SegmentError) -> Self {
        let detail = e.to_string();
        match e {
            SegmentError::NameInvalid(name) => {
                Problem::new(ErrorCode::SegmentNameInvalid, detail).with("segment", name)
            }
            SegmentError::NotFound(name) => {
                Problem::new(ErrorCode::SegmentNotFound, detail).with("segment", name)
            }
            SegmentError::Filter(f) => {
                Problem::new(ErrorCode::FilterInvalid, detail).with("column", f.column)
            }
            SegmentError::InUse { name, by } => Problem::new(ErrorCode::SegmentInUse, detail)
                .with("segment", name)
                .with("referred_by", by),
            SegmentError::FieldInUse { field, by } => Problem::new(ErrorCode::FieldInUse, detail)
                .with("field", field)
                .with("segments", by),
            SegmentError::TooMany => Problem::new(ErrorCode::SegmentsTooMany, detail),
        }
    }
}

/// This run of the server, in member cursors: slots are numbered afresh at each start,
/// so a cursor from an earlier run must be refused rather than misread.
fn run_token() -> u32 {
    static RUN: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *RUN.get_or_init(|| {
        let mut b = [0u8; 4];
        // Without randomness, the start time still tells runs apart.
        if getrandom::fill(&mut b).is_err() {
            return Timestamp::now().subsec_nanosecond() as u32;
        }
        u32::from_le_bytes(b)
    })
}

/// The cursor of a members page that ends at `slot`.
pub fn cursor_of(slot: Slot) -> String {
    format!("{:08x}{slot:08x}", run_token())
}

/// The slot a members cursor ends at, if this run gave it.
pub fn cursor_slot(cursor: &str) -> Option<Slot> {
    if cursor.len() != 16 || !cursor.is_ascii() {
        return None;
    }
    let (run, slot) = cursor.split_at(8);
    (u32::from_str_radix(run, 16).ok()? == run_token())
        .then(|| Slot::from_str_radix(slot, 16).ok())
        .flatten()
}

/// Checks a segment name: `[a-z0-9_-]{1,64}`.
pub fn check_name(name: &str) -> Result<(), SegmentError> {
    if crate::schema::database::is_name(name) {
        Ok(())
    } else {
        Err(SegmentError::NameInvalid(name.to_owned()))
    }
}

/// Compiles definitions in order against a schema; a segment refers only to the
/// segments among `defs`.
fn compile_all(defs: &[SegmentDef], schema: &Schema) -> Result<Vec<Compiled>, SegmentError> {
    let parsed: Vec<Expr> = defs
        .iter()
        .map(|d| parse(&d.filter).map_err(SegmentError::Filter))
        .collect::<Result<_, _>>()?;
    let find = |name: &str| {
        defs.iter()
            .position(|d| d.name == name)
            .map(|i| parsed[i].clone())
    };
    defs.iter()
        .zip(&parsed)
        .map(|(d, e)| compile_with(e, schema, &find, Some(&d.name)).map_err(SegmentError::Filter))
        .collect()
}

/// The names of the saved segments among `defs` whose filter names `segment("name")`.
fn referring(defs: &[SegmentDef], name: &str) -> Vec<String> {
    defs.iter()
        .filter(|d| d.name != name)
        .filter(|d| parse(&d.filter).is_ok_and(|e| refers_to(&e, name)))
        .map(|d| d.name.clone())
        .collect()
}

fn refers_to(e: &Expr, name: &str) -> bool {
    match e {
        Expr::Or(all) | Expr::And(all) => all.iter().any(|e| refers_to(e, name)),
        Expr::Not(e) => refers_to(e, name),
        Expr::Segment(n, _) => n == name,
        _ => false,
    }
}

impl SavedSegments {
    /// No saved segments; membership not kept until [`SavedSegments::go_live`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Every definition, by name.
    pub fn defs(&self) -> Vec<SegmentDef> {
        self.set.load().all.iter().map(|s| s.def.clone()).collect()
    }

    /// The saved segment of this name.
    pub fn get(&self, name: &str) -> Option<Arc<Saved>> {
        self.set
            .load()
            .all
            .iter()
            .find(|s| s.def.name == name)
            .cloned()
    }

    /// Every saved segment, by name.
    pub fn all(&self) -> Vec<Arc<Saved>> {
        self.set.load().all.clone()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.set.load().all.is_empty()
    }

    /// The filter of saved segment `name`, parsed: what `segment("name")` stands for in
    /// an ad-hoc query.
    pub fn expr(&self, name: &str) -> Option<Expr> {
        self.get(name).and_then(|s| parse(&s.def.filter).ok())
    }

    /// The names of the segments the profile in `slot` belongs to.
    pub fn of(&self, slot: Slot) -> Vec<String> {
        self.set
            .load()
            .all
            .iter()
            .filter(|s| s.contains(slot))
            .map(|s| s.def.name.clone())
            .collect()
    }

    /// The definitions after saving `def` (new, or replacing its namesake), checked
    /// against the schema: what the writer logs.
    pub fn with(&self, def: SegmentDef, schema: &Schema) -> Result<Vec<SegmentDef>, SegmentError> {
        check_name(&def.name)?;
        let mut defs = self.defs();
        let count = defs.len();
        match defs.iter_mut().find(|d| d.name == def.name) {
            Some(d) => *d = def,
            None if count >= MAX_SEGMENTS => return Err(SegmentError::TooMany),
            None => {
                defs.push(def);
                defs.sort_by(|a, b| a.name.cmp(&b.name));
            }
        }
        compile_all(&defs, schema)?;
        Ok(defs)
    }

    /// The definitions after deleting `name`, which no other may refer to.
    pub fn without(&self, name: &str) -> Result<Vec<SegmentDef>, SegmentError> {
        let mut defs = self.defs();
        let before = defs.len();
        let by = referring(&defs, name);
        if !by.is_empty() {
            return Err(SegmentError::InUse {
                name: name.to_owned(),
                by,
            });
        }
        defs.retain(|d| d.name != name);
        if defs.len() == before {
            return Err(SegmentError::NotFound(name.to_owned()));
        }
        Ok(defs)
    }

    /// Refuses dropping a field that saved segments read.
    pub fn check_drop_field(&self, field: &str) -> Result<(), SegmentError> {
        let by: Vec<String> = self
            .set
            .load()
            .all
            .iter()
            .filter(|s| s.compiled.reads_field(field))
            .map(|s| s.def.name.clone())
            .collect();
        if by.is_empty() {
            Ok(())
        } else {
            Err(SegmentError::FieldInUse {
                field: field.to_owned(),
                by,
            })
        }
    }

    /// Puts definitions in place (as logged: they were checked when saved). A segment
    /// whose definition and compiled filter are unchanged keeps its members; the others
    /// are evaluated over the whole store now, if membership is kept yet. Writer only.
    pub fn install(
        &self,
        defs: Vec<SegmentDef>,
        schema: &Schema,
        store: &ProfileStore,
        cx: &Context<'_>,
    ) {
        let compiled = match compile_all(&defs, schema) {
            Ok(c) => c,
            Err(e) => {
                // Checked when saved against the same schema; only a log from another
                // version could disagree. Keep what evaluates, drop the rest, and say so.
                tracing::error!(error = %e, "saved segments do not compile; keeping those that do");
                let mut kept = Vec::new();
                let mut ok = Vec::new();
                for d in defs {
                    let mut with = kept.clone();
                    with.push(d.clone());
                    if let Ok(c) = compile_all(&with, schema) {
                        kept = with;
                        ok = c;
                    }
                }
                return self.install_compiled(kept, ok, schema, store, cx);
            }
        };
        self.install_compiled(defs, compiled, schema, store, cx);
    }

    fn install_compiled(
        &self,
        defs: Vec<SegmentDef>,
        compiled: Vec<Compiled>,
        schema: &Schema,
        store: &ProfileStore,
        cx: &Context<'_>,
    ) {
        let old = self.set.load_full();
        let mut fresh = Vec::new();
        let all: Vec<Arc<Saved>> = defs
            .into_iter()
            .zip(compiled)
            .map(|(def, compiled)| {
                let same = old
                    .all
                    .iter()
                    .find(|s| s.def.filter == def.filter && s.def.name == def.name)
                    .filter(|s| s.compiled == compiled);
                match same {
                    Some(s) if s.def == def => Arc::clone(s),
                    Some(s) => Arc::new(Saved {
                        def,
                        compiled,
                        members: RwLock::new(s.members.read().clone()),
                    }),
                    None => {
                        let s = Arc::new(Saved {
                            def,
                            compiled,
                            members: RwLock::default(),
                        });
                        fresh.push(Arc::clone(&s));
                        s
                    }
                }
            })
            .collect();
        let union = union_of(&all, schema);
        if self.live.load(Ordering::Acquire) && !fresh.is_empty() {
            let built = evaluate(&fresh, store, schema, cx, 2);
            for (s, members) in fresh.iter().zip(built) {
                *s.members.write() = members;
            }
        }
        self.set.store(Arc::new(Set { all, union }));
    }

    /// Evaluates every segment over the whole store, then keeps membership current from
    /// here on. Once, after recovery.
    pub fn go_live(&self, schema: &Schema, store: &ProfileStore, cx: &Context<'_>, threads: usize) {
        let set = self.set.load_full();
        if !set.all.is_empty() {
            let built = evaluate(&set.all, store, schema, cx, threads);
            for (s, members) in set.all.iter().zip(built) {
                *s.members.write() = members;
            }
        }
        self.live.store(true, Ordering::Release);
    }

    /// Judges a written profile against every segment. Writer only.
    pub fn upkeep(&self, slot: Slot, profile: &Packed, schema: &Schema, cx: &Context<'_>) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let set = self.set.load();
        if set.all.is_empty() {
            return;
        }
        let view = profile.view();
        let verdicts = judge(&set, &view, schema, cx);
        for (s, member) in set.all.iter().zip(verdicts) {
            // Reading first: a write that changes nothing takes no write lock.
            if s.members.read().contains(slot) != member {
                let mut m = s.members.write();
                if member {
                    m.insert(slot);
                } else {
                    m.remove(slot);
                }
            }
        }
        if let Some(touched) = self.touched.lock().as_mut() {
            touched.insert(slot);
        }
    }

    /// Takes an erased profile out of every segment. Writer only.
    pub fn erased(&self, slot: Slot) {
        for s in &self.set.load().all {
            if s.members.read().contains(slot) {
                s.members.write().remove(slot);
            }
        }
        if let Some(touched) = self.touched.lock().as_mut() {
            touched.insert(slot);
        }
    }

    /// Starts a refresh of the volatile segments, if any and none is running: the work
    /// to hand to [`evaluate_refresh`] off the writer. Writer only.
    /// With `again`, a refresh running already is followed by another (what it read may
    /// be older than the cause of this one).
    pub fn begin_refresh(&self, again: bool) -> Option<Refresh> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let segments: Vec<Arc<Saved>> = self
            .set
            .load()
            .all
            .iter()
            .filter(|s| s.compiled.is_volatile())
            .cloned()
            .collect();
        let mut touched = self.touched.lock();
        if segments.is_empty() {
            return None;
        }
        if touched.is_some() {
            if again {
                self.again.store(true, Ordering::Relaxed);
            }
            return None;
        }
        *touched = Some(RoaringBitmap::new());
        Some(Refresh { segments })
    }

    /// Gives up a refresh begun but not run.
    pub fn abandon_refresh(&self) {
        *self.touched.lock() = None;
    }

    /// Puts a refresh's bitmaps in place, first judging again every profile written
    /// while it ran (the refresh may have read it before the write). A segment redefined
    /// meanwhile keeps its own members. Returns whether another refresh was asked for
    /// while this one ran. Writer only.
    pub fn finish_refresh(
        &self,
        done: Refreshed,
        schema: &Schema,
        store: &ProfileStore,
        cx: &Context<'_>,
    ) -> bool {
        let touched = self.touched.lock().take().unwrap_or_default();
        let current = self.set.load();
        for (s, mut members) in done.results {
            if !current.all.iter().any(|c| Arc::ptr_eq(c, &s)) {
                continue;
            }
            let one = Set {
                all: vec![Arc::clone(&s)],
                union: union_of(std::slice::from_ref(&s), schema),
            };
            for slot in &touched {
                let member = store
                    .by_slot(slot)
                    .is_some_and(|p| judge(&one, &p.view(), schema, cx)[0]);
                if member {
                    members.insert(slot);
                } else {
                    members.remove(slot);
                }
            }
            *s.members.write() = members;
        }
        self.again.swap(false, Ordering::Relaxed)
    }
}

/// Evaluates a refresh's segments over the whole store, off the writer.
pub fn evaluate_refresh(
    work: Refresh,
    schema: &Schema,
    store: &ProfileStore,
    cx: &Context<'_>,
    threads: usize,
) -> Refreshed {
    let built = evaluate(&work.segments, store, schema, cx, threads);
    Refreshed {
        results: work.segments.into_iter().zip(built).collect(),
    }
}

/// The projection every segment that cannot read the bytes needs.
fn union_of(all: &[Arc<Saved>], schema: &Schema) -> Option<Projection> {
    let paths: Vec<&str> = all
        .iter()
        .filter(|s| !s.compiled.is_direct())
        .flat_map(|s| s.compiled.projection().iter().map(String::as_str))
        .collect();
    if all.iter().all(|s| s.compiled.is_direct()) {
        return None;
    }
    // Every path was accepted when its filter was typed against this schema.
    Projection::from_paths(paths, schema).ok()
}

/// Whether one profile belongs to each segment of `set`, in order.
fn judge(set: &Set, view: &ProfileView<'_>, schema: &Schema, cx: &Context<'_>) -> Vec<bool> {
    let doc: Option<Json> = set.union.as_ref().map(|projection| {
        let bytes = document::render_view(view, schema, Some(projection), cx);
        serde_json::from_slice(&bytes).expect("documents are JSON")
    });
    set.all
        .iter()
        .map(|s| {
            if s.compiled.is_direct() {
                s.compiled.matches_view(view)
            } else {
                doc.as_ref().is_some_and(|d| s.compiled.matches(d))
            }
        })
        .collect()
}

/// The members of each segment, over the whole store, with `threads` threads.
fn evaluate(
    segments: &[Arc<Saved>],
    store: &ProfileStore,
    schema: &Schema,
    cx: &Context<'_>,
    threads: usize,
) -> Vec<RoaringBitmap> {
    let set = Set {
        all: segments.to_vec(),
        union: union_of(segments, schema),
    };
    let all = store.all_slotted();
    let chunk = all.len().div_ceil(threads.max(1)).max(1);
    let part_of = |part: &[(Slot, Packed)]| {
        let mut maps = vec![RoaringBitmap::new(); segments.len()];
        for (slot, p) in part {
            for (m, member) in maps.iter_mut().zip(judge(&set, &p.view(), schema, cx)) {
                if member {
                    m.insert(*slot);
                }
            }
        }
        maps
    };
    std::thread::scope(|s| {
        let workers: Vec<_> = all
            .chunks(chunk)
            .map(|part| s.spawn(move || part_of(part)))
            .collect();
        let mut maps = vec![RoaringBitmap::new(); segments.len()];
        for w in workers {
            for (m, part) in maps
                .iter_mut()
                .zip(w.join().expect("an evaluation thread does not panic"))
            {
                *m |= part;
            }
        }
        maps
    })
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::activity::ActivityStore;
    use crate::schema::Value;
    use crate::store::Profile;
    use crate::suppression::SuppressionLists;

    fn def(name: &str, filter: &str) -> SegmentDef {
        SegmentDef {
            name: name.into(),
            filter: filter.into(),
            saved_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn profile(schema: &Schema, cid: &str, city: &str) -> Packed {
        let mut p = Profile::new(cid.into(), Timestamp::UNIX_EPOCH);
        p.fields
            .push((schema.id_of("city").unwrap(), Value::Str(city.into())));
        Packed::encode(&p)
    }

    #[test]
    fn definitions_refuse_loops_unknown_names_and_deleting_what_others_use() {
        let schema = Schema::default();
        let saved = SavedSegments::new();
        let store = ProfileStore::new();
        let (activity, lists) = (ActivityStore::new(), SuppressionLists::open(None).unwrap());
        let cx = Context::detached(&activity, &lists, &[], Timestamp::now());
        let defs = saved.with(def("a", r#"city = "x""#), &schema).unwrap();
        saved.install(defs, &schema, &store, &cx);
        let defs = saved.with(def("b", r#"segment("a")"#), &schema).unwrap();
        saved.install(defs, &schema, &store, &cx);
        for (name, filter, says) in [
            ("a", r#"segment("b")"#, "refers to itself: a → b → a"),
            ("c", r#"segment("c")"#, "refers to itself"),
            ("c", r#"segment("zz")"#, "no saved segment `zz`"),
            ("c", r#"shoe = 1"#, "neither a field"),
        ] {
            let e = saved.with(def(name, filter), &schema).unwrap_err();
            assert!(e.to_string().contains(says), "{filter}: {e}");
        }
        assert!(matches!(
            saved.without("a"),
            Err(SegmentError::InUse { .. })
        ));
        assert!(matches!(
            saved.without("zz"),
            Err(SegmentError::NotFound(_))
        ));
        assert!(matches!(
            saved.check_drop_field("city"),
            Err(SegmentError::FieldInUse { .. })
        ));
        assert!(saved.check_drop_field("country").is_ok());
        assert_eq!(saved.without("b").unwrap().len(), 1);
        assert!(matches!(
            saved.with(def("Bad", "city = \"x\""), &schema),
            Err(SegmentError::NameInvalid(_))
        ));
    }

    /// A refresh reads the store while the writer goes on: a write that lands between
    /// its read and its result must survive the result.
    #[test]
    fn a_refresh_never_undoes_a_write_made_while_it_ran() {
        let schema = Schema::default();
        let saved = SavedSegments::new();
        let store = ProfileStore::new();
        let (activity, lists) = (ActivityStore::new(), SuppressionLists::open(None).unwrap());
        let cx = Context::detached(&activity, &lists, &[], Timestamp::now());
        let slots: Vec<Slot> = (0..4)
            .map(|i| store.put(profile(&schema, &format!("c{i}"), "Lisbon"), None))
            .collect();
        saved.go_live(&schema, &store, &cx, 2);
        // Volatile (reads channels) and on a field.
        let filter = r#"city = "Lisbon" AND channels.email.reason = "no_contact""#;
        let defs = saved.with(def("v", filter), &schema).unwrap();
        saved.install(defs, &schema, &store, &cx);
        let v = saved.get("v").unwrap();
        assert_eq!(v.count(), 4);

        let work = saved
            .begin_refresh(false)
            .expect("a volatile segment to refresh");
        assert!(saved.begin_refresh(true).is_none(), "one refresh at a time");
        let result = evaluate_refresh(work, &schema, &store, &cx, 2);
        // Written after the refresh read it: c0 leaves Lisbon, c9 arrives, c1 is erased.
        let old = store.get("c0");
        let moved = profile(&schema, "c0", "Porto");
        store.put(moved.clone(), old.as_ref());
        saved.upkeep(slots[0], &moved, &schema, &cx);
        let new = profile(&schema, "c9", "Lisbon");
        let slot9 = store.put(new.clone(), None);
        saved.upkeep(slot9, &new, &schema, &cx);
        let (slot1, _) = store.remove("c1").unwrap();
        saved.erased(slot1);
        assert!(
            saved.finish_refresh(result, &schema, &store, &cx),
            "asked again meanwhile"
        );
        let (members, more) = v.page(None, 10);
        assert!(!more);
        assert_eq!(members, vec![slots[2], slots[3], slot9]);
        assert_eq!(saved.of(slot9), vec!["v".to_string()]);
        assert!(
            saved.begin_refresh(false).is_some(),
            "the next refresh may start"
        );
    }

    #[test]
    fn member_cursors_are_this_runs_only() {
        let c = cursor_of(41);
        assert_eq!(cursor_slot(&c), Some(41));
        let other = format!("{:08x}{:08x}", run_token().wrapping_add(1), 41);
        assert_eq!(cursor_slot(&other), None);
        assert_eq!(cursor_slot("nonsense"), None);
        assert_eq!(cursor_slot("ééééééééé"), None);
    }
}
