//! Persona: an in-memory customer profile server.
//!
//! # Layout
//!
//! - [`cli`]: `persona import`, a client of a running server.
//! - [`config`]: settings from defaults, `persona.toml`, environment and flags.
//! - [`error`]: the table of stable error codes and the problem document.
//! - [`schema`]: field types and values, database settings, the one update type. Pure.
//! - [`contacts`]: email and phone validation and normalization. Pure.
//! - [`suppression`]: suppression lists (the global stop list and named ones), journaled.
//! - [`channels`]: channel eligibility (email, sms, push) and the reason when not.
//! - [`activity`]: events, timelines and the values derived from them (stats, RFM...).
//! - [`store`]: the sharded profile map of one database and its identifier index.
//! - [`db`]: the database actor (the only writer), the registry of databases.
//! - [`persist`]: the data directory, WAL, snapshots and recovery: every byte on disk.
//! - [`ingest`]: CSV, JSON and NDJSON importers and import jobs, on the one write path.
//! - [`plugins`]: the WebAssembly plugin sandbox, uploaded plugins, their output as updates.
//! - [`segments`]: the segment filter language (parsed to a tree, errors at a column).
//! - [`document`]: the profile document, whole or projected, serialized from the store.
//! - [`auth`]: API keys, roles and groups.
//! - [`http`]: handlers, one file per resource; they translate and hold no rules.
//! - [`server`]: binds, wires the state into actix-web, runs until a signal.
//!
//! # A request's path
//!
//! A lookup (`GET .../profiles/{id}`) goes `http::Db<Read>` (the key's digest under a read
//! lock, `db::Databases::find`, the role and group check) → `http::profiles::get` →
//! `store::ProfileStore::get` (a hash and an `Arc` clone) → `document::to_vec` (the bytes).
//! A write goes `http::Db<Write>` → `http::profiles::patch` → `schema::ProfileUpdate` →
//! `db::Database::apply` (the actor's mailbox) → `db::apply::effect` (validation into
//! a `persist::Entry`) → `persist::Wal::append` (LSN, queued for the writer thread) →
//! `db::DbState::apply_entry` → `store::ProfileStore::put`; the handler then waits on
//! `persist::Durability` for its LSN before it answers. Start-up runs
//! `persist::recover` (newest snapshot, then the WAL) into the same `apply_entry`.
//! Events take the same road: `http::events::post` → `ingest::events` (each event checked
//! by `activity::event`, grouped by customer into `ProfileUpdate`s) → the actor →
//! `persist::Entry::Events` → `activity::ActivityStore::apply_owned`; a lookup renders
//! the profile's activity with it (`document::render`, `activity::view`).

#![warn(missing_docs)]

pub mod activity;
pub mod auth;
pub mod channels;
pub mod cli;
pub mod config;
pub mod contacts;
pub mod db;
pub mod document;
pub mod error;
pub mod http;
pub mod ingest;
pub mod persist;
pub mod plugins;
pub mod schema;
pub mod segments;
pub mod server;
pub mod store;
pub mod suppression;
