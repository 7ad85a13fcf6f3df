//! Segments: the filter language marketers divide a database with.
//!
//! `filter` reads the language into a syntax tree (errors at a column); `eval` types it
//! against a database's schema and evaluates it on a profile's document; `query` runs
//! it over a whole database on every core. Saved segments build on these (issue 8).
//! Uses `schema`, `document` and `store`; no I/O.

pub mod eval;
pub mod filter;
pub mod query;
pub mod saved;

pub use eval::{Compiled, compile, compile_with};
pub use filter::{Expr, FilterError, Literal, Op, Path, parse};
pub use saved::{SavedSegments, SegmentDef, SegmentError};
