//! The shape of data: field types and values, database settings, the update type.
//!
//! Pure and synchronous: no I/O, no locks, no framework. `store`, `db`, `ingest` and
//! `http` build on it; it depends only on `error` and `contacts`.

pub mod database;
pub mod field;
pub mod update;
pub mod value;

pub use database::{
    Channel, DatabaseSettings, DatabaseSpec, Resource, SubscriptionManager, is_name,
};
pub use field::{FieldDef, FieldId, FieldSpec, FieldType, Schema};
pub use update::{
    Prepared, ProfileBody, ProfileUpdate, Source, SubscriptionChange, SubscriptionStatus, TagsBody,
};
pub use value::{RawValue, Value, ValueError};
