//! The database actor: the only writer of one database.
//!
//! Runs on a writer arbiter thread. Each [`Apply`] message carries one [`Change`]; the
//! actor validates it against the schema and settings it owns, publishes the result to
//! the shared state (store, schema, settings) and replies. Messages are handled one at a
//! time, so writes to a database are serialized without locks.

use std::sync::Arc;

use actix::{Actor, Context, Handler, Message};
use jiff::Timestamp;

use super::apply::build_profile;
use super::{Applied, Change, DbState};
use crate::error::{ErrorCode, Problem};

/// The actor owning one database's writes.
pub struct DatabaseActor {
    state: Arc<DbState>,
}

impl DatabaseActor {
    /// An actor for a database's shared state.
    pub fn new(state: Arc<DbState>) -> Self {
        DatabaseActor { state }
    }

    fn apply(&mut self, change: Change) -> Result<Applied, Problem> {
        let st = &*self.state;
        let now = Timestamp::now();
        match change {
            Change::Upsert(update) => {
                let old = st.store.get(&update.customer_id);
                let schema = st.schema.load();
                let settings = st.settings.load();
                let profile =
                    build_profile(&schema, &settings, &st.store, old.as_deref(), &update, now)?;
                let profile = Arc::new(profile);
                st.store.put(Arc::clone(&profile), old.as_deref());
                Ok(Applied::Profile(profile))
            }
            Change::Delete { customer_id } => match st.store.remove(&customer_id) {
                Some(_) => Ok(Applied::Done),
                None => Err(Problem::new(
                    ErrorCode::ProfileNotFound,
                    format!("no profile `{customer_id}`"),
                )
                .with("customer_id", customer_id)),
            },
            Change::AddField(spec) => {
                let def = spec.into_def()?;
                let schema = st.schema.load().with_field(def)?;
                st.schema.store(Arc::new(schema));
                Ok(Applied::Done)
            }
            Change::DropField(name) => {
                let schema = st.schema.load().without_field(&name)?;
                st.schema.store(Arc::new(schema));
                // Values of a dropped field go too: a field re-added later under the same
                // name, perhaps with another type, must not find stale values.
                for p in st.store.all() {
                    if p.field(&name).is_some() {
                        let mut q = (*p).clone();
                        q.fields.retain(|(n, _)| &**n != name.as_str());
                        st.store.put(Arc::new(q), Some(&p));
                    }
                }
                Ok(Applied::Done)
            }
            Change::Settings(spec) => {
                let settings = st.settings.load().patched(spec)?;
                st.settings.store(Arc::new(settings));
                Ok(Applied::Done)
            }
        }
    }
}

impl Actor for DatabaseActor {
    type Context = Context<Self>;
}

/// Apply one change; the reply says what it did or why it was refused.
#[derive(Debug)]
pub struct Apply(pub Change);

impl Message for Apply {
    type Result = Result<Applied, Problem>;
}

impl Handler<Apply> for DatabaseActor {
    type Result = Result<Applied, Problem>;

    fn handle(&mut self, msg: Apply, _ctx: &mut Context<Self>) -> Self::Result {
        self.apply(msg.0)
    }
}

/// Stop the actor (its database was deleted).
#[derive(Debug)]
pub struct Stop;

impl Message for Stop {
    type Result = ();
}

impl Handler<Stop> for DatabaseActor {
    type Result = ();

    fn handle(&mut self, _: Stop, ctx: &mut Context<Self>) {
        use actix::ActorContext;
        ctx.stop();
    }
}
