//! Integration tests: the real server on an ephemeral port, over HTTP. One module an area.

mod common;

mod auth;
mod contacts;
mod databases;
mod durability;
mod events;
mod fields;
mod identity;
mod imports;
mod ops;
mod plugins;
mod profiles;
mod segments;
