//! Segments: the filter language marketers divide a database with.
//!
//! So far the language itself (`filter`: text to a syntax tree, errors at a column);
//! typing paths against a database's schema, evaluating over profiles, ad-hoc queries
//! and saved segments build on it (issue 8). Pure; uses nothing but `serde_json` for
//! string escapes.

pub mod filter;

pub use filter::{Expr, FilterError, Literal, Op, Path, parse};
