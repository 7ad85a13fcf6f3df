//! Profile databases: the registry, each database's shared state and its actor.
//!
//! A [`Database`] pairs the state readers use directly ([`DbState`]: settings, schema
//! and the profile store, all behind `Arc`s) with the address of the [`DatabaseActor`]
//! that alone writes it. Every write is a [`Change`] sent through [`Database::apply`];
//! reads never touch the mailbox. [`Databases`] is the registry: databases by name and
//! the writer arbiters their actors run on. Actix stays inside this module.

pub mod actor;
pub mod apply;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::{Actor, Addr, Arbiter, ArbiterHandle};
use arc_swap::ArcSwap;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use jiff::Timestamp;

pub use actor::DatabaseActor;
use actor::{Apply, Stop};
pub use apply::{WriteError, build_profile, lookup_key};

use crate::error::{ErrorCode, Problem};
use crate::schema::{DatabaseSettings, DatabaseSpec, FieldSpec, ProfileUpdate, Schema};
use crate::store::{Profile, ProfileStore};

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
}

/// What an applied change produced.
#[derive(Debug, Clone)]
pub enum Applied {
    /// The profile as published.
    Profile(Arc<Profile>),
    /// The change took effect; nothing to return.
    Done,
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
}

/// One profile database: shared state to read, an actor to write.
#[derive(Debug)]
pub struct Database {
    /// Read directly by lookups.
    pub state: Arc<DbState>,
    addr: Addr<DatabaseActor>,
}

impl Database {
    /// Sends a change to the actor and waits for its verdict.
    pub async fn apply(&self, change: Change) -> Result<Applied, Problem> {
        self.addr.send(Apply(change)).await.map_err(|_| {
            Problem::new(
                ErrorCode::Unavailable,
                "the database is shutting down or was deleted; retry",
            )
        })?
    }

    /// The database's name.
    pub fn name(&self) -> String {
        self.state.settings.load().name.clone()
    }
}

/// All databases of the server, by name.
pub struct Databases {
    by_name: DashMap<String, Arc<Database>, foldhash::quality::RandomState>,
    writers: Vec<ArbiterHandle>,
    next_writer: AtomicUsize,
}

impl Databases {
    /// An empty registry with `writers` arbiter threads for the actors. Call inside an
    /// actix system.
    pub fn new(writers: usize) -> Self {
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
            writers,
            next_writer: AtomicUsize::new(0),
        }
    }

    /// The database of this name.
    #[inline]
    pub fn get(&self, name: &str) -> Option<Arc<Database>> {
        self.by_name.get(name).map(|r| Arc::clone(r.value()))
    }

    /// Every database, sorted by name.
    pub fn list(&self) -> Vec<Arc<Database>> {
        let mut all: Vec<_> = self.by_name.iter().map(|r| Arc::clone(r.value())).collect();
        all.sort_by_key(|d| d.name());
        all
    }

    /// Creates a database from a validated creation body.
    pub fn create(&self, spec: DatabaseSpec) -> Result<Arc<Database>, Problem> {
        let settings = DatabaseSettings::create(spec, Timestamp::now())?;
        match self.by_name.entry(settings.name.clone()) {
            Entry::Occupied(_) => Err(Problem::new(
                ErrorCode::DatabaseExists,
                format!("database `{}` exists already", settings.name),
            )),
            Entry::Vacant(slot) => {
                let state = Arc::new(DbState {
                    settings: ArcSwap::from_pointee(settings),
                    schema: ArcSwap::from_pointee(Schema::default()),
                    store: ProfileStore::new(),
                });
                let writer = &self.writers
                    [self.next_writer.fetch_add(1, Ordering::Relaxed) % self.writers.len()];
                let actor_state = Arc::clone(&state);
                let addr = DatabaseActor::start_in_arbiter(writer, move |_| {
                    DatabaseActor::new(actor_state)
                });
                let db = Arc::new(Database { state, addr });
                slot.insert(Arc::clone(&db));
                Ok(db)
            }
        }
    }

    /// Removes this database (not a namesake created since it was looked up) and stops
    /// its actor; its profiles go with it.
    pub fn delete(&self, db: &Arc<Database>) -> Result<(), Problem> {
        let name = db.name();
        let (_, db) = self
            .by_name
            .remove_if(&name, |_, current| Arc::ptr_eq(current, db))
            .ok_or_else(|| not_found(&name))?;
        db.addr.do_send(Stop);
        Ok(())
    }
}

/// The problem for a database that does not exist.
pub fn not_found(name: &str) -> Problem {
    Problem::new(ErrorCode::DatabaseNotFound, format!("no database `{name}`"))
        .with("database", name)
}
